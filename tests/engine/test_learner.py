"""The learner core: records that survive storage, the starting belief, the entry diagnostic, and
replay equal to live for any sequence of answers, grades and diagnostics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from configs import PlannerConfig
from engine.catalog import Catalog, Item, Modality
from engine.graph import Standard, StandardsGraph
from engine.learner import GradeError, LearnerCore, LearnerMeta, Observation, grade_hint
from engine.placement import Placement, PlacementConfig
from engine.planner.context import Goal, Overrides
from engine.planner.index import PlannerIndex
from models.base import state_to_bytes
from models.bkt import GraphBKT


def world() -> PlannerIndex:
    """Grades 1-4: A -> B -> C -> E, D independent (grade 2), items on each and one on A and B."""
    std = [
        Standard("A", grade="1", grade_num=1, domain_code="X"),
        Standard("B", grade="2", grade_num=2, domain_code="X"),
        Standard("C", grade="3", grade_num=3, domain_code="X"),
        Standard("D", grade="2", grade_num=2, domain_code="Y"),
        Standard("E", grade="4", grade_num=4, domain_code="X"),
    ]
    items = []
    for s in std:
        items += [
            Item(f"{s.code}-p", s.code, (s.code,), Modality.ONLINE_PRACTICE, 10),
            Item(f"{s.code}-check", s.code, (s.code,), Modality.ASSESSMENT, 10, mastery_check=True),
        ]
    items.append(Item("AB", "A and B", ("A", "B"), Modality.ONLINE_PRACTICE, 10))
    # activities that send no answer: folded as exposures
    items.append(Item("B-read", "B worked example", ("B",), Modality.READING, 5))
    items.append(Item("C-group", "C with the teacher", ("C",), Modality.SMALL_GROUP, 20))
    graph = StandardsGraph(std, [("A", "B"), ("B", "C"), ("C", "E")])
    return PlannerIndex.build(graph, Catalog(items))


def core(**kwargs) -> LearnerCore:
    index = world()
    return LearnerCore(
        index,
        PlannerConfig(),
        GraphBKT.from_graph(index.graph),
        placement=PlacementConfig(max_questions=3, min_questions=1, particles=500),
        **kwargs,
    )


def test_grade_hints() -> None:
    assert [grade_hint(g) for g in ("K", "4", "HS", "12", "PK", None)] == [0.0, 4.0, 9.0, 9.0, -1.0, None]
    with pytest.raises(GradeError, match="'Z9' is not a grade"):
        grade_hint("Z9")


def test_meta_round_trips_through_json() -> None:
    c = core()
    learner = c.new(7, "3", interests=("music",), goal=Goal(("E",), 1.9e9))
    learner.meta.overrides = Overrides(("C",), ("A-p",), frozenset({"B-p"}), True)
    c.observe(learner, Observation("C-check", ("C",), 0.0, 100.0))
    c.start_placement(learner)
    stored = json.loads(json.dumps(learner.meta.to_json()))
    assert LearnerMeta.from_json(stored).to_json() == learner.meta.to_json()


def test_a_standard_counts_each_answer_on_it_once() -> None:
    """An answer on an item that practises several parts of a standard is evidence on each part,
    and one answer on the standard: three answers on a four-part standard are 3, not 12."""
    std = [Standard("P"), *(Standard(f"P.{x}", parent="P") for x in "abcd"), Standard("Q")]
    items = [
        Item("whole", "P", ("P",), Modality.ONLINE_PRACTICE, 10),
        Item("a", "P.a", ("P.a",), Modality.ONLINE_PRACTICE, 10),
        Item("a-and-q", "P.a and Q", ("P.a", "Q"), Modality.ONLINE_PRACTICE, 10),
    ]
    index = PlannerIndex.build(StandardsGraph(std, []), Catalog(items))
    c = LearnerCore(index, PlannerConfig(), GraphBKT.from_graph(index.graph))
    learner = c.new(1)
    answers = ["whole", "whole", "whole", "a", "a", "a-and-q"]
    for t, item in enumerate(answers):
        c.observe(learner, Observation(item, index.catalog[item].standards, 1.0, float(t)))
    evidence = {code: m.evidence for code, m in c.profile(learner, 10.0).mastery.items()}
    assert evidence == {"P": 6, "P.a": 6, "P.b": 3, "P.c": 3, "P.d": 3, "Q": 1}
    stored = json.loads(json.dumps(learner.meta.to_json()))  # kept with the record
    assert LearnerMeta.from_json(stored).progress.shared == {("P.a", "P.b", "P.c", "P.d"): 3, ("P.a", "Q"): 1}
    assert c.rebuild(LearnerMeta.from_json(stored), []).progress.shared == {}  # derived: a rebuild counts again
    # any set of units: each answer once (P.a and Q share one answer, P.b and Q none)
    sets = {"parts": ("P.a", "P.b", "P.c", "P.d"), "aQ": ("P.a", "Q"), "bQ": ("P.b", "Q"), "none": ()}
    assert learner.progress.answers_on_each(sets) == {"parts": 6, "aQ": 6, "bQ": 4, "none": 0}


def test_version_1_meta_is_read() -> None:
    old = {
        "progress": {},
        "interests": ["art"],
        "grade": "3",
        "goal": {"standards": ["E"], "date": None},
        "overrides": {"pin_items": ["A-p"], "lock_goal": True},
        "placement": {"seed": 5, "grade_hint": 3.5, "answers": [["B", True], ["C", False]]},
        "placement_result": {
            "grade_band": "2",
            "confidence": 0.9,
            "questions": 2,
            "mastered": ["A", "B"],
            "mastery": {"A": 0.99},
            "after_event": "p2",
        },
    }
    meta = LearnerMeta.from_json(old)
    assert meta.grade == "3" and meta.interests == ("art",) and meta.goal == Goal(("E",), None)
    assert meta.overrides.pinned_items == ("A-p",) and meta.overrides.goal_locked
    assert meta.answers == [("B", True, True), ("C", False, True)]
    assert meta.placement is not None and meta.placement.grade_band == "2"


def test_a_grade_sets_the_starting_belief_and_first_attempts_move_it() -> None:
    c = core()
    learner = c.new(1, "4")
    m = c.model.mastery(learner.state)
    assert m["A"] > m["B"] > m["C"] > m["E"]
    assert len(set(c.model.mastery(c.new(1).state).values())) == 1  # no grade: the flat prior
    before = m["C"]
    c.observe(learner, Observation("B-check", ("B",), 0.0, 10.0))
    assert c.model.mastery(learner.state)["C"] < before  # C builds on B
    assert learner.meta.answers == [("B", False, False)]
    c.observe(learner, Observation("B-p", ("B",), 1.0, 20.0))
    assert len(learner.meta.answers) == 1  # only the first attempt speaks about the starting state
    c.observe(learner, Observation("AB", ("A", "B"), 1.0, 30.0))
    assert len(learner.meta.answers) == 1  # an item on several standards is not a clean answer


def test_the_diagnostic_asks_until_finished_then_marks_what_it_saw_answered_right() -> None:
    c = core()
    learner = c.new(1, "3")
    status = c.start_placement(learner)
    assert status.active and not status.finished and status.question is not None and status.item is not None
    asked = []
    for _ in range(10):
        question = c.placement_question(learner)
        if question is None:
            break
        unit, item = question
        asked.append(unit)
        c.observe(learner, Observation(item.id, item.standards, 1.0, 60.0 * len(asked), "placement", unit))
    status = c.placement_status(learner)
    assert status.finished and 1 <= status.asked <= 3 and status.mastered is not None
    assert learner.meta.placement is not None and learner.meta.placement.questions == status.asked
    assert set(learner.progress.mastered) <= set(asked)
    assert learner.progress.activities == 0  # questions are not practice
    again = c.start_placement(learner, restart=True)
    assert again.active and not again.finished and again.asked == 0


def test_practice_during_a_diagnostic_is_evidence_but_none_of_its_questions() -> None:
    """A learner practises between the diagnostic's questions: the first attempts inform the
    belief, but the diagnostic still counts (and caps) only the questions it asked."""
    c = core()
    learner = c.new(1, "3")
    c.start_placement(learner, now=0.0)
    unit, item = c.placement_question(learner)
    c.observe(learner, Observation(item.id, item.standards, 1.0, 10.0, "placement", unit))
    practised = [u for u in ("A", "B", "C", "D", "E") if u != unit][:2]
    for k, u in enumerate(practised):
        c.observe(learner, Observation(f"{u}-p", (u,), 1.0, 20.0 + k))
    assert [u for u, _, _ in learner.meta.answers] == [unit, *practised]  # evidence, all three
    status = c.placement_status(learner)
    assert status.asked == 1 and not status.finished, status


# ---------------------------------------------------------------------------- replay == live
ITEMS = ["A-p", "A-check", "B-p", "B-check", "C-p", "C-check", "D-p", "D-check", "E-p", "E-check", "AB"]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("answer"), st.sampled_from(ITEMS), st.booleans()),
        st.tuples(st.just("exposure"), st.sampled_from(["B-read", "C-group", "A-p"]), st.just(False)),
        st.tuples(st.just("grade"), st.sampled_from(["1", "3", "4", None]), st.just(False)),
        st.tuples(st.just("placement"), st.booleans(), st.booleans()),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(steps=steps, start_grade=st.sampled_from(["2", "4", None]))
def test_replay_of_the_log_equals_the_live_learner(steps, start_grade) -> None:
    """Whatever happens to a learner (answers, a grade set late, diagnostics started and restarted
    and answered), folding its event log from its user-set meta gives exactly the live learner."""
    c = core()
    learner = c.new(3, start_grade)
    log: list[Observation] = []
    t = 0.0
    for kind, a, b in steps:
        t += 60.0
        if kind == "answer":
            question = c.placement_question(learner)
            if question is not None:  # a diagnostic is running: this answer is its question's
                unit, item = question
                obs = Observation(item.id, item.standards, float(b), t, "placement", unit)
            else:
                item = c.index.catalog[a]
                obs = Observation(item.id, item.standards, float(b), t)
            c.observe(learner, obs)
            log.append(obs)
        elif kind == "exposure":
            obs = Observation(a, c.index.catalog[a].standards, None, t)
            c.observe(learner, obs)
            log.append(obs)
        elif kind == "grade":
            if not c.set_grade(learner, a):  # with evidence: rebuilt from the log, as the API does
                learner = c.rebuild(learner.meta, log)
        else:
            c.start_placement(learner, restart=a)
    again = c.rebuild(learner.meta, log)
    assert again.meta.to_json() == learner.meta.to_json()
    assert learner.state.keys() == again.state.keys()
    for key in learner.state:
        np.testing.assert_allclose(again.state[key], learner.state[key], rtol=1e-9, atol=1e-12)
    ranked = c.recommend(learner, t, n=3).recommendations
    assert [r.item.id for r in ranked] == [r.item.id for r in c.recommend(again, t, n=3).recommendations]


def _in_time_order(log: list[Observation]) -> list[Observation]:
    return sorted(log, key=lambda o: o.time)  # stable: answers of the same time in the log's order


@settings(max_examples=80, deadline=None)
@given(
    steps=steps,
    gaps=st.lists(st.sampled_from([0.0, 0.0, 60.0]), min_size=25, max_size=25),
    offset=st.sampled_from([-30.0, 0.0, 90.0]),
)
def test_replay_equals_live_with_diagnostics_started_on_the_servers_clock(steps, gaps, offset) -> None:
    """As the server runs it: answers timed by a device whose clock is ahead of the server's or
    behind it (many of the same time), diagnostics started at the server's time, questions
    answered at it. An answer from before a diagnostic's start (or before the latest answer) is
    refolded in time order, as the server does; the replay of the log gives the live learner."""
    c = core()
    learner = c.new(3, "3")
    log: list[Observation] = []
    t = 0.0
    for k, ((kind, a, b), gap) in enumerate(zip(steps, gaps, strict=False)):
        t += gap
        now = t + offset + k / 1000  # the server's clock: it receives in order
        if kind == "answer":
            question = c.placement_question(learner)
            if question is not None:  # a diagnostic is running: its question's answer, timed as the server does
                unit, item = question
                at = now if learner.meta.last_time is None else max(now, learner.meta.last_time)
                obs = Observation(item.id, item.standards, float(b), at, "placement", unit)
            else:
                item = c.index.catalog[a]
                obs = Observation(item.id, item.standards, float(b), t)
            log.append(obs)
            if learner.meta.folds_after([obs.time]):
                c.observe(learner, obs)
            else:  # late: refolded in time order
                learner = c.rebuild(learner.meta, _in_time_order(log))
        elif kind == "exposure":
            obs = Observation(a, c.index.catalog[a].standards, None, t)
            log.append(obs)
            if learner.meta.folds_after([obs.time]):
                c.observe(learner, obs)
            else:
                learner = c.rebuild(learner.meta, _in_time_order(log))
        elif kind == "grade":
            if not c.set_grade(learner, a):
                learner = c.rebuild(learner.meta, _in_time_order(log))
        else:
            c.start_placement(learner, restart=a, now=now)
    again = c.rebuild(learner.meta, _in_time_order(log))
    assert again.meta.to_json() == learner.meta.to_json()
    for key in learner.state:
        np.testing.assert_allclose(again.state[key], learner.state[key], rtol=1e-9, atol=1e-12)
    if learner.meta.diagnostics:  # the first began before its questions and after what came before it
        first = learner.meta.diagnostics[0]
        assert first.asked_before is not None and first.start_time is not None
        before = [o for o in log if o.time < first.start_time]
        assert not any(o.placement for o in before)


def test_a_diagnostic_begins_after_an_answer_timed_ahead_of_the_servers_clock() -> None:
    """A device's clock 30 s ahead of the server's: the diagnostic starts just after the latest
    answer's time, so everything folded before it stays before it in a replay; an answer of that
    same time sent after the start is late (refolded, before it), a later one comes after it."""
    c = core()
    learner = c.new(3, "3")
    before = Observation("B-p", ("B",), 1.0, 100.0)
    c.observe(learner, before)
    c.start_placement(learner, now=71.0)
    d = learner.meta.diagnostics[0]
    assert d.start_time is not None and 100.0 < d.start_time < 100.0001
    assert d.asked_before == 1 and learner.meta.last_time == d.start_time
    assert not learner.meta.folds_after([100.0])  # the same second as the answer before it: late
    after = Observation("D-p", ("D",), 0.0, 101.0)
    assert learner.meta.folds_after([after.time])
    c.observe(learner, after)
    assert [u for u, _, _ in learner.meta.answers] == ["B", "D"]
    again = c.rebuild(learner.meta, [before, after])
    assert again.meta.to_json() == learner.meta.to_json()
    assert again.meta.diagnostics[0].asked_before == 1
    # work done before the start, synced after it: before the diagnostic in the replay
    synced = Observation("C-p", ("C",), 1.0, 99.0)
    again = c.rebuild(learner.meta, [before, synced, after])
    assert again.meta.diagnostics[0].asked_before == 2


@pytest.mark.parametrize("grade", [None, "K", "3", "8"])
@pytest.mark.parametrize("diagnostic", [False, True])
def test_a_learner_without_evidence_starts_as_the_rebuild_of_an_empty_log(grade, diagnostic) -> None:
    """What a record without events is read back as (it keeps no state): the same learner as a
    fold of the empty log."""
    c = core()
    live = c.new(7, grade)
    if diagnostic:
        c.start_placement(live, now=1000.0)
    meta = LearnerMeta.from_json(live.meta.to_json())
    started, rebuilt = c.start(meta), c.rebuild(LearnerMeta.from_json(live.meta.to_json()), [])
    assert state_to_bytes(started.state) == state_to_bytes(rebuilt.state) == state_to_bytes(live.state)
    assert started.meta.to_json() == rebuilt.meta.to_json() == live.meta.to_json()
    assert c.placement_status(started) == c.placement_status(live)


def test_an_exposure_is_the_latest_activity_and_no_evidence() -> None:
    """A page read or a lesson attended sends no answer: the model state, the answers and the
    progress on the standard stay as they were; the activity is the learner's latest, so the
    planner does not offer it again at once. Placement never asks with such an item."""
    c = core()
    learner = c.new(1, "2")
    c.observe(learner, Observation("A-p", ("A",), 1.0, 10.0))
    state = {k: v.copy() for k, v in learner.state.items()}
    before = learner.meta.to_json()
    assert c.observe(learner, Observation("B-read", ("B",), None, 20.0)) == []
    after = learner.meta.to_json()
    assert after["progress"]["recent_items"] == ["A-p", "B-read"] and learner.meta.last_time == 20.0
    assert {k: v for k, v in after.items() if k not in ("progress", "last")} == {
        k: v for k, v in before.items() if k not in ("progress", "last")
    }
    assert {k: v for k, v in after["progress"].items() if k != "recent_items"} == {
        k: v for k, v in before["progress"].items() if k != "recent_items"
    }
    assert all(np.array_equal(state[k], learner.state[k]) for k in state)

    third = c.new(2, "3")  # B is theirs to learn: the page read is not given again before an answer on B

    def offered() -> dict[str, float]:
        ranked = c.recommend(third, 30.0, n=2, k_alternatives=3, available=["B-read", "B-p", "D-p"]).recommendations
        return {a.item.id: a.components["novelty"] for r in ranked for a in (r, *r.alternatives)}

    assert offered()["B-read"] == 1.0
    c.observe(third, Observation("B-read", ("B",), None, 20.0))
    assert "B-read" not in offered() and "B-p" in offered()
    placement = Placement(c.index, PlacementConfig())
    assert [placement.item_for(u).id for u in "BC"] == ["B-check", "C-check"]
    only_reads = PlannerIndex.build(
        c.index.graph, Catalog([Item("B-read", "B worked example", ("B",), Modality.READING, 5)])
    )
    assert Placement(only_reads, PlacementConfig()).item_for("B") is None  # nothing asks about B
