"""Answers on activities the catalog does not align yet: what a batch costs as the list grows.

A platform that starts sending xAPI before its activities are aligned has every answer on an
unaligned activity, and the server lists each (activity, learner) so the learners are refolded
once an admin aligns it. This measures one batch of 50 such answers from new learners
(``LearnerService.ingest``: the events stored and listed, CPU and wall time, median of
``--batches``) after the list already holds ``--listed`` (activity, learner) pairs over
``--activities`` activities; and what reading the list (``GET /v1/events/unaligned``) costs.
With ``--baseline REV`` the same measurement runs first on that commit (a git worktree), side by
side.

    python benchmarks/unaligned_bench.py --listed 1000,20000,100000 --stores sqlite,redis --baseline HEAD~1 \\
        --out docs/benchmarks/unaligned.md
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

BATCH = 50
T0 = 1_790_000_000.0  # the events' times: before the server's clock


def run(listed: int, activities: int, batches: int, store: str) -> dict:
    """One tree (the one on ``sys.path``), one list size, one store."""
    from fastapi.testclient import TestClient
    from serve_bench import in_process_app

    from serving.schemas import IncomingEvent

    def answer(n: int, learner: str, activity: int) -> IncomingEvent:
        item = f"https://apps.example/activity/{activity}"
        return IncomingEvent(id=f"e{n}", learner_id=learner, item_id=item, correct=1.0, timestamp=T0 + n)

    with tempfile.TemporaryDirectory() as tmp, in_process_app(store, Path(tmp)) as app, TestClient(app):
        service = app.state.service
        # the list as the server keeps it, written through its own bookkeeping (each
        # listed learner has answered 5 activities; their logs are not needed for this)
        pairs = [(f"old{k // 5}", (k * 7 + k // 5) % activities) for k in range(listed)]
        for start in range(0, len(pairs), 5000):
            chunk = pairs[start : start + 5000]
            service._remember_unaligned("demo", [answer(start + i, lr, a) for i, (lr, a) in enumerate(chunk)])
        cpu, wall = [], []
        n = 10**9
        for b in range(batches + 3):
            batch = []
            for i in range(BATCH):
                n += 1
                batch.append(
                    {
                        "id": f"new{n}",
                        "learner_id": f"new{b}-{i}",
                        "item_id": f"https://apps.example/activity/{n % activities}",
                        "correct": True,
                        "timestamp": "2026-11-20T10:00:00Z",
                    }
                )
            c0, w0 = time.process_time(), time.perf_counter()
            result = service.ingest("demo", batch)
            c1, w1 = time.process_time(), time.perf_counter()
            assert result["accepted"] == BATCH and result["unaligned"] == BATCH, result
            if b >= 3:  # warm-up batches left out
                cpu.append((c1 - c0) * 1000)
                wall.append((w1 - w0) * 1000)
        c0, w0 = time.process_time(), time.perf_counter()
        shown = service.unaligned("demo")
        read = ((time.process_time() - c0) * 1000, (time.perf_counter() - w0) * 1000)
        assert len(shown) == min(activities, listed)
    return {
        "store": store,
        "listed": listed,
        "batch_cpu_ms": round(statistics.median(cpu), 2),
        "batch_wall_ms": round(statistics.median(wall), 2),
        "batch_wall_max_ms": round(max(wall), 2),
        "list_read_cpu_ms": round(read[0], 2),
        "list_read_wall_ms": round(read[1], 2),
    }


def measure(tree: Path, args) -> list[dict]:
    """Run every case in a child process importing ``tree`` (this tree or a baseline's)."""
    results = []
    for store in args.stores.split(","):
        for listed in (int(x) for x in args.listed.split(",")):
            code = (
                f"import sys, json; sys.path.insert(0, {str(tree)!r}); sys.path.insert(1, {str(ROOT / 'benchmarks')!r});"
                f"import unaligned_bench as u; print(json.dumps(u.run({listed}, {args.activities}, {args.batches}, {store!r})))"
            )
            out = subprocess.run(
                [sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, check=True
            ).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            print(tree.name, results[-1], flush=True)
    return results


def report(args, command: str, mine: list[dict], base: list[dict] | None, commit: str) -> str:
    lines = [
        "# Unaligned activities",
        "",
        f"Produced by `{command}` (commit {commit}, Python {platform.python_version()}, {platform.machine()}, "
        f"{__import__('os').cpu_count()} cores, nothing else running).",
        "",
        f"The list already holds `listed` (activity, learner) pairs over {args.activities} activities; then "
        f"batches of {BATCH} answers from new learners on those activities arrive (`LearnerService.ingest`: "
        f"stored, no evidence until aligned, and listed), median of {args.batches} after 3 left out. "
        "`list read`: `LearnerService.unaligned`, what `GET /v1/events/unaligned` reads. SQLite with "
        "`synchronous=FULL`, Redis with `appendfsync always`: the wall time includes the disk.",
        "",
        "| store | listed | tree | batch ms CPU (median) | batch ms wall (median / max) | list read ms (CPU / wall) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    rows = [(r, "this tree") for r in mine] + [(r, f"baseline {args.baseline}") for r in (base or [])]
    rows.sort(key=lambda x: (x[0]["store"], x[0]["listed"], x[1] != "this tree"))
    for r, label in rows:
        lines.append(
            f"| {r['store']} | {r['listed']} | {label} | {r['batch_cpu_ms']} | {r['batch_wall_ms']} / "
            f"{r['batch_wall_max_ms']} | {r['list_read_cpu_ms']} / {r['list_read_wall_ms']} |"
        )
    if base:
        lines += [
            "",
            "| store | listed | batch CPU this / baseline | batch wall this / baseline |",
            "|---|---:|---:|---:|",
        ]
        for m, b in zip(mine, base):
            lines.append(
                f"| {m['store']} | {m['listed']} | {m['batch_cpu_ms'] / b['batch_cpu_ms']:.2f} | "
                f"{m['batch_wall_ms'] / b['batch_wall_ms']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listed", default="1000,20000,100000")
    p.add_argument("--activities", type=int, default=500)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--stores", default="sqlite,redis")
    p.add_argument("--baseline", default=None, help="a commit to measure side by side (a git worktree)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    command = "python benchmarks/unaligned_bench.py " + " ".join(sys.argv[1:])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    base = None
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "baseline"
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.baseline], cwd=ROOT, check=True)
            try:
                base = measure(tree, args)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=True)
    mine = measure(ROOT, args)
    text = report(args, command, mine, base, commit.strip())
    print(text)
    if args.out:
        previous = args.out.read_text() if args.out.exists() else ""
        notes = previous[previous.index("## Reading these numbers") :] if "## Reading these numbers" in previous else ""
        args.out.write_text(text + ("\n" + notes if notes else ""))


if __name__ == "__main__":
    main()
