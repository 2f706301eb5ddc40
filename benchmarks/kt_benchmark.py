"""Knowledge-tracing benchmark: every learner-state model, same folds, same leakage-free protocol.

For each data set (ASSIST2009 with problem ids, ASSIST2015, Statics2011; the AKT/pyKT fold files)
and each of the 5 folds, every model is trained on the fold's train learners with early stopping
on its valid learners and scored on its test learners, through the repository's own loaders
(consecutive rows of one learner on the same problem become one attempt, predicted once) and
training loop. Reported: test AUC and accuracy (mean ± std over folds), seconds per training
epoch, and per-learner serving latency (median ``update`` of one event, median ``predict`` over
500 candidates, from a state built on 200 real events), next to the pyKT leaderboard.

    python benchmarks/kt_benchmark.py --data ../shared/data/kt --out docs/benchmarks/kt.md

Expect about an hour on 2 cores for all models, data sets and folds; ``--folds 1`` for a quick look.

``--refit`` adds, for every trained model, a row ``NAME (refit on train+valid)``: after early
stopping chose the best epoch E on valid, a fresh model (same class, hyper-parameters and seed) is
trained on train+valid for exactly E epochs and scored on test (see :func:`training.train.train`).
The plain ``NAME`` row of the same run is the early-stopped model, as without ``--refit``.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from configs import load_config  # noqa: E402
from models.base import Event, ItemSpec  # noqa: E402
from training.cli import load_splits  # noqa: E402
from training.train import train  # noqa: E402

DATASETS = {
    "assist2009": ("assist2009_pid", "ASSIST2009"),
    "assist2015": ("assist2015", "ASSIST2015"),
    "statics2011": ("statics2011", "Statics2011"),
}
TARGETS = {"assist2009": 0.79, "assist2015": 0.75, "statics2011": 0.835}
REFIT_SUFFIX = " (refit on train+valid)"


def pykt_table(path: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """{model: {dataset: (auc mean, std)}} from the pyKT leaderboard CSV (AUC block)."""
    if not path.exists():
        return {}
    rows = list(csv.reader(path.open()))
    start = next(i for i, r in enumerate(rows) if r and r[0] == "AUC")
    header = rows[start + 1]
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for row in rows[start + 2 :]:
        if not row or not row[0] or row[0] in ("Accuracy", "AUC"):
            break
        for col, cell in zip(header[1:], row[1:]):
            if "±" in cell:
                mean, std = cell.split("±")
                out.setdefault(row[0], {})[col] = (float(mean), float(std))
    return out


def latency(model, table, rng: np.random.Generator) -> tuple[float, float]:
    """Median update (ms) and predict over 500 candidates (ms) from a state built on 200 events."""
    lengths = table.sequence_lengths()
    learner = int(np.argmax(lengths >= 200)) if (lengths >= 200).any() else int(np.argmax(lengths))
    seq = table.learner_sequence(learner)
    events = []
    for t in range(min(200, len(seq))):
        stds = tuple(
            table.standard_ids[s] for s in seq.standard_indices[seq.standard_offsets[t] : seq.standard_offsets[t + 1]]
        )
        events.append(Event(table.item_ids[seq.item[t]], stds, float(seq.correct[t])))
    state = model.replay(events)
    picks = rng.choice(table.n_items, size=500, replace=table.n_items < 500)
    candidates = [
        ItemSpec(table.item_ids[i], (table.standard_ids[int(rng.integers(table.n_standards))],)) for i in picks
    ]
    batch = model.encode_items(candidates)
    ups, preds = [], []
    for k in range(300):
        t = time.perf_counter()
        model.update(state, events[k % len(events)])
        ups.append(time.perf_counter() - t)
        t = time.perf_counter()
        model.predict(state, batch)
        preds.append(time.perf_counter() - t)
    return statistics.median(ups) * 1000, statistics.median(preds) * 1000


def run(args, checkpoint=None) -> dict:
    """Train and score every (data set, fold, model); ``checkpoint(results)`` after each fold."""
    cfg = load_config(args.config)
    results: dict = {}
    rng = np.random.default_rng(0)
    for ds in args.datasets.split(","):
        folder = args.data / DATASETS[ds][0]
        for fold in range(args.start_fold, args.folds + 1):
            tables, reports = load_splits(folder, "akt", cfg, fold=fold)
            for name in args.models.split(","):
                started = time.time()
                result = train(
                    tables["train"],
                    tables["valid"],
                    tables["test"],
                    name,
                    cfg,
                    epochs=args.epochs,
                    seed=args.seed,
                    progress=False,
                    refit=args.refit,
                )
                m = result.metrics
                refitted = result.refit_epochs is not None
                row = {
                    "auc": m["early_stopped_test_auc" if refitted else "test_auc"],
                    "acc": m["early_stopped_test_accuracy" if refitted else "test_accuracy"],
                    "valid_auc": m["valid_auc"],
                    "sec_per_epoch": result.seconds_per_epoch,
                    "best_epoch": result.best_epoch,
                    "minutes": (time.time() - started) / 60,
                }
                rows = {name: row}
                if refitted:
                    rows[name + REFIT_SUFFIX] = {
                        "auc": m["test_auc"],
                        "acc": m["test_accuracy"],
                        "valid_auc": m["valid_auc"],
                        "sec_per_epoch": m["refit_seconds_per_epoch"],
                        "best_epoch": result.best_epoch,
                        "refit_epochs": result.refit_epochs,
                        "minutes": (time.time() - started) / 60,
                    }
                models = {
                    name: result.early_stopped_model if refitted else result.model,
                    name + REFIT_SUFFIX: result.model,
                }
                for label, r in rows.items():
                    if fold == args.start_fold:
                        r["update_ms"], r["predict500_ms"] = latency(models[label], tables["train"], rng)
                    results.setdefault(ds, {}).setdefault(label, []).append(r)
                    print(
                        json.dumps(
                            {"dataset": ds, "fold": fold, "model": label, **{k: round(v, 4) for k, v in r.items()}}
                        ),
                        flush=True,
                    )
            if fold == args.start_fold:
                results.setdefault("_data", {})[ds] = {k: v.get("attempts") for k, v in reports.items()}
            if checkpoint is not None:
                checkpoint(results)
    return results


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def report(results: dict, pykt: dict, args, command: str) -> str:
    lines = [
        "# Knowledge-tracing benchmark",
        "",
        f"Produced by `{command}` ({time.strftime('%Y-%m-%d')}, {platform.machine()}, torch threads per process: 1).",
        "",
        "Protocol: the AKT/pyKT fold files; for fold K train on `*_train{K}`, stop early on `*_valid{K}` "
        "(learner-level), report on `*_test{K}`. Consecutive rows of one learner on the same problem are one "
        "attempt (ASSIST2009 has 15.9% such duplicated rows), predicted once from earlier attempts only. "
        "ASSIST2015 ids are skills and Statics2011 ids are problem steps: repeated ids there are real repeated "
        "attempts and stay separate. `bkt` is the cold-start graph BKT with its default parameters (no "
        "training, no graph for these data sets): it only learns within a learner's sequence.",
        "",
    ]
    for ds, (_, pykt_name) in DATASETS.items():
        if ds not in results:
            continue
        lines += [
            f"## {pykt_name}",
            "",
            "| model | folds | test AUC | test accuracy | s/epoch | update ms | predict 500 ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, rows in results[ds].items():
            first = rows[0]
            lines.append(
                f"| {name} | {len(rows)} | {mean_std([r['auc'] for r in rows])} | {mean_std([r['acc'] for r in rows])} | "
                f"{statistics.median(r['sec_per_epoch'] for r in rows):.2f} | "
                f"{first.get('update_ms', float('nan')):.3f} | {first.get('predict500_ms', float('nan')):.3f} |"
            )
        board = sorted(((m, v[pykt_name]) for m, v in pykt.items() if pykt_name in v), key=lambda kv: -kv[1][0])
        if board:
            lines += [
                "",
                f"pyKT leaderboard ({pykt_name}, AUC): " + ", ".join(f"{m} {a:.4f}" for m, (a, _) in board[:6]),
            ]
            best_ours = max(statistics.mean(r["auc"] for r in rows) for rows in results[ds].values())
            target = TARGETS[ds]
            lines += [
                "",
                f"Target {target}: best here {best_ours:.4f} "
                f"({'met' if best_ours >= target else f'short by {target - best_ours:.4f}'}); "
                f"best on the pyKT leaderboard {board[0][1][0]:.4f} ({board[0][0]}).",
            ]
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "kt")
    parser.add_argument("--datasets", default="assist2009,assist2015,statics2011")
    parser.add_argument("--models", default="bkt,logistic,dkt,akt,zpd")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--start-fold", type=int, default=1, help="first fold to run (to complete a stopped run)")
    parser.add_argument("--epochs", type=int, default=None, help="epoch budget (default: the config's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument(
        "--refit",
        action="store_true",
        help="also report each model refitted on train+valid for its early-stopped number of epochs",
    )
    parser.add_argument(
        "--pykt", type=Path, default=ROOT.parent / "shared" / "data" / "anchors" / "pykt_leaderboard.csv"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "kt.md")
    args = parser.parse_args()
    command = "python benchmarks/kt_benchmark.py " + " ".join(sys.argv[1:])
    pykt = pykt_table(args.pykt)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def write(results: dict, final: bool = False) -> str:
        text = report(results, pykt, args, command)
        if not final:
            text += "\n_Partial report: the run is still going (folds done so far are shown)._\n"
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
        return text

    results = run(args, checkpoint=write)
    print(write(results, final=True))


if __name__ == "__main__":
    main()
