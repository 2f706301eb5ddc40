"""Precomputed lookups the planner needs on every request (built once per graph and catalog)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from functools import cached_property

import networkx as nx
import numpy as np

from engine.catalog import Catalog, Item, Modality
from engine.graph import StandardsGraph

__all__ = ["MODALITIES", "ItemTable", "PlannerIndex"]

#: every modality, in a fixed order (``ItemTable.modality`` holds positions in it)
MODALITIES: tuple[Modality, ...] = tuple(Modality)


@dataclass(frozen=True)
class ItemTable:
    """The catalog's per-item values the scoring reads for every candidate, as arrays by row:
    a candidate's components are columns taken from these, not a Python loop over items."""

    row: dict[str, int]  # item id -> row
    time_cost: np.ndarray  # 1 - min(1, duration / 45 minutes)
    check: np.ndarray  # a mastery-check item
    modality: np.ndarray  # position in ``MODALITIES``
    id_rank: np.ndarray  # the item id's rank in string order (the ranking's last tie-break)

    @classmethod
    def build(cls, items: Sequence[Item]) -> ItemTable:
        ids = [item.id for item in items]
        rank = {item_id: k for k, item_id in enumerate(sorted(set(ids)))}
        modality = {m: k for k, m in enumerate(MODALITIES)}
        return cls(
            row={item_id: k for k, item_id in enumerate(ids)},
            time_cost=np.array([1.0 - min(1.0, item.duration_minutes / 45.0) for item in items], dtype=float),
            check=np.array([item.mastery_check for item in items], dtype=bool),
            modality=np.array([modality[item.modality] for item in items], dtype=np.intp),
            id_rank=np.array([rank[item_id] for item_id in ids], dtype=np.intp),
        )


@dataclass(frozen=True)
class PlannerIndex:
    """Graph and catalog lookups keyed by learnable unit (a standard without parts).

    ``items_for[u]`` lists items that practise ``u`` (aligned to it or to one of its parents)
    and may be offered (not withdrawn); ``item_units[i]`` the units an item practises (a
    withdrawn one too: answers on it are evidence); ``prereqs``, ``dependents`` and ``ancestors``
    the learning graph's links as the planner gates on them: a standard no item that sends an
    answer practises (:attr:`practised`) cannot be checked here, so it is passed through (what
    builds on it needs its prerequisites instead; see :func:`gating`), else a catalog with items
    on some standards only (a tenant's own framework), or with only a lesson or a reading on some
    (the Coherence Map's own links on 75 standards), would leave their dependents waiting
    forever; ``order[u]`` a
    position in one fixed topological order of the learning graph (lower grade first), so any
    subset sorted by it is a valid learning order; ``cluster_before[u]`` the units of ``u``'s
    cluster that come before it in the source's sequence (the curriculum order), nearest first
    (used when the graph seems to miss a prerequisite).
    """

    graph: StandardsGraph
    catalog: Catalog
    items_for: dict[str, tuple[Item, ...]]
    item_units: dict[str, tuple[str, ...]]
    prereqs: dict[str, tuple[str, ...]]
    dependents: dict[str, tuple[str, ...]]
    ancestors: dict[str, frozenset[str]]
    order: dict[str, int]
    cluster_before: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: units with a mastery-check item that can confirm them (mastery needs a passed check only on
    #: these; see :func:`checkable_units`)
    checkable: set[str] = field(default_factory=set)
    _nearest: dict[float | None, tuple[tuple[str, ...], ...]] = field(default_factory=dict, compare=False, repr=False)
    _nearest_positions: dict[float | None, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, graph: StandardsGraph, catalog: Catalog) -> PlannerIndex:
        learning = graph.learning
        units_of_item: dict[str, tuple[str, ...]] = {}
        items_for: dict[str, list[Item]] = {u: [] for u in learning}
        for item in catalog:
            units = tuple(
                dict.fromkeys(leaf for code in item.standards if code in graph.standards for leaf in graph.leaves(code))
            )
            units_of_item[item.id] = units
            for unit in () if item.withdrawn else units:  # what answers on it are evidence of, but not offered
                items_for[unit].append(item)

        def key(code: str) -> tuple[int, int]:
            grade = graph.standards[code].grade_num
            return (99 if grade is None else grade, graph.order_of(code))

        topo = list(nx.lexicographical_topological_sort(learning, key=key))
        clusters: dict[str, list[str]] = {}
        for unit in sorted(learning, key=graph.order_of):  # the source's (curriculum) sequence
            cluster = graph.standards[unit].cluster_code
            if cluster:
                clusters.setdefault(cluster, []).append(unit)
        before = {}
        for members in clusters.values():
            for i, unit in enumerate(members):
                before[unit] = tuple(reversed(members[:i]))
        prereqs, dependents, ancestors = gating(graph, answered(items_for))
        return cls(
            graph=graph,
            catalog=catalog,
            items_for={u: tuple(v) for u, v in items_for.items()},
            item_units=units_of_item,
            prereqs=prereqs,
            dependents=dependents,
            ancestors=ancestors,
            order={u: i for i, u in enumerate(topo)},
            cluster_before=before,
            checkable=checkable_units(items_for, units_of_item, ancestors),
        )

    @cached_property
    def units_by_grade(self) -> dict[int | None, tuple[str, ...]]:
        """The units of each grade (None: no grade), in learning order."""
        found: dict[int | None, list[str]] = {}
        for unit in sorted(self.order, key=self.order.__getitem__):
            found.setdefault(self.graph.standards[unit].grade_num, []).append(unit)
        return {grade: tuple(units) for grade, units in found.items()}

    def units_nearest(self, level: float | None) -> tuple[tuple[str, ...], ...]:
        """The units grouped by closeness of their grade to ``level`` (see ``grade_fit``), the
        closest group first, each group in learning order (kept for the levels seen recently)."""
        hit = self._nearest.get(level)
        if hit is None:
            groups: dict[float, list[str]] = {}
            for grade, units in self.units_by_grade.items():
                groups.setdefault(grade_fit(level, grade), []).extend(units)
            hit = tuple(tuple(sorted(groups[fit], key=self.order.__getitem__)) for fit in sorted(groups, reverse=True))
            if len(self._nearest) >= 256:
                self._nearest.clear()
            self._nearest[level] = hit
        return hit

    @cached_property
    def solo(self) -> frozenset[str]:
        """Units whose every item practises that unit alone (gating them needs one answer)."""
        units_of = self.item_units
        return frozenset(u for u, items in self.items_for.items() if all(units_of[i.id] == (u,) for i in items))

    @cached_property
    def item_table(self) -> ItemTable:
        """The catalog's items as arrays (see :class:`ItemTable`)."""
        return ItemTable.build(list(self.catalog))

    @cached_property
    def practised(self) -> frozenset[str]:
        """The units some offered item that sends an answer practises (``Modality.answers``): the
        ones a learner can show mastery of here. A lesson, a reading or a video teaches, but
        nothing after it says whether it was learned."""
        return frozenset(answered(self.items_for))

    @cached_property
    def taught_only(self) -> frozenset[str]:
        """The units with items, none of which sends an answer (lessons, readings, videos): not
        :attr:`practised`, passed over by plans like the units without any item."""
        return frozenset(u for u, items in self.items_for.items() if items) - self.practised

    def unpractised(self, units: Sequence[str]) -> str:
        """Why ``units`` (not :attr:`practised`) cannot be learned here, for a person to read."""
        codes = ", ".join(units)
        if any(u in self.taught_only for u in units):
            return (
                f"nothing in the catalog that sends an answer practises {codes} (lessons, readings or videos "
                "alone teach but cannot show mastery)"
            )
        return f"no item in the catalog practises {codes}"

    @cached_property
    def practised_mask(self) -> np.ndarray:
        """:attr:`practised` as a mask over ``order``'s positions."""
        return self.positions(self.practised)

    @cached_property
    def units_in_order(self) -> tuple[str, ...]:
        """The units by their ``order`` (``units_in_order[order[u]] == u``)."""
        return tuple(sorted(self.order, key=self.order.__getitem__))

    @cached_property
    def prerequisite_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every learning prerequisite as positions in ``order``: ``(units, their prerequisites)``."""
        pairs = [(self.order[u], self.order[p]) for u, pres in self.prereqs.items() for p in pres]
        array = np.array(pairs, dtype=np.intp).reshape(-1, 2)
        return array[:, 0].copy(), array[:, 1].copy()

    def positions(self, units) -> np.ndarray:
        """A mask over ``order``'s positions: True at ``units``."""
        mask = np.zeros(len(self.order), dtype=bool)
        order = self.order
        mask[np.fromiter((order[u] for u in units if u in order), np.intp)] = True
        return mask

    def positions_nearest(self, level: float | None) -> np.ndarray:
        """:meth:`units_nearest` flattened, as positions in ``order`` (closest group first)."""
        hit = self._nearest_positions.get(level)
        if hit is None:
            order = self.order
            hit = np.array([order[u] for group in self.units_nearest(level) for u in group], dtype=np.intp)
            if len(self._nearest_positions) >= 256:
                self._nearest_positions.clear()
            self._nearest_positions[level] = hit
        return hit

    def units(self, codes) -> list[str]:
        """Learnable units of some standard codes (canonical codes expected)."""
        return list(dict.fromkeys(leaf for code in codes for leaf in self.graph.leaves(code)))

    def route(self, mastered: set[str] | frozenset[str], goal_units) -> list[str]:
        """The units still to learn for the goal, in learning order: its units not in ``mastered``
        and their ancestors not in it. A goal unit mastered needs nothing more: a prerequisite of
        it alone is not on the route (``engine.queries.route`` with ``literal`` mastery keeps it),
        so the route is empty, and the goal reached, once every goal unit is mastered."""
        done = set(mastered)
        needed: set[str] = set()
        for unit in goal_units:
            if unit not in done:
                needed.add(unit)
                needed |= self.ancestors[unit]
        return sorted(needed - done, key=self.order.__getitem__)

    def extended(self, items: Sequence[Item], catalog: Catalog) -> PlannerIndex:
        """A copy over ``catalog`` with ``items`` added (or replaced): a tenant's own items over
        the shared catalog. The graph lookups are shared (they do not change)."""
        copy = replace(
            self,
            catalog=catalog,
            items_for=dict(self.items_for),
            item_units=dict(self.item_units),
            checkable=set(self.checkable),
        )
        for item in items:
            copy.with_item(item)
        return copy

    def with_item(self, item: Item) -> None:
        """Index an item added to the catalog after the index was built (catalog upsert)."""
        units = tuple(
            dict.fromkeys(
                leaf for code in item.standards if code in self.graph.standards for leaf in self.graph.leaves(code)
            )
        )
        # built again when asked for
        for name in ("item_table", "solo", "practised", "taught_only", "practised_mask", "prerequisite_pairs"):
            self.__dict__.pop(name, None)
        old = self.item_units.get(item.id, ())
        touched = {*old, *units}
        practised_before = answered({u: self.items_for[u] for u in touched})
        for unit in old:
            self.items_for[unit] = tuple(i for i in self.items_for[unit] if i.id != item.id)
        self.item_units[item.id] = units
        for unit in () if item.withdrawn else units:
            self.items_for[unit] = (*self.items_for[unit], item)
        changed: Iterable[str] = touched
        if practised_before != answered({u: self.items_for[u] for u in touched}):
            # a standard gained its first item that answers or lost its last: the gating links
            # change (new dicts: an index made by ``extended`` shares its source's), and with
            # them which check can confirm which unit
            links = gating(self.graph, self.practised)
            for name, value in zip(("prereqs", "dependents", "ancestors"), links):
                object.__setattr__(self, name, value)
            changed = self.items_for
        for unit in changed:
            self.checkable.discard(unit)
        self.checkable.update(checkable_units({u: self.items_for[u] for u in changed}, self.item_units, self.ancestors))


def answered(items_for: Mapping[str, Sequence[Item]]) -> set[str]:
    """The units of ``items_for`` with an item that sends an answer."""
    return {u for u, items in items_for.items() if any(item.modality.answers for item in items)}


def checkable_units(
    items_for: Mapping[str, Sequence[Item]],
    item_units: Mapping[str, Sequence[str]],
    ancestors: Mapping[str, AbstractSet[str]],
) -> set[str]:
    """The units of ``items_for`` that one of their items can confirm as a mastery check: a check
    that tests nothing else building on the unit. A check that also tests a standard which needs
    the unit first (a unit test over a cluster, say) is gated until the unit is mastered, so
    mastery must not wait for it: with ``require_check`` the learner would practise the unit
    forever, right every time and never mastering it."""
    return {
        unit
        for unit, items in items_for.items()
        if any(
            item.mastery_check and not any(v != unit and unit in ancestors.get(v, ()) for v in item_units[item.id])
            for item in items
        )
    }


def gating(
    graph: StandardsGraph, practised: AbstractSet[str]
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]], dict[str, frozenset[str]]]:
    """The learning graph's ``(prerequisites, dependents, ancestors)`` of every unit over the
    ``practised`` units (:attr:`PlannerIndex.practised`): an unpractised prerequisite is replaced
    by its own prerequisites (again and again), and unpractised units are no one's dependent or
    ancestor. With every unit practised (the bundled catalog) they are the learning graph's own
    links."""
    learning = graph.learning
    prereqs: dict[str, tuple[str, ...]] = {}

    def through(unit: str) -> tuple[str, ...]:
        found = prereqs.get(unit)
        if found is None:
            expanded: list[str] = []
            for p in graph.learning_prerequisites(unit):
                expanded.extend((p,) if p in practised else through(p))
            found = prereqs[unit] = tuple(dict.fromkeys(expanded))
        return found

    in_order = list(nx.topological_sort(learning))
    for unit in in_order:  # prerequisites first: the recursion stays shallow
        through(unit)
    followers: dict[str, list[str]] = {u: [] for u in learning}
    for unit, pres in prereqs.items():
        if unit in practised:
            for p in pres:
                followers[p].append(unit)
    ancestors: dict[str, frozenset[str]] = {}
    for unit in in_order:
        ancestors[unit] = frozenset(a for p in prereqs[unit] for a in (p, *ancestors[p]))
    return prereqs, {u: tuple(graph.sort(v)) for u, v in followers.items()}, ancestors


def grade_fit(level: float | None, grade: int | None) -> float:
    """Closeness of a grade to a learner's level: 1 at the level, 0 three grades away; 0.5 when
    either is unknown."""
    return 0.5 if level is None or grade is None else max(0.0, 1.0 - abs(grade - level) / 3.0)
