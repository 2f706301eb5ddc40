"""Planner behaviour on a small literal graph: gating, re-verification, intervention, overrides, scoring."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from configs import PlannerConfig
from engine.learner import Observation
from engine.planner.context import Goal, Overrides
from engine.planner.planner import recommend
from engine.planner.progress import Progress, mark_mastered
from engine.planner.scoring import rank_candidates
from engine.planner.targets import review_due

from .conftest import Learner


def master(learner: Learner, code: str, time: float = 0.0) -> None:
    for item in (f"{code}-p1", f"{code}-p2", f"{code}-check"):
        learner.attempt(item, True, time)
    assert learner.progress.get(code).mastered, code


def standards_offered(learner: Learner, **ctx) -> set[str]:
    ranked, _, _ = rank_candidates(learner.ctx(**ctx))
    return {u for c in ranked for u in learner.index.item_units[c.item.id]}


def test_never_offers_items_past_an_unmastered_prerequisite(learner) -> None:
    assert standards_offered(learner) == {"A", "D"}  # B needs A, C needs B
    master(learner, "A")
    offered = standards_offered(learner)
    assert "B" in offered and "C" not in offered
    ranked, _, _ = rank_candidates(learner.ctx())
    assert "AB-mixed" in {c.item.id for c in ranked}  # A mastered, B ready


def test_mixed_item_waits_for_all_its_standards(learner) -> None:
    ranked, _, _ = rank_candidates(learner.ctx())
    assert "AB-mixed" not in {c.item.id for c in ranked}


def test_strict_gating_needs_a_streak_and_a_check(index) -> None:
    learner = Learner(index, PlannerConfig(exploration=0.0, streak_required=3, confirm_streak=3))
    learner.attempt("A-p1", True)
    learner.attempt("A-p2", True)
    assert not learner.progress.get("A").mastered  # two in a row is not enough
    learner.attempt("A-read", True)
    assert not learner.progress.get("A").mastered  # three in a row but no mastery check
    assert learner.attempt("A-check", True) == ["mastered A"]


def test_default_gate_needs_a_high_p_two_in_a_row_and_a_check(learner) -> None:
    assert learner.config.streak_required == 2 and learner.config.require_check
    learner.state = learner.model.state_with_priors({"D": 0.2})
    learner.attempt("D-p1", True)
    assert learner.attempt("D-check", True) == []  # 2 in a row with a check, but P(mastered) < 0.95
    assert learner.model.mastery(learner.state)["D"] < learner.config.mastery_threshold
    learner.state = learner.model.state_with_priors({"A": 0.6})
    learner.attempt("A-p1", True)
    assert learner.attempt("A-check", True) == ["mastered A"]  # the same evidence on a likelier prior


def test_gating_without_required_check(index) -> None:
    learner = Learner(index, PlannerConfig(require_check=False, exploration=0.0))
    learner.attempt("A-p1", True)
    learner.attempt("A-p2", True)
    assert learner.attempt("A-read", True) == ["mastered A"]


def test_a_failure_breaks_the_streak(learner) -> None:
    learner.attempt("A-p1", True)
    learner.attempt("A-p2", True)
    learner.attempt("A-read", False)
    learner.attempt("A-check", True)
    assert not learner.progress.get("A").mastered


def test_mastered_standards_are_reverified_and_reopened(learner, config) -> None:
    master(learner, "A", time=0.0)
    master(learner, "D", time=0.0)
    later = config.reverify_after_s + 1
    ranked, _, _ = rank_candidates(learner.ctx(now=later))
    checks = [c for c in ranked if c.kind == "reverify"]
    assert {c.standard for c in checks} == {"A", "D"}
    assert all(c.item.mastery_check for c in checks)
    assert any("re-check of mastery of A" in r for c in checks for r in c.reasons)
    # not before it is due
    assert not [c for c in rank_candidates(learner.ctx(now=10.0))[0] if c.kind == "reverify"]
    # a failed check reopens the standard; once the model doubts A, B is no longer ready
    assert learner.attempt("A-check", False, later) == ["reopened A"]
    assert not learner.progress.get("A").mastered
    learner.attempt("A-p1", False, later)
    assert learner.model.mastery(learner.state)["A"] < learner.config.ready_threshold
    assert "B" not in standards_offered(learner, now=later)


def test_only_inner_fringe_is_reverified(learner, config) -> None:
    master(learner, "A")
    master(learner, "B")
    ranked, _, _ = rank_candidates(learner.ctx(now=config.reverify_after_s + 1))
    assert {c.standard for c in ranked if c.kind == "reverify"} == {"B"}  # A is under B


def test_repeated_failure_routes_to_weakest_prerequisite_and_flags_teacher(learner) -> None:
    mark_mastered(learner.progress, ["A"], 0.0)
    learner.state = learner.model.state_with_priors({"A": 0.6, "B": 0.4})
    learner.attempt("B-p1", False)
    learner.attempt("B-p2", False)
    result = recommend(learner.ctx(), n=2)
    top = result.recommendations[0]
    assert top.kind == "remediation" and top.standard == "A"
    assert any("remediation for B: 2 failures in a row" in r for r in top.reasons)
    assert [(f.standard, f.remediation, f.suggested_modality) for f in result.flags] == [("B", "A", "small_group")]


def test_struggle_with_solid_prerequisites_asks_for_reteaching(learner) -> None:
    master(learner, "A")
    learner.attempt("B-p1", False)
    learner.attempt("B-p2", False)
    flags = recommend(learner.ctx()).flags
    assert flags[0].standard == "B" and flags[0].suggested_modality == "tutoring" and flags[0].remediation is None


def test_a_standard_taught_without_an_answer_waits_when_nothing_can_answer_on_it(learner) -> None:
    """Reteaching a struggle: a lesson sends no answer. Where nothing that answers may be given
    on the standard (only lessons, pages and videos), it waits after the lesson instead of being
    taught again and again with nothing learned from it (a struggle that never ends: lessons
    forever); an answer on it, or a teacher's pin, brings it back."""
    master(learner, "A")
    learner.attempt("B-p1", False)
    learner.attempt("B-p2", False)
    lessons = frozenset({"B-tutor", "B-group", "B-read", "D-p1"})

    def offered(**context) -> set[str]:
        result = recommend(learner.ctx(**context), n=4, k_alternatives=5)
        return {c.item.id for r in result.recommendations if r.standard == "B" for c in (r, *r.alternatives)}

    assert offered(available=lessons)  # reteaching, struggling
    learner.core.observe(learner.learner, Observation("B-tutor", ("B",), None, 1.0))  # the lesson held
    assert not offered(available=lessons)  # nothing that answers: B waits
    assert offered() & {"B-p1", "B-p2", "B-check"}  # practice may come
    assert offered(available=lessons, overrides=Overrides(pinned_items=("B-group",))) == {"B-group"}
    learner.attempt("B-p1", False)  # an answer: the struggle goes on, a lesson may come again
    assert offered(available=lessons)


def test_overrides_always_win(learner) -> None:
    overrides = Overrides(pinned_items=("C-p1",), excluded_items=frozenset({"A-p1", "A-p2"}))
    result = recommend(learner.ctx(overrides=overrides), n=3)
    first = result.recommendations[0]
    assert first.item.id == "C-p1" and first.kind == "pinned"  # even though C is far from ready
    assert "pinned by teacher: item C-p1" in first.reasons
    ranked, _, _ = rank_candidates(learner.ctx(overrides=overrides))
    assert not {"A-p1", "A-p2"} & {c.item.id for c in ranked}
    pinned = recommend(learner.ctx(overrides=Overrides(pinned_standards=("B",))), n=1).recommendations[0]
    assert pinned.standard == "B" and any("pinned by teacher: B" in r for r in pinned.reasons)


def test_goal_focuses_candidates_and_locked_goal_stays_on_route(learner) -> None:
    master(learner, "A")
    master(learner, "B")
    master(learner, "D")
    goal = Goal(("C",))
    assert {c.standard for c in rank_candidates(learner.ctx(goal=goal))[0] if c.kind == "learn"} == {"C"}
    master(learner, "C")
    assert not [
        c
        for c in rank_candidates(learner.ctx(goal=goal, overrides=Overrides(goal_locked=True)))[0]
        if c.kind == "learn"
    ]


def test_each_weight_moves_only_its_own_component(learner) -> None:
    base = PlannerConfig(exploration=0.0)
    ranked, _, _ = rank_candidates(learner.ctx(interests=("sports",)))
    for name in base.weights:
        weights = dict(base.weights)
        weights[name] += 1.5
        learner.config = base.model_copy(update={"weights": weights})
        bumped, _, _ = rank_candidates(learner.ctx(interests=("sports",)))
        before = {c.item.id: c for c in ranked}
        for cand in bumped:
            old = before[cand.item.id]
            assert cand.components == old.components
            assert cand.score - old.score == pytest.approx(1.5 * old.components[name]), name
    learner.config = base


def test_components_respond_to_their_inputs(learner) -> None:
    ranked = {c.item.id: c for c in rank_candidates(learner.ctx(interests=("sports",)))[0]}
    assert ranked["A-p1"].components["interest"] == 1.0 and ranked["A-p2"].components["interest"] == 0.0
    assert ranked["A-read"].components["time_cost"] > ranked["A-p1"].components["time_cost"]
    learner.attempt("A-p1", True)
    again = {c.item.id: c for c in rank_candidates(learner.ctx())[0]}
    assert "A-p1" in again and again["A-p1"].components["novelty"] == 0.0  # just done
    assert again["A-p2"].components["novelty"] == 1.0


def test_reasons_name_the_prerequisites(learner) -> None:
    master(learner, "A")
    rec = [r for r in recommend(learner.ctx(), n=3).recommendations if r.standard == "B"][0]
    assert "ready: prerequisites A mastered" in rec.reasons
    assert any(r.startswith("P(success)") for r in rec.reasons)


def test_readiness_says_which_prerequisites_are_shown_and_which_believed() -> None:
    """The reason a teacher reads: prerequisites mastered (shown by evidence) apart from those only
    likely known (the starting belief), never run together in one list."""
    from types import SimpleNamespace

    from engine.planner.reasons import ready_reasons

    ctx: Any = SimpleNamespace(index=SimpleNamespace(prereqs={"C": ("A", "B"), "A": ()}))
    assert ready_reasons(ctx, "A", frozenset()) == ["ready: no prerequisites"]
    assert ready_reasons(ctx, "C", frozenset({"A", "B"})) == ["ready: prerequisites A, B mastered"]
    assert ready_reasons(ctx, "C", frozenset({"A"})) == ["ready: prerequisites A mastered; B likely known"]
    assert ready_reasons(ctx, "C", frozenset()) == ["ready: prerequisites A, B likely known (none shown mastered yet)"]


def test_a_reason_is_said_once() -> None:
    """A target that is there for a mastery check says so; the item's reasons do not say it again."""
    from engine.catalog import Item, Modality
    from engine.planner.reasons import item_reasons

    item = Item("q", "Quiz", ("A",), Modality.ASSESSMENT, 10.0, mastery_check=True)
    comps = {"mastery_check": 1.0, "spacing": 0.0, "exploration": 0.0}
    told = ["likely known already (P(mastered) 0.80): a mastery check can confirm it"]
    said = item_reasons(told, "test_out", item, 0.7, comps, (0.6, 0.85), frozenset())
    assert sum("mastery check" in r for r in said) == 1
    plain = item_reasons(["ready: no prerequisites"], "learn", item, 0.7, comps, (0.6, 0.85), frozenset())
    assert "mastery check: can confirm mastery" in plain


def test_review_due_and_implicit_review(learner, config) -> None:
    master(learner, "A", time=0.0)
    interval = config.review_interval_s
    assert review_due(learner.ctx(now=interval - 1), "A") == 0.0
    assert review_due(learner.ctx(now=interval + 1), "A") > 0.0
    learner.progress.units["A"] = replace(learner.progress.get("A"), verified_at=1.0)  # so no re-check competes
    ranked, _, _ = rank_candidates(learner.ctx(now=interval + 1))
    review = [c for c in ranked if c.standard == "A"]
    assert review and all(c.kind == "review" for c in review)
    assert any("review due: A last reviewed" in r for r in review[0].reasons)
    before = learner.progress.get("A").last_review
    learner.attempt("B-p1", True, time=interval)  # practice on B partially reviews A
    assert learner.progress.get("A").last_review == pytest.approx(before + config.implicit_review_share * interval)


def test_alternatives_are_other_items_on_the_same_standard(learner) -> None:
    rec = recommend(learner.ctx(), n=1, k_alternatives=2).recommendations[0]
    assert len(rec.alternatives) == 2
    assert all(a.standard == rec.standard and a.item.id != rec.item.id for a in rec.alternatives)


def test_progress_round_trips_through_json(learner) -> None:
    master(learner, "A")
    stored = json.loads(json.dumps(learner.progress.to_json()))
    again = Progress.from_json(stored)
    assert again.units == learner.progress.units and again.recent_items == learner.progress.recent_items
    assert again.activities == learner.progress.activities


def test_progress_reads_earlier_stored_forms(learner) -> None:
    master(learner, "A")
    units = learner.progress.units
    # one object per unit (the earlier form), and rows under another field list (a field added later)
    objects = {
        "units": {u: {**dataclasses.asdict(p), "recent": list(p.recent)} for u, p in units.items()},
        "recent_items": ["x"],
        "activities": 3,
    }
    fields = [f for f in learner.progress.to_json()["fields"] if f != "reopened"] + ["retired_field"]
    rows = {"fields": fields, "units": {u: [getattr(p, f, 7) for f in fields] for u, p in units.items()}}
    assert Progress.from_json(objects).units == units
    again = Progress.from_json(rows)
    assert all(again.units[u] == dataclasses.replace(p, reopened=0) for u, p in units.items())


def test_exploration_is_seeded(index) -> None:
    learner = Learner(index, PlannerConfig(exploration=1.0))
    picks = {recommend(learner.ctx(rng=np.random.default_rng(s))).recommendations[0].standard for s in range(20)}
    assert picks == {"A", "D"}  # exploration stays among ready standards, and does explore


def test_a_standard_no_check_confirms_is_reverified_by_a_success_once_due(config) -> None:
    """Re-verification takes a check; where the catalog has none for the standard it takes
    practice, and a success on it once the re-check is due verifies it. Before, the standard
    stayed "to re-check" for good, and a learner with nothing else open was given it again and
    again (one simulated learner: 879 answers on one kindergarten standard)."""
    from engine.catalog import Catalog
    from engine.planner.index import PlannerIndex

    from .conftest import world

    graph, catalog = world()
    learner = Learner(PlannerIndex.build(graph, Catalog([i for i in catalog if i.id != "D-check"])), config)
    for _ in range(6):
        learner.attempt("D-p1", True, 0.0)
    assert learner.progress.get("D").mastered and "D" not in learner.index.checkable
    later = config.reverify_after_s + 1
    again = [c for c in rank_candidates(learner.ctx(now=later))[0] if c.kind == "reverify"]
    assert {c.standard for c in again} == {"D"} and not any(c.item.mastery_check for c in again)
    learner.attempt("D-p2", True, 10.0)  # before it is due: no re-check
    assert "D" in {c.standard for c in rank_candidates(learner.ctx(now=later))[0] if c.kind == "reverify"}
    learner.attempt("D-p2", True, later)
    assert not [c for c in rank_candidates(learner.ctx(now=later + 60))[0] if c.kind == "reverify"]


def test_a_standard_with_a_check_and_a_reading_only_is_answered_on_the_check(config) -> None:
    """A check is not practice while there is practice that answers; a reading is not such
    practice. Before, a standard with a check and a reading only was given the reading, and once
    read (nothing answers after a reading) nothing at all: it could never be learned."""
    from engine.catalog import Catalog
    from engine.planner.index import PlannerIndex

    from .conftest import world

    graph, catalog = world()
    kept = [i for i in catalog if "B" not in i.standards or i.id in ("B-check", "B-read")]
    learner = Learner(PlannerIndex.build(graph, Catalog(kept)), config)
    master(learner, "A")
    offered = {c.item.id for c in rank_candidates(learner.ctx())[0] if c.standard == "B"}
    assert offered == {"B-check", "B-read"}
    learner.core.observe(learner.learner, Observation("B-read", ("B",), None, 60.0))
    offered = {c.item.id for c in rank_candidates(learner.ctx(now=120.0))[0] if c.standard == "B"}
    assert offered == {"B-check"}


def test_when_the_nearest_objectives_have_nothing_to_give_the_further_ones_are_worked_on() -> None:
    """Goal X and Y, one objective at a time; X is the cheaper, W is on the way to Y. When X's
    items are not to be given (the teacher excluded them, the platform offers others), the work
    goes on toward Y: before, the plan was empty although W was ready with practice."""
    from engine.catalog import Catalog, Item, Modality
    from engine.graph import Standard, StandardsGraph
    from engine.planner.index import PlannerIndex

    graph = StandardsGraph([Standard(c, grade="3", grade_num=3) for c in "WXY"], [("W", "Y")])
    items = [Item(f"{c}-{k}", f"{c} {k}", (c,), Modality.ONLINE_PRACTICE, 10) for c in "WXY" for k in (1, 2)]
    config = PlannerConfig(exploration=0.0, entry_diagnostic_minutes=0, objectives=1)
    learner = Learner(PlannerIndex.build(graph, Catalog(items)), config, goal=Goal(("X", "Y")))
    learner.state = learner.model.state_with_priors({"X": 0.5, "W": 0.1, "Y": 0.1})
    assert {r.standard for r in recommend(learner.ctx()).recommendations} == {"X"}
    for ctx in (
        learner.ctx(overrides=Overrides(excluded_items=frozenset({"X-1", "X-2"}))),
        learner.ctx(available=frozenset({"W-1", "W-2", "Y-1", "Y-2"})),
    ):
        result = recommend(ctx)
        assert result.recommendations and result.recommendations[0].standard == "W"
