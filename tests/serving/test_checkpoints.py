"""Checkpoints: an answer that arrives late refolds the learner from the newest checkpoint before
it, not from the whole log, and the state is exactly what a rebuild of the whole log gives."""

from __future__ import annotations

import json
import random
import uuid

import pytest

from engine.learner import LearnerCore
from models.base import state_to_bytes
from serving import checkpoints

T0 = 1_790_000_000.0  # 2026-09-22: before the server's clock


@pytest.fixture()
def folds(monkeypatch) -> list[tuple[str, int]]:
    """Checkpoints every 5 answers, and a record of every fold from scratch or from a checkpoint:
    ``("rebuild" | "resume", observations folded)``."""
    monkeypatch.setattr(checkpoints, "EVERY", 5)
    seen: list[tuple[str, int]] = []
    rebuilding = []
    rebuild, resume = LearnerCore.rebuild, LearnerCore.resume

    def counted_rebuild(self, meta, observations):
        observations = list(observations)
        seen.append(("rebuild", len(observations)))
        rebuilding.append(True)
        try:
            return rebuild(self, meta, observations)
        finally:
            rebuilding.pop()

    def counted_resume(self, learner, observations):
        observations = list(observations)
        if not rebuilding:  # rebuild's own call is not a resume from a checkpoint
            seen.append(("resume", len(observations)))
        return resume(self, learner, observations)

    monkeypatch.setattr(LearnerCore, "rebuild", counted_rebuild)
    monkeypatch.setattr(LearnerCore, "resume", counted_resume)
    return seen


def _items(api, grades: tuple[str, ...] = ("2", "3")) -> list[str]:
    engine = api.client.app.state.engine
    return sorted(i.id for i in engine.catalog if any(engine.graph.standards[c].grade in grades for c in i.standards))[
        :40
    ]


def _id(k: int) -> str:
    return str(uuid.UUID(int=k + 1))


def _answer(k: int, learner: str, item: str, correct: bool, minute: float) -> dict:
    return {"id": _id(k), "learner_id": learner, "item_id": item, "correct": correct, "timestamp": T0 + 60 * minute}


def _void(k: int, target: int) -> dict:
    """An xAPI statement voiding answer ``target`` (sent by the platform's admin account)."""
    return {
        "id": _id(10_000 + k),
        "actor": {"account": {"homePage": "https://lms.example", "name": "admin"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": _id(target)},
    }


def _same_as_rebuild(api, learner: str, folds: list[tuple[str, int]]) -> None:
    service = api.client.app.state.service
    before = len(folds)
    view = service.load("tenant-a", learner)
    rebuilt = service.rebuild(view.core, view.record)
    log = api.store.events("tenant-a", learner)
    assert checkpoints.verify(view.core, view.meta, view.core.version, log) == [], learner  # each holds its part
    del folds[before:]  # the check's own folds
    assert view.record.state == state_to_bytes(rebuilt.state), learner
    stored = {k: v for k, v in view.record.meta.items() if k != "cp"}
    assert json.loads(json.dumps(rebuilt.meta.to_json())) == stored, learner


def _user_set(api, learner: str) -> dict:
    """What users set of a stored learner (events never change it)."""
    meta = api.store.get("tenant-a", learner).meta
    return {
        **{k: meta[k] for k in ("seed", "grade", "interests", "goal", "overrides")},
        "diagnostics": [(d["start_event"], d["focus"]) for d in meta["diagnostics"]],
    }


def test_a_late_batch_refolds_from_the_newest_checkpoint_before_it(any_api, folds) -> None:
    c, h = any_api.client, any_api.h()
    items = _items(any_api)
    assert c.post("/v1/learners/s1", json={"grade": "3"}, headers=h).status_code == 200
    for start in range(0, 24, 4):  # 24 answers in order, 4 a batch: checkpoints at 8, 16 and 24
        events = [_answer(k, "s1", items[k % len(items)], k % 3 != 0, 10 * k) for k in range(start, start + 4)]
        assert c.post("/v1/events", json=events, headers=h).json()["accepted"] == 4
    assert folds == []  # in order: folded on
    record = any_api.store.get("tenant-a", "s1")
    kept = [checkpoints.Checkpoint.from_json(d) for d in record.meta["cp"]]
    assert [(cp.position, cp.events) for cp in kept] == [(16, 16), (24, 24)]  # taken at 8, 16, 24; two kept
    assert len(kept) == checkpoints.KEEP

    # answers that happened after the older checkpoint and before the newer one: from the older
    late = [_answer(100 + j, "s1", items[j], False, 10 * 17 + j) for j in range(3)]
    assert c.post("/v1/events", json=late, headers=h).json()["accepted"] == 3
    assert folds == [("resume", 8 + 3)]  # the log after the 16th event, and the three
    _same_as_rebuild(any_api, "s1", folds)
    record = any_api.store.get("tenant-a", "s1")
    assert [checkpoints.Checkpoint.from_json(d).position for d in record.meta["cp"]] == [16, 27]

    # a void of a recent answer: from the newest checkpoint that does not hold it
    r = c.post("/v1/events", json=[_void(1, 23)], headers=h)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    _same_as_rebuild(any_api, "s1", folds)
    assert folds[-1][0] == "resume"

    # an answer older than every checkpoint: the whole log again
    older = [_answer(200, "s1", items[1], True, 5)]
    assert c.post("/v1/events", json=older, headers=h).json()["accepted"] == 1
    assert folds[-1] == ("rebuild", 24 + 3 + 1 - 1)  # every answer but the voided one
    _same_as_rebuild(any_api, "s1", folds)
    assert [d["n"] for d in any_api.store.get("tenant-a", "s1").meta["cp"]] == [29]  # a fresh one, at the end
    # operators see the refolds, where they started and what they cost, in the metrics
    text = c.get("/metrics").text
    assert 'zpd_refolds_total{start="checkpoint"} 2.0' in text and 'zpd_refolds_total{start="log"} 1.0' in text
    assert 'zpd_refolded_answers_total{start="checkpoint"} 21.0' in text  # 8 + 3, then 11 - 1 voided
    assert 'zpd_refolded_answers_total{start="log"} 27.0' in text


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_arrival_order_gives_the_state_a_rebuild_gives(api, folds, seed) -> None:
    """Batches in random order of time (some late, some in order), voids of recent answers, a
    grade, and a diagnostic started on the way whose questions are answered between the batches
    (timed by the server, whose clock follows the learner's timeline here): after every batch,
    the stored learner is exactly the rebuild of its log, and checkpoints did the work of most
    late batches."""
    rng = random.Random(seed)
    c, h = api.client, api.h()
    items = _items(api)
    now = [T0]
    api.client.app.state.service.clock = lambda: now[0]
    assert c.post("/v1/learners/s1", json={"grade": "3"}, headers=h).status_code == 200
    sent: list[int] = []
    answered = 0
    k = 0
    for batch in range(30):
        size = rng.randint(1, 6)
        late = rng.random() < 0.4
        events = []
        for _ in range(size):
            # late: mostly work of the last few hours (a device syncing), now and then much older
            back = rng.uniform(0, 10 * k) if rng.random() < 0.15 else rng.uniform(0, 150)
            minute = max(1.0, 10 * k - back) if late else 10 * k + rng.uniform(0, 5) + 1
            events.append(_answer(k, "s1", rng.choice(items), rng.random() < 0.6, minute))
            sent.append(k)
            k += 1
        now[0] = T0 + 60 * (10 * k + 6)
        if sent and rng.random() < 0.2:
            target = rng.choice((sent[:-size] or sent)[-12:])  # mostly a recent answer
            events.append(_void(k, target))
        before = _user_set(api, "s1")
        r = c.post("/v1/events", json=events, headers=h)
        assert r.status_code == 200, r.text
        assert _user_set(api, "s1") == before
        if batch == 12:  # the diagnostic starts: later answers may come from before it
            assert c.post("/v1/learners/s1/placement", headers=h).status_code == 200
            assert c.put("/v1/learners/s1/goal", json={"standards": ["4.NF.A.1"]}, headers=h).status_code == 200
        elif batch > 12 and rng.random() < 0.5:  # one of its questions, answered now
            state = c.post("/v1/learners/s1/placement", headers=h).json()
            if not state["finished"]:
                answer = {"standard": state["question"]["standard"], "correct": rng.random() < 0.5}
                r = c.post("/v1/learners/s1/placement/answers", json=answer, headers=h)
                assert r.status_code == 200, r.text
                answered += 1
        _same_as_rebuild(api, "s1", folds)
    assert answered >= 3
    resumed = [n for kind, n in folds if kind == "resume"]
    assert resumed, folds  # checkpoints were used
    assert max(resumed) < k  # and never refolded everything


def test_a_grade_change_or_a_new_model_starts_without_checkpoints(api, folds) -> None:
    c, h = api.client, api.h()
    items = _items(api)
    events = [_answer(j, "s1", items[j % len(items)], j % 2 == 0, 10 * j) for j in range(12)]
    assert c.post("/v1/events", json=events, headers=h).json()["accepted"] == 12
    assert "cp" in api.store.get("tenant-a", "s1").meta
    assert c.post("/v1/learners/s1", json={"grade": "4"}, headers=h).status_code == 200  # rebuilt from the log
    assert "cp" not in api.store.get("tenant-a", "s1").meta
    late = [_answer(50, "s1", items[3], True, 15)]
    assert c.post("/v1/events", json=late, headers=h).json()["accepted"] == 1
    assert folds[-1][0] == "rebuild"
    _same_as_rebuild(api, "s1", folds)
    assert [d["n"] for d in api.store.get("tenant-a", "s1").meta["cp"]] == [13]


def test_an_unreadable_or_foreign_checkpoint_is_not_used() -> None:
    from engine.learner import Learner, LearnerMeta

    meta = LearnerMeta(grade="3", events=10, last_time=100.0)
    meta.checkpoints = [
        {"n": 4, "t": 50.0, "e": 4, "model": "other-model", "data": ""},
        {"n": 6, "t": 60.0, "e": 6, "model": "m", "data": "not base64 of anything"},
        {"garbage": True},
    ]
    assert checkpoints.oldest(meta, "m") == 6
    assert checkpoints.restore(meta, "m", [], 6, []) is None
    learner = Learner({}, meta)
    checkpoints.take(learner, 10, "m")  # too few answers since the newest readable one to take another
    assert [d["model"] for d in learner.meta.checkpoints] == ["m"]  # another model's go, unreadable entries go


def test_replay_check_compares_every_checkpoint_with_its_part_of_the_log(api, folds, tmp_path) -> None:
    """``zpd replay --check`` holds each checkpoint against a fold of the log up to it: a damaged
    one (the two swapped) is reported and exits 1; ``zpd replay`` rewrites the learner without
    them."""
    from typer.testing import CliRunner

    from zpd.cli import app as cli

    from .test_live import make_config

    c, h = api.client, api.h()
    items = _items(api)
    for start in range(0, 12, 3):
        events = [_answer(k, "s1", items[k], k % 3 != 1, 10 * k) for k in range(start, start + 3)]
        assert c.post("/v1/events", json=events, headers=h).json()["accepted"] == 3
    config = make_config(tmp_path, f"sqlite:///{(tmp_path / 'zpd.db').as_posix()}")

    def replay(*flags: str) -> tuple[int, dict]:
        run = CliRunner().invoke(cli, ["--config", str(config), "replay", *flags, "--json"])
        return run.exit_code, json.loads(run.stdout.strip().splitlines()[-1])

    assert [d["n"] for d in api.store.get("tenant-a", "s1").meta["cp"]] == [6, 12]
    code, summary = replay("--check")
    assert (code, summary["matching"], summary["bad_checkpoints"]) == (0, 1, 0), summary
    record = api.store.get("tenant-a", "s1")
    first, second = record.meta["cp"]
    first["data"], second["data"] = second["data"], first["data"]
    api.store.commit(record, record.version, [])
    code, summary = replay("--check")
    assert (code, summary["matching"], summary["bad_checkpoints"], summary["differing"]) == (1, 0, 2, ["tenant-a/s1"])
    code, summary = replay()
    assert summary["rebuilt"] == 1 and "cp" not in api.store.get("tenant-a", "s1").meta
    assert replay("--check")[0] == 0


def test_work_done_before_a_diagnostic_and_synced_after_it_counts_before_it(api, folds) -> None:
    """A tablet syncs work done offline before the teacher started the entry diagnostic: those
    answers are evidence from before it, not its questions; the diagnostic goes on where it was."""
    c, h = api.client, api.h()
    index = api.client.app.state.engine.index
    first_of: dict[str, str] = {}
    for item in _items(api):
        units = index.item_units.get(item, ())
        if len(units) == 1:
            first_of.setdefault(units[0], item)
    items = list(first_of.values())[:5]  # first attempts on five standards: evidence of the belief
    assert c.post("/v1/learners/s1", json={"grade": "3"}, headers=h).status_code == 200
    events = [_answer(k, "s1", items[k], k % 2 == 0, k + 1) for k in range(4)]
    assert c.post("/v1/events", json=events, headers=h).json()["accepted"] == 4
    state = c.post("/v1/learners/s1/placement", headers=h).json()
    for _ in range(2):
        answer = {"standard": state["question"]["standard"], "correct": True}
        state = c.post("/v1/learners/s1/placement/answers", json=answer, headers=h).json()
    assert state["asked"] == 2
    assert api.store.get("tenant-a", "s1").meta["diagnostics"][0]["asked_before"] == 4

    late = [_answer(50, "s1", items[4], True, 2.5)]  # between the second and third answers
    assert c.post("/v1/events", json=late, headers=h).json()["accepted"] == 1
    assert folds[-1][0] == "rebuild"
    diagnostic = api.store.get("tenant-a", "s1").meta["diagnostics"][0]
    assert diagnostic["asked_before"] == 5  # five answers before it, the late one among them
    state = c.post("/v1/learners/s1/placement", headers=h).json()  # resume: where it stands
    assert state["asked"] == 2 and not state["finished"], state
    _same_as_rebuild(api, "s1", folds)
    answer = {"standard": state["question"]["standard"], "correct": False}
    state = c.post("/v1/learners/s1/placement/answers", json=answer, headers=h).json()
    assert state["asked"] == 3
    _same_as_rebuild(api, "s1", folds)


def test_a_learner_with_late_answers_keeps_a_near_checkpoint(api, folds, monkeypatch) -> None:
    """A learner whose answers come in order keeps the checkpoints EVERY answers apart only. After
    a late batch, one near checkpoint is kept too, at most NEAR answers behind the head, until
    the next far one: the next answer a statement or two late refolds a few answers, not up to
    EVERY of them, and one older than the near checkpoint still resumes from the far one."""
    monkeypatch.setattr(checkpoints, "EVERY", 20)
    monkeypatch.setattr(checkpoints, "NEAR", 4)
    c, h = api.client, api.h()
    items = _items(api)
    assert c.post("/v1/learners/s1", json={"grade": "3"}, headers=h).status_code == 200

    def answer(k: int, minute: float) -> int:
        event = _answer(k, "s1", items[k % len(items)], k % 3 != 0, minute)
        return c.post("/v1/events", json=[event], headers=h).json()["accepted"]

    def ladder() -> list[tuple[int, bool]]:
        return [(d["n"], d.get("near", False)) for d in api.store.get("tenant-a", "s1").meta["cp"]]

    assert all(answer(k, 10 * k) == 1 for k in range(30))  # one answer a request, in order
    assert folds == [] and ladder() == [(20, False)]  # in order: no near checkpoint
    assert answer(100, 10 * 29 - 5) == 1  # between the 29th and 30th answers
    assert folds == [("resume", 10 + 1)]  # from the far one: 10 answers and the late one
    assert ladder() == [(20, False), (31, True)]  # a near one at the head now
    assert all(answer(k, 10 * k) == 1 for k in range(30, 36))  # six in order: the near one moves
    assert ladder() == [(20, False), (35, True)]
    assert answer(101, 10 * 35 - 5) == 1  # one statement late
    assert folds[-1] == ("resume", 2 + 1)  # the two answers after the near one, and the late one
    _same_as_rebuild(api, "s1", folds)
    assert answer(102, 10 * 22 + 5) == 1  # before the near one, after the far one
    assert folds[-1] == ("resume", 18 + 1)
    _same_as_rebuild(api, "s1", folds)
    assert all(answer(k, 10 * k) == 1 for k in range(36, 40))  # the 40th answer: the next far one
    assert ladder() == [(20, False), (40, False)]  # and no near one until a late batch again


def test_the_promotion_gate_compares_models_on_the_answers_as_serving_folds_them(api) -> None:
    """The held-out answers a candidate model is compared on are each learner's answers as a
    fold reads them: in the order they happened (one sent late is where it happened), without
    voided ones, on the standards they count on now (an item moved since)."""
    from serving.model_provider import holdout_from_store

    c, h = api.client, api.h()
    own = {"id": "own-9", "title": "Own", "standards": ["3.NF.A.1"], "modality": "video", "duration_minutes": 5}
    assert c.put("/v1/items", json=[own], headers=h).status_code == 200
    items = _items(api)
    sent = [
        _answer(0, "s1", items[0], True, 10),
        _answer(1, "s1", "own-9", False, 20),
        _answer(2, "s1", items[1], True, 30),
    ]
    assert c.post("/v1/events", json=sent, headers=h).json()["accepted"] == 3
    late = [_answer(3, "s1", items[2], False, 15), _void(0, 2)]  # one sent late, and a void of the third
    assert c.post("/v1/events", json=late, headers=h).json()["accepted"] == 2
    assert c.put("/v1/items", json=[{**own, "standards": ["4.NF.A.1"]}], headers=h).json()["realigned"] == ["own-9"]

    service = c.app.state.service
    (held,) = holdout_from_store(api.store, catalog_of=service.catalog).learners
    assert [(e.item_id, e.correct) for e in held] == [(items[0], 1.0), (items[2], 0.0), ("own-9", 0.0)]
    assert held[2].standards == ("4.NF.A.1",)
    assert [e.timestamp for e in held] == sorted(e.timestamp for e in held)
