"""The planner's array forms agree with their unit-by-unit definitions.

A request reads readiness, the outer fringe, the items a target allows and the per-item score
components over arrays (one numpy pass instead of a Python loop per unit or candidate); each is
checked here against the plain definition it replaces, on the bundled graph (480 standards, with
multi-standard items, presumed prerequisites and every grade level) and on random learners."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest

from configs import PlannerConfig
from engine.catalog import Catalog, Item, Modality
from engine.observations import Mastery
from engine.planner.context import PlanContext
from engine.planner.index import PlannerIndex
from engine.planner.progress import Progress, StandardProgress
from engine.planner.scoring import rank_candidates
from engine.planner.targets import (
    FRINGE,
    Readiness,
    Target,
    _ready,
    allowed_items,
    in_place,
    outer_fringe,
    presumed_prerequisites,
)
from engine.sources import build_default_catalog


@pytest.fixture(scope="module")
def index(bundled_graph) -> PlannerIndex:
    catalog = build_default_catalog(bundled_graph)
    units = sorted(bundled_graph.learning)
    # items on two standards each (the default catalog has one standard per item): gating must
    # then wait for both
    mixed = [
        Item(f"mixed-{k}", "two standards", (units[k], units[k + 7]), Modality.ONLINE_PRACTICE, 12)
        for k in range(0, 200, 9)
    ]
    return PlannerIndex.build(bundled_graph, Catalog([*catalog, *mixed]))


def random_context(index: PlannerIndex, seed: int) -> PlanContext:
    """A learner with random beliefs, some standards practised (a few failed three times in a
    row, so prerequisites get presumed), some mastered, at a random grade level."""
    rng = np.random.default_rng(seed)
    units = list(index.order)
    codes = list(index.graph.standards)
    mastery = Mastery(codes, rng.beta(0.6, 0.6, size=len(codes)))
    progress = Progress()
    for unit in rng.choice(units, size=int(rng.integers(0, 80)), replace=False).tolist():
        fails = int(rng.integers(0, 5))
        mastered = fails == 0 and rng.random() < 0.7
        progress.units[unit] = StandardProgress(
            attempts=fails + 2,
            streak=0 if fails else 2,
            failures_in_a_row=fails,
            recent=(1.0,) * (2 if not fails else 0) + (0.0,) * fails,
            last_activity=10,
            mastered_at=1.0 if mastered else None,
            mastered_by="placement" if mastered else None,
        )
    progress.activities = 12
    return PlanContext(
        index,
        PlannerConfig(),
        mastery,
        lambda items: np.full(len(items), 0.7),
        progress,
        now=1e6,
        level=None if seed % 7 == 0 else float(rng.integers(0, 9)),
    )


def fringe_by_units(ctx: PlanContext, placed: frozenset[str], presumed) -> list[str]:
    """The outer fringe's definition, one unit at a time."""
    found: list[str] = []
    for group in ctx.index.units_nearest(ctx.level):
        for unit in group:
            if unit not in placed and _ready(ctx, unit, placed, presumed):
                found.append(unit)
                if len(found) >= FRINGE:
                    return sorted(found, key=ctx.index.order.__getitem__)
    return sorted(found, key=ctx.index.order.__getitem__)


@pytest.mark.parametrize("seed", range(40))
def test_readiness_and_fringe_match_the_unit_by_unit_definition(index, seed) -> None:
    ctx = random_context(index, seed)
    placed = in_place(ctx, ctx.progress.mastered)
    presumed = presumed_prerequisites(ctx, placed)
    by_array = Readiness(ctx, placed, presumed)
    mask = by_array.mask
    for unit, k in index.order.items():
        assert bool(mask[k]) == _ready(ctx, unit, placed, presumed) == by_array(unit), unit
    assert outer_fringe(ctx, Readiness(ctx, placed, presumed)) == fringe_by_units(ctx, placed, presumed)


def test_the_random_learners_cover_presumed_prerequisites_and_partial_fringes(index) -> None:
    """The comparison above means something: some learners have presumed prerequisites, some a
    fringe cut at ``FRINGE``, and grade levels vary."""
    presumed_seen = cut = 0
    for seed in range(40):
        ctx = random_context(index, seed)
        placed = in_place(ctx, ctx.progress.mastered)
        presumed = presumed_prerequisites(ctx, placed)
        presumed_seen += bool(presumed)
        cut += len(outer_fringe(ctx, Readiness(ctx, placed, presumed))) == FRINGE
    assert presumed_seen >= 5 and cut >= 5


def test_in_place_reads_the_same_beliefs_from_a_plain_mapping(index) -> None:
    for seed in range(10):
        ctx = random_context(index, seed)
        plain = replace(ctx, mastery=dict(ctx.mastery))
        assert in_place(ctx, ctx.progress.mastered) == in_place(plain, plain.progress.mastered)


@pytest.mark.parametrize("kind", ["learn", "test_out", "reverify", "recheck", "review", "remediation"])
def test_allowed_items_fast_path_matches_the_item_by_item_check(index, kind) -> None:
    general = replace(index)  # the same lookups, its own caches
    general.__dict__["solo"] = frozenset()  # every unit takes the item-by-item path
    assert index.solo and len(index.solo) < len(index.order)  # both paths are exercised
    for seed in range(8):
        ctx = random_context(index, seed)
        placed = in_place(ctx, ctx.progress.mastered)
        presumed = presumed_prerequisites(ctx, placed)
        other = replace(ctx, index=general)
        for unit in list(index.order)[seed::9]:
            target = Target(unit, kind, [])
            fast = allowed_items(ctx, target, placed, Readiness(ctx, placed, presumed))
            slow = allowed_items(other, target, placed, Readiness(other, placed, presumed))
            assert [i.id for i in fast] == [i.id for i in slow], (unit, kind)


def test_mastery_is_a_plain_mapping_that_answers_thresholds(index) -> None:
    codes = ["A", "B", "C", "D"]
    m = Mastery(codes, np.array([0.1, 0.9, 0.5, 0.95]))
    assert m == {"A": 0.1, "B": 0.9, "C": 0.5, "D": 0.95} and isinstance(m, dict)
    assert m.at_least(0.5) == ["B", "C", "D"] and m.at_least(0.99) == []
    again = pickle.loads(pickle.dumps(m))  # a batch worker may receive it
    assert again == m and again.at_least(0.9) == ["B", "D"]


def test_ranking_is_by_pinned_then_score_then_learning_order_then_item(index) -> None:
    for seed in range(10):
        ctx = random_context(index, seed)
        ranked, _, _ = rank_candidates(ctx)
        keys = [(c.kind != "pinned", -c.score, index.order.get(c.standard, 0), c.item.id) for c in ranked]
        assert keys == sorted(keys)
        for c in list(ranked)[:20]:  # the score is the weighted sum of the components shown
            total = sum(ctx.config.weights.get(name, 0.0) * value for name, value in c.components.items())
            assert c.score == pytest.approx(total, abs=1e-12)


def test_item_table_follows_a_tenant_item_that_replaces_a_shared_one(index) -> None:
    shared = next(iter(index.catalog))
    assert index.item_table.time_cost[index.item_table.row[shared.id]] == pytest.approx(
        1.0 - min(1.0, shared.duration_minutes / 45.0)
    )
    longer = replace(shared, duration_minutes=40.0, modality=Modality.TUTORING)
    catalog = Catalog([longer if i.id == shared.id else i for i in index.catalog])
    own = index.extended([longer], catalog)
    table = own.item_table
    assert table.time_cost[table.row[shared.id]] == pytest.approx(1.0 - 40.0 / 45.0)
    assert table.modality[table.row[shared.id]] == list(Modality).index(Modality.TUTORING)


def test_fringe_reasons_are_written_only_for_what_is_shown(index, monkeypatch) -> None:
    """A learner without a goal weighs two dozen standards; only the shown ones' reasons are
    formatted, and they read exactly as if written at once."""
    import engine.planner.targets as targets_module
    from engine.planner.planner import recommend
    from engine.planner.reasons import Deferred, ready_reasons

    written: list[str] = []

    def counting(ctx, unit, mastered):
        written.append(unit)
        return ready_reasons(ctx, unit, mastered)

    monkeypatch.setattr(targets_module, "ready_reasons", counting)
    ctx = replace(random_context(index, 3), progress=Progress())  # nothing practised yet
    shown = recommend(ctx, n=1, k_alternatives=2).recommendations[0]
    assert shown.kind in ("learn", "test_out")  # a fringe standard
    assert written == [shown.standard]  # the other fringe standards' reasons were never written
    for reason in ready_reasons(ctx, shown.standard, ctx.progress.mastered):
        assert reason in shown.reasons
    lazy = Deferred(lambda: ["a", "b"])
    assert lazy == ["a", "b"] and lazy[1:] == ["b"] and len(lazy) == 2 and list(lazy) == ["a", "b"]
