"""Playlists and class rotations: time budget, alternatives, small groups, station capacities."""

from __future__ import annotations

import numpy as np
import pytest

from engine.catalog import Modality
from engine.learner import Observation
from engine.planner.context import Overrides
from engine.planner.playlist import CHECK_KINDS, ENTRY_DIAGNOSTIC, INDEPENDENT_PRACTICE, plan_playlist, plan_rotation

from .conftest import Learner


def test_playlist_respects_the_time_budget(learner) -> None:
    for minutes in (15, 30, 45, 60):
        playlist = plan_playlist(learner.ctx(), session_minutes=minutes)
        total = sum(a.minutes for a in playlist.activities)
        assert total <= minutes and playlist.free_minutes == pytest.approx(minutes - total)
        clock = 0.0
        for activity in playlist.activities:  # back to back, no overlap
            assert activity.start_minute == pytest.approx(clock)
            clock += activity.minutes


def test_playlist_limits_work_per_standard_and_offers_choices(learner) -> None:
    playlist = plan_playlist(learner.ctx(), session_minutes=60, k_alternatives=2)
    per_standard: dict[str, int] = {}
    for activity in playlist.activities:
        per_standard[activity.standard] = per_standard.get(activity.standard, 0) + 1
        assert activity.reasons
        for alt in activity.alternatives:
            assert alt.standard == activity.standard and alt.item.duration_minutes <= 60 - activity.start_minute
    assert max(per_standard.values()) <= learner.config.max_per_standard
    assert set(per_standard) <= {"A", "D"}  # only ready standards


def test_playlist_respects_modalities_and_pins(learner) -> None:
    ctx = learner.ctx(modalities=frozenset({Modality.READING, Modality.ASSESSMENT}))
    assert {a.modality for a in plan_playlist(ctx, 30).activities} <= {"reading", "assessment"}
    pinned = plan_playlist(learner.ctx(overrides=Overrides(pinned_items=("C-group",))), 60)
    assert pinned.activities[0].item.id == "C-group"


def test_session_length_must_be_positive(learner) -> None:
    with pytest.raises(ValueError, match="session_minutes must be > 0"):
        plan_playlist(learner.ctx(), 0)


def make_class(index, config, n: int) -> dict:
    learners = {f"s{i}": Learner(index, config) for i in range(n)}
    return learners


def test_rotation_forms_small_groups_within_capacity(index, config) -> None:
    learners = make_class(index, config, 9)
    for lid in ("s0", "s1", "s2"):  # three learners struggle on B
        learners[lid].progress.units.clear()
        from engine.planner.progress import mark_mastered

        mark_mastered(learners[lid].progress, ["A"], 0.0)
        learners[lid].state = learners[lid].model.state_with_priors({"A": 0.5})
        learners[lid].attempt("B-p1", False)
        learners[lid].attempt("B-p2", False)
    contexts = {lid: learner.ctx(rng=np.random.default_rng(i)) for i, (lid, learner) in enumerate(learners.items())}
    rotation = plan_rotation(
        contexts,
        session_minutes=60,
        block_minutes=20,
        group_capacity=4,
        capacities={"online_practice": 5, "reading": 3},
    )
    assert rotation.groups, "expected small groups"
    first = rotation.groups[0]
    # the struggling learners come first, sent to the missing prerequisite; the six others' next
    # standard is also A: nine learners for groups of four make three even groups, one per block
    assert first.learners == ("s0", "s1", "s2") and first.standard == "A"
    assert "struggling" in first.reason
    assert [len(g.learners) for g in rotation.groups] == [3, 3, 3]
    assert {g.standard for g in rotation.groups} == {"A"}
    for group in rotation.groups:
        assert len(group.learners) <= 4
        for lid in group.learners:  # everyone in a group is at the teacher's table in that block
            slot = [a for a in rotation.playlists[lid].activities if a.group == group.id]
            assert len(slot) == 1 and slot[0].start_minute == group.start_minute
    blocks = {g.block for g in rotation.groups}
    assert len(blocks) == len(rotation.groups)  # one teacher: one group per block


def test_rotation_respects_station_capacities(index, config) -> None:
    learners = make_class(index, config, 12)
    contexts = {lid: learner.ctx(rng=np.random.default_rng(i)) for i, (lid, learner) in enumerate(learners.items())}
    caps = {"online_practice": 4, "reading": 3, "assessment": 2}
    rotation = plan_rotation(contexts, 60, 20, caps, group_capacity=4)
    for block, load in enumerate(rotation.station_load):
        for modality, cap in caps.items():
            assert load.get(modality, 0) <= cap
        seated = {}
        for playlist in rotation.playlists.values():
            mods = {
                a.modality
                for a in playlist.activities
                if block * 20 <= a.start_minute < (block + 1) * 20 and a.modality != INDEPENDENT_PRACTICE
            }
            assert len(mods) <= 1  # one station per block (the minutes left are independent practice)
            for m in mods:
                seated[m] = seated.get(m, 0) + 1
        for modality, cap in caps.items():
            assert seated.get(modality, 0) <= cap, (block, modality)
    for playlist in rotation.playlists.values():
        assert sum(a.minutes for a in playlist.activities) <= 60


def test_rotation_rejects_bad_blocks(index, config) -> None:
    with pytest.raises(ValueError, match="block_minutes"):
        plan_rotation({}, 30, 45)
    for tiny in (4.9, 1e-100, 5e-324):  # a block no activity fits in (and a session of 10**100 blocks)
        with pytest.raises(ValueError, match="need 5 <= block_minutes"):
            plan_rotation({}, 60, tiny)


def test_the_rest_of_a_session_is_planned_in_the_session_s_time(index, config) -> None:
    """After the first block, the rest is the plan of the two blocks left, one block later."""
    learners = make_class(index, config, 9)
    for lid in ("s0", "s1", "s2"):  # struggling on B: a small group
        learners[lid].attempt("B-p1", False)
        learners[lid].attempt("B-p2", False)

    def contexts():
        return {lid: learner.ctx(rng=np.random.default_rng(i)) for i, (lid, learner) in enumerate(learners.items())}

    caps = {"online_practice": 5, "reading": 3}
    rest = plan_rotation(contexts(), 60, 20, caps, group_capacity=4, blocks_done=1)
    alone = plan_rotation(contexts(), 40, 20, caps, group_capacity=4)
    assert rest.blocks_done == 1 and rest.session_minutes == 60 and rest.block_minutes == 20
    assert rest.station_load == [{}, *alone.station_load]
    assert [(g.id, g.block, g.start_minute, g.learners) for g in rest.groups] == [
        (g.id, g.block + 1, g.start_minute + 20, g.learners) for g in alone.groups
    ]
    assert rest.groups, "expected a small group"
    for lid, playlist in rest.playlists.items():
        expected = alone.playlists[lid].activities
        assert [(a.start_minute, a.item.id, a.kind) for a in playlist.activities] == [
            (a.start_minute + 20, a.item.id, a.kind) for a in expected
        ]
        assert all(a.start_minute >= 20 for a in playlist.activities)
    # a whole-session plan starts at 0 and says no block is over
    assert plan_rotation(contexts(), 60, 20, caps, group_capacity=4).blocks_done == 0


def test_a_group_just_taught_practises_before_the_teacher_teaches_it_again(index, config) -> None:
    """Planned again after the block of their small group, learners who are not struggling are
    not gathered on the same standard again at once; a learner who struggles on it is."""
    learners = make_class(index, config, 4)

    def contexts():
        return {lid: learner.ctx(rng=np.random.default_rng(i)) for i, (lid, learner) in enumerate(learners.items())}

    first = plan_rotation(contexts(), 60, 20, group_capacity=6)
    group = first.groups[0]
    assert group.block == 0 and set(group.learners) == set(learners), first.groups
    for lid in group.learners:  # the lesson held: it sends no answer
        learner = learners[lid]
        learner.core.observe(learner.learner, Observation(group.item.id, group.item.standards, None, 1.0))
    rest = plan_rotation(contexts(), 60, 20, group_capacity=6, blocks_done=1)
    assert all(g.standard != group.standard for g in rest.groups), rest.groups
    for lid in rest.playlists:  # they practise it at a station instead
        assert any(a.standard == group.standard for a in rest.playlists[lid].activities)
    # s0 fails it again and again after the lesson: struggling, the teacher takes them again
    for item in (f"{group.standard}-p1", f"{group.standard}-p2", f"{group.standard}-p1"):
        learners["s0"].attempt(item, False)
    again = plan_rotation(contexts(), 60, 20, group_capacity=6, blocks_done=1)
    assert any(g.standard == group.standard and "s0" in g.learners for g in again.groups), again.groups


def test_the_rest_of_a_session_must_have_a_block_left(index, config) -> None:
    contexts = {"s0": Learner(index, config).ctx()}
    for done in (3, 4, -1):
        with pytest.raises(ValueError, match=r"blocks_done: the session has 3 block\(s\), so 0 to 2"):
            plan_rotation(contexts, 60, 20, blocks_done=done)
    assert plan_rotation(contexts, 65, 20, blocks_done=2).playlists["s0"].activities[0].start_minute == 40


def test_rotation_leaves_nobody_idle_and_keeps_checks_modest(index, config) -> None:
    learners = make_class(index, config, 12)
    contexts = {lid: learner.ctx(rng=np.random.default_rng(i)) for i, (lid, learner) in enumerate(learners.items())}
    rotation = plan_rotation(contexts, 60, 20, {"online_practice": 2, "reading": 1, "assessment": 1}, group_capacity=4)
    for lid, playlist in rotation.playlists.items():
        assert playlist.free_minutes == 0, lid
        clock = 0.0
        for activity in playlist.activities:  # back to back, each inside its block
            assert activity.start_minute == pytest.approx(clock)
            block_end = (activity.start_minute // 20 + 1) * 20
            assert activity.start_minute + activity.minutes <= block_end + 1e-9
            clock += activity.minutes
        checks = sum(a.kind in CHECK_KINDS for a in playlist.activities)
        assert checks <= max(1, config.max_check_share * len(playlist.activities))
    assert any(a.modality == INDEPENDENT_PRACTICE for p in rotation.playlists.values() for a in p.activities)


def test_no_group_of_one_when_a_peer_shares_the_need(index, config) -> None:
    learners = make_class(index, config, 2)
    from engine.planner.progress import mark_mastered

    learners["s0"].progress.units.clear()
    mark_mastered(learners["s0"].progress, ["A"], 0.0)
    learners["s0"].state = learners["s0"].model.state_with_priors({"A": 0.5})
    learners["s0"].attempt("B-p1", False)
    learners["s0"].attempt("B-p2", False)
    contexts = {lid: learner.ctx(rng=np.random.default_rng(i)) for i, (lid, learner) in enumerate(learners.items())}
    rotation = plan_rotation(contexts, 60, 20, group_capacity=4)
    assert [sorted(g.learners) for g in rotation.groups] == [["s0", "s1"]]


def test_playlists_keep_checks_within_their_share(learner) -> None:
    from dataclasses import replace

    strict = replace(learner.ctx(), config=learner.config.model_copy(update={"max_check_share": 0.0}))
    playlist = plan_playlist(strict, 120)
    assert sum(a.kind in CHECK_KINDS for a in playlist.activities) <= 1


def test_all_candidates_at_once_are_the_ones_built_one_by_one(learner) -> None:
    """``Ranked.all`` (what playlists and rotations read) builds the same candidates, reasons
    included, as reading the ranking one at a time; those already built are kept."""
    from engine.planner.context import Goal
    from engine.planner.scoring import rank_candidates

    learner.attempt("A-p1", True)
    learner.attempt("A-p2", False)
    goal = Goal(("C", "D"))
    one_by_one = list(rank_candidates(learner.ctx(goal=goal))[0])
    ranked = rank_candidates(learner.ctx(goal=goal))[0]
    first = ranked[0]
    at_once = ranked.all()
    assert len(one_by_one) > 3 and at_once[0] is first
    assert max(len(c.why) for c in at_once) >= 2
    assert at_once == one_by_one
    assert [c.reasons for c in at_once] == [c.reasons for c in one_by_one]
    assert [type(x) for c in at_once for x in (c.p_success, c.score, *c.values)] == [float] * (
        len(at_once) * (2 + len(at_once[0].values))
    )


# ---------------------------------------------------------------------------- entry diagnostic
def _diagnosing(index, config, minutes: float = 20) -> Learner:
    return Learner(index, config.model_copy(update={"entry_diagnostic_minutes": minutes}))


def _answer_diagnostic(learner: Learner, questions: int | None = None) -> None:
    """Answer the learner's entry diagnostic (right every time): ``questions`` of it, or to its end."""
    from engine.learner import Observation

    core = learner.core
    core.start_placement(learner.learner)
    asked = 0
    while (question := core.placement_question(learner.learner)) is not None and asked != questions:
        unit, item = question
        core.observe(learner.learner, Observation(item.id, item.standards, 1.0, float(asked), "placement", unit))
        asked += 1


def test_an_unplaced_learner_starts_with_the_entry_diagnostic(index, config) -> None:
    learner = _diagnosing(index, config)
    core = learner.core
    playlist = plan_playlist(learner.ctx(), 60)
    first, *rest = playlist.activities
    assert (first.kind, first.start_minute, first.minutes, first.modality) == (
        ENTRY_DIAGNOSTIC,
        0.0,
        20.0,
        Modality.ASSESSMENT.value,
    )
    assert first.p_success is None and any("plan again" in r for r in first.reasons)
    # what it names is what the diagnostic asks first, once started
    started = Learner(index, learner.config)
    started.core.start_placement(started.learner)
    assert (first.standard, first.item) == started.core.placement_question(started.learner)
    assert rest and rest[0].start_minute == 20.0 and first.item.id not in {a.item.id for a in rest}
    assert sum(a.minutes for a in playlist.activities) <= 60
    # a session shorter than the diagnostic is the diagnostic (it resumes where it stopped)
    assert [(a.kind, a.minutes) for a in plan_playlist(learner.ctx(), 15).activities] == [(ENTRY_DIAGNOSTIC, 15.0)]
    # not planned: when told not to, with no assessment station, when given no time
    assert core.context(learner.learner, 0.0, entry_diagnostic=False).entry_diagnostic is None
    no_station = learner.ctx(modalities=frozenset({Modality.ONLINE_PRACTICE, Modality.READING}))
    assert all(a.kind != ENTRY_DIAGNOSTIC for a in plan_playlist(no_station, 60).activities)
    assert all(a.kind != ENTRY_DIAGNOSTIC for a in plan_playlist(_diagnosing(index, config, 0).ctx(), 60).activities)


def test_the_entry_diagnostic_goes_on_until_it_is_finished(index, config) -> None:
    answered = _diagnosing(index, config)
    answered.attempt("A-p1", True)  # an answer places a learner: no diagnostic
    assert answered.ctx().entry_diagnostic is None
    assert all(a.kind != ENTRY_DIAGNOSTIC for a in plan_playlist(answered.ctx(), 60).activities)
    graded = _diagnosing(index, config)
    graded.learner.meta.grade = "2"  # so does a grade (its belief), until a diagnostic is started
    assert graded.ctx().entry_diagnostic is None
    graded.core.start_placement(graded.learner)
    assert plan_playlist(graded.ctx(), 60).activities[0].kind == ENTRY_DIAGNOSTIC

    started = _diagnosing(index, config)
    _answer_diagnostic(started, questions=1)
    question = started.core.placement_question(started.learner)
    assert question is not None  # one answer does not finish it
    first = plan_playlist(started.ctx(), 60).activities[0]
    assert first.kind == ENTRY_DIAGNOSTIC and (first.standard, first.item) == question  # the current question

    _answer_diagnostic(started)
    assert started.core.placement_status(started.learner).finished
    assert started.ctx().entry_diagnostic is None
    assert all(a.kind != ENTRY_DIAGNOSTIC for a in plan_playlist(started.ctx(), 60).activities)


def test_a_rotation_seats_entry_diagnostics_at_the_assessment_station(index, config) -> None:
    fresh = {f"new{i}": _diagnosing(index, config, 30) for i in range(3)}
    placed = {f"old{i}": _diagnosing(index, config, 30) for i in range(2)}
    for learner in placed.values():  # two who struggle on A: a small group of their own
        learner.attempt("A-p1", False)
        learner.attempt("A-p2", False)
    everyone = {**fresh, **placed}
    contexts = {lid: one.ctx(rng=np.random.default_rng(i)) for i, (lid, one) in enumerate(everyone.items())}
    rotation = plan_rotation(contexts, 80, 20, {"assessment": 2}, group_capacity=6)

    starts = {}
    for lid in fresh:
        activities = rotation.playlists[lid].activities
        diagnostics = [a for a in activities if a.kind == ENTRY_DIAGNOSTIC]
        assert len(diagnostics) == 1 and diagnostics[0].minutes == 30.0, lid
        d = diagnostics[0]
        starts[lid] = d.start_minute
        # 30 minutes take two whole blocks: nothing else in them but the 10 minutes left, practised
        during = [a for a in activities if d.start_minute <= a.start_minute < d.start_minute + 40]
        assert [a.kind for a in during] == [ENTRY_DIAGNOSTIC, "practice"]
        assert during[1].modality == INDEPENDENT_PRACTICE and during[1].start_minute == d.start_minute + 30
        assert rotation.playlists[lid].free_minutes == 0
    assert sorted(starts.values()) == [0.0, 0.0, 40.0]  # two seats: the third waits for one
    for block, load in enumerate(rotation.station_load):
        assert load.get("assessment", 0) <= 2, block
    assert rotation.groups and all(set(g.learners).isdisjoint(fresh) for g in rotation.groups)
    for lid in placed:
        assert all(a.kind != ENTRY_DIAGNOSTIC for a in rotation.playlists[lid].activities)

    # no seat at the station: no diagnostic, and a full plan all the same
    assert rotation.diagnostic_unseated == ()
    closed = plan_rotation(contexts, 80, 20, {"assessment": 0})
    assert closed.diagnostic_unseated == tuple(sorted(fresh))
    for lid in fresh:
        assert all(a.kind != ENTRY_DIAGNOSTIC for a in closed.playlists[lid].activities)
        assert closed.playlists[lid].free_minutes == 0
