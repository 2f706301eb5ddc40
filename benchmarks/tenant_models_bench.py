"""What tenants served a model of their own cost a worker, next to the same tenants on the
deployment's model.

For each ``--tenants`` count N, one process per side (so their memory does not mix):

- **own models**: N tenants are each set a model of their own (``Deployment.set_tenant_model``,
  the path of ``PUT /v1/model/tenant``: loaded, gated, published), then a second worker starts
  on the same store and applies them (``Deployment.sync``: what every other worker and a
  restarted one do);
- **deployment's model** (the baseline): the same N tenants, none with a model of its own.

A worker holds at most ``[serving] tenant_models_loaded`` tenants' models (``--held``; the
configured default): it applies that many at start, and loads the others on their tenant's first
request, setting the least recently served aside.

Then on each side every tenant's first ``/next`` (``LearnerService.load`` + ``recommend``, as
the route runs them: the tenant's content and learner core are built on first use, and a model
not held is loaded), and ``--requests`` more spread over the tenants served last (as many as the
worker holds: traffic whose tenants fit). Measured: the resident memory (RSS) of the process after
each step, the time to set and to apply the models, and the CPU of a first and of a later
``/next``. The models are the bundled one (each tenant loads its own copy, as it would load its
own registered version).

    python benchmarks/tenant_models_bench.py --tenants 1,10,40,100 --out docs/benchmarks/tenant_models.md
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def set_models(tenants: int, db: str) -> float:
    """Set ``tenants`` tenants a model of their own in ``db`` (the worker an admin reaches, a
    process of its own); the seconds it took."""
    sys.path.insert(0, str(ROOT))
    from configs import load_config
    from serving.deployment import Deployment
    from serving.service import build_engine
    from serving.stores import open_store

    store = open_store(db)
    deployment = Deployment(build_engine(load_config(env={}), model_uri="bundled"), store)
    began = time.perf_counter()
    for k in range(tenants):
        deployment.set_tenant_model(f"district-{k}", "bundled")
    took = time.perf_counter() - began
    store.close()
    return took


def run_side(tenants: int, own: bool, requests: int, held: int | None) -> dict[str, Any]:
    """One side in this process (called in a subprocess by :func:`main`)."""
    import gc

    sys.path.insert(0, str(ROOT))
    from configs import load_config
    from engine.planner.planner import recommend
    from serving.deployment import Deployment
    from serving.service import LearnerService, build_engine
    from serving.stores import open_store

    folder = Path(tempfile.mkdtemp(prefix="zpd-tenant-models-"))
    db = f"sqlite:///{folder / 'zpd.db'}"
    names = [f"district-{k}" for k in range(tenants)]
    out: dict[str, Any] = {"tenants": tenants, "side": "own models" if own else "deployment's model", "set_s": 0.0}
    if own:
        done = subprocess.run(
            [sys.executable, __file__, "--set", str(tenants), "--db", db], capture_output=True, text=True, check=True
        )
        out["set_s"] = round(float(done.stdout.strip().splitlines()[-1]), 3)

    store = open_store(db)
    config = load_config(env={})
    if held is not None:
        config = config.model_copy(update={"serving": config.serving.model_copy(update={"tenant_models_loaded": held})})
    held = config.serving.tenant_models_loaded
    out["held"] = held
    gc.collect()
    rss0 = _rss_mib()  # the worker measured here, before its engine
    engine = build_engine(config, model_uri="bundled")
    gc.collect()
    out["rss_engine_mib"] = round(_rss_mib() - rss0, 1)
    began = time.perf_counter()
    Deployment(engine, store).sync()  # a worker starting: applies what was published
    out["apply_s"] = round(time.perf_counter() - began, 3)
    gc.collect()
    out["rss_applied_mib"] = round(_rss_mib() - rss0, 1)
    assert len(engine.models.tenants) == (min(tenants, held) if own else 0)
    loads: list[str] = []
    engine.models.on_demand.append(loads.append)

    service = LearnerService(engine, store)

    def next_cpu(tenant: str, learner: str) -> float:
        began = time.process_time()
        view = service.load(tenant, learner, unseen=True, grade="4")
        recommend(service.context(view), n=3, k_alternatives=2)
        return (time.process_time() - began) * 1000

    first, on_request = [], []
    for name in names:
        before = len(loads)
        took = next_cpu(name, "s-0")
        (on_request if len(loads) > before else first).append(took)
    gc.collect()
    out["rss_served_mib"] = round(_rss_mib() - rss0, 1)
    out["held_after"] = len(engine.models.tenants)
    hot = names[-min(tenants, held) :]  # the tenants served last: those the worker holds now
    before = len(loads)
    later = [next_cpu(hot[k % len(hot)], f"s-{k % 7}") for k in range(requests)]
    out["later_loads"] = len(loads) - before
    out["first_next_ms"] = round(statistics.median(first), 2)
    out["first_next_max_ms"] = round(max(first), 2)
    out["loaded_on_request"] = len(on_request)
    out["loaded_next_ms"] = round(statistics.median(on_request), 2) if on_request else None
    out["next_ms"] = round(statistics.median(later), 3)
    store.close()
    return out


def report(args: argparse.Namespace, rows: list[dict[str, Any]], command: str, commit: str) -> str:
    lines = [
        "# Tenants with a model of their own",
        "",
        f"Produced by `{command}` (commit {commit}) on Python {platform.python_version()}, "
        f"{platform.machine()}, {__import__('os').cpu_count()} cores, nothing else running.",
        "",
        "Each row is one process: a worker on a SQLite store where `tenants` tenants are served a model "
        "of their own (the bundled model, each tenant its own copy, set through `Deployment.set_tenant_model` "
        "as `PUT /v1/model/tenant` does), or the same tenants on the deployment's model (the baseline, "
        "measured side by side). The worker holds at most `held` tenants' models (`[serving] "
        "tenant_models_loaded`): it applies that many at start, loads the others on their tenant's first "
        "request and sets the least recently served aside. Memory is the worker's resident memory (RSS) "
        "over what it held before its engine was built: with the engine (the deployment's model), after "
        "applying the published tenants' models (`Deployment.sync`, as a worker does at start and within "
        "`[serving] sync_s`), and after every tenant's first `/next` (its content and learner core built). "
        "`set s`: setting every tenant's model in the worker an admin reaches (load, promotion gate, "
        "publish); `apply s`: another worker starting on them. `/next` CPU: `LearnerService.load` + "
        "`recommend`: the median of every tenant's first whose model was held (and the slowest), the "
        "median of the first `/next` of the tenants whose model was loaded on that request, and the median "
        f"of {args.requests} later requests spread over the tenants served last (as many as are held; "
        "`loads`: models loaded meanwhile).",
        "",
        "| tenants | side | held | RSS engine MiB | RSS after apply MiB | RSS after first /next MiB | set s "
        "| apply s | first /next, held ms (median / max) | first /next, loaded on it: count, median ms "
        "| later /next ms (loads) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        loaded = f"{r['loaded_on_request']}, {r['loaded_next_ms']}" if r["loaded_on_request"] else "0"
        lines.append(
            f"| {r['tenants']} | {r['side']} | {r['held'] if r['side'] == 'own models' else ''} | "
            f"{r['rss_engine_mib']} | {r['rss_applied_mib']} | {r['rss_served_mib']} | {r['set_s']} | "
            f"{r['apply_s']} | {r['first_next_ms']} / {r['first_next_max_ms']} | {loaded} | {r['next_ms']} "
            f"({r['later_loads']}) |"
        )
    lines.append("")
    by = {(r["tenants"], r["side"]): r for r in rows}
    lines.append("Per tenant with a model of its own, over the same tenants on the deployment's model:")
    lines.append("")
    for n in sorted({r["tenants"] for r in rows}):
        own, base = by.get((n, "own models")), by.get((n, "deployment's model"))
        if own is None or base is None:
            continue
        held = own["held_after"]
        extra = (own["rss_served_mib"] - base["rss_served_mib"]) / max(1, held)
        applied = min(n, own["held"])
        lines.append(
            f"- {n} tenant(s), {held} models held after every tenant's first `/next`: {extra:.1f} MiB more per "
            f"model held; applying {applied} at start took {own['apply_s'] / max(1, applied) * 1000:.0f} ms each, "
            f"{own['apply_s']:.2f} s in all; a later `/next` costs {own['next_ms'] / base['next_ms']:.2f}x the "
            "baseline's CPU."
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tenants", default="1,10,40")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--held", type=int, help="[serving] tenant_models_loaded (default: the configured one)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--side", help=argparse.SUPPRESS)  # N:own|base, run in a subprocess
    ap.add_argument("--set", type=int, help=argparse.SUPPRESS)  # set N tenants' models in --db
    ap.add_argument("--db", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.set is not None:
        print(set_models(args.set, args.db))
        return
    if args.side:
        n, which = args.side.split(":")
        print(json.dumps(run_side(int(n), which == "own", args.requests, args.held)))
        return
    rows = []
    for n in (int(x) for x in args.tenants.split(",")):
        for which in ("base", "own"):
            done = subprocess.run(
                [sys.executable, __file__, "--side", f"{n}:{which}", "--requests", str(args.requests)]
                + ([] if args.held is None else ["--held", str(args.held)]),
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
    command = "python benchmarks/tenant_models_bench.py " + " ".join(
        a for a in sys.argv[1:] if not a.startswith("--out") and a != str(args.out)
    )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    text = report(args, rows, command.strip() + (f" --out {args.out}" if args.out else ""), commit.strip())
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
