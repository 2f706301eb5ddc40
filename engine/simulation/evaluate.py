"""Planner evaluation: every policy on the same learner pool and seeds, metrics with bootstrap CIs.

Fairness: the pool is drawn once from ``seed``; learner ``k`` starts in the same true state for
every policy, sees the same per-step random numbers (see ``environment``) and each policy gets
the same per-learner random stream. The reference model that scores ``band_hit`` is the same for
every policy and is fed exactly the observations of the run it scores.

Metrics (per policy; learners who already master the whole goal at the start are left out of
the goal metrics and counted in ``already_at_goal``):

``learning_gain``  mean over learners of ``(end - start) / (1 - start)`` on the goal score
``reach``          share of learners whose goal score reaches 1 within the horizon
``median_activities_to_goal``  median number of activities until then, over those who reach
                   (None when nobody does; ``reached`` is the count)
``violation_rate`` share of recommendations with an item whose standard has a true
                   prerequisite (outside the item) that the learner does not know at that moment
``band_hit``       share of recommendations whose P(success) under the reference model is in ``band``

Confidence intervals: percentile bootstrap over learners, ``resamples`` draws (default 1000),
paired across policies (the same resampled learners for all), seeded from ``seed``.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from engine.catalog import Catalog
from engine.graph import StandardsGraph, grade_number
from engine.observations import Event, ItemSpec
from engine.simulation.baselines import PolicyFactory
from engine.simulation.environment import Environment, Outcome, Policy, SimulatedEnvironment, SimulationError
from engine.simulation.learners import SimulatorConfig, TruthIndex, draw_learners

__all__ = [
    "PolicyRun",
    "ReferenceModel",
    "bootstrap_ci",
    "evaluate",
    "goal_for_grade",
    "misspecify",
    "paired_difference",
    "run_policy",
    "simulate",
    "summarize",
]

RESAMPLES = 1000
_POLICY_STREAM = 0x504C4359  # "PLCY"
_MISSPECIFY_STREAM = 0x4D495353  # "MISS"
_BOOTSTRAP_STREAM = 0x424F4F54  # "BOOT"


# ---------------------------------------------------------------------------- goals and graphs
def goal_for_grade(graph: StandardsGraph, grade: int | str) -> list[str]:
    """The learnable standards of one grade (source order): the usual end-of-year goal.

    >>> from engine.graph import Standard, StandardsGraph
    >>> g = StandardsGraph([Standard("A", grade_num=3), Standard("B", grade_num=4)], [("A", "B")])
    >>> goal_for_grade(g, 4), goal_for_grade(g, "3")
    (['B'], ['A'])
    """
    number = grade if isinstance(grade, int) else grade_number(str(grade))
    goal = [c for c in graph.sort(graph.learning) if graph.standards[c].grade_num == number]
    if not goal:
        raise SimulationError(f"no learnable standard of grade {grade!r} in the graph")
    return goal


def misspecify(
    graph: StandardsGraph, drop: float = 0.2, add: float = 0.1, rng: np.random.Generator | None = None
) -> StandardsGraph:
    """A wrong copy of ``graph`` to give planners: ``round(drop * E)`` of its ``E`` prerequisite
    edges removed and ``round(add * E)`` spurious ones added.

    A spurious edge ``a -> b`` joins two standards of the same or adjacent grades, never a
    standard and its own part, and goes forward in one fixed topological order of the true
    learning graph (every unit of ``a`` before every unit of ``b``), so the result stays a DAG.
    Standards, hierarchy and related links are unchanged.
    """
    if not (0.0 <= drop <= 1.0 and add >= 0.0):
        raise ValueError(f"expected 0 <= drop <= 1 and add >= 0, got drop={drop}, add={add}")
    rng = rng if rng is not None else np.random.default_rng(0)
    edges = sorted(graph.prereq.edges, key=lambda e: (graph.order_of(e[0]), graph.order_of(e[1])))
    n_drop, n_add = round(drop * len(edges)), round(add * len(edges))
    dropped = set(rng.choice(len(edges), size=n_drop, replace=False).tolist()) if n_drop else set()
    kept = [e for i, e in enumerate(edges) if i not in dropped]
    candidates = _spurious_candidates(graph)
    if len(candidates) < n_add:
        raise SimulationError(f"only {len(candidates)} possible spurious edges; cannot add {n_add}")
    chosen = sorted(rng.choice(len(candidates), size=n_add, replace=False).tolist()) if n_add else []
    added = [candidates[i] for i in chosen]
    return StandardsGraph(
        graph.standards.values(),
        kept + added,
        [(a, b) for a, b in graph.related],
        graph.resources,
        title=f"{graph.title or 'graph'} (misspecified: drop={drop:g}, add={add:g})",
        identifier=graph.identifier,
        warnings=graph.warnings,
    )


def _spurious_candidates(graph: StandardsGraph) -> list[tuple[str, str]]:
    order = list(nx.lexicographical_topological_sort(graph.learning, key=graph.order_of))
    pos = {u: i for i, u in enumerate(order)}
    span = {
        c: (min(pos[leaf] for leaf in graph.leaves(c)), max(pos[leaf] for leaf in graph.leaves(c)))
        for c in graph.internal_codes  # an external standard has no learnable unit
    }
    grades = {c: g for c in graph.internal_codes if (g := graph.standards[c].grade_num) is not None}
    codes = list(grades)
    existing = set(graph.prereq.edges)
    found = []
    for a in codes:
        grade_a = grades[a]
        for b in codes:
            if a == b or (a, b) in existing or abs(grades[b] - grade_a) > 1:
                continue
            if span[a][1] < span[b][0] and a not in graph.lineage(b) and b not in graph.lineage(a):
                found.append((a, b))
    return found


# ---------------------------------------------------------------------------- reference model
class ReferenceModel:
    """A learner model (duck-typed: ``init_state``, ``update``, ``predict_items``; ``encode_items``
    and ``predict`` are used when present) that scores ``band_hit`` for one learner at a time."""

    def __init__(self, model: Any, catalog: Catalog):
        self.model, self.catalog = model, catalog
        self._encode = hasattr(model, "encode_items") and hasattr(model, "predict")
        self._batches: dict[str, Any] = {}

    def reset(self) -> None:
        self.state = self.model.init_state()

    def _spec(self, item_id: str) -> ItemSpec:
        item = self.catalog[item_id]
        return ItemSpec(item.id, item.standards, item.difficulty)

    def predict(self, item_id: str) -> float:
        if not self._encode:
            return float(self.model.predict_items(self.state, [self._spec(item_id)])[0])
        batch = self._batches.get(item_id)
        if batch is None:
            batch = self._batches[item_id] = self.model.encode_items([self._spec(item_id)])
        return float(self.model.predict(self.state, batch)[0])

    def update(self, item_id: str, outcome: Outcome) -> None:
        if outcome.correct is None:  # no answer: nothing for the model to read
            return
        event = Event(item_id, self.catalog[item_id].standards, float(outcome.correct), outcome.time * 60.0)
        self.state = self.model.update(self.state, event)


# ---------------------------------------------------------------------------- running
@dataclass
class PolicyRun:
    """Per-learner results of one policy (arrays of length ``learners``)."""

    name: str
    horizon: int
    start: np.ndarray  # goal score at the start
    end: np.ndarray  # goal score at the horizon
    reach_step: np.ndarray  # activities until the goal score first hit 1 (0: at start, -1: never)
    violations: np.ndarray  # recommendations violating a true prerequisite (NaN: not measurable)
    band_hits: np.ndarray  # recommendations with reference P(success) in the band (NaN: no reference)
    minutes: np.ndarray  # activity minutes over the horizon (sum of Outcome.minutes)
    diagnostics: np.ndarray = field(default_factory=lambda: np.zeros(0))  # diagnostic questions per learner
    items: list[list[str]] = field(default_factory=list)  # filled only with keep_items=True
    seconds: float = 0.0


def run_policy(
    name: str,
    factory: PolicyFactory,
    env: Environment,
    learners: int,
    horizon: int,
    *,
    planner_graph: StandardsGraph,
    catalog: Catalog,
    goal: Sequence[str],
    seed: int,
    reference: ReferenceModel | None = None,
    band: tuple[float, float] = (0.60, 0.85),
    keep_items: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> PolicyRun:
    """Run one policy on learners ``0..learners-1`` of ``env`` for ``horizon`` activities each."""
    policy = factory()
    n = learners
    run = PolicyRun(
        name,
        horizon,
        np.zeros(n),
        np.zeros(n),
        np.full(n, -1),
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.zeros(n),
        np.zeros(n),
    )
    began = _time.perf_counter()
    for k in range(n):
        env.reset(k)
        rng = np.random.default_rng(np.random.SeedSequence([seed, k, _POLICY_STREAM]))
        policy.start(planner_graph, catalog, goal, rng)
        if reference is not None:
            reference.reset()
        run.start[k] = env.goal_score()
        trace = _teach(name, policy, env, horizon, catalog, reference, band)
        run.end[k] = env.goal_score()
        run.reach_step[k] = 0 if run.start[k] >= 1.0 else trace.reach
        run.violations[k], run.band_hits[k], run.minutes[k] = trace.violations, trace.band_hits, trace.minutes
        run.diagnostics[k] = trace.diagnostics
        if keep_items:
            run.items.append(trace.items)
        if progress is not None:
            progress(name, k + 1, n)
    run.seconds = _time.perf_counter() - began
    return run


@dataclass
class _Trace:
    """One learner's run: counts of violations and band hits (NaN when not measurable)."""

    reach: int = -1
    violations: float = np.nan
    band_hits: float = np.nan
    minutes: float = 0.0
    diagnostics: int = 0
    items: list[str] = field(default_factory=list)


def _teach(
    name: str,
    policy: Policy,
    env: Environment,
    horizon: int,
    catalog: Catalog,
    reference: ReferenceModel | None,
    band: tuple[float, float],
) -> _Trace:
    """``horizon`` activities for the current learner; the truth is read before each step."""
    violates = getattr(env, "violates", None)
    available = getattr(env, "available", None)
    trace = _Trace(violations=0.0 if violates else np.nan, band_hits=0.0 if reference else np.nan)
    for t in range(horizon):
        offered = available() if available is not None else None
        # a policy written before availability existed is called as before when everything is available
        item_id = policy.choose(offered) if offered is not None else policy.choose()
        if item_id not in catalog:
            raise SimulationError(f"policy {name!r} chose unknown item {item_id!r}")
        # A diagnostic question (placement) is not a learning recommendation: it costs a step
        # but is counted apart from violations and band hits.
        if getattr(policy, "last_choice_diagnostic", False):
            trace.diagnostics += 1
        else:
            if violates is not None:
                trace.violations += violates(item_id)
            if reference is not None:
                trace.band_hits += band[0] <= reference.predict(item_id) <= band[1]
        outcome = env.step(item_id)
        policy.observe(item_id, outcome)
        if reference is not None and not outcome.refused:
            reference.update(item_id, outcome)
        trace.minutes += outcome.minutes
        trace.items.append(item_id)
        if trace.reach < 0 and env.goal_score() >= 1.0:
            trace.reach = t + 1
    return trace


def simulate(
    policies: Mapping[str, PolicyFactory],
    graph_true: StandardsGraph,
    catalog: Catalog,
    *,
    learners: int,
    horizon: int,
    seed: int,
    goal: Sequence[str],
    misspecify: Mapping[str, float] | StandardsGraph | None = None,
    band: tuple[float, float] = (0.60, 0.85),
    reference_model_factory: Callable[[StandardsGraph], Any] | None = None,
    config: SimulatorConfig | None = None,
    keep_items: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[dict[str, PolicyRun], dict]:
    """Run every policy on one simulated pool; returns the runs and the settings used."""
    if learners < 1 or horizon < 1:
        raise ValueError(f"learners and horizon must be >= 1, got learners={learners}, horizon={horizon}")
    config = config or SimulatorConfig()
    goal = [graph_true.resolve(code) for code in goal]
    planner_graph, spec = _planner_graph(graph_true, misspecify, seed)
    index = TruthIndex(graph_true)
    start_grade = pool_start_grade(graph_true, goal, config)
    profiles = draw_learners(index, config, start_grade, seed, learners)
    env = SimulatedEnvironment(graph_true, catalog, goal, profiles, seed=seed, config=config, index=index)
    reference = None
    if reference_model_factory is not None:
        reference = ReferenceModel(reference_model_factory(planner_graph), catalog)
    runs = {
        name: run_policy(
            name,
            factory,
            env,
            learners,
            horizon,
            planner_graph=planner_graph,
            catalog=catalog,
            goal=goal,
            seed=seed,
            reference=reference,
            band=band,
            keep_items=keep_items,
            progress=progress,
        )
        for name, factory in policies.items()
    }
    settings = {
        "learners": learners,
        "horizon": horizon,
        "seed": seed,
        "goal_size": len(goal),
        "start_grade": start_grade,
        "band": list(band),
        "misspecify": spec,
        "reference_model": None if reference is None else type(reference.model).__name__,
    }
    return runs, settings


def _planner_graph(
    graph: StandardsGraph, spec: Mapping[str, float] | StandardsGraph | None, seed: int
) -> tuple[StandardsGraph, dict | None]:
    if spec is None:
        return graph, None
    if isinstance(spec, StandardsGraph):
        wrong = spec
        info: dict = {}
    else:
        unknown = set(spec) - {"drop", "add"}
        if unknown:
            raise ValueError(f"misspecify takes drop and add, got {', '.join(sorted(unknown))}")
        info = {"drop": float(spec.get("drop", 0.2)), "add": float(spec.get("add", 0.1))}
        rng = np.random.default_rng(np.random.SeedSequence([seed, _MISSPECIFY_STREAM]))
        wrong = misspecify(graph, info["drop"], info["add"], rng)
    true_edges, wrong_edges = set(graph.prereq.edges), set(wrong.prereq.edges)
    info.update(edges=len(true_edges), dropped=len(true_edges - wrong_edges), added=len(wrong_edges - true_edges))
    return wrong, info


def pool_start_grade(graph: StandardsGraph, goal: Sequence[str], config: SimulatorConfig) -> float:
    """The learners' mean position: ``config.start_grade``, else the goal's lowest grade plus
    ``start_offset`` (learners starting the goal's grade)."""
    if config.start_grade is not None:
        return config.start_grade
    all_grades = [graph.standards[leaf].grade_num for code in goal for leaf in graph.leaves(code)]
    grades = [g for g in all_grades if g is not None]
    if not grades:
        raise SimulationError("the goal standards have no grade; set SimulatorConfig.start_grade")
    return float(min(grades)) + config.start_offset


# ---------------------------------------------------------------------------- statistics
def _resample_indices(n: int, seed: int, resamples: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([seed, _BOOTSTRAP_STREAM]))
    return rng.integers(0, n, size=(resamples, n))  # (B, n)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def bootstrap_ci(
    values: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
    statistic: str = "mean",
    indices: np.ndarray | None = None,
) -> tuple[float | None, tuple[float, float] | None]:
    """A statistic of per-learner values and its 95% percentile-bootstrap interval.

    ``statistic``: ``"mean"`` (over learners with weight > 0, weights as 0/1 inclusion),
    ``"ratio"`` (``sum(values) / sum(weights)``) or ``"median"`` (over learners with weight > 0).
    Deterministic given ``seed`` (or the resampled ``indices``, shape (B, n)).

    >>> bootstrap_ci(np.array([0.0, 1.0, 1.0, 0.0]), seed=1)[0]
    0.5
    """
    values = np.asarray(values, dtype=float)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, dtype=float)
    idx = _resample_indices(len(values), seed, resamples) if indices is None else indices
    v, w = values[idx], weights[idx]  # (B, n)
    estimate: np.ndarray | float
    if statistic == "ratio":
        estimate = _ratio(np.array(values.sum()), np.array(weights.sum()))
        boot = _ratio(v.sum(axis=1), w.sum(axis=1))
    elif statistic == "mean":
        inc = weights > 0
        estimate = values[inc].mean() if inc.any() else np.nan
        boot = _ratio((v * (w > 0)).sum(axis=1), (w > 0).sum(axis=1))
    elif statistic == "median":
        inc = weights > 0
        estimate = np.median(values[inc]) if inc.any() else np.nan
        masked = np.where(w > 0, v, np.nan)
        ok = (w > 0).any(axis=1)
        boot = np.full(len(idx), np.nan)
        boot[ok] = np.nanmedian(masked[ok], axis=1)
    else:
        raise ValueError(f"unknown statistic {statistic!r}; expected mean, ratio or median")
    point = float(estimate)
    if np.isnan(point):
        return None, None
    boot = boot[~np.isnan(boot)]
    if boot.size == 0:
        return point, None
    low, high = np.percentile(boot, [2.5, 97.5])
    return point, (float(low), float(high))


def _metric(out: dict, name: str, result: tuple[float | None, tuple[float, float] | None]) -> None:
    value, ci = result
    out[name] = value
    out[f"{name}_ci"] = None if ci is None else [ci[0], ci[1]]


def summarize(runs: Mapping[str, PolicyRun], *, seed: int, resamples: int = RESAMPLES) -> dict[str, dict]:
    """The metrics of every run with paired bootstrap CIs (the same resampled learners for all)."""
    out: dict[str, dict] = {}
    for name, run in runs.items():
        n = len(run.start)
        idx = _resample_indices(n, seed, resamples)
        todo = (run.start < 1.0).astype(float)  # learners not already at the goal
        gain = np.where(todo > 0, (run.end - run.start) / np.where(todo > 0, 1.0 - run.start, 1.0), 0.0)
        reached = ((run.reach_step > 0) & (todo > 0)).astype(float)
        diagnostics = run.diagnostics if len(run.diagnostics) == n else np.zeros(n)
        recs = np.full(n, float(run.horizon)) - diagnostics
        m: dict[str, Any] = {}
        _metric(m, "learning_gain", bootstrap_ci(gain, todo, statistic="mean", indices=idx))
        _metric(m, "reach", bootstrap_ci(reached, todo, statistic="mean", indices=idx))
        _metric(
            m,
            "median_activities_to_goal",
            bootstrap_ci(run.reach_step.astype(float), reached, statistic="median", indices=idx),
        )
        m["reached"] = int(reached.sum())
        for metric, counts in (("violation_rate", run.violations), ("band_hit", run.band_hits)):
            if np.isnan(counts).any():
                m[metric], m[f"{metric}_ci"] = None, None
            else:
                _metric(m, metric, bootstrap_ci(counts, recs, statistic="ratio", indices=idx))
        m["start_score"] = float(run.start.mean())
        m["end_score"] = float(run.end.mean())
        m["minutes_per_learner"] = float(run.minutes.mean())
        m["learners"] = n
        m["already_at_goal"] = int(n - todo.sum())
        m["recommendations"] = int(recs.sum())
        m["diagnostic_questions"] = int(diagnostics.sum())
        out[name] = m
    return out


def paired_difference(
    a: PolicyRun, b: PolicyRun, *, seed: int, resamples: int = RESAMPLES
) -> tuple[float | None, tuple[float, float] | None]:
    """Learning gain of ``a`` minus ``b`` on the same learners, with a paired bootstrap CI."""
    todo = ((a.start < 1.0) & (b.start < 1.0)).astype(float)
    safe = np.where(todo > 0, 1.0 - a.start, 1.0)
    diff = np.where(todo > 0, ((a.end - a.start) - (b.end - b.start)) / safe, 0.0)
    return bootstrap_ci(diff, todo, statistic="mean", seed=seed, resamples=resamples)


def evaluate(
    policies: Mapping[str, PolicyFactory],
    graph_true: StandardsGraph,
    catalog: Catalog,
    *,
    learners: int,
    horizon: int,
    seed: int,
    goal: Sequence[str],
    misspecify: Mapping[str, float] | StandardsGraph | None = None,
    band: tuple[float, float] = (0.60, 0.85),
    reference_model_factory: Callable[[StandardsGraph], Any] | None = None,
    config: SimulatorConfig | None = None,
    resamples: int = RESAMPLES,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """Run ``policies`` (name -> zero-argument factory) on one simulated pool and summarize.

    Returns ``{"planners": {name: {metric: value, metric_ci: [low, high], ...}},
    "settings": {...}, "seconds": {name: wall time}}``. ``misspecify`` is ``{"drop": 0.2,
    "add": 0.1}`` (planners get :func:`misspecify` of the true graph, drawn from ``seed``) or a
    ready planner graph. ``reference_model_factory(planner_graph)`` builds the model that scores
    ``band_hit`` (e.g. ``GraphBKT.from_graph``); without it ``band_hit`` is None.
    """
    runs, settings = simulate(
        policies,
        graph_true,
        catalog,
        learners=learners,
        horizon=horizon,
        seed=seed,
        goal=goal,
        misspecify=misspecify,
        band=band,
        reference_model_factory=reference_model_factory,
        config=config,
        progress=progress,
    )
    settings["bootstrap_resamples"] = resamples
    return {
        "planners": summarize(runs, seed=seed, resamples=resamples),
        "settings": settings,
        "seconds": {name: round(run.seconds, 3) for name, run in runs.items()},
    }
