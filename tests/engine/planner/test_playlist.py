"""Playlists and class rotations: time budget, alternatives, small groups, station capacities."""

from __future__ import annotations

import numpy as np
import pytest

from engine.catalog import Modality
from engine.planner.context import Overrides
from engine.planner.playlist import CHECK_KINDS, INDEPENDENT_PRACTICE, plan_playlist, plan_rotation

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
