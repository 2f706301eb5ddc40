"""A planner that does not stall in worlds we did not build: wrong edges are bypassed, jumps off
the graph can be ruled out, graphs without grades and catalogs without mastery checks work, and
a goal the catalog cannot reach is said."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from configs import PlannerConfig, load_config
from engine.catalog import Catalog, Item, Modality
from engine.graph import Standard, StandardsGraph
from engine.learner import LearnerCore, Observation
from engine.planner.context import Goal
from engine.planner.index import PlannerIndex
from engine.planner.targets import PROBE, confirmed, goal_objectives, in_place
from engine.simulation import BASELINES
from engine.simulation.worlds import make_world, run_world
from models.bkt import GraphBKT
from zpd.simulate import planner_factories


def practice_only(codes: str, edges: list[tuple[str, str]], grades: bool = False) -> PlannerIndex:
    """Two practice items per standard, no mastery checks (a content platform's catalog)."""
    std = [
        Standard(c, grade=str(i + 1) if grades else None, grade_num=i + 1 if grades else None)
        for i, c in enumerate(codes)
    ]
    items = [Item(f"{c}-{k}", f"{c} {k}", (c,), Modality.ONLINE_PRACTICE, 5) for c in codes for k in (1, 2)]
    return PlannerIndex.build(StandardsGraph(std, edges), Catalog(items))


def core(index: PlannerIndex, **config) -> LearnerCore:
    cfg = load_config().planner.model_copy(update={"exploration": 0.0, **config})
    return LearnerCore(index, cfg, GraphBKT.from_graph(index.graph, **load_config().model.bkt))


def answer(c: LearnerCore, learner, item_id: str, correct: bool, t: float) -> None:
    item = c.index.catalog[item_id]
    c.observe(learner, Observation(item_id, item.standards, float(correct), t))


def test_a_standard_is_mastered_from_practice_when_the_catalog_has_no_check_for_it() -> None:
    c = core(practice_only("AB", [("A", "B")]))
    learner = c.new(0, goal=Goal(("B",)))
    for t in range(6):
        answer(c, learner, "A-1" if t % 2 else "A-2", True, 60.0 * t)
    assert "A" in learner.progress.mastered  # require_check holds only where a check exists
    assert c.recommend(learner, 400.0).recommendations[0].standard == "B"


def test_a_check_over_what_builds_on_a_standard_does_not_hold_its_mastery_back() -> None:
    """The only check of A is a unit test over A, B and C (B and C need A first; S is a sibling
    of A with no link). Gating offers it once B and C are ready, i.e. after A is mastered: had
    mastery of A waited for a passed check, the learner would practise A forever, right every
    time (a simulated fourth grader did 297 answers, 260 right, on 3.NF.A.1 of the bundled
    catalog). So A is mastered from practice, and the test confirms C, which nothing in it builds
    on; a check over independent standards confirms each of them."""
    codes = "ABCS"
    index = PlannerIndex.build(
        StandardsGraph([Standard(c) for c in codes], [("A", "B"), ("B", "C")]),
        Catalog(
            [Item(f"{c}-{k}", f"{c} {k}", (c,), Modality.ONLINE_PRACTICE, 5) for c in codes for k in (1, 2)]
            + [
                Item("unit-test", "A to C", ("A", "B", "C"), Modality.ASSESSMENT, 20, mastery_check=True),
                Item("pair-test", "A and S", ("A", "S"), Modality.ASSESSMENT, 10, mastery_check=True),
            ]
        ),
    )
    assert index.checkable == {"A", "C", "S"}  # the pair test confirms A and S; the unit test C only
    index.with_item(Item("pair-test", "A and B", ("A", "B"), Modality.ASSESSMENT, 10, mastery_check=True))
    assert index.checkable == {"B", "C"}  # now nothing confirms A without testing B, which needs it
    c = core(index, check_wait=0)  # mastery would wait for a check for ever, had A one to wait for
    learner = c.new(0, goal=Goal(("C",)))
    for t in range(8):
        rec = c.recommend(learner, 60.0 * t).recommendations[0]
        if rec.standard != "A":
            break
        answer(c, learner, rec.item.id, True, 60.0 * t)
    assert "A" in learner.progress.mastered and rec.standard == "B"


def test_mastery_waits_for_a_check_the_learner_is_never_given_only_so_long() -> None:
    """A has a check, but this learner is never given it (an app asking for online practice only,
    say): after ``streak_required + check_wait`` right answers in a row mastery takes the practice
    alone; with ``check_wait`` 0 it waits for the check for ever."""
    codes = "AB"
    items = [Item(f"{c}-{k}", f"{c} {k}", (c,), Modality.ONLINE_PRACTICE, 5) for c in codes for k in (1, 2)]
    items.append(Item("A-check", "A check", ("A",), Modality.ASSESSMENT, 10, mastery_check=True))
    index = PlannerIndex.build(StandardsGraph([Standard(c) for c in codes], [("A", "B")]), Catalog(items))
    for wait, mastered_after in ((4, 6), (0, None)):
        c = core(index, check_wait=wait)
        learner = c.new(0, goal=Goal(("B",)))
        when = None
        for t in range(12):
            answer(c, learner, "A-1" if t % 2 else "A-2", True, 60.0 * t)
            if when is None and "A" in learner.progress.mastered:
                when = t + 1
        assert c.config.streak_required == 2 and when == mastered_after, (wait, when)


def test_a_wrong_edge_is_bypassed_when_the_plan_stalls() -> None:
    """Told A -> B -> C, but the learner cannot learn A (it needs something the graph does not
    list) while B needs nothing. After a stall on A the planner explores B, which the graph holds
    back; once B is mastered, C is in reach although A never was."""
    c = core(practice_only("ABC", [("A", "B"), ("B", "C")]))
    learner = c.new(0, goal=Goal(("C",)))
    t = 0.0
    for _ in range(c.config.stall_after):
        rec = c.recommend(learner, t).recommendations[0]
        assert rec.standard == "A"
        answer(c, learner, rec.item.id, False, t)
        t += 60.0
    ranked = c.recommend(learner, t, n=3).recommendations
    explored = [r for r in ranked if r.kind == "explore"]
    assert explored and explored[0].standard == "B"
    assert any("the graph may be wrong" in reason for reason in explored[0].reasons)
    for _ in range(4):  # B goes well
        answer(c, learner, "B-1" if t % 120 else "B-2", True, t)
        t += 60.0
    assert "B" in learner.progress.mastered and "A" not in learner.progress.mastered
    assert c.recommend(learner, t).recommendations[0].standard == "C"


def test_a_stalled_plan_probes_one_standard_for_several_attempts() -> None:
    """Learning shows in the answers after it happens: a stalled plan tries a standard the graph
    holds back for PROBE attempts in a row before it moves to the next one, not once each."""
    c = core(practice_only("ABCD", [("A", "B"), ("B", "C"), ("C", "D")]))
    learner = c.new(0, goal=Goal(("D",)))
    t = 0.0
    for _ in range(c.config.stall_after):
        rec = c.recommend(learner, t).recommendations[0]
        answer(c, learner, rec.item.id, False, t)
        t += 60.0
    probed = []
    for _ in range(2 * PROBE):
        rec = c.recommend(learner, t).recommendations[0]
        assert rec.kind == "explore"
        probed.append(rec.standard)
        answer(c, learner, rec.item.id, False, t)
        t += 60.0
    assert probed[:PROBE] == [probed[0]] * PROBE and probed[0] != "A"
    assert probed[PROBE:] == [probed[PROBE]] * PROBE and probed[PROBE] != probed[0]


def test_a_contradicted_graph_is_suspected_sooner() -> None:
    """Told A -> B -> C, truly B needs nothing. Once the learner masters B without A, the graph is
    contradicted: the next stall (on C) is taken after a third of stall_after failures."""
    c = core(practice_only("ABC", [("A", "B"), ("B", "C")]))
    learner = c.new(0, goal=Goal(("C",)))
    t = 0.0
    for _ in range(c.config.stall_after):  # A cannot be learned: a stall
        answer(c, learner, c.recommend(learner, t).recommendations[0].item.id, False, t)
        t += 60.0
    while "B" not in learner.progress.mastered:  # the probes find B learnable
        rec = c.recommend(learner, t).recommendations[0]
        answer(c, learner, rec.item.id, rec.standard == "B", t)
        t += 60.0
    failures = 0
    while (rec := c.recommend(learner, t).recommendations[0]).kind != "explore":
        assert rec.standard == "C"
        answer(c, learner, rec.item.id, False, t)
        failures, t = failures + 1, t + 60.0
    assert failures == max(PROBE, c.config.stall_after // 3)
    assert "the plan is stalled on C" in rec.reasons[0]


def test_no_jump_off_the_graph_when_locality_is_configured() -> None:
    """Two separate chains: with a strong locality weight, after an activity on one chain the
    next activity stays on it (the same standard or a graph neighbour) while it offers work, also
    after failures in a row (several learners: some fail three in a row, which weakens the pull of
    the standard they fail)."""
    index = practice_only("ABXY", [("A", "B"), ("X", "Y")])
    weights = {**PlannerConfig().weights, "locality": 10.0}
    c = core(index, weights=weights)
    struggled = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        learner = c.new(seed)
        t, last = 0.0, None
        for _ in range(20):
            rec = c.recommend(learner, t).recommendations[0]
            if last is not None:
                side = {"A", "B"} if last in "AB" else {"X", "Y"}
                offered = {r.standard for r in c.recommend(learner, t, n=4).recommendations}
                if offered & side:
                    assert rec.standard in side, (seed, last, rec.standard)
            answer(c, learner, rec.item.id, bool(rng.random() < 0.7), t)
            struggled += learner.progress.get(rec.standard).failures_in_a_row >= c.config.struggle_failures
            last, t = rec.standard, t + 60.0
    assert struggled  # the case that matters happened


def test_a_struggle_with_nothing_new_to_try_is_not_held_by_locality() -> None:
    """A learner fails B struggle_failures times in a row. With only the same practice to offer
    for B, locality no longer keeps them on it: they move to X, the other ready goal standard.
    When B has a teacher-led item they may be given (a new way to teach it), they stay on B."""

    def after_failures(index: PlannerIndex, available: set[str] | None = None) -> list[str]:
        c = core(index)
        learner = c.new(0, goal=Goal(("B", "X")))
        t = 0.0
        for item in ("A-1", "A-2", "A-1"):
            answer(c, learner, item, True, t)
            t += 60.0
        seen = []
        for _ in range(c.config.struggle_failures + 1):
            rec = c.recommend(learner, t, available=available).recommendations[0]
            seen.append(rec.standard)
            answer(c, learner, rec.item.id, rec.standard != "B", t)
            t += 60.0
        return seen

    index = practice_only("ABX", [("A", "B")])
    failures = load_config().planner.struggle_failures
    assert after_failures(index) == ["B"] * failures + ["X"]
    group = Item("B-group", "B with the teacher", ("B",), Modality.SMALL_GROUP, 20)
    with_group = PlannerIndex.build(index.graph, Catalog([*index.catalog, group]))
    assert after_failures(with_group) == ["B"] * (failures + 1)
    not_today = {item.id for item in with_group.catalog} - {"B-group"}  # no teacher for it now
    assert after_failures(with_group, not_today) == ["B"] * failures + ["X"]


def test_three_of_four_successes_confirm_a_standard_before_it_is_built_on() -> None:
    """A mastered standard is built on once three of its last four attempts succeeded, the last
    two in a row: a slip after mastery does not start the count again from nothing."""
    c = core(practice_only("AB", [("A", "B")]))
    assert (c.config.confirm_streak, c.config.streak_required) == (3, 2)
    learner = c.new(0, goal=Goal(("B",)))
    t = 0.0
    for item, ok in (("A-1", True), ("A-2", True), ("A-1", True), ("A-2", False)):
        answer(c, learner, item, ok, t)
        t += 60.0
    assert "A" in learner.progress.mastered  # a slip does not reopen it
    assert not confirmed(c.context(learner, t), "A")
    answer(c, learner, "A-1", True, t)  # + + + - +: one in a row
    t += 60.0
    assert not confirmed(c.context(learner, t), "A")
    assert c.recommend(learner, t).recommendations[0].standard == "A"
    answer(c, learner, "A-2", True, t)  # + + - + +: three of the last four, two in a row
    t += 60.0
    assert learner.progress.get("A").streak == 2
    assert confirmed(c.context(learner, t), "A")
    assert c.recommend(learner, t).recommendations[0].standard == "B"


def test_a_long_struggle_on_solid_prerequisites_rechecks_them_once() -> None:
    """A learner keeps failing B although A looks mastered (a lucky streak can master what the
    learner cannot yet build on): after recheck_after failures in a row, A is re-checked once;
    another failure on B after a passed re-check does not re-check it again."""
    c = core(practice_only("AB", [("A", "B")]))
    learner = c.new(0, goal=Goal(("B",)))
    t = 0.0
    for item in ("A-1", "A-2", "A-1"):
        answer(c, learner, item, True, t)
        t += 60.0
    failures = 0
    while True:
        rec = c.recommend(learner, t).recommendations[0]
        if rec.standard == "A":
            break
        assert rec.standard == "B"
        answer(c, learner, rec.item.id, False, t)
        failures, t = failures + 1, t + 60.0
    assert failures == c.config.recheck_after
    assert rec.kind == "recheck" and "struggles on B" in rec.reasons[0]
    answer(c, learner, rec.item.id, True, t)
    t += 60.0
    rec = c.recommend(learner, t).recommendations[0]
    assert rec.standard == "B"  # back to the work in progress
    answer(c, learner, rec.item.id, False, t)
    assert c.recommend(learner, t + 60.0).recommendations[0].standard == "B"


def test_a_graph_without_grades_plans_from_its_roots() -> None:
    index = practice_only("ABC", [("A", "B"), ("B", "C")])
    c = core(index)
    with_grade, without = c.new(0, "4"), c.new(0)
    assert c.model.mastery(with_grade.state) == c.model.mastery(without.state)  # no grade scale: flat
    assert c.belief(with_grade.meta) is None
    assert [r.standard for r in c.recommend(with_grade, 0.0, n=3).recommendations] == ["A"]


def test_one_failure_does_not_send_the_learner_to_another_goal_standard() -> None:
    """Two goal standards on the same root: after a failure on the one they started, the learner
    keeps at it (a failure is expected while learning) instead of hopping to the other one, which
    a world with local transfer would not teach from there."""
    weights = {**load_config().planner.weights, "locality": 0.0}  # not held there by locality
    c = core(practice_only("ABC", [("A", "B"), ("A", "C")]), weights=weights)
    learner = c.new(0, goal=Goal(("B", "C")))
    t = 0.0
    for _ in range(3):
        answer(c, learner, "A-1" if t % 120 else "A-2", True, t)
        t += 60.0
    assert "A" in learner.progress.mastered
    first = c.recommend(learner, t).recommendations[0]
    assert first.standard in ("B", "C")
    answer(c, learner, first.item.id, False, t)
    ctx = c.context(learner, t + 60.0)
    objectives = goal_objectives(ctx, in_place(ctx, learner.progress.mastered))
    assert objectives[0][0] == first.standard  # although its estimated cost is now the higher one
    assert objectives[0][1] > objectives[1][1]
    assert c.recommend(learner, t + 60.0).recommendations[0].standard == first.standard


def test_a_learner_with_everything_mastered_reviews_the_least_secure_standard() -> None:
    c = core(practice_only("AB", [("A", "B")]))
    learner = c.new(0, goal=Goal(("B",)))
    t = 0.0
    for item in ("A-1", "A-2", "A-1", "A-2", "B-1", "B-2", "B-1"):
        answer(c, learner, item, True, t)
        t += 60.0
    assert learner.progress.mastered == {"A", "B"}
    mastery = c.model.mastery(learner.state)
    least = min(("A", "B"), key=lambda u: mastery[u])
    rec = c.recommend(learner, t).recommendations[0]
    assert (rec.standard, rec.kind) == (least, "review")
    assert "least secure" in rec.reasons[0]


def test_a_goal_the_catalog_cannot_reach_is_flagged() -> None:
    index = practice_only("AB", [("A", "B")])
    catalog = Catalog([i for i in index.catalog if not i.id.startswith("B-")])
    c = core(PlannerIndex.build(index.graph, catalog))
    result = c.recommend(c.new(0, goal=Goal(("B",))), 0.0)
    assert any(f.standard == "B" and "cannot be reached" in f.reason for f in result.flags)


def test_only_available_items_are_recommended() -> None:
    c = core(practice_only("AB", [("A", "B")]))
    learner = c.new(0)
    assert c.recommend(learner, 0.0, available={"A-2"}).recommendations[0].item.id == "A-2"
    assert not c.recommend(learner, 0.0, available=set()).recommendations


def test_zpd_learns_in_a_wrong_chain_world() -> None:
    """A short run in the chain world whose told graph puts standards in the wrong order: zpd keeps
    making progress (it did not before stalls were detected: 0.07 of the standards)."""
    world = make_world("chain", "wrong", seed=0, learners=30)
    cfg = load_config()
    zpd = planner_factories(cfg, GraphBKT.from_graph(world.told, **cfg.model.bkt), grade=world.grade)["zpd"]
    rows, _ = run_world({"zpd": zpd, "topo": BASELINES["topo"]}, world, learners=30, seed=0, oracle=False)
    assert rows["zpd"]["learning_gain"] > 0.2


def test_a_standard_answered_right_a_thousand_times_after_mastery_still_plans() -> None:
    """Every success on a mastered standard counts as a review and the review interval grows
    with each; a learner who keeps answering on one (a game played over and over, a stuck
    plan) once overflowed the interval and every request for them failed."""
    c = core(practice_only("AB", [("A", "B")]))
    learner = c.new(0)
    t = 0.0
    while "A" not in learner.progress.mastered:
        answer(c, learner, "A-1", True, t)
        t += 60.0
    learner.progress.units["A"] = replace(learner.progress.get("A"), reviews=5000)
    answer(c, learner, "A-1", True, t)
    assert learner.progress.get("A").reviews == 5001
    assert c.recommend(learner, t + 365 * 86400.0).recommendations
