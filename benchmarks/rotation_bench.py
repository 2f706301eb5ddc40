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

New classes' first days: classes of 25 other fourth graders, rostered with the same goal and
nothing else (no answer): with their grade, with it and an entry diagnostic the school started for
each, and exported without a grade. Day 1's rotation is planned, its first block done as planned (an entry diagnostic answered to its
end, every other activity answered once per 5 minutes, all from the hidden state), the rest of the
session planned again and done, then day 2 is planned. For each plan: the activity kinds, the
small groups, and how each activity stands by the hidden state: on target (a check or test-out on
a standard the learner knows, anything else on one they do not know yet whose prerequisites they
do), on a standard known already, on one they are not ready for, or a check on one they do not
know (entry diagnostics are not judged).

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
        known = hidden_state(graph, units, rng)

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


def hidden_state(graph, units, rng) -> set[str]:
    """A learner's known standards: those below a level drawn between grade 2.5 and 4.5, closed
    under prerequisites."""
    level = rng.uniform(2.5, 4.5)
    known = {u for u in units if graph.standards[u].grade_num + rng.uniform(0, 1) < level}
    known |= {a for u in list(known) for a in nx.ancestors(graph.prereq, u) if a in graph.standards}
    return known


PLANS = ("day 1, as planned", "day 1, after block 1, planned again", "day 2")


#: the new classes' students: rostered with their grade or exported without one, and whether the
#: school starts an entry diagnostic for each before day 1 (one started goes on until finished)
NEW_CLASSES = {"grade 4": ("4", False), "grade 4, diagnostic started": ("4", True), "no grade": (None, False)}


def first_days(client, headers, graph, n: int, seed: int, classes: int, grade: str | None, start: bool) -> dict:
    """New classes' day 1 (block 1 as planned, the rest planned again) and day 2 (see the
    module docstring), summed over ``classes`` classes of ``n``, with ``grade`` or none, an entry
    diagnostic started for each when ``start``."""
    rng = np.random.default_rng(seed + 1)
    units = [u for u in graph.internal_codes if graph.standards[u].grade_num is not None]
    totals = {plan: Counter() for plan in PLANS}
    groups: dict[str, list[int]] = {plan: [] for plan in PLANS}
    placed = 0
    for c in range(classes):
        tag = (f"g{grade}" if grade else "x") + ("d" if start else "")
        known = {f"{tag}c{c}n{i:02d}": hidden_state(graph, units, rng) for i in range(n)}
        for lid in known:
            body = {"grade": grade} if grade else {}
            assert client.post(f"/v1/learners/{lid}", json=body, headers=headers).status_code == 200
            if start:
                assert client.post(f"/v1/learners/{lid}/placement", headers=headers).status_code == 200
            assert client.put(f"/v1/learners/{lid}/goal", json={"standards": GOAL}, headers=headers).status_code == 200
        learners = list(known)
        answered: Counter = Counter()

        def right(lid: str, standards, known=known) -> bool:
            return bool(rng.random() < (0.9 if all(s in known[lid] for s in standards) else 0.2))

        def do(lid: str, activity: dict, right=right, answered=answered) -> None:
            if activity["kind"] == "entry_diagnostic":
                status = client.post(f"/v1/learners/{lid}/placement", headers=headers).json()
                while not status["finished"] and status["question"]:
                    q = status["question"]["standard"]
                    body = {"standard": q, "correct": right(lid, [q])}
                    status = client.post(f"/v1/learners/{lid}/placement/answers", json=body, headers=headers).json()
                return
            item = activity["item"]
            events = []
            for _ in range(max(1, int(activity["minutes"] // 5))):
                answered[lid] += 1
                ok = right(lid, item["standards"])
                events.append(
                    {"id": f"{lid}-a{answered[lid]}", "learner_id": lid, "item_id": item["id"], "correct": ok}
                )
            assert client.post("/v1/events", json=events, headers=headers).status_code == 200

        def plan(minutes: float, learners=learners, c=c, tag=tag) -> dict:
            body = {"learners": learners, "session_minutes": minutes, "block_minutes": 20}
            got = client.post(f"/v1/classes/new-{tag}-{c}/rotation", json=body, headers=headers)
            assert got.status_code == 200, got.text
            return got.json()

        def judge(name: str, rotation: dict, known=known) -> None:
            counts = totals[name]
            groups[name] += [len(g["learners"]) for g in rotation["groups"]]
            for lid, playlist in rotation["playlists"].items():
                for a in playlist["activities"]:
                    unit, kind = a["standard"], a["kind"]
                    counts["kind " + kind] += 1
                    if kind == "entry_diagnostic":
                        continue
                    ready = all(p in known[lid] for p in graph.prereq.predecessors(unit) if p in graph.standards)
                    counts["judged"] += 1
                    if kind in CHECK_KINDS:
                        counts["on target" if unit in known[lid] else "checks unknown"] += 1
                    else:
                        counts["known already" if unit in known[lid] else "on target" if ready else "not ready"] += 1

        day1 = plan(60)
        judge(PLANS[0], day1)
        for lid in learners:
            for a in day1["playlists"][lid]["activities"]:
                if a["start_minute"] < 20:
                    do(lid, a)
        rest = plan(40)
        judge(PLANS[1], rest)
        for lid in learners:
            for a in rest["playlists"][lid]["activities"]:
                do(lid, a)
        judge(PLANS[2], plan(60))
        placed += sum(
            bool(client.get(f"/v1/learners/{lid}/profile", headers=headers).json().get("placement")) for lid in learners
        )
    out: dict = {"learners": n * classes, "placed_by_a_diagnostic_after_day_1": placed}
    for name in PLANS:
        counts, judged = totals[name], max(1, totals[name]["judged"])
        out[name] = {
            "judged": totals[name]["judged"],
            **{k: round(counts[k] / judged, 3) for k in ("on target", "known already", "not ready", "checks unknown")},
            "small_groups": len(groups[name]),
            "kinds": {k[5:]: v for k, v in counts.most_common() if k.startswith("kind ")},
        }
    return out


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
    parser.add_argument("--new-classes", type=int, default=4, help="new classes whose first days are followed")
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
            new_class = {
                name: first_days(client, headers, engine.graph, args.learners, args.seed, args.new_classes, *how)
                for name, how in NEW_CLASSES.items()
            }
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
        "first_days": new_class,
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
    lines += [
        "",
        "## A new class's first days",
        "",
        f"{args.new_classes} classes of {args.learners} other fourth graders, rostered with the goal and nothing "
        "else (no diagnostic, no answer), unlimited stations: with their grade (4), with it and an entry "
        "diagnostic the school started for each, and exported without one. Day 1: block 1 done as planned, the rest of the session planned again and done; then day 2. Each "
        "activity but an entry diagnostic is judged by the hidden state: on target (a check on a standard the "
        "learner knows, anything else on one they do not know yet and are ready for), on a standard known "
        "already (not a check), on one they are not ready for, or a check on one they do not know.",
    ]
    days = [(report["commit"], report["first_days"])] + (
        [(f"baseline {baseline['commit']}", baseline["first_days"])] if baseline and "first_days" in baseline else []
    )
    for scenario in NEW_CLASSES:
        lines += [
            "",
            f"### {scenario}",
            "",
            "| run | plan | judged | on target | known already | not ready | checks on unknown | small groups "
            "| kinds |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name in PLANS:
            for run, found in days:
                if scenario not in found:
                    continue
                m = found[scenario][name]
                kinds = ", ".join(f"{k} {v}" for k, v in m["kinds"].items())
                lines.append(
                    f"| {run} | {name} | {m['judged']} | {m['on target']:.0%} | {m['known already']:.0%} "
                    f"| {m['not ready']:.0%} | {m['checks unknown']:.0%} | {m['small_groups']} | {kinds} |"
                )
        lines.append("")
        for run, found in days:
            if scenario in found:
                f = found[scenario]
                lines.append(
                    f"- {run}: {f['placed_by_a_diagnostic_after_day_1']} of {f['learners']} learners placed by an "
                    "entry diagnostic after day 1."
                )
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
                [
                    sys.executable,
                    str(script),
                    "--learners",
                    str(args.learners),
                    "--seed",
                    str(args.seed),
                    "--new-classes",
                    str(args.new_classes),
                ],
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
