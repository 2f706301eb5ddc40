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
(median of the absolute errors, and the median signed error: positive is late), the share of the
learners who arrived within the range given with it, learners not there by the horizon, and how
often each estimate's "on track" for a goal date (day 120) was right. Per
goal and checkpoint, the activities the learners then took to reach it over the estimate's cost of
mastering each standard left once (the estimate before ``[planner] route_overhead``): the overhead
that setting stands for, measured.

    python benchmarks/gps_bench.py --out docs/benchmarks/gps.md
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from reports import write_report  # noqa: E402

from configs import load_config  # noqa: E402
from engine.planner.gps import DAY  # noqa: E402
from engine.planner.policy import ZPDPolicy  # noqa: E402
from engine.simulation import SimulatedEnvironment, SimulatorConfig  # noqa: E402
from engine.simulation.learners import MINUTES_PER_DAY, TruthIndex, draw_learners  # noqa: E402
from engine.sources import graph_from_config, load_catalog_source  # noqa: E402
from models.registry import for_graph  # noqa: E402
from zpd.simulate import served_model  # noqa: E402

ATTENDANCE = (1.0, 0.75, 0.5, 0.25)
CHECKPOINTS = (14, 28, 42)
GOALS = ("4.NF", "5.NF", "6.EE")


def run_learner(policy: ZPDPolicy, env: SimulatedEnvironment, graph, catalog, goal, k: int, horizon: int, seed: int):
    """One learner's run: the GPS's estimates at each checkpoint, and the day the goal was reached."""
    policy.start(graph, catalog, goal, np.random.default_rng([seed, k]))
    env.reset(k)
    estimates: dict[int, dict[str, float | None]] = {}
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
        if policy.core.status(policy.learner, day * DAY).status == "reached":
            reached = day
            break
    return estimates, reached, policy.learner.progress.activities


def overheads(rows: list[dict]) -> dict:
    """Per checkpoint: the activities each learner who reached the goal then took to reach it,
    over what mastering each standard left once cost by the estimate (median and quartiles)."""
    out = {}
    for checkpoint in CHECKPOINTS:
        ratios = [
            (r["activities"] - e["activities"]) / e["once"]
            for r in rows
            if r["reached"] is not None
            and (e := r["estimates"].get(checkpoint)) is not None
            and not e["reached"]
            and e["once"] > 0
        ]
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [None] * 3
        out[str(checkpoint)] = {
            "learners": len(ratios),
            "median": round(statistics.median(ratios), 2) if ratios else None,
            "quartiles": [None if q is None else round(q, 2) for q in (quartiles[0], quartiles[2])],
        }
    return out


def summarize(rows: list[dict], due: int) -> dict:
    out: dict = {"learners": len(rows), "not_reached": sum(r["reached"] is None for r in rows)}
    for checkpoint in CHECKPOINTS:
        for kind in ("planned", "own"):
            errors, right, judged, within = [], 0, 0, []
            for r in rows:
                e = r["estimates"].get(checkpoint)
                if e is None or e["reached"] or e[kind] is None:
                    continue
                if r["reached"] is not None:
                    errors.append(e[kind] - r["reached"])
                    if e[f"{kind}_range"] is not None:
                        low, high = e[f"{kind}_range"]
                        within.append(low <= r["reached"] <= high)
                judged += 1
                right += (e[kind] <= due) == (r["reached"] is not None and r["reached"] <= due)
            out[f"{kind}@{checkpoint}"] = {
                "estimates": judged,
                "median_abs_error_days": round(statistics.median(abs(x) for x in errors), 1) if errors else None,
                "median_error_days": round(statistics.median(errors), 1) if errors else None,
                "on_track_right": round(right / judged, 3) if judged else None,
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
    for name in args.goals.split(","):
        goal, grade = goal_of(graph, name)
        profiles = draw_learners(TruthIndex(graph), sim, float(grade), seed=args.seed, count=count)
        env = SimulatedEnvironment(graph, catalog, goal, profiles, seed=args.seed, config=sim, attendance=attendance)
        policy = ZPDPolicy(lambda g: for_graph(model, g), config.planner, None, str(grade))
        rows: dict[float, list[dict]] = {a: [] for a in ATTENDANCE}
        for k in range(count):
            estimates, reached, activities = run_learner(policy, env, graph, catalog, goal, k, args.horizon, args.seed)
            rows[attendance[k]].append({"estimates": estimates, "reached": reached, "activities": activities})
            print(
                f"{name} learner {k + 1}/{count}: works {attendance[k]:.0%} of days, reached on day {reached}",
                file=sys.stderr,
            )
        by_goal[name] = {
            "goal": goal,
            "grade": grade,
            "by_attendance": {str(a): summarize(rows[a], args.due) for a in ATTENDANCE},
            "overhead": overheads([r for a in ATTENDANCE for r in rows[a]]),
            "runs": {str(a): rows[a] for a in ATTENDANCE},
        }
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
        "(after a week of work); the error is against the day the GPS then said reached; `arrived within the range`: "
        "the share of the learners who reached it on a day within the range given with the estimate (`route_spread`: "
        "half of them, if it is right). `on track right`: the "
        f'estimate\'s answer to "reached by day {args.due}?" matched what happened (a learner not there by the '
        "horizon counts as not by the date).",
        "",
    ]
    for name, g in by_goal.items():
        lines += [f"- **{name}** (grade {g['grade']}): {', '.join(g['goal'])}"]
    lines += [
        "",
        "## The route overhead, measured",
        "",
        "The activities the learners who reached the goal took from the checkpoint on, over the estimate's cost "
        "of mastering each standard left once (what `route_overhead` multiplies): what the setting should be.",
        "",
        "| goal | checkpoint | learners | median | quartiles |",
        "|---|---|---|---|---|",
    ]
    for name, g in by_goal.items():
        for checkpoint in CHECKPOINTS:
            o = g["overhead"][str(checkpoint)]
            q = "-".join("" if x is None else f"{x:g}" for x in o["quartiles"])
            lines.append(f"| {name} | day {checkpoint} | {o['learners']} | {o['median']} | {q} |")
    lines += [
        "",
        "## Estimates against arrival",
        "",
        "| goal | works | learners | not reached by the horizon | checkpoint | estimate | estimates "
        "| median abs error, days | median error, days | arrived within the range | on track right |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
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
                        f"{cell['median_abs_error_days']} | {cell['median_error_days']} | {cell['within_range']} | "
                        f"{cell['on_track_right']} |"
                    )
    write_report(args.out, "\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
