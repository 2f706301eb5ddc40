"""Re-cut the knowledge-tracing sample in this folder from the full data sets.

Usage (from the repository root)::

    python data/kt_sample/make_sample.py /work/shared/data/kt [--out data/kt_sample]

``/work/shared/data/kt`` is the folder holding ``assist2009_pid/``, ``assist2015/``,
``statics2011/`` and ``assist2009_dedup/`` (see each folder's SOURCE.md). The script copies the
leading learners of a few files byte for byte (no re-encoding, no re-ordering) and
``q_mat.npz`` unchanged, then prints the size and sha256 of every file it wrote. Stdlib only.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

# (source file relative to the kt root, target relative to --out, lines per learner, learners)
LINE_FORMAT_CUTS = [
    ("assist2009_pid/assist2009_pid_train1.csv", "assist2009_pid/assist2009_pid_train1_head150.csv", 4, 150),
    ("assist2015/assist2015_train1.csv", "assist2015/assist2015_train1.csv", 3, 200),
    ("assist2015/assist2015_valid1.csv", "assist2015/assist2015_valid1.csv", 3, 60),
    ("assist2015/assist2015_test1.csv", "assist2015/assist2015_test1.csv", 3, 60),
    ("statics2011/statics.csv", "statics2011/statics_head12.csv", 3, 12),
]
# (source, target, users): the first users of a one-row-per-attempt TSV (rows are grouped by user)
TSV_CUTS = [
    ("assist2009_dedup/preprocessed_data_train.csv", "assist2009_dedup/preprocessed_data_train_head30.csv", 30),
]
COPIES = [("assist2009_dedup/q_mat.npz", "assist2009_dedup/q_mat.npz")]


def head_lines(src: Path, dst: Path, n_lines: int) -> None:
    """Copy the first ``n_lines`` lines of ``src`` to ``dst`` unchanged."""
    with src.open("rb") as fin, dst.open("wb") as fout:
        for i, line in enumerate(fin):
            if i == n_lines:
                break
            fout.write(line)


def head_users(src: Path, dst: Path, n_users: int) -> None:
    """Copy the header and the rows of the first ``n_users`` distinct values of column 1."""
    users: set[bytes] = set()
    with src.open("rb") as fin, dst.open("wb") as fout:
        fout.write(fin.readline())
        for line in fin:
            user = line.split(b"\t", 1)[0]
            if user not in users and len(users) == n_users:
                break
            users.add(user)
            fout.write(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kt_root", type=Path, help="folder with assist2009_pid/, assist2015/, ...")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    written = []
    for src, dst, lines_per_learner, learners in LINE_FORMAT_CUTS:
        target = args.out / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        head_lines(args.kt_root / src, target, lines_per_learner * learners)
        written.append((dst, f"first {learners} learners ({lines_per_learner * learners} lines) of {src}"))
    for src, dst, users in TSV_CUTS:
        target = args.out / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        head_users(args.kt_root / src, target, users)
        written.append((dst, f"header + rows of the first {users} users of {src}"))
    for src, dst in COPIES:
        (args.out / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.kt_root / src, args.out / dst)
        written.append((dst, f"unchanged copy of {src}"))
    print("| file | bytes | sha256[:16] | cut |\n|---|---|---|---|")
    for dst, how in written:
        data = (args.out / dst).read_bytes()
        print(f"| {dst} | {len(data):,} | {hashlib.sha256(data).hexdigest()[:16]} | {how} |")


if __name__ == "__main__":
    main()
