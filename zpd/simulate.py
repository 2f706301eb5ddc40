"""``zpd simulate``: compare planners on identical simulated learner pools."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Annotated

import typer

from configs import ZPDConfig, load_config
from engine.catalog import Modality
from engine.placement import PlacementConfig
from engine.planner.policy import ZPDPolicy
from engine.simulation import (
    BASELINES,
    SimulatedEnvironment,
    SimulatorConfig,
    TruthIndex,
    draw_learners,
    evaluate,
    goal_for_grade,
)
from engine.simulation.classroom import (
    ClassCore,
    ClassPlanner,
    ClassRun,
    PlaylistClass,
    RotationClass,
    WholeClass,
    run_classes,
    summarize_classes,
)
from engine.simulation.evaluate import pool_start_grade
from engine.sources import graph_from_config, load_catalog_source
from models.base import LearnerModel
from models.bkt import GraphBKT
from models.registry import for_graph

__all__ = [
    "CLASS_PLANNERS",
    "DIAGNOSTIC",
    "class_runs",
    "planner_factories",
    "served_model",
    "simulate_classes_command",
    "simulate_command",
]

#: An optional entry diagnostic focused on the goal's prerequisites (``--diagnostic N``); the
#: prior around the grade is the same as without questions.
DIAGNOSTIC = PlacementConfig(max_questions=8, min_questions=0, hint_sd=0.75, steepness=3.0, domain_sd=0.4, min_gain=0.1)


def served_model(config: ZPDConfig, uri: str | None = None) -> tuple[LearnerModel, str]:
    """The model the server would serve with ``config`` and its version: ``uri`` alone when given,
    else the configured model, then the bundled model, then graph BKT, each through the promotion
    gate's checks (:meth:`ModelHolder.load_first`, the server's own start-up: a model the gate
    refuses is not served, so it is not simulated either)."""
    from serving.model_provider import ModelHolder
    from serving.service import FALLBACK_MODELS

    graph = graph_from_config(config.graph)
    catalog = load_catalog_source(config.catalog.source, graph, config.catalog.generate_missing)
    holder = ModelHolder(graph, catalog, config.mlflow.tracking_uri, config.model.bkt, config.gate)
    loaded = holder.load_first([uri] if uri else [config.serving.model_uri, *FALLBACK_MODELS])
    return loaded.model, loaded.version


def planner_factories(
    config: ZPDConfig, model: LearnerModel, placement: bool | int = False, grade: str | None = None
) -> dict:
    """Name -> zero-argument factory, for the baselines and our planner.

    ``model``: the learner-state model the planner serves with (rebuilt over the planner-visible
    graph, see :func:`models.registry.for_graph`); ``placement``: number of entry-diagnostic
    questions (``True``: 8; ``False``/0: none, the planner starts from the belief around
    ``grade``)."""
    questions = 8 if placement is True else int(placement)
    diagnostic = replace(DIAGNOSTIC, max_questions=questions) if questions > 0 else None

    def make_zpd() -> ZPDPolicy:
        return ZPDPolicy(lambda graph: for_graph(model, graph), config.planner, diagnostic, grade)

    return {**BASELINES, "zpd": make_zpd}


def _simulate_world(
    cfg: ZPDConfig,
    name: str,
    regime: str,
    planners: str,
    learners: int,
    seed: int,
    model: str | None,
    as_json: bool,
    horizon: int | None,
) -> None:
    """``zpd simulate --world NAME``: the planners (and the oracle) on one world of
    :mod:`engine.simulation.worlds`."""
    from engine.simulation.worlds import make_world, run_world
    from serving.model_provider import ModelLoadError

    try:
        made = make_world(name, regime, seed=seed, learners=learners)
        served, version = served_model(cfg, model)
    except (ValueError, ModelLoadError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    available = planner_factories(cfg, served, grade=made.grade)
    names = [n.strip() for n in planners.split(",") if n.strip() and n.strip() != "oracle"]
    unknown = [n for n in names if n not in available]
    if unknown:
        typer.echo(
            f"error: unknown planner(s) {', '.join(unknown)}; choose from {', '.join(available)}, oracle", err=True
        )
        raise typer.Exit(1)
    rows, _ = run_world(
        {n: available[n] for n in names},
        made,
        learners=learners,
        seed=seed,
        horizon=horizon,
        oracle="oracle" in planners.split(","),
    )
    settings = {
        "world": name,
        "regime": regime,
        "seed": seed,
        "learners": learners,
        "horizon": horizon or made.horizon,
        "zpd_model": version,
        **made.notes,
    }
    if as_json:
        typer.echo(json.dumps({"planners": rows, "settings": settings}))
        return
    typer.echo(f"world {name} ({regime}), {learners} learners, horizon {settings['horizon']}")
    for planner, row in rows.items():
        ci = row["learning_gain_ci"]
        violation = "-" if row["violation_rate"] is None else f"{row['violation_rate']:.3f}"
        typer.echo(
            f"{planner:10} learning_gain {row['learning_gain']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  "
            f"violation_rate {violation}"
        )


def _parse_misspecify(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    spec: dict[str, float] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key.strip() not in ("drop", "add") or not value:
            raise typer.BadParameter(f"expected drop=FRACTION,add=FRACTION, got {text!r}", param_hint="--misspecify")
        try:
            spec[key.strip()] = float(value)
        except ValueError:
            raise typer.BadParameter(
                f"{key.strip()} must be a number, got {value!r}", param_hint="--misspecify"
            ) from None
        if not 0.0 <= spec[key.strip()] <= 1.0:
            raise typer.BadParameter(f"{key.strip()} must be between 0 and 1", param_hint="--misspecify")
    return spec


def simulate_command(
    ctx: typer.Context,
    planners: Annotated[
        str, typer.Option(help="Comma-separated planners: random, topo, zpdes, zpd.")
    ] = "random,topo,zpdes,zpd",
    learners: Annotated[int, typer.Option(min=1, help="Simulated learners (the same pool for every planner).")] = 200,
    horizon: Annotated[int, typer.Option(min=1, help="Activities per learner.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the learner pool, outcomes and bootstrap.")] = 0,
    misspecify: Annotated[str | None, typer.Option(help="Give planners a wrong graph: drop=0.2,add=0.1.")] = None,
    goal_grade: Annotated[str, typer.Option(help="Goal: every learnable standard of this grade (K, 1-8, HS).")] = "4",
    graph: Annotated[str | None, typer.Option(help="Graph source (default: the configured graph).")] = None,
    diagnostic: Annotated[
        int,
        typer.Option(
            min=0, help="zpd asks this many entry-diagnostic questions first (on the goal's prerequisites; 0: none)."
        ),
    ] = 0,
    model: Annotated[
        str | None,
        typer.Option(
            help="The model zpd serves with: an MLflow URI, a model folder, "
            "'bundled' or 'bkt' (default: what `zpd serve` loads)."
        ),
    ] = None,
    world: Annotated[
        str | None,
        typer.Option(
            help="Another world family instead of the Coherence Map simulator: chain, dag, transfer "
            "(or coherence); see engine/simulation/worlds.py. Its horizon is the default horizon."
        ),
    ] = None,
    regime: Annotated[
        str, typer.Option(help="With --world: correct (planners told the truth) or wrong (a wrong graph).")
    ] = "correct",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Compare planners on simulated learners: learning gain, reach, activities to goal,
    prerequisite violations and ZPD band hits, with 95% bootstrap intervals."""
    cfg: ZPDConfig = ctx.obj if isinstance(ctx.obj, ZPDConfig) else load_config()
    if world is not None:
        _simulate_world(
            cfg,
            world,
            regime,
            planners,
            learners,
            seed,
            model,
            as_json,
            horizon if getattr(ctx.get_parameter_source("horizon"), "name", "DEFAULT") != "DEFAULT" else None,
        )
        return
    try:
        g = graph_from_config(cfg.graph, graph)
        catalog = load_catalog_source(cfg.catalog.source, g, cfg.catalog.generate_missing)
        goal = goal_for_grade(g, goal_grade)
    except (ValueError, KeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    from serving.model_provider import ModelLoadError

    try:
        served, version = served_model(cfg, model)
    except ModelLoadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    print(f"zpd serves with model {version}", file=sys.stderr)
    # a school knows its learners' grade: zpd's belief (and any diagnostic) starts from the goal grade
    available = planner_factories(cfg, served, placement=diagnostic, grade=goal_grade)
    names = [n.strip() for n in planners.split(",") if n.strip()]
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        typer.echo(
            f"error: unknown planner(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(available)}",
            err=True,
        )
        raise typer.Exit(1)
    spec = _parse_misspecify(misspecify)

    live = sys.stderr.isatty()  # a terminal: one line redrawn; a log: one line per planner, at its end

    def progress(name: str, done: int, total: int) -> None:
        if done == total:
            print(
                f"\r{name}: {done}/{total} learners" if live else f"{name}: {done} learners",
                file=sys.stderr,
                flush=True,
            )
        elif live and done % max(1, total // 10) == 0:
            print(f"\r{name}: {done}/{total} learners", end="", file=sys.stderr, flush=True)

    result = evaluate(
        {n: available[n] for n in names},
        g,
        catalog,
        learners=learners,
        horizon=horizon,
        seed=seed,
        goal=goal,
        misspecify=spec,
        band=cfg.planner.band,
        reference_model_factory=GraphBKT.from_graph,
        config=SimulatorConfig(),
        progress=progress,
    )
    result["settings"]["zpd_model"] = version
    if as_json:
        typer.echo(json.dumps(result))
        return
    metrics = ("learning_gain", "reach", "median_activities_to_goal", "violation_rate", "band_hit")
    typer.echo(f"{'planner':8} " + " ".join(f"{m:>28}" for m in metrics))
    for name, row in result["planners"].items():
        cells = []
        for m in metrics:
            value, ci = row.get(m), row.get(f"{m}_ci")
            cells.append(
                f"{'-' if value is None else f'{value:.3f}':>8} " + (f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else " " * 16)
            )
        typer.echo(f"{name:8} " + " ".join(f"{c:>28}" for c in cells))


# ---------------------------------------------------------------------------- classes
#: the class planners of ``zpd simulate-classes`` (``engine/simulation/classroom.py``)
CLASS_PLANNERS = ("rotation", "rotation-each-block", "playlists", "whole-class")


def class_runs(
    cfg: ZPDConfig,
    model: LearnerModel,
    names: Sequence[str],
    *,
    classes: int,
    class_size: int,
    days: int,
    seed: int,
    goal_grade: str = "4",
    session_minutes: float = 60,
    block_minutes: float = 20,
    capacities: Mapping[str, int] | None = None,
    graph: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[dict[str, ClassRun], dict]:
    """Simulated classes taught for ``days`` school days by each class planner of ``names``
    (:data:`CLASS_PLANNERS`), on the same learners (drawn from ``seed``: another call with the
    same seed teaches the same learners), with ``model`` as the served planners' model. Returns
    the runs and the settings used."""
    unknown = [n for n in names if n not in CLASS_PLANNERS]
    if unknown or not names:
        raise ValueError(
            f"unknown class planner(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(CLASS_PLANNERS)}"
        )
    g = graph_from_config(cfg.graph, graph)
    catalog = load_catalog_source(cfg.catalog.source, g, cfg.catalog.generate_missing)
    goal = goal_for_grade(g, goal_grade)
    sim = SimulatorConfig()
    index = TruthIndex(g)
    start = pool_start_grade(g, goal, sim)
    profiles = draw_learners(index, sim, start, seed, classes * class_size)
    env = SimulatedEnvironment(g, catalog, goal, profiles, seed=seed, config=sim, index=index)
    groups = [list(range(c * class_size, (c + 1) * class_size)) for c in range(classes)]
    core = ClassCore(lambda graph_: for_graph(model, graph_), cfg.planner)

    def rotation() -> RotationClass:
        return RotationClass(
            core, goal_grade, session_minutes=session_minutes, block_minutes=block_minutes, capacities=capacities
        )

    factories: dict[str, Callable[[], ClassPlanner]] = {
        "rotation": rotation,
        "rotation-each-block": rotation,
        "playlists": lambda: PlaylistClass(core, goal_grade, session_minutes=session_minutes),
        "whole-class": lambda: WholeClass(session_minutes=session_minutes),
    }
    runs = {
        name: run_classes(
            name,
            factories[name],
            env,
            groups,
            days,
            planner_graph=g,
            catalog=catalog,
            goal=goal,
            session_minutes=session_minutes,
            replan_every=block_minutes if name == "rotation-each-block" else None,
            progress=progress,
        )
        for name in names
    }
    settings = {
        "classes": classes,
        "class_size": class_size,
        "days": days,
        "seed": seed,
        "goal_grade": goal_grade,
        "goal_size": len(goal),
        "start_grade": start,
        "session_minutes": session_minutes,
        "block_minutes": block_minutes,
        "capacities": dict(capacities or {}),
    }
    return runs, settings


def _capacities(text: str | None) -> dict[str, int]:
    """``online_practice=6,video=3`` as seats per station."""
    seats: dict[str, int] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, _, value = part.partition("=")
        station = key.strip()
        if station not in {m.value for m in Modality} or not value.strip().isdigit():
            raise typer.BadParameter(
                f"expected STATION=SEATS,... with a station of {', '.join(m.value for m in Modality)}, got {part!r}",
                param_hint="--capacities",
            )
        seats[station] = int(value)
    return seats


def simulate_classes_command(
    ctx: typer.Context,
    planners: Annotated[
        str, typer.Option(help=f"Comma-separated class planners: {', '.join(CLASS_PLANNERS)}.")
    ] = ",".join(CLASS_PLANNERS),
    classes: Annotated[int, typer.Option(min=1, help="Classes (the same learners for every planner).")] = 4,
    class_size: Annotated[int, typer.Option(min=1, max=60, help="Learners per class.")] = 25,
    days: Annotated[int, typer.Option(min=1, help="School days.")] = 20,
    session_minutes: Annotated[float, typer.Option(min=5, max=480, help="Minutes of a session.")] = 60,
    block_minutes: Annotated[float, typer.Option(min=5, max=240, help="Minutes of a rotation's block.")] = 20,
    capacities: Annotated[
        str | None, typer.Option(help="Seats per station in each block: online_practice=6,video=3 (default: any).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the learners, outcomes and bootstrap.")] = 0,
    goal_grade: Annotated[str, typer.Option(help="Goal: every learnable standard of this grade (K, 1-8, HS).")] = "4",
    model: Annotated[
        str | None,
        typer.Option(help="The model zpd serves with (as for `zpd simulate`; default: what `zpd serve` loads)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Teach simulated classes school day after school day from class plans: the served class
    rotation (planned each morning, or again after each block), each learner's playlist without
    the teacher, and a whole-class baseline. Learning gain with 95% bootstrap intervals, the
    paired difference against the rotation, and what each activity was by the truth (see
    docs/simulator.md)."""
    cfg: ZPDConfig = ctx.obj if isinstance(ctx.obj, ZPDConfig) else load_config()
    names = [n.strip() for n in planners.split(",") if n.strip()]
    seats = _capacities(capacities)
    if block_minutes > session_minutes:
        raise typer.BadParameter("a block cannot be longer than the session", param_hint="--block-minutes")
    from serving.model_provider import ModelLoadError

    try:
        served, version = served_model(cfg, model)
        print(f"zpd serves with model {version}", file=sys.stderr)
        runs, settings = class_runs(
            cfg,
            served,
            names,
            classes=classes,
            class_size=class_size,
            days=days,
            seed=seed,
            goal_grade=goal_grade,
            session_minutes=session_minutes,
            block_minutes=block_minutes,
            capacities=seats,
            progress=lambda name, done, total: print(f"{name}: {done}/{total} classes", file=sys.stderr),
        )
    except (ValueError, KeyError, ModelLoadError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    summary = summarize_classes(runs, seed=seed, baseline="rotation" if "rotation" in runs else None)
    if as_json:
        typer.echo(json.dumps({"planners": summary, "settings": {**settings, "zpd_model": version}}))
        return
    typer.echo(
        f"{'planner':20} {'learning_gain':>24} {'vs rotation':>26} {'violations':>10} {'known_already':>13} "
        f"{'teacher_min/day':>15}"
    )
    for name, row in summary.items():
        gain, ci = row["learning_gain"], row["learning_gain_ci"]
        diff, dci = row.get("gain_vs_baseline"), row.get("gain_vs_baseline_ci")
        versus = "-" if diff is None or dci is None else f"{diff:+.3f} [{dci[0]:+.3f}, {dci[1]:+.3f}]"
        typer.echo(
            f"{name:20} {f'{gain:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]':>24} {versus:>26} "
            f"{row['violation_rate']:>10.3f} {row['known_already_rate']:>13.3f} {row['teacher_minutes_per_day']:>15.1f}"
        )
