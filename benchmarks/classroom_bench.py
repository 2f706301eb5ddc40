"""Classroom benchmark: what a school is served (class rotations), taught to simulated classes.

``engine/simulation/classroom.py`` teaches classes of simulated learners (the planner benchmark's
learners: starting grade 4 with gaps, learning, forgetting) school day after school day from a
class planner's plans, each activity at its minute of the session for its minutes. The planners,
all on the same learners (paired):

- ``rotation``: the served class rotation (``plan_rotation`` over the learner core, on the model
  ``zpd serve`` loads), 60-minute sessions in 20-minute blocks, one teacher, groups of up to 6,
  planned at the start of each day (a nightly ``zpd plan-batch``, a rotation printed in the
  morning);
- ``rotation-each-block``: the same, the rest of the session planned again when a block is over
  (``blocks_done``, the teacher page's "plan the rest"), from the answers of that block and the
  lessons held in it; also in a room with 6 computers, 3 video and 3 reading seats;
- ``playlists``: each learner's own served playlist without the teacher (no small group),
  planned at the start of each day;
- ``whole-class``: the usual classroom, the goal's standards in learning order for everybody
  (a lesson from the teacher, then practice; on when 70% of the day's answers are right, or
  after 3 days).

As in a room, practice and assessments send answers; the teacher's lessons (small groups,
tutoring), videos and readings send none: the planners learn only that they were done (an
exposure, as the teacher page records a lesson held).

Reported: learning gain on the goal (the grade-4 standards; normalised, 95% bootstrap interval
over learners), the paired difference against ``rotation``, and per activity: violations (a
standard whose true prerequisites the learner lacks), known already (a teaching activity on
standards the learner knew), mastery checks; minutes with the teacher; planning time per class-day.

The runs are ``zpd simulate-classes``'s (``zpd.simulate.class_runs``).

    python benchmarks/classroom_bench.py --out docs/benchmarks/classroom.md [--baseline REF]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reports import write_report  # noqa: E402

ROOM = {"online_practice": 6, "video": 3, "reading": 3}
ROOM_ARM = "rotation-each-block, 6/3/3 seats"
BASELINE_ARM = "rotation"


def run(args) -> dict:
    """``zpd simulate-classes``'s runs (``zpd.simulate.class_runs``): every class planner, then the
    rotation planned each block in a room with fewer seats, on the same learners."""
    from configs import load_config
    from engine.simulation.classroom import summarize_classes
    from zpd.simulate import CLASS_PLANNERS, class_runs, served_model

    config = load_config(env={})
    with tempfile.TemporaryDirectory() as tmp:  # the served model, without touching the project's var/
        config = config.model_copy(update={"serving": config.serving.model_copy(update={"data_dir": tmp})})
        model, version = served_model(config)
    names = [n for n in CLASS_PLANNERS if not args.planners or n in args.planners.split(",")]
    shape = {"classes": args.classes, "class_size": args.class_size, "days": args.days, "seed": args.seed}
    began = time.perf_counter()
    runs, settings = class_runs(config, model, names, **shape)
    if "rotation-each-block" in names:
        room, _ = class_runs(config, model, ["rotation-each-block"], capacities=ROOM, **shape)
        runs[ROOM_ARM] = room["rotation-each-block"]
    print(f"{time.perf_counter() - began:.1f} s", file=sys.stderr)
    summary = summarize_classes(runs, seed=args.seed, baseline=BASELINE_ARM if BASELINE_ARM in runs else None)
    return {"model": version, "summary": summary, "goal_size": settings["goal_size"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--class-size", type=int, default=25)
    parser.add_argument("--days", type=int, default=20, help="school days (4 weeks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--planners", default="", help="a comma-separated subset of the arms")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--baseline", default=None, help="a git ref whose planners are measured side by side")
    parser.add_argument("--baseline-planners", default="rotation", help="the arms run on the baseline")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    report = {
        "command": "python benchmarks/classroom_bench.py " + " ".join(sys.argv[1:]),
        "commit": commit.stdout.strip(),
        "python": platform.python_version(),
        "classes": args.classes,
        "class_size": args.class_size,
        "days": args.days,
        "seed": args.seed,
        **run(args),
    }
    if args.baseline:
        report["baseline"] = _baseline(args)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        write_report(args.out, _markdown(report))


def _baseline(args) -> dict:
    """The same classes taught by the rotations of another commit: this script on a worktree of
    ``args.baseline`` (a commit that has ``engine/simulation/classroom.py``)."""
    from serve_bench import baseline_tree

    with tempfile.TemporaryDirectory() as tmp, baseline_tree(args.baseline, Path(tmp)) as tree:
        script = tree / "benchmarks" / "classroom_bench.py"
        script.write_text(Path(__file__).read_text())
        cmd = [sys.executable, str(script), "--classes", str(args.classes), "--class-size", str(args.class_size)]
        cmd += ["--days", str(args.days), "--seed", str(args.seed), "--planners", args.baseline_planners]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=tree, check=True).stdout
    return json.loads(out[out.index("{") :])


def _ci(m: dict, key: str, digits: int = 3, signed: bool = False) -> str:
    value, ci = m.get(key), m.get(f"{key}_ci")
    if value is None:
        return "-"
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    return f.format(value) + ("" if ci is None else f" [{f.format(ci[0])}, {f.format(ci[1])}]")


def _markdown(report: dict) -> str:
    lines = [
        "# Classroom benchmark",
        "",
        f"Produced by `{report['command']}` (commit {report['commit']}, Python {report['python']}); "
        f"{report['classes']} classes of {report['class_size']} simulated learners, {report['days']} school days "
        f"of 60 minutes, goal: the {report['goal_size']} learnable grade-4 standards; model {report['model']}.",
        "",
        (__doc__ or "").split("\n\n", 1)[1].split("\n\n    python")[0],
        "",
        "| planner | learning gain | vs rotation (paired) | violations | known already | checks | activities/day "
        "| teacher min/day | ms per plan (median) |",
        "|---|---|---|---|---|---|---:|---:|---:|",
    ]

    def row(name: str, m: dict) -> str:
        return (
            f"| {name} | {_ci(m, 'learning_gain')} | {_ci(m, 'gain_vs_baseline', signed=True)} "
            f"| {_ci(m, 'violation_rate')} | {_ci(m, 'known_already_rate')} | {m['check_share']:.3f} "
            f"| {m['activities_per_day']:.1f} | {m['teacher_minutes_per_day']:.1f} "
            f"| {m['plan_ms_median']:.1f} |"
        )

    for name, m in report["summary"].items():
        lines.append(row(name, m))
    if report.get("baseline"):
        base = report["baseline"]
        for name, m in base["summary"].items():
            lines.append(row(f"{name} at {base['commit']}", m))
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
