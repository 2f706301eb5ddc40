"""GPS benchmark: how well the GPS tells when a learner will reach the goal, and whether they are on
track, at the planned pace and at the learner's own pace.

Simulated learners (the simulator's learners on the bundled graph and catalog, taught by the
served planner and model through ``ZPDPolicy``: what the API serves) work toward a goal of their
grade: by default the fraction standards of grade 4 (4.NF), of grade 5 (5.NF) and the expressions
and equations of grade 6 (6.EE), one goal after the other. They differ in how many school days they
work: every day, or three, two or one in four (``SimulatedEnvironment``'s attendance; a day off is
skipped whole), the learners a navigation system sees driving at different speeds. At checkpoints
(days 14, 28 and 42 of the school year) the GPS (``LearnerCore.status``, as the profile serves it)
gives the days to the goal at the planned pace (``[planner] minutes_per_day`` and
``school_days_per_week``, which match the simulator's sessions) and, once there is one, at the
learner's own pace. The run goes on until the GPS says the goal is reached (every goal standard
mastered), or the horizon.

Reported per goal and attendance: the error of each estimate against the day the goal was reached
(median of the absolute errors, and the median signed error: positive is late, over the learners
who reached it), the share of every learner who arrived by the day it gave and within the range
given with it, learners not there by the horizon, and how often each estimate's "on track" for a
goal date (day 120) was right. Per goal and checkpoint, the activities the learners then took to
reach it over the estimate's cost of mastering each standard left once (the estimate before
``[planner] route_overhead``): the overhead that setting stands for, measured over every learner
(Kaplan-Meier's estimate: those not there by the horizon count as "more than what they did").
The runs are then replayed as one tenant's nightly plans through ``serving.calibration``: the
overhead a tenant's GPS would count from each night on.

    python benchmarks/gps_bench.py --out docs/benchmarks/gps.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from reports import write_report  # noqa: E402

from configs import load_config  # noqa: E402
from engine.planner.gps import DAY, GoalStatus  # noqa: E402
from engine.planner.policy import ZPDPolicy  # noqa: E402
from engine.simulation import SimulatedEnvironment, SimulatorConfig  # noqa: E402
from engine.simulation.learners import MINUTES_PER_DAY, TruthIndex, draw_learners  # noqa: E402
from engine.sources import graph_from_config, load_catalog_source  # noqa: E402
from models.registry import for_graph  # noqa: E402
from serving.calibration import MIN_SAMPLES, survival_quantiles  # noqa: E402
from zpd.simulate import served_model  # noqa: E402

ATTENDANCE = (1.0, 0.75, 0.5, 0.25)
CHECKPOINTS = (14, 28, 42)
GOALS = ("4.NF", "5.NF", "6.EE")
#: the nights on which the tenant's measure of the route overhead is reported
NIGHTS = (20, 30, 45, 60, 90, 120, 180, 270, 365)


def run_learner(policy: ZPDPolicy, env: SimulatedEnvironment, graph, catalog, goal, k: int, horizon: int, seed: int):
    """One learner's run: the GPS's estimates at each checkpoint, and the day the goal was reached."""
    policy.start(graph, catalog, goal, np.random.default_rng([seed, k]))
    env.reset(k)
    estimates: dict[int, dict[str, float | None]] = {}
    nights: list[tuple] = []  # (day, status, estimated activities, route overhead, activities) as each day ends
    day, reached = 0, None
    while day < horizon:
        item = policy.choose()
        outcome = env.step(item)
        policy.observe(item, outcome)
        today = int(outcome.time // MINUTES_PER_DAY)
        if today == day:
            continue
        for checkpoint in CHECKPOINTS:  # the GPS as the day's work ends
            if day < checkpoint <= today and checkpoint not in estimates:
                status = policy.core.status(policy.learner, checkpoint * DAY)
                own = status.own_pace
                spans = {
                    "planned": status.estimated_days_range,
                    "own": None if own is None else own.estimated_days_range,
                }
                estimates[checkpoint] = {
                    "planned": checkpoint + status.estimated_days,
                    "own": None if own is None or own.estimated_days is None else checkpoint + own.estimated_days,
                    **{
                        f"{kind}_range": None if span is None else [checkpoint + span[0], checkpoint + span[1]]
                        for kind, span in spans.items()
                    },
                    "reached": status.status == "reached",
                    # what mastering each standard left once costs, and the activities done so far
                    "once": status.estimated_activities / policy.core.config.route_overhead,
                    "activities": policy.learner.progress.activities,
                }
        day = today
        status = policy.core.status(policy.learner, day * DAY)
        activities = policy.learner.progress.activities
        nights.append((day, status.status, status.estimated_activities, status.route_overhead, activities))
        if status.status == "reached":
            reached = day
            break
    return estimates, reached, activities, nights


def nightly(schools: dict[str, tuple[list[str], list[list[tuple]]]], report_at: list[int]) -> dict:
    """The runs replayed as the nightly plans of one tenant, one school per goal: each night,
    ``serving.calibration.observe`` sees every school's learners still on their way (as
    ``zpd plan-batch`` does), and on the nights of ``report_at`` ``measure`` gives the tenant's
    route overhead and the arrivals it counts. A real SQLite store holds the records."""
    from engine.planner.gps import goal_key
    from serving.calibration import measure, observe
    from serving.stores import open_store

    start = dt.date(2026, 9, 1)
    by_night: dict[int, dict[str, dict[str, tuple[GoalStatus, int]]]] = {}
    for school, (goal, runs) in schools.items():
        template = GoalStatus(tuple(goal), [], 0, len(goal), 0.0, 0.0, 0.0, None, "on_track", "")
        for k, nights in enumerate(runs):
            for day, kind, estimated, overhead, activities in nights:
                status = replace(template, status=kind, estimated_activities=estimated, route_overhead=overhead)
                by_night.setdefault(day, {}).setdefault(school, {})[f"learner-{k}"] = (status, activities)
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{folder}/calibration.db")
        try:
            for night in range(1, max(report_at) + 1):
                date = (start + dt.timedelta(days=night)).isoformat()
                for school, seen in sorted(by_night.get(night, {}).items()):
                    observe(store, "bench", school, date, seen)
                if night in report_at:
                    measured = measure(store, "bench", sorted(schools))
                    out[str(night)] = {
                        **{k: measured.get(k) for k in ("route_overhead", "quartiles", "samples", "on_the_way")},
                        "goals": {
                            school: measured["goals"].get(goal_key(goal), {}).get("route_overhead")
                            for school, (goal, _) in schools.items()
                        },
                    }
        finally:
            store.close()
    return out


def overheads(rows: list[dict]) -> dict:
    """Per checkpoint: the activities each learner then took to reach the goal, over what mastering
    each standard left once cost by the estimate: the median and quartiles over every learner,
    those not there by the horizon counted as "more than what they did" (Kaplan-Meier's estimate,
    ``serving.calibration.survival_quantiles``, as a tenant's nightly measure counts them), and
    the median over the arrivals alone (which leaves the slow learners out)."""
    out = {}
    for checkpoint in CHECKPOINTS:
        arrived, censored = [], []
        for r in rows:
            e = r["estimates"].get(checkpoint)
            if e is None or e["reached"] or e["once"] <= 0:
                continue
            ratio = (r["activities"] - e["activities"]) / e["once"]
            (arrived if r["reached"] is not None else censored).append(ratio)
        low, median, high = survival_quantiles(arrived, censored, (0.25, 0.5, 0.75))
        out[str(checkpoint)] = {
            "learners": len(arrived) + len(censored),
            "arrived": len(arrived),
            "median": None if median is None else round(median, 2),
            "quartiles": [None if q is None else round(q, 2) for q in (low, high)],
            "median_of_arrivals": round(statistics.median(arrived), 2) if arrived else None,
        }
    return out


def summarize(rows: list[dict], due: int, horizon: int) -> dict:
    """Per checkpoint and estimate: its errors against the arrivals, and over every learner the
    share who arrived by the day it gave (half, if it is a median) and within its range (half,
    if it is right). A learner not there by the horizon arrived after any day up to it; an
    estimate or range past the horizon for such a learner cannot be judged, and is not counted."""
    out: dict = {"learners": len(rows), "not_reached": sum(r["reached"] is None for r in rows)}
    for checkpoint in CHECKPOINTS:
        for kind in ("planned", "own"):
            errors, right, judged, by, within = [], 0, 0, [], []
            for r in rows:
                e = r["estimates"].get(checkpoint)
                if e is None or e["reached"] or e[kind] is None:
                    continue
                arrived = r["reached"]
                if arrived is not None:
                    errors.append(e[kind] - arrived)
                if arrived is not None or e[kind] <= horizon:
                    by.append(arrived is not None and arrived <= e[kind])
                if e[f"{kind}_range"] is not None:
                    low, high = e[f"{kind}_range"]
                    if arrived is not None or high <= horizon:
                        within.append(arrived is not None and low <= arrived <= high)
                judged += 1
                right += (e[kind] <= due) == (arrived is not None and arrived <= due)
            out[f"{kind}@{checkpoint}"] = {
                "estimates": judged,
                "median_abs_error_days": round(statistics.median(abs(x) for x in errors), 1) if errors else None,
                "median_error_days": round(statistics.median(errors), 1) if errors else None,
                "on_track_right": round(right / judged, 3) if judged else None,
                "arrived_by_estimate": round(sum(by) / len(by), 3) if by else None,
                "within_range": round(sum(within) / len(within), 3) if within else None,
            }
    return out


def goal_of(graph, name: str) -> tuple[list[str], int]:
    """The learning standards of cluster-or-domain ``name`` (``4.NF``) at its grade, in learning order."""
    grade = int(name.split(".")[0])
    goal = [c for c in graph.sort(graph.learning) if c.startswith(name + ".") and graph.standards[c].grade_num == grade]
    if not goal:
        raise SystemExit(f"--goals: no learning standard of grade {grade} starts with {name}.")
    return goal, grade


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=24, help="learners per goal and attendance")
    parser.add_argument("--horizon", type=int, default=365, help="days simulated at most")
    parser.add_argument("--due", type=int, default=120, help="the goal date an on-track answer is judged for (day)")
    parser.add_argument("--goals", default=",".join(GOALS), help="domains of a grade, comma-separated (4.NF,6.EE)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", type=Path, help="a config file merged over the default (zpd's --config)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "gps.md")
    args = parser.parse_args()

    config = load_config(args.config)
    graph = graph_from_config(config.graph)
    catalog = load_catalog_source(config.catalog.source, graph, config.catalog.generate_missing)
    model, version = served_model(config)
    sim = SimulatorConfig()
    count = args.learners * len(ATTENDANCE)
    attendance = [ATTENDANCE[k % len(ATTENDANCE)] for k in range(count)]
    started = time.perf_counter()
    by_goal: dict[str, dict] = {}
    schools: dict[str, tuple[list[str], list[list[tuple]]]] = {}
    for name in args.goals.split(","):
        goal, grade = goal_of(graph, name)
        profiles = draw_learners(TruthIndex(graph), sim, float(grade), seed=args.seed, count=count)
        env = SimulatedEnvironment(graph, catalog, goal, profiles, seed=args.seed, config=sim, attendance=attendance)
        policy = ZPDPolicy(lambda g: for_graph(model, g), config.planner, None, str(grade))
        rows: dict[float, list[dict]] = {a: [] for a in ATTENDANCE}
        for k in range(count):
            estimates, reached, activities, nights = run_learner(
                policy, env, graph, catalog, goal, k, args.horizon, args.seed
            )
            schools.setdefault(name, (goal, []))[1].append(nights)
            rows[attendance[k]].append({"estimates": estimates, "reached": reached, "activities": activities})
            print(
                f"{name} learner {k + 1}/{count}: works {attendance[k]:.0%} of days, reached on day {reached}",
                file=sys.stderr,
            )
        by_goal[name] = {
            "goal": goal,
            "grade": grade,
            "by_attendance": {str(a): summarize(rows[a], args.due, args.horizon) for a in ATTENDANCE},
            "overhead": overheads([r for a in ATTENDANCE for r in rows[a]]),
            "all": summarize([r for a in ATTENDANCE for r in rows[a]], args.due, args.horizon),
            "runs": {str(a): rows[a] for a in ATTENDANCE},
        }
    report_at = [n for n in NIGHTS if n <= args.horizon]
    night_by_night = nightly(schools, report_at)
    elapsed = time.perf_counter() - started
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    command = (
        "python benchmarks/gps_bench.py"
        + "".join(f" --{name} {getattr(args, name)}" for name in ("learners", "horizon", "due", "goals", "seed"))
        + (f" --config {args.config}" if args.config else "")
    )
    planner = config.planner
    report = {
        "command": command,
        "commit": commit.strip(),
        "model": version,
        "planned_minutes_per_day": planner.minutes_per_day,
        "school_days_per_week": planner.school_days_per_week,
        "activities_per_standard": planner.activities_per_standard,
        "route_overhead": planner.route_overhead,
        "route_spread": list(planner.route_spread),
        "simulator_session_minutes": sim.session_minutes,
        "seconds": round(elapsed, 1),
        "goals": by_goal,
        "nightly_measure": night_by_night,
    }
    lines = [
        "# GPS benchmark",
        "",
        f"Produced by `{command}` at {report['commit']} on {platform.machine()} ({elapsed:.0f} s). "
        f"Model {version}; `activities_per_standard` {planner.activities_per_standard:g}, `route_overhead` "
        f"{planner.route_overhead:g}, `route_spread` {list(planner.route_spread)}. Simulated learners of each goal's grade taught by the served planner; "
        f"sessions of {sim.session_minutes:g} minutes on {sim.school_days_per_week} school days a week, the "
        f"planned pace ({planner.minutes_per_day:g} minutes, {planner.school_days_per_week:g} days a week); each "
        f"learner works every day, or 3, 2 or 1 day in 4 ({args.learners} learners each, per goal). At day 14, 28 "
        "and 42 the GPS estimates the day the goal is reached, at the planned pace and at the learner's own pace "
        "(after a week of work); the error is against the day the GPS then said reached, over the learners who "
        "reached it (the slow ones, not there by the horizon, are left out of it: read the shares); `arrived by the "
        "estimate` and `arrived within the range` (`route_spread`): the share of every learner there by the day it "
        "gave (half, if it is a median) and within its range (half, if it is right), a learner not there by the "
        f'horizon counting as after it; `on track right`: the estimate\'s answer to "reached by day {args.due}?" '
        "matched what happened (a learner not there by the horizon counts as not by the date).",
        "",
    ]
    for name, g in by_goal.items():
        lines += [f"- **{name}** (grade {g['grade']}): {', '.join(g['goal'])}"]
    lines += [
        "",
        "## The route overhead, measured",
        "",
        "The activities the learners took to reach the goal from the checkpoint on, over the estimate's cost "
        "of mastering each standard left once (what `route_overhead` multiplies): what the setting should be. "
        'Every learner counts: one not there by the horizon as "more than what they did" (Kaplan-Meier\'s '
        "estimate, as a tenant's measure counts its students on their way; empty: too few arrived to tell). The "
        "median of the arrivals alone leaves the slow learners out.",
        "",
        "| goal | checkpoint | learners | arrived | median | quartiles | median of the arrivals alone |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, g in by_goal.items():
        for checkpoint in CHECKPOINTS:
            o = g["overhead"][str(checkpoint)]
            q = "-".join("" if x is None else f"{x:g}" for x in o["quartiles"])
            lines.append(
                f"| {name} | day {checkpoint} | {o['learners']} | {o['arrived']} | {o['median'] or ''} | {q} | "
                f"{o['median_of_arrivals']} |"
            )
    lines += [
        "",
        "## Estimates, every learner of a goal",
        "",
        f'`arrived by the estimate`: the share of the learners there by the day the estimate gave (half, if it is a median); `arrived within the range`: within the range given with it (half, if it is right); a learner not there by the horizon counts as arriving after (an estimate past the horizon for them is not counted). `on track right`: the answer to "reached by day {args.due}?" matched what happened.',
        "",
        "| goal | checkpoint | estimate | estimates | arrived by the estimate | arrived within the range | on track right |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, g in by_goal.items():
        for checkpoint in CHECKPOINTS:
            for kind in ("planned", "own"):
                cell = g["all"][f"{kind}@{checkpoint}"]
                lines.append(
                    f"| {name} | day {checkpoint} | {'planned pace' if kind == 'planned' else 'own pace'} | "
                    f"{cell['estimates']} | {cell['arrived_by_estimate']} | {cell['within_range']} | "
                    f"{cell['on_track_right']} |"
                )
    lines += [
        "",
        "## The tenant's measure, night by night",
        "",
        "The runs replayed as one tenant's nightly plans (a school per goal; `serving.calibration`, as "
        "`zpd plan-batch` runs it, on a SQLite store): on each night, the route overhead the tenant's GPS "
        f"would count from then on, the arrivals at a goal it counts (measured from {MIN_SAMPLES} on) and the "
        "students on their way (counted as arriving later than what they have done; an upper quartile not known "
        "yet is left empty, and the configured factor stands in for it). Then each goal's own, which its "
        f"students' estimates count once {MIN_SAMPLES} of them have arrived (`goal_route`).",
        "",
        "| night | arrivals | on their way | overhead | quartiles | " + " | ".join(schools) + " |",
        "|---|---|---|---|---|" + "---|" * len(schools),
    ]
    for night, m in night_by_night.items():
        q = "" if m["quartiles"] is None else "-".join("" if x is None else f"{x:g}" for x in m["quartiles"])
        own = " | ".join("" if m["goals"][g] is None else f"{m['goals'][g]:g}" for g in schools)
        lines.append(f"| {night} | {m['samples']} | {m['on_the_way']} | {m['route_overhead'] or ''} | {q} | {own} |")
    lines += [
        "",
        "## Estimates against arrival",
        "",
        "| goal | works | learners | not reached by the horizon | checkpoint | estimate | estimates "
        "| median abs error (arrivals), days | median error (arrivals), days | arrived by the estimate "
        "| arrived within the range | on track right |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, g in by_goal.items():
        for a in ATTENDANCE:
            s = g["by_attendance"][str(a)]
            for checkpoint in CHECKPOINTS:
                for kind in ("planned", "own"):
                    cell = s[f"{kind}@{checkpoint}"]
                    lines.append(
                        f"| {name} | {a:.0%} of days | {s['learners']} | {s['not_reached']} | day {checkpoint} | "
                        f"{'planned pace' if kind == 'planned' else 'own pace'} | {cell['estimates']} | "
                        f"{cell['median_abs_error_days']} | {cell['median_error_days']} | "
                        f"{cell['arrived_by_estimate']} | {cell['within_range']} | "
                        f"{cell['on_track_right']} |"
                    )
    write_report(args.out, "\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
