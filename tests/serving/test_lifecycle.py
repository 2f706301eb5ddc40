"""A learner's whole life through the API, in any order hypothesis finds: answers in order and
late (offline work synced), answers in an app the catalog learns of later, voids, an entry
diagnostic started, answered and restarted, practice between its questions, a grade and a goal
set on the way, teacher overrides, recommendations, items moved to other standards, made a
mastery check or no longer one, withdrawn and offered again by an admin, and erasure followed by
a fresh start. After every step: no server error, the stored learner is exactly the replay of its
log over the catalog as it is now (its checkpoints too), and a running diagnostic always has a
question to ask.
``ZPD_LIFE_EXAMPLES=500`` runs a longer search."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from models.base import state_to_bytes
from serving import checkpoints
from serving.auth import create_key

from .test_checkpoints import T0, _id, _items, _void

TENANT = "tenant-a"


@pytest.fixture()
def small_checkpoints(monkeypatch) -> None:
    monkeypatch.setattr(checkpoints, "EVERY", 4)  # so a short life takes and uses several


def test_any_life_of_a_learner_is_its_replay(api, small_checkpoints) -> None:
    service = api.client.app.state.service
    items = _items(api)
    clock = [T0]
    service.clock = lambda: clock[0]
    lives = iter(range(1_000_000))

    class Life(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            n = next(lives)
            # a tenant of its own: the catalog changes of one life (items moved, withdrawn) are
            # not the next one's, so any failing life replays alike
            self.tenant = f"life-tenant-{n}"
            self.h = {"Authorization": f"Bearer {create_key(api.store, self.tenant, ['admin'])}"}
            self.learner = f"life{n}"
            self.k = 0  # answers sent (their ids)
            self.sent: list[int] = []
            self.answered: list[str] = []  # the items of the answers sent
            self.aligned: set[int] = set()

        def call(self, method: str, path: str, body=None, expect: tuple[int, ...] = (200,)):
            r = api.client.request(method, f"/v1/learners/{self.learner}{path}", json=body, headers=self.h)
            assert r.status_code < 500 and r.status_code in expect, (method, path, body, r.status_code, r.text)
            return r

        def answer(self, minute: float, correct: bool, item: str) -> None:
            event = {
                "id": _id(self.k + 1_000_000 * int(self.learner[4:])),
                "learner_id": self.learner,
                "item_id": item,
                "correct": correct,
                "timestamp": T0 + 60 * minute,
            }
            self.sent.append(self.k)
            self.answered.append(item)
            self.k += 1
            r = api.client.post("/v1/events", json=[event], headers=self.h)
            assert r.status_code == 200 and r.json()["accepted"] == 1, r.text

        @property
        def minute(self) -> float:
            return (clock[0] - T0) / 60

        @rule(gap=st.floats(0, 30), correct=st.booleans(), item=st.sampled_from(range(40)))
        def answers_now(self, gap, correct, item) -> None:
            clock[0] += 60 * gap
            self.answer(self.minute, correct, items[item % len(items)])

        @rule(item=st.sampled_from(range(40)), times=st.integers(3, 8))
        def practises_one_item_until_it_goes_well(self, item, times) -> None:
            # a streak: where mastery (and so whether a check is needed for it) starts to matter
            for _ in range(times):
                clock[0] += 60
                self.answer(self.minute, True, items[item % len(items)])

        @rule(back=st.floats(0, 600), correct=st.booleans(), item=st.sampled_from(range(40)))
        def syncs_work_done_earlier(self, back, correct, item) -> None:
            self.answer(max(0.0, self.minute - back), correct, items[item % len(items)])

        @rule(gap=st.floats(0, 30), correct=st.booleans(), app=st.integers(0, 2))
        def answers_in_an_app_the_catalog_does_not_know(self, gap, correct, app) -> None:
            clock[0] += 60 * gap
            self.answer(self.minute, correct, f"tablet-{self.learner}-{app}")

        @rule(app=st.integers(0, 2), standard=st.sampled_from(["3.NF.A.1", "3.OA.A.3", "2.NBT.A.1"]))
        def admin_aligns_the_app(self, app, standard) -> None:
            # again on another standard: a move, which the learner's next read folds in
            self.aligned.add(app)
            item = {
                "id": f"tablet-{self.learner}-{app}",
                "title": f"Tablet app {app}",
                "standards": [standard],
                "modality": "online_practice",
                "duration_minutes": 10,
            }
            r = api.client.put("/v1/items", json=[item], headers=self.h)
            assert r.status_code == 200, r.text

        @rule(item=st.sampled_from(range(40)), standard=st.sampled_from(["3.NF.A.2", "3.OA.A.1", "2.NBT.A.2"]))
        def admin_moves_a_catalog_item(self, item, standard) -> None:
            record = api.client.app.state.engine.catalog[items[item % len(items)]].to_record()
            r = api.client.put("/v1/items", json=[{**record, "standards": [standard]}], headers=self.h)
            assert r.status_code == 200, r.text

        @precondition(lambda self: any(i in items for i in self.answered))
        @rule(which=st.integers(0, 5), check=st.booleans())
        def admin_makes_an_answered_item_a_mastery_check_or_not(self, which, check) -> None:
            answered = [i for i in self.answered if i in items]
            record = service.catalog(self.tenant)[answered[-1 - min(which, len(answered) - 1)]].to_record()
            r = api.client.put("/v1/items", json=[{**record, "mastery_check": check}], headers=self.h)
            assert r.status_code == 200, r.text

        @precondition(lambda self: any(i in items for i in self.answered))
        @rule(which=st.integers(0, 5), withdraw=st.booleans())
        def admin_withdraws_or_offers_again_the_checks_of_an_answered_standard(self, which, withdraw) -> None:
            # a standard's checks all withdrawn: mastery there no longer waits for one
            answered = [i for i in self.answered if i in items]
            catalog = service.catalog(self.tenant)
            codes = set(catalog[answered[-1 - min(which, len(answered) - 1)]].standards)
            for item in [i for i in catalog if i.mastery_check and codes & set(i.standards)]:
                if withdraw:
                    r = api.client.delete(f"/v1/items/{item.id}", headers=self.h)
                    assert r.status_code in (200, 404), r.text
                else:
                    r = api.client.put("/v1/items", json=[{**item.to_record(), "withdrawn": False}], headers=self.h)
                    assert r.status_code == 200, r.text

        @rule(item=st.sampled_from(range(40)), withdraw=st.booleans())
        def admin_withdraws_or_offers_again(self, item, withdraw) -> None:
            item_id = items[item % len(items)]
            if withdraw:
                r = api.client.delete(f"/v1/items/{item_id}", headers=self.h)
                assert r.status_code in (200, 404), r.text
            else:
                record = service.catalog(self.tenant)[item_id].to_record()
                r = api.client.put("/v1/items", json=[{**record, "withdrawn": False}], headers=self.h)
                assert r.status_code == 200, r.text

        @precondition(lambda self: self.sent)
        @rule(which=st.integers(0, 5))
        def voids_a_recent_answer(self, which) -> None:
            target = self.sent[-1 - min(which, len(self.sent) - 1)]
            void = _void(
                5_000_000 + self.k + 1_000_000 * int(self.learner[4:]), target + 1_000_000 * int(self.learner[4:])
            )
            self.k += 1
            r = api.client.post("/v1/events", json=[void], headers=self.h)
            assert r.status_code == 200, r.text

        @rule(restart=st.booleans())
        def starts_the_diagnostic(self, restart) -> None:
            self.call("POST", f"/placement?restart={str(restart).lower()}")

        @rule(correct=st.booleans(), gap=st.floats(0, 5))
        def answers_its_question(self, correct, gap) -> None:
            clock[0] += 60 * gap
            state = self.call("POST", "/placement").json()
            if not state["finished"]:
                answer = {"standard": state["question"]["standard"], "correct": correct}
                self.call("POST", "/placement/answers", answer)

        @rule(grade=st.sampled_from(["2", "3", "4", "5"]))
        def gets_a_grade(self, grade) -> None:
            self.call("POST", "", {"grade": grade})

        @rule(goal=st.sampled_from([["4.NF.A.1"], ["3.OA.A.1", "3.NF.A.1"], ["5.NF.B.3"]]))
        def gets_a_goal(self, goal) -> None:
            self.call("PUT", "/goal", {"standards": goal})

        @rule(standard=st.sampled_from(["3.MD.A.1", "4.OA.A.1"]), item=st.sampled_from(range(40)))
        def teacher_pins_and_excludes(self, standard, item) -> None:
            body = {"pin_standards": [standard], "exclude_items": [items[item % len(items)]]}
            self.call("POST", "/overrides", body)  # a learner the server has not seen yet is created

        @rule(n=st.integers(1, 3))
        def asks_for_the_next_activities(self, n) -> None:
            self.call("GET", f"/next?n={n}")

        @rule()
        def is_erased_and_starts_again(self) -> None:
            self.call("DELETE", "", expect=(200, 404))
            assert (
                api.store.get(self.tenant, self.learner) is None and api.store.events(self.tenant, self.learner) == []
            )
            self.learner = f"life{next(lives)}"
            self.k, self.sent, self.aligned, self.answered = 0, [], set(), []

        @invariant()
        def is_the_replay_of_its_log(self) -> None:
            record = api.store.get(self.tenant, self.learner)
            if record is None:
                return
            view = service.load(self.tenant, self.learner)
            log = api.store.events(self.tenant, self.learner)
            rebuilt = service.rebuild(view.core, view.record)
            assert state_to_bytes(view.learner.state) == state_to_bytes(rebuilt.state)
            assert view.record.state == (state_to_bytes(rebuilt.state) if log else b"")  # none kept before any event
            stored = {k: v for k, v in view.record.meta.items() if k != "cp"}
            assert json.loads(json.dumps(rebuilt.meta.to_json())) == stored
            assert checkpoints.verify(view.core, view.meta, view.core.version, log) == []
            status = view.core.placement_status(view.learner)
            assert not status.active or status.finished or status.question is not None, status

    run_state_machine_as_test(
        Life,
        settings=settings(
            max_examples=int(os.environ.get("ZPD_LIFE_EXAMPLES", "25")),
            # the same lives on every CI run; a longer search (ZPD_LIFE_EXAMPLES) draws new ones
            derandomize="ZPD_LIFE_EXAMPLES" not in os.environ,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


def test_a_question_answered_after_a_void_gets_an_id_of_its_own(api) -> None:
    """A placement answer's id counted the learner's folded answers, which a void lowers: the
    next answer in the same millisecond took the id of an earlier one, and every commit of it
    failed as "busy" (409). Found by the test above on a server clock that stands still."""
    service = api.client.app.state.service
    service.clock = lambda: T0
    items = _items(api)
    h = api.h()
    answer = {"id": _id(1), "learner_id": "s1", "item_id": items[0], "correct": False, "timestamp": T0}
    assert api.client.post("/v1/events", json=[answer], headers=h).status_code == 200
    for step in range(2):
        state = api.client.post("/v1/learners/s1/placement", headers=h).json()
        question = {"standard": state["question"]["standard"], "correct": False}
        r = api.client.post("/v1/learners/s1/placement/answers", json=question, headers=h)
        assert r.status_code == 200, r.text
        if step == 0:
            assert api.client.post("/v1/events", json=[_void(2, 1)], headers=h).json()["accepted"] == 1
    placement = [e.id for e in api.store.events(TENANT, "s1") if e.source == "placement"]
    assert len(placement) == len(set(placement)) == 2
