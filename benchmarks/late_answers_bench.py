"""Late answers: what an answer that arrives after later ones costs, with checkpoints and without.

A learner with a long history (answers a minute apart, sent in order) then syncs a few answers
from earlier in the day (a device that was offline): they happened before the learner's latest
answers, so the learner is refolded in time order. Without checkpoints that is the whole log;
with them (``serving.checkpoints``), what came after the newest checkpoint before the late
answers. Both runs use the same code, the same store (SQLite as ``make serve`` runs it, or Redis
with ``--stores redis``) and the same learners; the baseline is the same server with checkpoints
turned off (``EVERY`` beyond any history). Also reported: the learner's record size and what a ``/next`` costs the server for
that learner (the record is read on every request).

    python benchmarks/late_answers_bench.py --histories 1000,4000 --stores sqlite,redis --out docs/benchmarks/late_answers.md
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

T0 = time.time() - 30 * 86400  # the histories end before the server's clock


def run(history: int, late: int, learners: int, every: int, repeats: int, store: str = "sqlite") -> dict:
    from fastapi.testclient import TestClient
    from serve_bench import in_process_app

    from engine.planner.planner import recommend
    from serving import checkpoints
    from serving.auth import create_key

    checkpoints.EVERY = every
    with tempfile.TemporaryDirectory() as tmp, in_process_app(store, Path(tmp)) as app:
        with TestClient(app) as client:
            key = create_key(app.state.store, "demo", ["admin"])
            h = {"Authorization": f"Bearer {key}"}
            service = app.state.service
            engine = app.state.engine
            items = sorted(
                i.id for i in engine.catalog if any(engine.graph.standards[c].grade in ("3", "4") for c in i.standards)
            )
            late_ms, in_order_ms, in_order_wall, next_ms, next_wall, sizes = [], [], [], [], [], []
            for n in range(learners):
                lid = f"L{n}"
                client.post(f"/v1/learners/{lid}", json={"grade": "4"}, headers=h).raise_for_status()
                events = [
                    {
                        "id": f"{lid}-{k}",
                        "learner_id": lid,
                        "item_id": items[(k * 7 + n) % len(items)],
                        "correct": (k * 5 + n) % 7 < 5,
                        "timestamp": T0 + 60 * k,
                    }
                    for k in range(history)
                ]
                for start in range(0, history, 250):
                    client.post("/v1/events", json=events[start : start + 250], headers=h).raise_for_status()
                for r in range(repeats):
                    # answers from the learner's last hour or so, sent after everything else
                    sync = [
                        {
                            "id": f"{lid}-late-{r}-{j}",
                            "learner_id": lid,
                            "item_id": items[(j * 3 + r) % len(items)],
                            "correct": j % 2 == 0,
                            "timestamp": T0 + 60 * (history - 60 + 10 * r + j) + 30,
                        }
                        for j in range(late)
                    ]
                    started = time.process_time()
                    result = service.ingest("demo", sync)
                    late_ms.append((time.process_time() - started) * 1000)
                    assert result["accepted"] == late, result
                for r in range(repeats):  # and answers in order after everything: the record's write
                    now = [
                        {
                            "id": f"{lid}-now-{r}-{j}",
                            "learner_id": lid,
                            "item_id": items[(j * 5 + r) % len(items)],
                            "correct": j % 3 != 0,
                            "timestamp": T0 + 60 * (history + 10 * r + j),
                        }
                        for j in range(late)
                    ]
                    started, wall = time.process_time(), time.perf_counter()
                    result = service.ingest("demo", now)
                    in_order_ms.append((time.process_time() - started) * 1000)
                    in_order_wall.append((time.perf_counter() - wall) * 1000)
                    assert result["accepted"] == late, result
                record = app.state.store.get("demo", lid)
                sizes.append(len(record.state) + len(record.meta_json()))
                for _ in range(3):  # a learner's /next: read the record, plan
                    started, wall = time.process_time(), time.perf_counter()
                    for _ in range(50):
                        recommend(service.context(service.load("demo", lid)), n=1, k_alternatives=2)
                    next_ms.append((time.process_time() - started) * 1000 / 50)
                    next_wall.append((time.perf_counter() - wall) * 1000 / 50)
    return {
        "late_batch_ms_median": round(statistics.median(late_ms), 1),
        "late_batch_ms_max": round(max(late_ms), 1),
        "in_order_batch_ms_median": round(statistics.median(in_order_ms), 1),
        "in_order_batch_wall_ms_median": round(statistics.median(in_order_wall), 1),
        "record_kb": round(statistics.median(sizes) / 1024, 1),
        "next_ms_median": round(statistics.median(next_ms), 3),
        "next_wall_ms_median": round(statistics.median(next_wall), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--histories", default="1000,4000", help="answers per learner before the late batch")
    parser.add_argument("--late", type=int, default=5, help="answers in each late batch")
    parser.add_argument("--learners", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="late batches per learner")
    parser.add_argument("--stores", default="sqlite", help="sqlite, redis, or both: sqlite,redis")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from reports import write_report

    from serving import checkpoints

    every = checkpoints.EVERY
    rows = []
    for store in args.stores.split(","):
        for history in (int(h) for h in args.histories.split(",")):
            for label, value in (("without checkpoints (baseline)", 10**9), (f"checkpoints every {every}", every)):
                result = run(history, args.late, args.learners, value, args.repeats, store)
                rows.append({"store": store, "history": history, "run": label, **result})
                print(json.dumps(rows[-1]), flush=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    command = "python benchmarks/late_answers_bench.py " + " ".join(
        a for a in sys.argv[1:] if not a.startswith("--out") and a != str(args.out)
    )
    report = {"command": command, "commit": commit, "late": args.late, "rows": rows}
    if args.out:
        lines = [
            "# Late answers",
            "",
            f"Produced by `{command}` (commit {commit}, Python {platform.python_version()}, "
            f"{platform.machine()}, 2 cores, nothing else running).",
            "",
            f"Each learner (grade 4, {args.learners} per history length) answers in order, a minute apart; then "
            f"{args.repeats} batches of {args.late} answers from the learner's last hour arrive, each after "
            "everything else, then as many batches of answers after everything. `late batch`: the CPU time of "
            "ingesting one late batch (`LearnerService.ingest`, the bundled model), the learner "
            "refolded in time order; `in-order batch`: one batch after everything (folded on, the record "
            "written), its CPU time and its wall time (the write waits for the disk: SQLite with `synchronous=FULL`, "
            "Redis with `appendfsync always`). "
            "`/next`: the CPU and wall time of reading that learner and planning (`service.load`, `recommend`; "
            "the wall time includes the store's round trip), median of 150. The baseline is the same code "
            "with checkpoints turned off.",
            "",
            "| store | answers before | run | late batch ms (median) | late batch ms (max) "
            "| in-order batch ms (CPU / wall) | record kB | /next ms (CPU / wall) |",
            "|---|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['store']} | {r['history']} | {r['run']} | {r['late_batch_ms_median']} | {r['late_batch_ms_max']} "
                f"| {r['in_order_batch_ms_median']} / {r['in_order_batch_wall_ms_median']} | {r['record_kb']} "
                f"| {r['next_ms_median']} / {r['next_wall_ms_median']} |"
            )
        lines.append("")
        write_report(args.out, "\n".join(lines))
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
