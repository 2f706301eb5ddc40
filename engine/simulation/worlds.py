"""World families: simulated learners built from a seed, each in two regimes.

A *world* is a true prerequisite graph, the graph the planners are *told*, a catalog, a goal and
an :class:`~engine.simulation.environment.Environment` of learners who follow the truth. Each
family is generated from a seed and has two regimes: ``correct`` (planners are told the truth)
and ``wrong`` (edges dropped and added, and standards put in the wrong order). The families are
deliberately unlike our own simulator, so a planner tuned on one cannot pass by luck:

``chain``      5-12 standards in a chain, binary knowledge, no grade levels, one to three items
               per standard, none of them a mastery check (a content platform's catalog).
``dag``        the same with a random DAG (each standard builds on one or two earlier ones).
``transfer``   10 standards of a DAG with continuous ability: answers follow an IRT curve; practice
               teaches a standard only when its prerequisites are *well* beyond passing, and only
               when the previous activity was on the same standard or a graph neighbour (a jump
               elsewhere teaches nothing).
``coherence``  the Coherence Map world of :mod:`engine.simulation.learners` (learners placed by
               grade, goal: grade 4; the wrong regime is :func:`~engine.simulation.evaluate.misspecify`).

The goal is every standard of the small worlds; :meth:`World.env` ``goal_score`` is the share
known (binary) or the mean P(correct) (transfer), so the learning gain is comparable.

>>> w = make_world("chain", "wrong", seed=1, learners=3)
>>> (w.name, w.regime, len(w.goal) == len(w.graph.standards), w.grade)
('chain', 'wrong', True, None)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from engine.catalog import Catalog, Item, Modality
from engine.graph import Standard, StandardsGraph
from engine.simulation.baselines import PolicyFactory
from engine.simulation.environment import Environment, Outcome, SimulatedEnvironment, SimulationError
from engine.simulation.evaluate import (
    PolicyRun,
    _planner_graph,
    goal_for_grade,
    pool_start_grade,
    run_policy,
    summarize,
)
from engine.simulation.learners import SimulatorConfig, TruthIndex, draw_learners

__all__ = [
    "FAMILIES",
    "REGIMES",
    "BinaryWorld",
    "OraclePolicy",
    "TransferWorld",
    "World",
    "make_world",
    "run_world",
    "wrong_graph",
]

REGIMES = ("correct", "wrong")
_WORLD_STREAM = 0x574F524C  # "WORL"
_STEP_STREAM = 0x53544550  # "STEP"


@dataclass
class World:
    """One world: the truth, what planners are told, and the learners."""

    name: str
    regime: str
    graph: StandardsGraph  # the truth
    told: StandardsGraph  # what the planners get
    catalog: Catalog
    goal: list[str]
    env: Environment
    grade: str | None  # what a school would tell a planner about the learners (None: no grade levels)
    horizon: int  # the activities a learner gets in the benchmark
    notes: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- graphs
def _codes(n: int) -> list[str]:
    return [f"S{i + 1:02d}" for i in range(n)]


def _graph(codes: Sequence[str], edges: Sequence[tuple[str, str]], title: str) -> StandardsGraph:
    return StandardsGraph([Standard(c, description=c, domain_code="W") for c in codes], list(edges), title=title)


def _chain(n: int) -> list[tuple[str, str]]:
    codes = _codes(n)
    return [(codes[i], codes[i + 1]) for i in range(n - 1)]


def _dag(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Each standard after the first builds on one or two earlier ones (a connected DAG)."""
    codes = _codes(n)
    edges = set()
    for i in range(1, n):
        k = 1 if i == 1 else int(rng.integers(1, 3))
        for j in rng.choice(i, size=min(k, i), replace=False).tolist():
            edges.add((codes[j], codes[i]))
    return sorted(edges)


def wrong_graph(
    graph: StandardsGraph, rng: np.random.Generator, *, swap: float = 0.5, drop: float = 0.2, add: float = 0.1
) -> tuple[StandardsGraph, dict[str, int]]:
    """A graph that puts standards in the wrong order: the codes of a share ``swap`` of the
    standards are permuted among themselves (so the told dependencies are a permutation of the
    true ones), then a share ``drop`` of the edges is dropped and ``add`` spurious ones are added
    (forward in a random order, so the result stays a DAG)."""
    codes = sorted(graph.standards)
    n = len(codes)
    moved = rng.choice(n, size=max(2, round(swap * n)), replace=False)
    target = moved.copy()
    while n > 1 and np.array_equal(target, moved):
        target = rng.permutation(moved)
    rename = dict(zip(codes, codes, strict=True))
    rename.update({codes[a]: codes[b] for a, b in zip(moved.tolist(), target.tolist(), strict=True)})
    edges = sorted({(rename[a], rename[b]) for a, b in graph.prereq.edges})
    n_drop = round(drop * len(edges))
    dropped = set(rng.choice(len(edges), size=n_drop, replace=False).tolist()) if n_drop else set()
    kept = [e for i, e in enumerate(edges) if i not in dropped]
    order = {c: i for i, c in enumerate(nx.topological_sort(nx.DiGraph(kept) if kept else nx.DiGraph()))}
    rest = [c for c in codes if c not in order]
    for c in rest:
        order[c] = len(order)
    candidates = [(a, b) for a in codes for b in codes if order[a] < order[b] and (a, b) not in set(kept)]
    n_add = min(round(add * len(edges)), len(candidates))
    added = (
        [candidates[i] for i in sorted(rng.choice(len(candidates), size=n_add, replace=False).tolist())]
        if n_add
        else []
    )
    told = _graph(codes, kept + added, f"{graph.title} (told: wrong order)")
    return told, {"edges": len(edges), "permuted": len(moved), "dropped": n_drop, "added": len(added)}


def _catalog(codes: Sequence[str], rng: np.random.Generator, max_items: int = 3) -> Catalog:
    items = []
    for code in codes:
        for k in range(int(rng.integers(1, max_items + 1))):
            items.append(
                Item(f"{code}-{chr(97 + k)}", f"{code} practice {k + 1}", (code,), Modality.ONLINE_PRACTICE, 5)
            )
    return Catalog(items)


# ---------------------------------------------------------------------------- binary knowledge
class BinaryWorld:
    """Binary knowledge on the true graph. A learner answers right with 1 - slip when they know the
    standard and with guess otherwise; practice on an unknown standard teaches it with
    ``p_learn`` when every true prerequisite is known, ``blocked * p_learn`` otherwise. Each learner
    has their own guess, slip (0.1-0.2) and learning rate, and starts knowing a
    prerequisite-closed set (each standard with probability ``p_known`` once its prerequisites are
    known). Every step takes 5 minutes.

    ``unavailable`` (0 by default) makes that share of the items unavailable at each step
    (:meth:`available`); an unavailable item is refused (no answer, nothing learned)."""

    minutes = 5.0

    def __init__(
        self,
        graph: StandardsGraph,
        catalog: Catalog,
        *,
        learners: int,
        seed: int,
        p_known: float = 0.15,
        blocked: float = 0.05,
        unavailable: float = 0.0,
    ):
        self.graph, self.catalog, self.seed = graph, catalog, seed
        self.codes = sorted(graph.standards)
        self.pos = {c: i for i, c in enumerate(self.codes)}
        self.prereqs = [
            np.array([self.pos[p] for p in graph.prereq.predecessors(c)], dtype=np.int64) for c in self.codes
        ]
        self.order = [self.pos[c] for c in nx.topological_sort(graph.prereq)]
        self.item_unit = {i.id: self.pos[i.standards[0]] for i in catalog}
        self.item_ids = sorted(self.item_unit)
        self.blocked, self.unavailable = blocked, unavailable
        rng = np.random.default_rng(np.random.SeedSequence([seed, _WORLD_STREAM]))
        n = len(self.codes)
        self.guess = rng.uniform(0.1, 0.2, learners)
        self.slip = rng.uniform(0.1, 0.2, learners)
        self.p_learn = rng.uniform(0.2, 0.4, learners)
        self.start_known = np.zeros((learners, n), dtype=bool)
        for k in range(learners):
            for j in self.order:
                pre = self.prereqs[j]
                self.start_known[k, j] = bool(self.start_known[k, pre].all()) and rng.random() < p_known
        self.learners = learners

    def reset(self, learner: int) -> None:
        if not 0 <= learner < self.learners:
            raise SimulationError(f"learner {learner} is outside the pool (0..{self.learners - 1})")
        self.k = learner
        self.known = self.start_known[learner].copy()
        self.rng = np.random.default_rng(np.random.SeedSequence([self.seed, learner, _STEP_STREAM]))
        self.clock = 0.0
        self._available: frozenset[str] | None = None

    def available(self) -> frozenset[str] | None:
        if self.unavailable <= 0:
            return None
        keep = self.rng.random(len(self.item_ids)) >= self.unavailable
        self._available = frozenset(i for i, ok in zip(self.item_ids, keep, strict=True) if ok)
        return self._available

    def step(self, item_id: str) -> Outcome:
        if item_id not in self.item_unit:
            raise SimulationError(f"unknown item {item_id!r}: not in the world's catalog")
        u = self.rng.random(2)  # the same consumption every step (common random numbers)
        if self._available is not None and item_id not in self._available:
            return Outcome(False, 0.0, self.clock, refused=True, learned=False)
        j, k = self.item_unit[item_id], self.k
        knows = bool(self.known[j])
        correct = bool(u[0] < (1 - self.slip[k] if knows else self.guess[k]))
        learned = False
        if not knows:
            p = self.p_learn[k] * (1.0 if self.known[self.prereqs[j]].all() else self.blocked)
            learned = bool(u[1] < p)
            self.known[j] = learned
        self.clock += self.minutes
        return Outcome(correct, self.minutes, self.clock, learned=learned)

    def goal_score(self) -> float:
        return float(self.known.mean())

    def violates(self, item_id: str) -> bool:
        return not bool(self.known[self.prereqs[self.item_unit[item_id]]].all())

    # ------------------------------------------------------------------ truth (oracle, metrics)
    def truth(self) -> dict[str, float]:
        return {c: float(self.known[i]) for i, c in enumerate(self.codes)}

    def learnable(self, code: str) -> bool:
        j = self.pos[code]
        return not self.known[j] and bool(self.known[self.prereqs[j]].all())


# ---------------------------------------------------------------------------- continuous ability, local transfer
class TransferWorld:
    """Continuous ability with transfer along graph edges only.

    A learner answers standard ``s`` right with ``sigmoid(theta_s)`` (difficulty 0). Practice on
    ``s`` raises ``theta_s`` by ``rate * readiness * (1 - sigmoid(theta_s))`` where readiness is
    the product over the true prerequisites ``p`` of ``sigmoid(4 (theta_p - margin))``: a
    prerequisite must be well beyond passing (``margin`` 1.0, about P(correct) 0.73) before its
    dependent can be learned. Practice teaches only when the previous activity was on ``s`` or on
    a true graph neighbour of ``s`` (a prerequisite or a dependent); after a jump elsewhere the
    activity teaches nothing (the first activity always may). Learners start with ability about
    0.5 on the roots and -1.5 elsewhere; each has their own rate."""

    minutes = 5.0

    def __init__(self, graph: StandardsGraph, catalog: Catalog, *, learners: int, seed: int, margin: float = 1.0):
        self.graph, self.catalog, self.seed, self.margin = graph, catalog, seed, margin
        self.codes = sorted(graph.standards)
        self.pos = {c: i for i, c in enumerate(self.codes)}
        self.prereqs = [
            np.array([self.pos[p] for p in graph.prereq.predecessors(c)], dtype=np.int64) for c in self.codes
        ]
        self.neighbours = [
            {j, *self.prereqs[j].tolist(), *(self.pos[d] for d in graph.prereq.successors(c))}
            for j, c in enumerate(self.codes)
        ]
        self.item_unit = {i.id: self.pos[i.standards[0]] for i in catalog}
        rng = np.random.default_rng(np.random.SeedSequence([seed, _WORLD_STREAM]))
        n = len(self.codes)
        roots = np.array([len(p) == 0 for p in self.prereqs])
        self.start_theta = np.where(roots, 0.5, -1.5)[None, :] + rng.normal(0.0, 0.5, (learners, n))
        self.rate = rng.uniform(0.6, 1.2, learners)
        self.learners = learners

    def reset(self, learner: int) -> None:
        if not 0 <= learner < self.learners:
            raise SimulationError(f"learner {learner} is outside the pool (0..{self.learners - 1})")
        self.k = learner
        self.theta = self.start_theta[learner].copy()
        self.rng = np.random.default_rng(np.random.SeedSequence([self.seed, learner, _STEP_STREAM]))
        self.clock = 0.0
        self.previous: int | None = None

    def step(self, item_id: str) -> Outcome:
        if item_id not in self.item_unit:
            raise SimulationError(f"unknown item {item_id!r}: not in the world's catalog")
        u = self.rng.random()
        j = self.item_unit[item_id]
        p = 1.0 / (1.0 + np.exp(-self.theta[j]))
        correct = bool(u < p)
        local = self.previous is None or j in self.neighbours[self.previous]
        gain = 0.0
        if local:
            pre = self.prereqs[j]
            readiness = (
                float(np.prod(1.0 / (1.0 + np.exp(-4.0 * (self.theta[pre] - self.margin))))) if pre.size else 1.0
            )
            gain = self.rate[self.k] * readiness * (1.0 - p)
            self.theta[j] += gain
        self.previous = j
        self.clock += self.minutes
        return Outcome(correct, self.minutes, self.clock, learned=gain > 0.01)

    def goal_score(self) -> float:
        return float((1.0 / (1.0 + np.exp(-self.theta))).mean())

    def violates(self, item_id: str) -> bool:
        pre = self.prereqs[self.item_unit[item_id]]
        return bool(pre.size) and bool((self.theta[pre] < self.margin).any())

    # ------------------------------------------------------------------ truth (oracle, metrics)
    def truth(self) -> dict[str, float]:
        return {c: float(1.0 / (1.0 + np.exp(-self.theta[i]))) for i, c in enumerate(self.codes)}


# ---------------------------------------------------------------------------- the families
def _small(name: str, regime: str, seed: int, learners: int) -> World:
    rng = np.random.default_rng(np.random.SeedSequence([seed, _WORLD_STREAM, FAMILY_IDS[name]]))
    if name == "transfer":
        n = 10
        edges = _dag(n, rng)
    else:
        n = int(rng.integers(5, 13))
        edges = _chain(n) if name == "chain" else _dag(n, rng)
    codes = _codes(n)
    truth = _graph(codes, edges, f"{name} world (seed {seed})")
    catalog = _catalog(codes, rng, max_items=1 if name == "transfer" else 3)
    told, notes = (truth, {}) if regime == "correct" else wrong_graph(truth, rng)
    env: Environment
    if name == "transfer":
        env = TransferWorld(truth, catalog, learners=learners, seed=seed)
        horizon = 20 if regime == "correct" else 40
    else:
        env = BinaryWorld(truth, catalog, learners=learners, seed=seed)
        horizon = 50 if regime == "correct" else 100
    return World(name, regime, truth, told, catalog, list(codes), env, None, horizon, {"standards": n, **notes})


def _coherence(name: str, regime: str, seed: int, learners: int) -> World:
    from engine.sources import build_default_catalog, load_graph

    graph = load_graph()
    catalog = build_default_catalog(graph)
    goal = goal_for_grade(graph, 4)
    config = SimulatorConfig()
    index = TruthIndex(graph)
    profiles = draw_learners(index, config, pool_start_grade(graph, goal, config), seed, learners)
    env = SimulatedEnvironment(graph, catalog, goal, profiles, seed=seed, config=config, index=index)
    # the same wrong graph as `zpd simulate --misspecify drop=0.2,add=0.1 --seed SEED`
    told, notes = _planner_graph(graph, {"drop": 0.2, "add": 0.1} if regime == "wrong" else None, seed)
    return World(name, regime, graph, told, catalog, goal, env, "4", 60, notes or {})


FAMILY_IDS = {"chain": 1, "dag": 2, "transfer": 3, "coherence": 4}
FAMILIES: dict[str, Callable[[str, str, int, int], World]] = {
    "chain": _small,
    "dag": _small,
    "transfer": _small,
    "coherence": _coherence,
}


def make_world(name: str, regime: str = "correct", *, seed: int = 0, learners: int = 200) -> World:
    """The world ``name`` (:data:`FAMILIES`) in ``regime`` (:data:`REGIMES`), drawn from ``seed``."""
    if name not in FAMILIES:
        raise SimulationError(f"unknown world {name!r}; choose from {', '.join(FAMILIES)}")
    if regime not in REGIMES:
        raise SimulationError(f"unknown regime {regime!r}; choose from {', '.join(REGIMES)}")
    return FAMILIES[name](name, regime, seed, learners)


# ---------------------------------------------------------------------------- the oracle
class OraclePolicy:
    """An upper bound: a planner that reads the learner's true state (never a real planner).

    Binary worlds: the first standard (true learning order) that is unknown and learnable now.
    Transfer world: the standard with the largest true gain reachable from the previous activity;
    when nothing near is learnable, a step along the true graph toward the best learnable one.
    Coherence world: the first unknown goal-route unit whose true prerequisites are known."""

    name = "oracle"

    def __init__(self, world: World):
        self.world = world
        self.graph = world.graph
        self.order = list(nx.topological_sort(world.graph.learning))
        self.items: dict[str, list[str]] = {}
        for item in world.catalog:
            for code in item.standards:
                for leaf in world.graph.leaves(code) if code in world.graph.standards else ():
                    self.items.setdefault(leaf, []).append(item.id)

    def start(self, graph: StandardsGraph, catalog: Catalog, goal: Sequence[str], rng: np.random.Generator) -> None:
        self.rng = rng
        self.previous: str | None = None
        goal_units = {leaf for code in goal for leaf in self.graph.leaves(self.graph.resolve(code))}
        needed = set(goal_units)
        for unit in goal_units:
            needed |= nx.ancestors(self.graph.learning, unit)
        self.area = [u for u in self.order if u in needed and self.items.get(u)]

    def choose(self, available: frozenset[str] | None = None) -> str:
        env = self.world.env
        if isinstance(env, TransferWorld):
            unit = self._transfer_choice(env)
        else:
            unit = self._next_unknown()
        self.previous = unit
        options = self.items[unit]
        if available is not None:
            options = [i for i in options if i in available] or options
        return options[int(self.rng.integers(len(options)))]

    def _next_unknown(self) -> str:
        env = self.world.env
        if isinstance(env, BinaryWorld):
            for unit in self.area:
                if env.learnable(unit):
                    return unit
            unknown = [u for u in self.area if not env.known[env.pos[u]]]
            return unknown[0] if unknown else self.area[-1]
        assert isinstance(env, SimulatedEnvironment)
        known = env.known_units()
        pos = env.index.position
        for unit in self.area:
            if not known[pos[unit]] and all(known[pos[p]] for p in self.graph.learning.predecessors(unit)):
                return unit
        unknown = [u for u in self.area if not known[pos[u]]]
        return unknown[0] if unknown else self.area[-1]

    def _transfer_choice(self, env: TransferWorld) -> str:
        theta = env.theta
        p = 1.0 / (1.0 + np.exp(-theta))

        def gain(j: int) -> float:
            pre = env.prereqs[j]
            ready = float(np.prod(1.0 / (1.0 + np.exp(-4.0 * (theta[pre] - env.margin))))) if pre.size else 1.0
            return env.rate[env.k] * ready * (1.0 - p[j])

        gains = np.array([gain(j) for j in range(len(env.codes))])
        prev = env.previous
        if prev is None:
            return env.codes[int(gains.argmax())]
        near = sorted(env.neighbours[prev])
        best_near = max(near, key=lambda j: gains[j])
        best = int(gains.argmax())
        if gains[best_near] >= 0.5 * gains[best] or best in near:
            return env.codes[best_near]
        path = nx.shortest_path(self.graph.prereq.to_undirected(), env.codes[prev], env.codes[best])
        return path[1]

    def observe(self, item_id: str, outcome: Outcome) -> None:
        pass


# ---------------------------------------------------------------------------- evaluation
def run_world(
    policies: Mapping[str, PolicyFactory],
    world: World,
    *,
    learners: int,
    seed: int,
    horizon: int | None = None,
    oracle: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[dict[str, dict], dict[str, PolicyRun]]:
    """Every policy (and the oracle) on the same learners of ``world``: the summary with paired
    bootstrap intervals (:func:`~engine.simulation.evaluate.summarize`) and the runs."""
    factories = dict(policies)
    if oracle:
        factories["oracle"] = lambda: OraclePolicy(world)
    runs = {
        name: run_policy(
            name,
            factory,
            world.env,
            learners,
            horizon or world.horizon,
            planner_graph=world.told,
            catalog=world.catalog,
            goal=world.goal,
            seed=seed,
            progress=progress,
        )
        for name, factory in factories.items()
    }
    return summarize(runs, seed=seed), runs
