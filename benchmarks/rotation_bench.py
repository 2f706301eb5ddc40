"""Class rotation benchmark: a morning of Individual Rotation for 25 fourth graders, planned by the API.

The class is built through the served API (in process, a temporary SQLite store, the bundled
graph, catalog and model): 25 learners with grade 4, each with a hidden knowledge state (every
standard below a level drawn between grade 2.5 and 4.5, closed under prerequisites), an entry
diagnostic answered from that state, 0-60 practice events on grade 2-4 items, and the goal
4.NF.B.3 + 4.NBT.B.5. Then ``POST /v1/classes/{id}/rotation`` plans the session, in two rooms:
one with unlimited stations and one with 6 computers, 3 video and 3 reading seats.

Reported per room: idle learner-minutes (time in the session with no activity), small-group sizes,
groups of one while another learner's next standards include the same one, groups of one
standard split across blocks although one group would hold them, and the share of mastery checks
and test-outs among the activities (against the planner's ``max_check_share``).

    python benchmarks/rotation_bench.py --out docs/benchmarks/rotation.md
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import networkx as nx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL = ["4.NF.B.3", "4.NBT.B.5"]
ROOMS = {
    "unlimited stations": {},
    "6 computers, 3 video, 3 reading seats": {"online_practice": 6, "video": 3, "reading": 3},
}
CHECK_KINDS = ("test_out", "recheck", "reverify")


def build_class(client, headers, graph, catalog, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    units = [u for u in graph.internal_codes if graph.standards[u].grade_num is not None]
    items_by_grade: dict[int, list] = {}
    for item in catalog:
        grades = [graph.standards[s].grade_num for s in item.standards if s in graph.standards]
        if grades and grades[0] in (2, 3, 4):
            items_by_grade.setdefault(int(grades[0]), []).append(item)
    learners = []
    for i in range(n):
        lid = f"s{i:02d}"
        level = rng.uniform(2.5, 4.5)
        known = {u for u in units if graph.standards[u].grade_num + rng.uniform(0, 1) < level}
        known |= {a for u in list(known) for a in nx.ancestors(graph.prereq, u) if a in graph.standards}

        def answer(standards, known=known) -> bool:
            p = 0.9 if all(s in known for s in standards) else 0.2
            return bool(rng.random() < p)

        assert client.post(f"/v1/learners/{lid}", json={"grade": "4"}, headers=headers).status_code == 200
        status = client.post(f"/v1/learners/{lid}/placement", headers=headers).json()
        while not status["finished"] and status["question"]:
            q = status["question"]
            status = client.post(
                f"/v1/learners/{lid}/placement/answers",
                json={"standard": q["standard"], "correct": answer([q["standard"]])},
                headers=headers,
            ).json()
        events = []
        for j in range(int(rng.integers(0, 61))):
            pool = items_by_grade[int(rng.choice([2, 3, 4]))]
            item = pool[int(rng.integers(len(pool)))]
            events.append(
                {"id": f"{lid}-{j}", "learner_id": lid, "item_id": item.id, "correct": answer(item.standards)}
            )
        if events:
            got = client.post("/v1/events", json=events, headers=headers)
            assert got.status_code == 200, got.text
        assert client.put(f"/v1/learners/{lid}/goal", json={"standards": GOAL}, headers=headers).status_code == 200
        learners.append(lid)
    return learners


def measure(client, headers, learners, capacities) -> dict:
    body = {"learners": learners, "session_minutes": 60, "block_minutes": 20, "capacities": capacities}
    rotation = client.post("/v1/classes/room-1/rotation", json=body, headers=headers)
    assert rotation.status_code == 200, rotation.text
    r = rotation.json()
    needs = {}
    for lid in learners:
        nxt = client.get(f"/v1/learners/{lid}/next", params={"k": 10}, headers=headers).json()
        needs[lid] = {rec["standard"] for rec in nxt["recommendations"] if rec["kind"] in ("learn", "remediation")}
    groups = r["groups"]
    sizes = [len(g["learners"]) for g in groups]
    lonely = [
        g
        for g in groups
        if len(g["learners"]) == 1 and any(g["standard"] in needs[o] for o in learners if o not in g["learners"])
    ]
    by_standard: dict[str, list] = {}
    for g in groups:
        by_standard.setdefault(g["standard"], []).append(g)
    capacity = 6
    split = [
        s
        for s, gs in by_standard.items()
        if len({g["block"] for g in gs}) > 1 and sum(len(g["learners"]) for g in gs) <= capacity
    ]
    activities = [a for p in r["playlists"].values() for a in p["activities"]]
    kinds = Counter(a["kind"] for a in activities)
    checks = sum(kinds[k] for k in CHECK_KINDS)
    idle = sum(p["free_minutes"] for p in r["playlists"].values())
    longest = max((a["minutes"] for a in activities), default=0)
    return {
        "idle_learner_minutes": round(idle, 1),
        "group_sizes": sizes,
        "groups_of_one_with_a_peer": len(lonely),
        "groups_split_across_blocks": len(split),
        "activities": len(activities),
        "checks_and_test_outs": checks,
        "check_share": round(checks / max(1, len(activities)), 3),
        "longest_activity_minutes": longest,
        "kinds": dict(kinds.most_common()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=25)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    parser.add_argument("--baseline", default=None, help="a git ref measured side by side (same script, same class)")
    args = parser.parse_args()
    baseline = _baseline(args) if args.baseline else None

    from fastapi.testclient import TestClient

    from configs import load_config
    from serving.app import create_app
    from serving.auth import create_key
    from serving.stores import open_store

    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(env={})
        store = open_store(f"sqlite:///{Path(tmp) / 'zpd.db'}")
        key = create_key(store, "school", ["ingest", "read", "teacher", "admin"])
        headers = {"Authorization": f"Bearer {key}"}
        app = create_app(config, store=store)
        with TestClient(app) as client:
            engine = app.state.service.engine
            learners = build_class(client, headers, engine.graph, engine.catalog, args.learners, args.seed)
            results = {room: measure(client, headers, learners, caps) for room, caps in ROOMS.items()}
        store.close()
    share = getattr(config.planner, "max_check_share", None)  # None: a baseline from before the setting
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    report = {
        "command": "python benchmarks/rotation_bench.py " + " ".join(sys.argv[1:]),
        "commit": commit.stdout.strip(),
        "learners": args.learners,
        "seed": args.seed,
        "max_check_share": share,
        "rooms": results,
        "baseline": baseline,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        _write(args, report)


def _write(args, report: dict) -> None:
    baseline = report["baseline"]
    lines = [
        "# Class rotation benchmark",
        "",
        f"Command: `{report['command']}` (commit {report['commit']}, Python {platform.python_version()}).",
        "",
        f"{args.learners} fourth graders built through the API (entry diagnostic, 0-60 events each, goal "
        f"{' + '.join(GOAL)}); one 60-minute session in 20-minute blocks, 1 teacher, groups of up to 6. "
        f"The planner's `max_check_share` is {report['max_check_share']}: at most max(1, share x activities) "
        "mastery checks and test-outs per learner."
        + (f" The baseline is the same script on a worktree of `{args.baseline}`." if baseline else ""),
        "",
        "| run | room | idle learner-minutes | small groups (sizes) | groups of one with a peer | split groups "
        "| activities | checks + test-outs (share) | longest activity |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    runs = [(report["commit"], report["rooms"])] + (
        [(f"baseline {baseline['commit']}", baseline["rooms"])] if baseline else []
    )
    for room in ROOMS:
        for run, rooms in runs:
            m = rooms[room]
            lines.append(
                f"| {run} | {room} | {m['idle_learner_minutes']:g} "
                f"| {len(m['group_sizes'])} ({', '.join(map(str, m['group_sizes']))}) "
                f"| {m['groups_of_one_with_a_peer']} | {m['groups_split_across_blocks']} | {m['activities']} "
                f"| {m['checks_and_test_outs']} ({m['check_share']:.0%}) | {m['longest_activity_minutes']:g} min |"
            )
    lines += ["", "Activity kinds:", ""]
    for room in ROOMS:
        for run, rooms in runs:
            lines.append(f"- {run}, {room}: " + ", ".join(f"{k} {v}" for k, v in rooms[room]["kinds"].items()))
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")


def _baseline(args) -> dict:
    """Run this script on a temporary worktree of ``args.baseline`` and return its report."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.baseline], cwd=ROOT, check=True)
        try:
            script = tree / "benchmarks" / "rotation_bench.py"
            script.write_text(Path(__file__).read_text())
            out = subprocess.run(
                [sys.executable, str(script), "--learners", str(args.learners), "--seed", str(args.seed)],
                cwd=tree,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=True)
    return json.loads(out[out.index("{") :])


if __name__ == "__main__":
    main()
