"""Nightly planning benchmark: `zpd plan-batch`'s own code (serving.batch.plan_tenant) on a
synthetic district, on a local Ray with 1 worker process and then with N, side by side.

The district is a OneRoster roster written here and imported the way `zpd roster import` does:
SCHOOLS schools, classes of 25 students (grades 3-5), every student with a grade and no events
yet (the state of the first night of a school year: each plan starts from the grade's belief).
With ``--goals`` (the default), each class has the goal a teacher sets (`PUT
/v1/classes/{id}/goal`): its grade's fraction standards, due in 120 days; every GPS snapshot then
has a route to estimate, and the first night anchors every student for the measure of the route
overhead (``serving.calibration``).
Reported: learners per second and the speed-up of N workers over one, and from the measured
per-learner cost an estimate for 1,000,000 learners on a 64-core cluster.

    python benchmarks/plan_batch_bench.py --learners 2000 --workers 2 --out docs/benchmarks/plan_batch.md
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reports import write_report

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLASS_SIZE = 25


def write_roster(folder: Path, learners: int, classes_per_school: int) -> tuple[int, int]:
    n_classes = max(1, learners // CLASS_SIZE)
    n_schools = max(1, n_classes // classes_per_school)

    def table(name: str, header: list[str], rows: list[list[str]]) -> None:
        with (folder / name).open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)

    table(
        "orgs.csv",
        ["sourcedId", "name", "type", "parentSourcedId"],
        [["district", "District", "district", ""]]
        + [[f"school{s}", f"School {s}", "school", "district"] for s in range(n_schools)],
    )
    users, classes, enrollments = [], [], []
    for c in range(n_classes):
        grade = f"0{3 + c % 3}"
        school = f"school{c % n_schools}"
        classes.append([f"class{c}", f"Class {c}", grade, school])
        users.append([f"t{c}", "teacher", "Teacher", f"T{c}", "", school])
        enrollments.append([f"e-t{c}", f"class{c}", school, f"t{c}", "teacher"])
        for k in range(CLASS_SIZE):
            sid = f"s{c}-{k}"
            users.append([sid, "student", "Student", sid, grade, school])
            enrollments.append([f"e-{sid}", f"class{c}", school, sid, "student"])
    table("users.csv", ["sourcedId", "role", "givenName", "familyName", "grades", "orgSourcedIds"], users)
    table("classes.csv", ["sourcedId", "title", "grades", "schoolSourcedId"], classes)
    table("enrollments.csv", ["sourcedId", "classSourcedId", "schoolSourcedId", "userSourcedId", "role"], enrollments)
    return n_schools, n_classes


def set_class_goals(service, tenant: str) -> int:
    """Each class's goal: its grade's fraction standards (3.NF, 4.NF or 5.NF), due in 120 days, set
    for its students as `PUT /v1/classes/{id}/goal` does. Returns the students given one."""
    from engine.planner.context import Goal
    from engine.roster import roster_grade

    graph, roster = service.engine.graph, service.roster(tenant)
    due = service.clock() + 120 * 86_400
    goals = {}
    for grade in (3, 4, 5):
        prefix = f"{grade}.NF."
        goals[roster_grade(f"0{grade}")] = Goal(
            tuple(
                c for c in graph.sort(graph.learning) if c.startswith(prefix) and graph.standards[c].grade_num == grade
            ),
            due,
        )
    students = 0
    for class_id in roster.classes:
        members = roster.members(class_id, "student")
        service.set_goals(tenant, members, goals[roster.classes.value(class_id, "grades")[0]])
        students += len(members)
    return students


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--classes-per-school", type=int, default=10)
    parser.add_argument(
        "--goals", action=argparse.BooleanOptionalAction, default=True, help="each class with its grade's NF goal"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="keep the district's SQLite store here; an existing one is reused (its import is not timed anyway)",
    )
    args = parser.parse_args()

    from configs import load_config
    from engine.roster import load_bundle
    from serving.app import build_engine
    from serving.batch import plan_tenant
    from serving.service import ROSTER_CHUNK, LearnerService
    from serving.stores import open_store

    config = load_config(env={})
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "roster"
        folder.mkdir()
        schools, classes = write_roster(folder, args.learners, args.classes_per_school)
        db = args.db or Path(tmp) / "zpd.db"
        url = f"sqlite:///{db}"
        imported = None
        if args.db is None or not args.db.exists():
            started = time.perf_counter()
            with open_store(url) as store:
                service = LearnerService(build_engine(config), store)
                result = service.import_roster("district", load_bundle(folder))
                imported = {"seconds": round(time.perf_counter() - started, 1), "grades_set": result["grades_set"]}
                if args.goals:
                    started = time.perf_counter()
                    imported["goals_set"] = set_class_goals(service, "district")
                    imported["goal_seconds"] = round(time.perf_counter() - started, 1)
            print(json.dumps({"import": imported}), flush=True)
        for n, cpus in enumerate(sorted({1, args.workers})):
            summary = plan_tenant(config, url, "district", f"2026-12-0{4 + n}", num_cpus=cpus)
            runs.append({"workers": cpus, **summary})
            print(json.dumps(runs[-1]), flush=True)
    one = runs[0]
    per_learner_s = 1 / one["learners_per_second"]
    estimate_min = 1_000_000 * per_learner_s / 64 / 60
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    report = {
        "command": "python benchmarks/plan_batch_bench.py " + " ".join(sys.argv[1:]),
        "commit": commit,
        "schools": schools,
        "classes": classes,
        "goals": args.goals,
        "import": imported,
        "runs": runs,
        "seconds_per_learner_one_worker": round(per_learner_s, 4),
        "estimate_minutes_1m_learners_64_cores": round(estimate_min, 1),
    }
    print(json.dumps(report, indent=1))
    if args.out:
        lines = [
            "# Nightly planning benchmark (`zpd plan-batch`)",
            "",
            f"Command: `{report['command']}` (commit {commit}, Python {platform.python_version()}, "
            f"{platform.machine()}, 2 cores).",
            "",
            f"A synthetic district of {schools} schools and {classes} classes of {CLASS_SIZE} students (grades 3-5, "
            "no events yet"
            + (", each class with the goal of its grade's fraction standards due in 120 days" if args.goals else "")
            + "), imported as a OneRoster roster into a SQLite store; every class planned for one day "
            "(rotation with small groups, every student's playlist, a GPS snapshot each) by `serving.batch.plan_tenant`, "
            "the code `zpd plan-batch` runs, on a local Ray. Times include Ray's start and each worker building "
            "its engine (graph, catalog, model) once.",
            "",
            "| Ray workers | classes | learners | seconds | learners/s | speed-up |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in runs:
            lines.append(
                f"| {r['workers']} | {r['classes_planned']} | {r['learners']} | {r['seconds']} | {r['learners_per_second']} "
                f"| {r['learners_per_second'] / one['learners_per_second']:.2f}x |"
            )
        lines += [
            "",
            f"Estimate for 1,000,000 learners on a 64-core cluster, from the measured one-worker cost "
            f"({per_learner_s * 1000:.1f} ms per learner, start-up included) and assuming the cores scale as "
            f"the schools are independent: {estimate_min:.1f} minutes (goal: under 10).",
            "",
            f"Importing the roster the way `zpd roster import` does (`LearnerService.import_roster`: the "
            f"roster's records, then every student's roster grade, {ROSTER_CHUNK} students per store write): "
            + (
                f"{imported['seconds']} s for {imported['grades_set']} grades."
                + (
                    f" The class goals, as `PUT /v1/classes/{{id}}/goal` sets them (one store write per class): "
                    f"{imported['goal_seconds']} s for {imported['goals_set']} students."
                    if "goals_set" in imported
                    else ""
                )
                if imported
                else "not measured (`--db` reused an imported store)."
            ),
            "",
        ]
        write_report(args.out, "\n".join(lines))
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
