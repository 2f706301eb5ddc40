"""Goal routing on small literal graphs: likely-known prerequisites, test-outs, goal objectives,
focus, checks, re-checks on struggle, presumed prerequisites, confirmation before building on."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from configs import PlannerConfig
from engine.catalog import Catalog, Item, Modality
from engine.graph import Standard, StandardsGraph
from engine.planner.context import Goal
from engine.planner.index import PlannerIndex
from engine.planner.planner import recommend
from engine.planner.progress import mark_mastered
from engine.planner.scoring import rank_candidates
from engine.planner.targets import confirmed, goal_objectives, in_place, is_parked, presumed_prerequisites

from .conftest import Learner


def _items(code: str) -> list[Item]:
    return [
        Item(f"{code}-p1", f"{code} practice 1", (code,), Modality.ONLINE_PRACTICE, 10),
        Item(f"{code}-p2", f"{code} practice 2", (code,), Modality.ONLINE_PRACTICE, 10),
        Item(f"{code}-check", f"{code} check", (code,), Modality.ASSESSMENT, 10, mastery_check=True),
        Item(f"{code}-tutor", f"{code} tutoring", (code,), Modality.TUTORING, 15),
    ]


def route_world() -> PlannerIndex:
    """Grade 3: P, Q (prerequisites); grade 4 goal: G1 <- P, G2 <- P + Q, G3 free; cluster 4.X
    holds G1, G2, G3 in that order (and no edge between them)."""
    std = [
        Standard("P", grade="3", grade_num=3, domain_code="X", cluster_code="3.X"),
        Standard("Q", grade="3", grade_num=3, domain_code="X", cluster_code="3.X"),
        Standard("G1", grade="4", grade_num=4, domain_code="X", cluster_code="4.X"),
        Standard("G2", grade="4", grade_num=4, domain_code="X", cluster_code="4.X"),
        Standard("G3", grade="4", grade_num=4, domain_code="X", cluster_code="4.X"),
    ]
    graph = StandardsGraph(std, [("P", "G1"), ("P", "G2"), ("Q", "G2")])
    return PlannerIndex.build(graph, Catalog([i for s in std for i in _items(s.code)]))


GOAL = Goal(("G1", "G2", "G3"))


@pytest.fixture()
def routed() -> Learner:
    return Learner(route_world(), PlannerConfig(exploration=0.0), goal=GOAL)


def kinds(learner: Learner, **ctx) -> dict[str, str]:
    ranked, _, _ = rank_candidates(learner.ctx(**ctx))
    return {c.standard: c.kind for c in ranked}


def test_likely_known_prerequisite_is_in_place_until_practised(routed) -> None:
    routed.state = routed.model.state_with_priors({"P": 0.9, "Q": 0.3})
    placed = in_place(routed.ctx(), routed.progress.mastered)
    assert "P" in placed and "Q" not in placed  # believed known vs doubtful
    assert "G1" in kinds(routed)  # G1 builds on a likely-known P
    routed.attempt("P-p1", False)  # once practised, only mastery puts it in place
    assert "P" not in in_place(routed.ctx(), routed.progress.mastered)
    assert "G1" not in kinds(routed)


def test_test_out_is_a_check_and_masters_on_a_confident_pass(routed) -> None:
    routed.state = routed.model.state_with_priors({"P": 0.7, "Q": 0.7})
    ranked, _, _ = rank_candidates(routed.ctx())
    test_outs = [c for c in ranked if c.kind == "test_out"]
    assert {c.standard for c in test_outs} == {"P", "Q"}
    assert all(c.item.mastery_check for c in test_outs)
    assert any("likely known already" in r for r in test_outs[0].reasons)
    routed.config = routed.config.model_copy(update={"test_out_threshold": 0.8})
    assert routed.attempt("P-check", True) == ["tested out of P"]
    assert routed.progress.get("P").mastered_by == "test-out" and confirmed(routed.ctx(), "P")


def test_test_out_without_a_check_item_falls_back_to_practice() -> None:
    index = route_world()
    catalog = Catalog([i for i in index.catalog if i.id != "P-check"])
    learner = Learner(PlannerIndex.build(index.graph, catalog), PlannerConfig(exploration=0.0), goal=GOAL)
    learner.state = learner.model.state_with_priors({"P": 0.7, "Q": 0.1})
    assert kinds(learner)["P"] == "learn"


def test_goal_objectives_cheapest_first_with_shared_prerequisites(routed) -> None:
    routed.state = routed.model.state_with_priors({"P": 0.7, "Q": 0.2})
    ctx = routed.ctx(goal=GOAL)
    objectives = goal_objectives(ctx, in_place(ctx, routed.progress.mastered))
    assert [unit for unit, _, _ in objectives] == ["G3", "G1", "G2"]  # free, one check, one check + one to learn
    frontier = {unit: work for unit, _, work in objectives}
    assert frontier["G3"] == ["G3"] and frontier["G1"] == ["P"] and frontier["G2"] == ["P", "Q"]
    cost = {unit: c for unit, c, _ in objectives}
    assert cost["G3"] < cost["G1"] < cost["G2"]
    # the next objective's work scores higher on the goal component than later ones
    ranked = {c.standard: c for c in rank_candidates(ctx)[0]}
    assert ranked["G3"].components["goal"] > ranked["P"].components["goal"] > ranked["Q"].components["goal"]
    assert any("prerequisite on the way to goal standard G1" in r for r in ranked["P"].reasons)


def test_objectives_limit_the_work_in_progress(routed) -> None:
    routed.state = routed.model.state_with_priors({"P": 0.7, "Q": 0.2})
    routed.config = routed.config.model_copy(update={"objectives": 1})
    assert set(kinds(routed)) == {"G3"}  # only the cheapest goal standard's work


def test_focus_keeps_the_learner_on_a_started_standard(routed) -> None:
    routed.state = routed.model.state_with_priors({"P": 0.99, "Q": 0.99})
    routed.attempt("G2-p1", True)
    ranked = {c.standard: c for c in rank_candidates(routed.ctx())[0]}
    assert ranked["G2"].components["focus"] == 1.0 and ranked["G3"].components["focus"] == 0.0
    routed.attempt("G2-p2", False)  # focus fades with failures: more of the same does not help
    assert {c.standard: c for c in rank_candidates(routed.ctx())[0]}["G2"].components["focus"] == 0.5
    routed.attempt("G2-p1", False)
    assert {c.standard: c for c in rank_candidates(routed.ctx())[0]}["G2"].components["focus"] == 0.0
    for item in ("G3-p1", "G3-p2", "G3-p1", "G3-p2", "G3-p1"):
        routed.attempt(item, True)
    ranked = {c.standard: c for c in rank_candidates(routed.ctx())[0]}
    assert ranked["G2"].components["focus"] == 0.0  # not recent any more


def test_a_check_is_not_practice_until_it_can_confirm_mastery(routed) -> None:
    ranked = [c for c in rank_candidates(routed.ctx())[0] if c.standard == "G3"]
    assert ranked and not any(c.item.mastery_check for c in ranked)
    routed.state = routed.model.state_with_priors({"G3": 0.85})
    routed.attempt("G3-p1", True)
    ranked = [c for c in rank_candidates(routed.ctx())[0] if c.standard == "G3"]
    check = [c for c in ranked if c.item.mastery_check]
    assert check and check[0].components["mastery_check"] == 1.0


def test_struggle_on_top_of_a_test_out_rechecks_it(routed) -> None:
    mark_mastered(routed.progress, ["P"], 0.0, by="test-out")
    routed.state = routed.model.state_with_priors({"P": 0.97, "Q": 0.2})
    for item in ("G1-p1", "G1-p2", "G1-p1"):
        routed.attempt(item, False)
    ranked, flags, _ = rank_candidates(routed.ctx())
    recheck = [c for c in ranked if c.kind == "recheck"]
    assert recheck and recheck[0].standard == "P" and recheck[0].item.mastery_check
    assert ranked[0].kind == "recheck"  # it comes first
    assert any("re-check of P: the learner struggles on G1" in r for r in recheck[0].reasons)
    assert any(f.standard == "G1" for f in flags)


def test_stuck_on_solid_prerequisites_presumes_the_previous_standard_of_the_cluster(routed) -> None:
    routed.state = routed.model.state_with_priors({"P": 0.99, "Q": 0.99, "G1": 0.1, "G2": 0.1})
    for item in ("G3-p1", "G3-p2", "G3-p1"):
        routed.attempt(item, False)
    ctx = routed.ctx()
    placed = in_place(ctx, routed.progress.mastered)
    assert presumed_prerequisites(ctx, placed) == {"G3": "G2"}
    offered = kinds(routed)
    assert "G3" not in offered and "G2" in offered  # G3 waits for G2 now
    routed.attempt("G3-p2", True)  # the first success lifts the presumption
    assert presumed_prerequisites(routed.ctx(), in_place(routed.ctx(), routed.progress.mastered)) == {}


def test_short_streak_mastery_is_rechecked_before_building_on_it_when_asked(routed) -> None:
    """Mastered on two practice successes, P is re-checked before G1 builds on it."""
    routed.config = routed.config.model_copy(update={"streak_required": 2, "confirm_streak": 3, "require_check": False})
    routed.state = routed.model.state_with_priors({"P": 0.8, "Q": 0.99})
    routed.attempt("P-p1", True)
    routed.attempt("P-p1", True, time=5.0)
    assert routed.progress.get("P").mastered and not confirmed(routed.ctx(), "P")
    assert "P" not in in_place(routed.ctx(), routed.progress.mastered)
    offered = kinds(routed)
    assert offered.get("P") == "reverify" and "G1" not in offered
    routed.attempt("P-check", True, time=10.0)
    assert confirmed(routed.ctx(), "P") and "G1" in kinds(routed)


def test_a_short_streak_on_a_standard_nothing_builds_on_is_rechecked_to_confirm_it(routed) -> None:
    """G3 is a leaf of the graph: its re-check says it confirms mastery, not "before building on it"."""
    routed.config = routed.config.model_copy(update={"streak_required": 2, "confirm_streak": 3, "require_check": False})
    routed.state = routed.model.state_with_priors({"P": 0.99, "Q": 0.99, "G3": 0.8})
    routed.attempt("P-p1", True)
    routed.attempt("P-p2", True, time=2.0)
    routed.attempt("G3-p1", True, time=4.0)
    routed.attempt("G3-p2", True, time=6.0)
    ranked, _, _ = rank_candidates(routed.ctx(goal=None))
    why = {c.standard: c.reasons[0] for c in ranked if c.kind == "reverify"}
    assert why["G3"] == "re-check of G3 to confirm mastery (mastered on a streak of 2)"
    assert why["P"] == "re-check of P before building on it (mastered on a streak of 2)"


def test_a_mastery_streak_with_a_passed_check_is_confirmed_at_once(routed) -> None:
    routed.config = routed.config.model_copy(update={"streak_required": 2, "confirm_streak": 3})
    routed.state = routed.model.state_with_priors({"P": 0.8, "Q": 0.99})
    routed.attempt("P-p1", True)
    routed.attempt("P-check", True)
    assert routed.progress.get("P").mastered and confirmed(routed.ctx(), "P")
    assert "G1" in kinds(routed)


def test_a_failed_multi_standard_item_blames_the_unmastered_part(index, config) -> None:
    learner = Learner(index, config)
    for item in ("A-p1", "A-p2", "A-check"):
        learner.attempt(item, True)
    assert learner.progress.get("A").mastered
    learner.attempt("AB-mixed", False)
    learner.attempt("AB-mixed", False)
    assert learner.progress.get("A").mastered and learner.progress.get("A").failures_in_a_row == 0
    assert learner.progress.get("B").failures_in_a_row == 2


def test_every_target_carries_reasons(routed) -> None:
    routed.state = routed.model.state_with_priors({"P": 0.7, "Q": 0.2})
    result = recommend(routed.ctx(), n=3)
    assert result.recommendations
    for rec in result.recommendations:
        assert rec.reasons and any(r.startswith("P(success)") for r in rec.reasons)


def test_scores_stay_seeded(routed) -> None:
    a = recommend(routed.ctx(rng=np.random.default_rng(3))).recommendations[0]
    b = recommend(routed.ctx(rng=np.random.default_rng(3))).recommendations[0]
    assert (a.item.id, a.score) == (b.item.id, pytest.approx(b.score))
    assert replace(a, alternatives=()) == replace(b, alternatives=())


def test_presuming_missing_prerequisites_can_be_switched_off(routed) -> None:
    routed.config = routed.config.model_copy(update={"presume_missing": False})
    routed.state = routed.model.state_with_priors({"P": 0.99, "Q": 0.99, "G1": 0.1, "G2": 0.1})
    for item in ("G3-p1", "G3-p2", "G3-p1"):
        routed.attempt(item, False)
    assert presumed_prerequisites(routed.ctx(), in_place(routed.ctx(), routed.progress.mastered)) == {}
    assert "G3" in kinds(routed)


def test_a_standard_the_learner_is_stuck_on_is_parked_behind_the_others(routed) -> None:
    routed.state = routed.model.state_with_priors({"P": 0.99, "Q": 0.99})
    routed.config = routed.config.model_copy(update={"presume_missing": False})
    ctx = routed.ctx()
    first = goal_objectives(ctx, in_place(ctx, routed.progress.mastered))[0][0]
    other = "G3" if first != "G3" else "G2"
    for correct in (False, True, False, False, False, False):  # a lucky guess does not hide it
        routed.attempt(f"{first}-p1" if correct else f"{first}-p2", correct)
    ctx = routed.ctx()
    assert is_parked(ctx, first)
    assert [u for u, _, _ in goal_objectives(ctx, in_place(ctx, routed.progress.mastered))][-1] == first
    for item in (f"{other}-p1", f"{other}-p2") * 5:  # after park_for other activities it comes back
        routed.attempt(item, True)
    assert not is_parked(routed.ctx(), first)
    routed.attempt(f"{first}-p2", False)
    assert is_parked(routed.ctx(), first)  # and one more failure parks it again
    routed.config = routed.config.model_copy(update={"park_after": 0})
    assert not is_parked(routed.ctx(), first)
