"""What `/next` would cost with a planner that cost nothing: the share of its CPU that is planning.

Issue 15 asks for saturated `/next` throughput of at least half of `/healthz` on the same server
(Redis, 2 workers). This measures how much of `/next` planning is, and so what that target asks
of the planner. Two servers of this tree run side by side on stores of the same kind, seeded
with the serving benchmark's learners (``serve_bench.traffic_plan``: its mix of goals, no goals
and new learners):

- **served**: `zpd serve` as it is;
- **planner memoized**: the same, except that ``recommend`` in the `/next` route answers every
  request with the plan it made for the first one (a ``sitecustomize`` on the workers'
  ``PYTHONPATH`` wraps it). The learner is still read and folded, the context built, and the
  answer, the same size, written: what `/next` costs when planning costs nothing.

Each round runs the `/next` mix and `/healthz` saturated (16 in flight) on each server, the
order swapped every round; the report gives the medians over the rounds, the CPU per request of
each server, and what planning costs (the difference).

    python benchmarks/next_ceiling_bench.py --out docs/benchmarks/next_ceiling.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_bench as sb  # noqa: E402
from reports import write_report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

#: the workers' ``sitecustomize``: the /next route's ``recommend`` answers with its first plan
MEMOIZED = """
import serving.routes.learners as _learners

_plan = _learners.recommend
_first = {}


def _memoized(ctx, n=1, k_alternatives=2):
    key = (n, k_alternatives)
    if key not in _first:
        _first[key] = _plan(ctx, n=n, k_alternatives=k_alternatives)
    return _first[key]


_learners.recommend = _memoized
"""


def measure(store: str, args: argparse.Namespace, workdir: Path) -> dict[str, dict[str, list[dict]]]:
    plan = sb.traffic_plan(args.learners)
    mix = sb.mix_paths(plan, 3000)
    patch = workdir / "memoized"
    patch.mkdir()
    (patch / "sitecustomize.py").write_text(MEMOIZED)
    servers: dict[str, tuple[Any, str, str]] = {}
    with ExitStack() as stack:
        for label in ("served", "planner memoized"):
            folder = workdir / f"{store}-{label.replace(' ', '-')}"
            folder.mkdir()
            url = stack.enter_context(sb.store_for(store, folder))
            before = os.environ.get("PYTHONPATH")
            if label != "served":  # the workers inherit it
                os.environ["PYTHONPATH"] = os.pathsep.join([str(patch), str(ROOT)])
            try:
                proc, base, key = sb.start_server(url, args.workers, folder)
            finally:
                if before is None:
                    os.environ.pop("PYTHONPATH", None)
                else:
                    os.environ["PYTHONPATH"] = before
            stack.callback(proc.wait, 20)
            stack.callback(proc.terminate)
            sb.seed_learners(base, key, plan)
            servers[label] = (proc, base, key)

        def next_mix(i: int) -> dict:
            return {"method": "GET", "path": mix[i % len(mix)]}

        def healthz(i: int) -> dict:
            return {"method": "GET", "path": "/healthz"}

        for proc, base, key in servers.values():  # every worker warm: not measured
            sb.saturate(base, key, next_mix, seconds=args.warmup, repeats=1, server=proc.pid)
        rounds: dict[str, dict[str, list[dict]]] = {label: {"next": [], "healthz": []} for label in servers}
        for r in range(args.rounds):
            for label in list(servers) if r % 2 == 0 else list(servers)[::-1]:
                proc, base, key = servers[label]
                rounds[label]["next"].append(sb.saturate(base, key, next_mix, seconds=4.0, repeats=1, server=proc.pid))
                rounds[label]["healthz"].append(
                    sb.saturate(base, key, healthz, seconds=3.0, repeats=1, server=proc.pid)
                )
    return rounds


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs if r.get(key) is not None)


def report(results: dict[str, dict], command: str, commit: str, rounds: int) -> str:
    lines = [
        "# `/next` with a planner that costs nothing",
        "",
        f"Produced by `{command}` (commit {commit}) on Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} cores. Two servers of this tree, 2 workers each, side by side on stores of the same "
        "kind with the serving benchmark's learners (`serve_bench.traffic_plan`: the `/next` mix of goals, no "
        "goals and new learners): `served` as it is, and `planner memoized`, whose `/next` route answers every "
        "request with the plan it made for the first (the learner still read and folded, the context built, "
        "an answer of the same size written). Each of "
        f"{rounds} rounds runs the `/next` mix and `/healthz` saturated (16 in flight) on each server, the order "
        "swapped every round; medians over the rounds. `server CPU`: the server's CPU time (its process and "
        "workers) per request.",
        "",
        "| store | server | /next req/s | /healthz req/s | /next : /healthz (median of rounds, range) "
        "| /next server CPU ms | /healthz server CPU ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for store, by in results.items():
        for label, runs in by.items():
            ratios = [n["rps"] / h["rps"] for n, h in zip(runs["next"], runs["healthz"])]
            lines.append(
                f"| {store} | {label} | {_median(runs['next'], 'rps'):.0f} | {_median(runs['healthz'], 'rps'):.0f} | "
                f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | "
                f"{_median(runs['next'], 'server_cpu_ms'):.3f} | {_median(runs['healthz'], 'server_cpu_ms'):.3f} |"
            )
    lines += ["", "What planning costs, and what a ratio of 0.5 asks of it:", ""]
    for store, by in results.items():
        served, free = by["served"], by["planner memoized"]
        planning = _median(served["next"], "server_cpu_ms") - _median(free["next"], "server_cpu_ms")
        healthz = _median(served["healthz"], "server_cpu_ms")
        rest = _median(free["next"], "server_cpu_ms")
        budget = 2 * healthz - rest  # throughput ~ cores / CPU per request: the ratio 0.5 needs /next <= 2 x /healthz
        lines.append(
            f"- {store}: planning costs {planning:.3f} ms of the server's CPU per `/next`, "
            f"{100 * planning / _median(served['next'], 'server_cpu_ms'):.0f}% of it; the rest of `/next` costs "
            f"{rest:.3f} ms, against {healthz:.3f} ms for `/healthz`. A ratio of 0.5 needs `/next` within about "
            f"twice `/healthz`'s CPU ({2 * healthz:.3f} ms), which leaves planning "
            + (
                f"{budget:.3f} ms ({planning / budget:.1f}x less than now)."
                if budget > 0
                else "nothing: the rest of `/next` is already over it."
            )
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="redis,sqlite")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--learners", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for store in args.stores.split(","):
            folder = Path(tmp) / store
            folder.mkdir()
            results[store] = measure(store, args, folder)
            print(json.dumps({store: results[store]}), file=sys.stderr, flush=True)
    command = "python benchmarks/next_ceiling_bench.py " + " ".join(sys.argv[1:])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    text = report(results, command.strip(), commit.strip(), args.rounds)
    if args.out:
        write_report(args.out, text)
        args.out.with_suffix(".json").write_text(json.dumps({"command": command, "results": results}, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
