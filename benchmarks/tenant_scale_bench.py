"""What a tenant's own bookkeeping costs as the tenant grows: answers on unaligned activities,
and erasing a learner.

- **Unaligned activities.** A platform that starts sending xAPI before its activities are
  aligned has every answer on an unaligned activity, and the server lists each (activity,
  learner) so the learners are refolded once an admin aligns it. Measured: one batch of 50 such
  answers from new learners (``LearnerService.ingest``: stored and listed; CPU and wall time,
  median of ``--batches``) after the list already holds ``--listed`` (activity, learner) pairs
  over ``--activities`` activities, and reading the list (``GET /v1/events/unaligned``).
- **Erasing a student named in stored plans.** ``LearnerService.delete_learner`` of a student
  whose class plans are stored, in a tenant holding ``--plans`` stored class plans.
- **Erasing rostered students.** One at a time and 100 in one request, in a district of
  ``--students`` rostered students; what another worker's next roster read costs after each, and
  the district's import (first, and the same bundle again).
- **Listing learners.** ``GET /v1/learners`` pages in a tenant of ``--learners`` learners.
- **Erasure.** Event ids are unique per tenant, so the store keeps every id's learner (its
  claim); erasing a learner removes theirs. Measured: ``LearnerService.delete_learner`` of a
  learner with 20 events in a tenant holding ``--claims`` claims (wall time of the call, median
  of 5; on SQLite the file's rewrite that follows runs in the background and is waited for
  between deletions, not counted).

With ``--baseline REV`` the same measurements run first on that commit (a git worktree), side
by side.

    python benchmarks/tenant_scale_bench.py --listed 1000,50000,200000 --claims 10000,100000,1000000 \\
        --learners 10000,100000,500000 --plans 400,4000,20000 --students 10000,100000 --stores sqlite,redis --baseline HEAD~1 --out docs/benchmarks/tenant_scale.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

BATCH = 50
CASES = ("unaligned", "erasure", "plans", "roster", "listing")
T0 = 1_790_000_000.0  # the events' times: before the server's clock


def run_unaligned(listed: int, activities: int, batches: int, store: str) -> dict:
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
        "case": "unaligned",
        "store": store,
        "size": listed,
        "batch_cpu_ms": round(statistics.median(cpu), 2),
        "batch_wall_ms": round(statistics.median(wall), 2),
        "batch_wall_max_ms": round(max(wall), 2),
        "list_read_cpu_ms": round(read[0], 2),
        "list_read_wall_ms": round(read[1], 2),
    }


def run_erasure(claims: int, store: str) -> dict:
    """One tree (the one on ``sys.path``), one tenant size, one store."""
    from fastapi.testclient import TestClient
    from serve_bench import in_process_app

    from serving.stores.base import LearnerRecord, StoredEvent

    with tempfile.TemporaryDirectory() as tmp, in_process_app(store, Path(tmp)) as app, TestClient(app):
        service, db = app.state.service, app.state.store
        for start in range(0, claims, 10000):  # the tenant's other learners' event ids
            db.claim_event_ids("demo", {f"x{i}": f"other{i % 5000}" for i in range(start, min(claims, start + 10000))})
        wall = []
        for k in range(5):
            learner = f"erase-me-{k}"
            events = [
                StoredEvent(f"{learner}-{i}", "item", ("3.NF.A.1",), 1.0, T0 + i, T0 + i, f"hash-{i}")
                for i in range(20)
            ]
            db.claim_event_ids("demo", {e.id: learner for e in events})
            db.commit(LearnerRecord("demo", learner, state=b"x"), 0, events)
            started = time.perf_counter()
            assert service.delete_learner("demo", learner)
            wall.append((time.perf_counter() - started) * 1000)
            pending = getattr(db, "compaction_pending", None)
            if pending is not None:
                pending(wait_s=600)
    return {"case": "erasure", "store": store, "size": claims, "delete_wall_ms": round(statistics.median(wall), 1)}


def run_plans(plans: int, store: str) -> dict:
    """One tree (the one on ``sys.path``), one number of stored class plans, one store: erasing a
    student named in some of them."""
    import orjson
    from fastapi.testclient import TestClient
    from serve_bench import in_process_app

    from serving import plans as stored

    def plan(c: int, date: str) -> dict[str, Any]:
        learners = [f"s{c}-{k}" for k in range(25)]
        return {
            "class_id": f"class{c}",
            "date": date,
            "learners": learners,
            "playlists": {s: {"activities": [{"item": "x" * 40, "minutes": 20}] * 3} for s in learners},
            "gps": {s: {"status": "on_track", "route": ["4.NF.A.1"] * 5} for s in learners},
            "groups": [{"standard": "4.NF.A.1", "learners": learners[:6]}],
        }

    with tempfile.TemporaryDirectory() as tmp, in_process_app(store, Path(tmp)) as app, TestClient(app):
        service, db = app.state.service, app.state.store
        classes = 400
        names = []
        for k in range(plans):  # nightly plans: 400 classes a day, as many days as it takes
            day = k // classes
            p = plan(k % classes, f"2026-{9 + day // 28:02d}-{1 + day % 28:02d}")
            if hasattr(stored, "store_plan"):  # this tree: each plan referenced by its learners
                stored.store_plan(db, "demo", p)
            else:  # a tree before: the names of all plans in one list
                name = stored.plan_setting("demo", p["class_id"], p["date"])
                db.put_setting(name, orjson.dumps(p).decode())
                names.append(name)
        if names:
            db.put_setting("plans@demo", orjson.dumps(names).decode())
        service.delete_learner("demo", "s399-24")  # a first deletion (an older store is referenced then)
        wall = []
        for k in range(5):
            started = time.perf_counter()
            service.delete_learner("demo", f"s{k}-0")
            wall.append((time.perf_counter() - started) * 1000)
            pending = getattr(db, "compaction_pending", None)
            if pending is not None:
                pending(wait_s=600)
            kept = stored.stored_plan(db, "demo", f"class{k}", "2026-09-01")
            assert f"s{k}-0" not in orjson.dumps(kept).decode()
    return {"case": "plans", "store": store, "size": plans, "delete_wall_ms": round(statistics.median(wall), 1)}


def run_roster(students: int, store: str) -> dict:
    """One tree (the one on ``sys.path``), one district size, one store: erasing rostered students
    one at a time, and 100 in one request where the tree has it."""
    from fastapi.testclient import TestClient
    from serve_bench import in_process_app

    from engine.roster import load_bundle

    path = list(sys.path)
    try:
        from plan_batch_bench import write_roster  # it puts its own tree first on sys.path
    finally:
        sys.path[:] = path  # the measured tree stays first

    from serving.service import LearnerService

    with tempfile.TemporaryDirectory() as tmp, in_process_app(store, Path(tmp)) as app, TestClient(app):
        service = app.state.service
        other = LearnerService(service.engine, app.state.store)  # another worker over the same store
        folder = Path(tmp) / "roster"
        folder.mkdir()
        write_roster(folder, students, 10)
        bundle = load_bundle(folder)
        started = time.perf_counter()
        service.import_roster("demo", bundle)
        first_import = (time.perf_counter() - started) * 1000
        db = app.state.store
        if store == "redis":  # what the district costs the store: Redis's memory, SQLite's files
            size_mb = db.client.info("memory")["used_memory"] / 1e6
        else:
            size_mb = sum(f.stat().st_size for f in Path(tmp).glob("zpd.db*")) / 1e6
        started = time.perf_counter()
        service.import_roster("demo", bundle)
        again = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        other.roster("demo")
        cold = (time.perf_counter() - started) * 1000
        one, follow = [], []
        for k in range(5):
            started = time.perf_counter()
            assert service.delete_learner("demo", f"s{k}-0")
            one.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            assert f"s{k}-0" not in other.roster("demo").users
            follow.append((time.perf_counter() - started) * 1000)
            pending = getattr(app.state.store, "compaction_pending", None)
            if pending is not None:
                pending(wait_s=600)
        bulk = None
        if hasattr(service, "delete_learners"):
            started = time.perf_counter()
            classes = students // 25
            leaving = [f"s{k % classes}-{1 + k // classes}" for k in range(100)]
            assert len(service.delete_learners("demo", leaving)) == 100
            bulk = round((time.perf_counter() - started) * 1000, 1)
    return {
        "case": "roster",
        "store": store,
        "size": students,
        "delete_wall_ms": round(statistics.median(one), 1),
        "bulk_100_ms": bulk,
        "follow_ms": round(statistics.median(follow), 1),
        "first_read_ms": round(cold, 1),
        "import_ms": round(first_import, 1),
        "store_mb": round(size_mb, 1),
        "import_again_ms": round(again, 1),
    }


def run_listing(learners: int, store: str) -> dict:
    """One tree (the one on ``sys.path``), one tenant size, one store: ``GET /v1/learners`` pages."""
    from fastapi.testclient import TestClient
    from serve_bench import in_process_app

    from serving.auth import create_key
    from serving.stores.base import Commit, LearnerRecord

    with tempfile.TemporaryDirectory() as tmp, in_process_app(store, Path(tmp)) as app, TestClient(app) as client:
        db = app.state.store
        ids = [f"learner-{i:07d}" for i in range(learners)]
        for start in range(0, learners, 2000):
            db.commit_many([Commit(LearnerRecord("demo", i, state=b"x"), 0) for i in ids[start : start + 2000]])
        h = {"Authorization": f"Bearer {create_key(db, 'demo', ['read'])}"}
        pages = {
            "first page": {"limit": 100},
            "middle page, by offset": {"limit": 100, "offset": learners // 2},
            "middle page, by cursor": {"limit": 100, "after": ids[learners // 2]},
        }
        out: dict[str, Any] = {"case": "listing", "store": store, "size": learners}
        for name, params in pages.items():
            wall = []
            for _ in range(7):
                started = time.perf_counter()
                r = client.get("/v1/learners", params=params, headers=h)
                wall.append((time.perf_counter() - started) * 1000)
                assert r.status_code == 200 and r.json()["total"] == learners, r.text[:200]
            out[name] = round(statistics.median(wall), 1)
    return out


def measure(tree: Path, args) -> list[dict]:
    """Run every case in a child process importing ``tree`` (this tree or a baseline's)."""
    sizes = {
        "unaligned": args.listed,
        "erasure": args.claims,
        "plans": args.plans,
        "roster": args.students,
        "listing": args.learners,
    }
    cases = []
    for case, listed_sizes in sizes.items():
        if case not in args.cases.split(","):
            continue
        for store in args.stores.split(","):
            for size in (int(x) for x in listed_sizes.split(",")):
                extra = f", {args.activities}, {args.batches}" if case == "unaligned" else ""
                cases.append(f"run_{case}({size}{extra}, {store!r})")
    results = []
    for call in cases:
        code = (
            f"import sys, json; sys.path.insert(0, {str(tree)!r}); sys.path.insert(1, {str(ROOT / 'benchmarks')!r});"
            f"import tenant_scale_bench as b; print(json.dumps(b.{call}))"
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(tree.name, results[-1], flush=True)
    return results


def report(args, runs: list[dict], mine: list[dict], base: list[dict] | None) -> str:
    made = "; ".join(
        f"`{run['command']}` (commit {run['commit']}"
        + (f", the {' and '.join(run['cases'])} cases)" if len(runs) > 1 else ")")
        for run in runs
    )
    lines = [
        "# Tenant bookkeeping at scale",
        "",
        f"Produced by {made} on Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, "
        "nothing else running.",
        "",
        "SQLite with `synchronous=FULL`, Redis with `appendfsync always`: wall times include the disk.",
        "",
        "## Answers on unaligned activities",
        "",
        f"The list already holds `listed` (activity, learner) pairs over {args.activities} activities; then "
        f"batches of {BATCH} answers from new learners on those activities arrive (`LearnerService.ingest`: "
        f"stored, no evidence until aligned, and listed), median of {args.batches} after 3 left out. "
        "`list read`: `LearnerService.unaligned`, what `GET /v1/events/unaligned` reads.",
        "",
        "| store | listed | tree | batch ms CPU (median) | batch ms wall (median / max) | list read ms (CPU / wall) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    rows = [(r, "this tree") for r in mine] + [
        (r, f"baseline {r.get('baseline', args.baseline)}") for r in (base or [])
    ]
    rows.sort(key=lambda x: (x[0]["case"], x[0]["store"], x[0]["size"], x[1] != "this tree"))
    for r, who in rows:
        if r["case"] == "unaligned":
            lines.append(
                f"| {r['store']} | {r['size']} | {who} | {r['batch_cpu_ms']} | {r['batch_wall_ms']} / "
                f"{r['batch_wall_max_ms']} | {r['list_read_cpu_ms']} / {r['list_read_wall_ms']} |"
            )
    deletions = (
        (
            "erasure",
            "Erasing a learner",
            "`LearnerService.delete_learner` of a learner with 20 events, in a tenant whose other learners hold "
            "`claims` event ids; wall time of the call, median of 5.",
            "claims",
        ),
        (
            "plans",
            "Erasing a student named in stored plans",
            "`LearnerService.delete_learner` of a student of a class whose plans (`zpd plan-batch`, 400 classes "
            "of 25 a day) are stored for some days, in a tenant holding `plans` stored plans; wall time of the "
            "call, median of 5, after a first deletion (an older store's plans are referenced then, once).",
            "plans",
        ),
    )
    for case, title, text, size in deletions:
        lines += [
            "",
            f"## {title}",
            "",
            text,
            "",
            f"| store | {size} | tree | deletion ms (median) |",
            "|---|---:|---|---:|",
        ]
        lines += [
            f"| {r['store']} | {r['size']} | {who} | {r['delete_wall_ms']} |" for r, who in rows if r["case"] == case
        ]
    lines += [
        "",
        "## Erasing rostered students",
        "",
        "A district of `students` students in classes of 25 (`zpd roster import` of a synthetic OneRoster "
        "bundle): `LearnerService.delete_learner` of one student (wall time, median of 5), and "
        "`LearnerService.delete_learners` of 100 in one call (`POST /v1/erasures`; a tree without it: -). "
        "`another worker's next read`: after each of those deletions, what the roster read costs a second "
        "service over the same store whose copy was current before (every request of a teacher's key "
        "reads the roster); `first read`: that service's first read of the roster (a worker that starts). "
        "`import`: the bundle imported into an empty tenant (`store MB`: Redis's used memory, or "
        "SQLite's files, after it), and the same bundle again (a nightly sync that changes nothing). "
        "Wall times; a report without a column measured it not (-).",
        "",
        "| store | students | tree | one deletion ms (median) | 100 in one request ms | another worker's "
        "next read ms (median) | first read ms | import ms | store MB | import again ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['store']} | {r['size']} | {who} | {r['delete_wall_ms']} | {r['bulk_100_ms'] or '-'} | "
        f"{r.get('follow_ms', '-')} | {r.get('first_read_ms', '-')} | {r.get('import_ms', '-')} | "
        f"{r.get('store_mb', '-')} | {r.get('import_again_ms', '-')} |"
        for r, who in rows
        if r["case"] == "roster"
    ]
    lines += [
        "",
        "## Listing learners",
        "",
        "`GET /v1/learners?limit=100` in a tenant of `learners` learners (in process, with the key check), "
        "wall time, median of 7: the first page, the middle page by `offset`, and the middle page by the "
        "`after` cursor (a tree without the cursor answers its first page).",
        "",
        "| store | learners | tree | first page ms | middle page by offset ms | middle page by cursor ms |",
        "|---|---:|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['store']} | {r['size']} | {who} | {r['first page']} | {r['middle page, by offset']} | "
        f"{r['middle page, by cursor']} |"
        for r, who in rows
        if r["case"] == "listing"
    ]
    if base:
        lines += [
            "",
            "## This tree / baseline",
            "",
            "Each case against the baseline its table names.",
            "",
            "| case | store | size | this / baseline |",
            "|---|---|---:|---:|",
        ]
        for m, b in zip(mine, base):
            key, what = {
                "unaligned": ("batch_cpu_ms", "batch CPU"),
                "erasure": ("delete_wall_ms", "deletion wall"),
                "plans": ("delete_wall_ms", "deletion wall"),
                "roster": ("delete_wall_ms", "one deletion wall"),
                "listing": ("first page", "first page wall"),
            }[m["case"]]
            lines.append(f"| {m['case']} ({what}) | {m['store']} | {m['size']} | {m[key] / b[key]:.3g} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listed", default="1000,20000,100000")
    p.add_argument("--activities", type=int, default=500)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--claims", default="10000,100000,1000000")
    p.add_argument("--learners", default="10000,100000,500000")
    p.add_argument("--plans", default="400,4000,20000")
    p.add_argument("--students", default="10000,100000")
    p.add_argument("--stores", default="sqlite,redis")
    p.add_argument("--baseline", default=None, help="a commit to measure side by side (a git worktree)")
    p.add_argument(
        "--cases",
        default=",".join(CASES),
        help="the cases to measure; with --out, the others are kept from the report's JSON (and its command)",
    )
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    from reports import write_report

    command = "python benchmarks/tenant_scale_bench.py " + " ".join(sys.argv[1:])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    base = None
    if args.baseline:
        from serve_bench import baseline_tree

        with tempfile.TemporaryDirectory() as tmp, baseline_tree(args.baseline, Path(tmp)) as tree:
            base = [{**r, "baseline": args.baseline} for r in measure(tree, args)]
    mine = measure(ROOT, args)
    again = set(args.cases.split(","))
    runs = [{"command": command, "commit": commit.strip(), "cases": sorted(again, key=CASES.index)}]
    if args.out and args.out.with_suffix(".json").exists():  # the cases not measured now: from the last report
        kept = json.loads(args.out.with_suffix(".json").read_text())
        mine = [r for r in kept["mine"] if r["case"] not in again] + mine
        if base is not None:
            measured_by = {  # a row kept from before names its baseline as its run's command did
                case: re.search(r"--baseline (\S+)", run["command"]) for run in kept["runs"] for case in run["cases"]
            }
            base = [
                {"baseline": found.group(1) if (found := measured_by.get(r["case"])) else "?", **r}
                for r in kept.get("base") or []
                if r["case"] not in again
            ] + base
        runs = [
            {**run, "cases": [c for c in run["cases"] if c not in again]}
            for run in kept["runs"]
            if set(run["cases"]) - again
        ] + runs
    mine.sort(key=lambda r: CASES.index(r["case"]))
    if base is not None:
        base.sort(key=lambda r: CASES.index(r["case"]))
    text = report(args, runs, mine, base)
    print(text)
    if args.out:
        args.out.with_suffix(".json").write_text(
            json.dumps({"runs": runs, "mine": mine, "base": base}, indent=1) + "\n"
        )
        write_report(args.out, text)


if __name__ == "__main__":
    main()
