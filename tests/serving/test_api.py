"""The HTTP API in-process: ingestion, idempotency, tenants, scopes, planning routes, errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest

from .conftest import store_folder

ITEM = "gen-K.CC.A.1-check"  # a generated mastery check on K.CC.A.1
ITEM2 = "gen-K.G.A.1-practice-1"


def native(i: int, learner: str = "s1", item: str = ITEM, correct: bool = True) -> dict:
    return {
        "id": f"e{i}",
        "learner_id": learner,
        "item_id": item,
        "correct": correct,
        "timestamp": f"2026-11-24T09:{i % 60:02d}:00Z",
    }


def replay_check(store, folder) -> dict:
    """``zpd replay --check --json`` on tenant-a of ``store`` (the bundled BKT model): it must pass;
    its summary."""
    from typer.testing import CliRunner

    from zpd.cli import app as cli

    config = folder / "zpd.toml"
    config.write_text(
        f'[store]\nurl = "{store.url}"\n[serving]\nmodel_uri = "bkt"\ndata_dir = "{folder.as_posix()}"\n'
        f'[mlflow]\ntracking_uri = "sqlite:///{(folder / "mlflow.db").as_posix()}"\n'
    )
    run = CliRunner().invoke(cli, ["--config", str(config), "replay", "--tenant", "tenant-a", "--check", "--json"])
    assert run.exit_code == 0, run.output
    return json.loads(run.stdout.strip().splitlines()[-1])


def xapi(i: int, learner: str = "s1", item: str = ITEM2, **result) -> dict:
    return {
        "id": f"x{i}",
        "actor": {"account": {"homePage": "https://lms.example", "name": learner}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": item},
        "result": result or {"success": True},
        "timestamp": "2026-11-24T10:00:00Z",
    }


def test_a_time_ahead_of_the_server_clock_is_read_as_the_arrival_time(api) -> None:
    """A school tablet with its clock years ahead: its answers would sort after everything the
    learner does until then, and no review or inactivity would fall due. A time more than
    ``CLOCK_AHEAD_S`` ahead is kept as sent, the learner's state reads the time it arrived, and
    the answer warns; a resend is a duplicate, not a conflict."""
    import time
    from datetime import datetime

    c, h = api.client, api.h()
    ahead = {**native(1), "timestamp": "2031-05-01T10:00:00Z"}
    statement = {**xapi(1), "timestamp": "2031-05-01T10:00:00+02:00"}
    near = {**native(2), "timestamp": time.time() + 60}  # a minute ahead: a clock slightly off, kept
    before = time.time()
    r = c.post("/v1/events", json=[ahead, statement, near], headers=h)
    assert r.status_code == 200, r.text
    warned = {w["field"]: w["message"] for w in r.json()["warnings"]}
    assert set(warned) == {"events[0].timestamp", "events[1].timestamp"}
    assert "days ahead of the server's clock" in warned["events[0].timestamp"]
    stored = {e.id: e for e in api.store.events("tenant-a", "s1")}
    assert stored["e1"].timestamp == datetime.fromisoformat("2031-05-01T10:00:00+00:00").timestamp()  # as sent
    for sid in ("e1", "x1"):
        assert before - 1 <= stored[sid].time == stored[sid].received <= time.time() + 1
    assert stored["e2"].time == stored["e2"].timestamp == pytest.approx(near["timestamp"])
    recent = c.get("/v1/learners/s1/profile", headers=h).json()["recent_evidence"]
    assert all(r["timestamp"] < "2030" for r in recent)  # what the state used, not 2031
    again = c.post("/v1/events", json=[ahead, statement], headers=h)
    assert again.status_code == 200 and again.json()["duplicates"] == 2


def test_an_answer_that_arrives_late_counts_where_it_happened(any_api) -> None:
    """A tablet syncs this morning's offline work after the learner's later answers arrived (or
    ``zpd lrs pull`` reads back an outage's statements): the learner's state is what the answers
    give in the order they happened, the state a replay of the log gives, not the order they
    arrived in. The learner failed four times offline, then succeeded four times: not struggling."""
    c, h = any_api.client, any_api.h()

    def answers(learner: str, hour: int, correct: bool) -> list[dict]:
        return [
            {
                **native(k, learner, correct=correct),
                "id": f"{learner}-{hour}-{k}",
                "timestamp": f"2026-11-24T{hour:02d}:0{k}:00Z",
            }
            for k in range(4)
        ]

    for learner, batches in (("late", (10, 9)), ("in-order", (9, 10))):
        for hour in batches:
            r = c.post("/v1/events", json=answers(learner, hour, hour == 10), headers=h)
            assert r.status_code == 200 and r.json()["accepted"] == 4, r.text
    service = c.app.state.service
    late, ordered = (service.load("tenant-a", who) for who in ("late", "in-order"))
    unit = late.meta.progress.units["K.CC.A.1"]
    assert (unit.streak, unit.failures_in_a_row, unit.recent) == (4, 0, (0.0, 0.0, 1.0, 1.0, 1.0, 1.0))
    assert late.meta.progress.to_json() == ordered.meta.progress.to_json()
    assert late.record.state == ordered.record.state
    recent = c.get("/v1/learners/late/profile", headers=h).json()["recent_evidence"]  # newest first, as they happened
    assert [r["timestamp"][11:16] for r in recent] == [f"{hour}:0{k}" for hour in ("10", "09") for k in (3, 2, 1, 0)]
    replayed = service.rebuild(late.core, late.record)
    derived = {k: v for k, v in late.meta.to_json().items() if k != "cp"}
    assert replayed.meta.to_json() == derived
    # a learner whose answers came out of order keeps a near checkpoint (see serving.checkpoints)
    assert [cp.get("near") for cp in late.meta.to_json()["cp"]] == [True] and "cp" not in ordered.meta.to_json()
    assert (
        late.meta.last_time == ordered.meta.last_time == datetime.fromisoformat("2026-11-24T10:03:00+00:00").timestamp()
    )


def test_a_record_folded_before_fold_times_were_kept_is_rebuilt_on_its_next_answer() -> None:
    from engine.learner import LearnerMeta

    assert LearnerMeta(events=3).folds_after([1.0]) is False  # no last_time: the order is unknown
    assert LearnerMeta().folds_after([1.0]) is True  # nothing folded yet
    assert LearnerMeta(events=1, last_time=5.0).folds_after([5.0, 6.0]) is True
    assert LearnerMeta(events=1, last_time=5.0).folds_after([6.0, 4.0]) is False


def test_native_and_xapi_ingestion(any_api) -> None:
    r = any_api.client.post(
        "/v1/events", json=[native(1), xapi(1), xapi(2, score={"scaled": -0.5})], headers=any_api.h()
    )
    assert (
        r.status_code == 200
        and r.json().items() >= {"accepted": 3, "duplicates": 0, "learners": 1, "retry": []}.items()
    )
    events = any_api.store.events("tenant-a", "s1")
    assert [(e.id, e.correct, e.source) for e in events] == [
        ("e1", 1.0, "native"),
        ("x1", 1.0, "xapi"),
        ("x2", 0.0, "xapi"),
    ]
    profile = any_api.client.get("/v1/learners/s1/profile", headers=any_api.h()).json()
    assert profile["events"] == 3 and profile["mastery"]["K.CC.A.1"]["evidence"] == 1


def test_duplicate_is_acknowledged_and_changes_nothing(any_api) -> None:
    c, h = any_api.client, any_api.h()
    c.post("/v1/events", json=native(1), headers=h)
    before = any_api.store.get("tenant-a", "s1")
    r = c.post("/v1/events", json=native(1), headers=h)
    assert (
        r.status_code == 200
        and r.json().items() >= {"accepted": 0, "duplicates": 1, "learners": 1, "retry": []}.items()
    )
    after = any_api.store.get("tenant-a", "s1")
    assert (after.version, after.state, after.event_count) == (before.version, before.state, before.event_count)


def test_conflicting_repeat_is_409_and_the_batch_is_refused_whole(any_api) -> None:
    c, h = any_api.client, any_api.h()
    c.post("/v1/events", json=native(1), headers=h)
    r = c.post("/v1/events", json=[native(2), native(1, correct=False)], headers=h)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflicting_event" and "'e1'" in r.json()["error"]["message"]
    assert [e.id for e in any_api.store.events("tenant-a", "s1")] == ["e1"]  # e2 was not written
    inside = c.post("/v1/events", json=[native(3), native(3, correct=False)], headers=h)
    assert inside.status_code == 409


def test_concurrent_overlapping_batches_count_every_event_once(any_api) -> None:
    """Group commits from several threads and two workers on the same learners: conflicts are
    retried per learner, every event lands exactly once, repeats are duplicates, state == replay."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from models.base import state_from_bytes
    from serving.service import LearnerService

    service = any_api.client.app.state.service
    # two services on one store stand for two worker processes: their commits race for real
    workers = [service, LearnerService(service.engine, service.store)]
    learners = [f"s{k}" for k in range(8)]
    items = [ITEM, ITEM2, "gen-K.CC.B.4.a-check"]
    results: list[dict] = []

    def sender(t: int) -> None:
        rng = np.random.default_rng(t)
        for b in range(6):
            batch = [
                {
                    "id": f"t{t}-b{b}-{j}",
                    "learner_id": learners[(b + j) % 8],
                    "item_id": items[j % 3],
                    "correct": bool(rng.random() < 0.6),
                    "timestamp": 1_800_000_000 + b * 60 + j,
                }
                for j in range(12)
            ]
            batch += [
                {"id": "shared-1", "learner_id": "s0", "item_id": ITEM, "correct": True, "timestamp": 1_800_000_000}
            ]
            results.append(workers[t % 2].ingest("tenant-a", batch))

    with ThreadPoolExecutor(4) as pool:
        for done in [pool.submit(sender, t) for t in range(4)]:
            done.result()
    assert len(results) == 24
    assert sum(r["accepted"] for r in results) == 4 * 6 * 12 + 1
    assert sum(r["duplicates"] for r in results) == 23
    total = 0
    for learner in learners:
        record = any_api.store.get("tenant-a", learner)
        logged = any_api.store.events("tenant-a", learner)
        assert record.event_count == len(logged) == len({e.id for e in logged})
        total += len(logged)
        engine = any_api.client.app.state.engine
        rebuilt = service.rebuild(engine.core(engine.models.current), record)
        live = state_from_bytes(record.state)
        assert all(np.allclose(live[k], rebuilt.state[k]) for k in rebuilt.state)
        assert json.loads(json.dumps(rebuilt.meta.to_json())) == record.meta
    assert total == 4 * 6 * 12 + 1


def test_events_without_a_time_from_racing_workers_fold_on_without_rebuilding(api, monkeypatch) -> None:
    """An event sent without a time is received when its learner is written (after the read of
    the record), so a request that waited for the learner or lost a race to another worker folds
    its events on top: no rebuild from the log, whatever the interleaving."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.learner import LearnerCore
    from serving.service import LearnerService

    service = api.client.app.state.service
    workers = [service, LearnerService(service.engine, service.store)]
    rebuilds = []
    real = LearnerCore.rebuild
    monkeypatch.setattr(LearnerCore, "rebuild", lambda self, *a: rebuilds.append(1) or real(self, *a))

    def sender(t: int) -> None:
        for b in range(8):
            batch = [
                {"id": f"t{t}-{b}-{j}", "learner_id": f"s{j % 3}", "item_id": ITEM, "correct": j % 2 == 0}
                for j in range(6)
            ]
            assert workers[t % 2].ingest("tenant-a", batch)["retry"] == []

    with ThreadPoolExecutor(4) as pool:
        for done in [pool.submit(sender, t) for t in range(4)]:
            done.result()
    assert rebuilds == []
    for k in range(3):
        log = api.store.events("tenant-a", f"s{k}")
        assert len(log) == 4 * 8 * 2 and all(e.timestamp == e.received == e.time for e in log)
        assert [e.time for e in log] == sorted(e.time for e in log)  # arrival order is the order of time


def test_bad_events_name_the_field(api) -> None:
    c, h = api.client, api.h()
    r = c.post("/v1/events", json=[native(1), {**native(2), "correct": "yes"}], headers=h)
    assert r.status_code == 422 and r.json()["error"]["field"] == "events[1].correct"
    r = c.post("/v1/events", json={**native(1), "item_id": "bad item id"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["field"] == "events[0].item_id"
    # an activity the catalog does not know is kept (unaligned), never refused or dropped
    r = c.post("/v1/events", json={**native(1, learner="s9"), "item_id": "no-such-item"}, headers=h)
    assert r.status_code == 200 and r.json()["accepted"] == 1 and r.json()["unaligned"] == 1
    r = c.post("/v1/events", json=xapi(1, score={"scaled": 3}), headers=h)
    assert r.status_code == 422 and r.json()["error"]["field"] == "events[0].result.score.scaled"
    r = c.post("/v1/events", json={"id": "e1", "learner_id": "s 1", "item_id": ITEM, "correct": 1}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["field"] == "events[0].learner_id"
    r = c.post("/v1/events", json=[native(i) for i in range(1001)], headers=h)
    assert r.status_code == 413 and r.json()["error"]["code"] == "batch_too_large"
    r = c.post("/v1/events", content=b"{not json", headers={**h, "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert api.store.get("tenant-a", "s1") is None  # nothing landed


def test_an_activity_done_without_an_answer_is_the_learners_latest_not_evidence(api) -> None:
    """A native exposure (a page read, a lesson with the teacher): stored, counted as no
    evidence, a duplicate when sent again; the learner's mastery does not move, the activity is
    their latest, and the read page is not new to them any more."""
    c, h, store = api.client, api.h(), api.store
    catalog = c.app.state.engine.catalog
    read = next(i for i in catalog if i.modality.value == "reading")
    c.post("/v1/events", json=native(1, item=ITEM), headers=h)
    before = c.get("/v1/learners/s1/profile", headers=h).json()["mastery"]
    seen = {"id": "x1", "learner_id": "s1", "item_id": read.id, "kind": "exposure", "timestamp": "2026-11-24T09:30:00Z"}
    r = c.post("/v1/events", json=seen, headers=h).json()
    assert (r["accepted"], r["not_evidence"]) == (1, 1), r
    assert c.post("/v1/events", json=seen, headers=h).json()["duplicates"] == 1
    assert c.post("/v1/events", json={**seen, "item_id": ITEM}, headers=h).status_code == 409
    assert c.get("/v1/learners/s1/profile", headers=h).json()["mastery"] == before
    record = store.get("tenant-a", "s1")
    assert record.meta["progress"]["recent_items"][-1] == read.id and record.event_count == 2
    kinds = [(e.kind, e.correct) for e in store.events("tenant-a", "s1")]
    assert kinds == [("answer", 1.0), ("exposure", None)]


def test_oversized_bodies_are_refused_before_parsing(tmp_path, shared_engine) -> None:
    from configs import load_config
    from serving.stores import open_store
    from tests.serving.conftest import make_api

    config = load_config(env={})
    config = config.model_copy(update={"serving": config.serving.model_copy(update={"max_body_bytes": 4096})})
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    api = make_api(store, shared_engine, config)
    with api.client as c:
        h = {**api.h(), "content-type": "application/json"}
        big = json.dumps([native(i) for i in range(60)]).encode()  # about 7 kB, well under 1,000 events
        r = c.post("/v1/events", content=big, headers=h)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        assert "4096 bytes" in r.json()["error"]["message"]

        def chunks():  # no Content-Length: counted as it arrives
            for k in range(0, len(big), 1000):
                yield big[k : k + 1000]

        r = c.post("/v1/events", content=chunks(), headers=h)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        assert c.post("/v1/events", json=[native(1)], headers=api.h()).status_code == 200
        assert store.get("tenant-a", "s1").event_count == 1  # only the small batch landed
        metrics = c.get("/metrics").text
        assert 'route="/v1/events",status="413"' in metrics
    store.close()


LEARNER_ROUTES = [
    ("GET", "/v1/learners/s1/profile", None),
    ("DELETE", "/v1/learners/s1/overrides", None),
    ("POST", "/v1/learners/s1/placement/answers", {"standard": "K.CC.A.1", "correct": True}),
    ("DELETE", "/v1/learners/s1", None),
    ("POST", "/v1/classes/c1/rotation", {"learners": ["s1"]}),
]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/v1/learners/s1/next?n=3", None), ("POST", "/v1/learners/s1/playlist", {"session_minutes": 30})],
)
def test_reads_for_unseen_learners_answer_without_leaking_other_tenants(any_api, method, path, body) -> None:
    """A learner the server has not seen gets recommendations (nothing is stored); a learner of
    another tenant is unseen too: its events change nothing in what this tenant gets."""
    c = any_api.client
    before = c.request(method, path, json=body, headers=any_api.h("b_all"))
    assert before.status_code == 200 and (before.json().get("recommendations") or before.json().get("activities"))
    assert any_api.store.get("tenant-b", "s1") is None
    assert c.post("/v1/events", json=[native(i) for i in range(5)], headers=any_api.h("a_all")).status_code == 200
    after = c.request(method, path, json=body, headers=any_api.h("b_all"))
    assert after.json() == before.json()


@pytest.mark.parametrize(("method", "path", "body"), LEARNER_ROUTES)
def test_other_tenants_learners_do_not_exist(any_api, method, path, body) -> None:
    c = any_api.client
    assert c.post("/v1/events", json=native(1), headers=any_api.h("a_all")).status_code == 200
    theirs = c.request(method, path, json=body, headers=any_api.h("b_all"))
    other_body = json.loads(json.dumps(body).replace('"s1"', '"nobody"')) if body else body
    missing = c.request(method, path.replace("s1", "nobody"), json=other_body, headers=any_api.h("a_all"))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "unknown_learner"
    assert "'s1'" in theirs.json()["error"]["message"] and "'nobody'" in missing.json()["error"]["message"]
    assert any_api.store.get("tenant-a", "s1") is not None  # untouched


def test_scopes(api) -> None:
    c = api.client
    assert c.post("/v1/events", json=native(1), headers=api.h("a_read")).status_code == 403
    assert c.post("/v1/events", json=native(1), headers=api.h("a_ingest")).status_code == 200
    assert c.get("/v1/learners/s1/next", headers=api.h("a_ingest")).status_code == 403
    assert c.get("/v1/learners/s1/next", headers=api.h("a_read")).status_code == 200
    assert c.put("/v1/learners/s1/goal", json={"standards": ["1.OA.A.1"]}, headers=api.h("a_read")).status_code == 403
    assert (
        c.put("/v1/learners/s1/goal", json={"standards": ["1.OA.A.1"]}, headers=api.h("a_teacher")).status_code == 200
    )
    assert c.delete("/v1/learners/s1", headers=api.h("a_teacher")).status_code == 403
    assert c.post("/v1/model/reload", headers=api.h("a_teacher")).status_code == 403
    # the model serves every tenant: a tenant's admin may not swap it, only a key with the operator scope
    served = c.get("/v1/model", headers=api.h("a_all")).json()["version"]
    other = "bundled" if served.startswith("bkt") else "bkt"
    refused = c.post("/v1/model/reload", json={"uri": other}, headers=api.h("a_all"))
    assert refused.status_code == 403 and "'operator'" in refused.json()["error"]["message"]
    assert c.get("/v1/model", headers=api.h("a_all")).json()["version"] == served
    no_key = c.get("/v1/learners/s1/next")
    assert no_key.status_code == 401 and no_key.json()["error"]["field"] == "Authorization"
    assert (
        c.get("/v1/learners/s1/next", headers={"Authorization": "Bearer zpd_0123456789abcdef_wrong"}).status_code == 401
    )


def test_revoked_key_stops_working(api) -> None:
    key_id = api.keys["a_read"].split("_")[1]
    api.store.revoke_key(key_id)
    api.client.app.state.keys.forget(key_id)
    assert api.client.get("/v1/model", headers=api.h("a_read")).status_code == 401


def test_delete_leaves_no_trace(any_api) -> None:
    c, h = any_api.client, any_api.h()
    c.post("/v1/events", json=[native(1), native(2)], headers=h)
    c.put("/v1/learners/s1/goal", json={"standards": ["1.OA.A.1"]}, headers=h)
    assert c.delete("/v1/learners/s1", headers=h).json() == {"learner_id": "s1", "deleted": True}
    store = any_api.store
    assert store.get("tenant-a", "s1") is None and store.events("tenant-a", "s1") == []
    assert store.event_hashes("tenant-a", "s1", ["e1", "e2"]) == {}
    assert ("tenant-a", "s1") not in list(store.learners())
    if store.url.startswith("redis"):
        assert list(store.client.scan_iter("*s1*")) == []
    else:
        conn = store._conn()
        for table in ("learners", "events"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE learner_id='s1'").fetchone()[0] == 0
    assert c.get("/v1/learners/s1/profile", headers=h).status_code == 404
    assert c.post("/v1/events", json=native(1), headers=h).json()["accepted"] == 1  # the id is free again


def test_delete_leaves_no_bytes_on_disk(any_api, request) -> None:
    """Erasure reaches the files: SQLite zeroes the rows and truncates its WAL; Redis rewrites its
    append-only file (which still held the commands that wrote the learner's keys)."""
    import time

    c, h = any_api.client, any_api.h()
    secret = "pupil-7f3a9c"
    other = [native(i, learner="stays") for i in range(1, 4)]
    mine = [{**native(i, learner=secret), "id": f"evt-{secret}-{i}"} for i in range(1, 6)]
    assert c.post("/v1/events", json=other + mine, headers=h).json()["accepted"] == 8
    c.put(f"/v1/learners/{secret}/goal", json={"standards": ["1.OA.A.1"]}, headers=h)
    store = any_api.store
    folder = store_folder(request, store)

    def on_disk() -> bool:
        return any(secret.encode() in f.read_bytes() for f in folder.rglob("*") if f.is_file())

    assert on_disk()  # the check can see it
    assert c.delete(f"/v1/learners/{secret}", headers=h).json()["deleted"] is True
    deadline = time.time() + 30
    while store.url.startswith("redis") and store.aof_rewrite_pending() and time.time() < deadline:
        time.sleep(0.1)
    if store.url.startswith("sqlite"):
        assert not store.compaction_pending(wait_s=60)
    assert not on_disk()
    assert len(store.events("tenant-a", "stays")) == 3  # the others are untouched


def test_next_playlist_profile_and_goal(api) -> None:
    c, h = api.client, api.h()
    c.post("/v1/learners/s1", json={"interests": ["Sports"], "grade": "4"}, headers=h)
    c.post("/v1/events", json=native(1), headers=h)
    nxt = c.get("/v1/learners/s1/next?n=3", headers=h).json()
    assert nxt["model_version"].startswith("bkt-graph@") and len(nxt["recommendations"]) == 3
    rec = nxt["recommendations"][0]
    assert 0 < rec["p_success"] < 1 and rec["reasons"] and set(rec["components"]) >= {"band_fit", "goal", "novelty"}
    assert len({r["standard"] for r in nxt["recommendations"]}) == 3
    goal = c.put(
        "/v1/learners/s1/goal",
        json={"standards": ["CCSS.Math.Content.4.NF.B.3a"], "date": "2027-06-01T00:00:00Z"},
        headers=h,
    )
    assert goal.json()["goal"]["standards"] == ["4.NF.B.3.a"]
    gps = c.get("/v1/learners/s1/profile", headers=h).json()["gps"]
    assert (
        gps["status"] in ("on_track", "at_risk") and gps["route"][-1] == "4.NF.B.3.a" and gps["estimated_minutes"] > 0
    )
    playlist = c.post(
        "/v1/learners/s1/playlist",
        json={"session_minutes": 45, "modalities": ["online_practice", "reading"]},
        headers=h,
    ).json()
    assert sum(a["minutes"] for a in playlist["activities"]) <= 45
    assert {a["modality"] for a in playlist["activities"]} <= {"online_practice", "reading"}
    assert all(a["standard"] in gps["route"] for a in playlist["activities"])
    bad = c.put("/v1/learners/s1/goal", json={"standards": ["9.ZZ.Z.9"]}, headers=h)
    assert bad.status_code == 404 and bad.json()["error"]["field"] == "goal.standards[0]"
    bad = c.post("/v1/learners/s1/playlist", json={"session_minutes": -5}, headers=h)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "session_minutes"


def test_overrides_win_and_can_be_removed(api) -> None:
    c, h = api.client, api.h()
    c.post("/v1/events", json=native(1), headers=h)
    far = next(i.id for i in api.client.app.state.engine.catalog if i.standards[0].startswith("8.EE"))
    r = c.post("/v1/learners/s1/overrides", json={"pin_items": [far]}, headers=h)
    assert r.status_code == 200
    top = c.get("/v1/learners/s1/next", headers=h).json()["recommendations"][0]
    assert top["item"]["id"] == far and top["kind"] == "pinned"  # far past the learner's prerequisites
    assert f"pinned by teacher: item {far}" in top["reasons"]
    assert (
        c.post("/v1/learners/s1/overrides", json={"pin_items": ["nope"]}, headers=h).json()["error"]["field"]
        == "pin_items[0]"
    )
    c.request("DELETE", "/v1/learners/s1/overrides", json={"pin_items": [far]}, headers=h)
    top = c.get("/v1/learners/s1/next", headers=h).json()["recommendations"][0]
    assert top["kind"] != "pinned"


def test_overrides_before_the_first_answer(api) -> None:
    """A teacher may pin work for a student who has not answered yet (as a goal may be set): the
    learner is created, the pin wins their first plan, and removing overrides needs a learner."""
    c, h = api.client, api.h()
    far = next(i.id for i in api.client.app.state.engine.catalog if i.standards[0].startswith("8.EE"))
    assert c.request("DELETE", "/v1/learners/new1/overrides", headers=h).status_code == 404
    r = c.post("/v1/learners/new1/overrides", json={"pin_items": [far]}, headers=h)
    assert r.status_code == 200 and r.json()["overrides"]["pin_items"] == [far]
    top = c.get("/v1/learners/new1/next", headers=h).json()["recommendations"][0]
    assert top["item"]["id"] == far and top["kind"] == "pinned"
    assert c.get("/v1/learners/new1/profile", headers=h).status_code == 200
    # another tenant's learner of the same id is theirs: a pin here creates this tenant's own
    theirs = api.h("b_all")
    assert c.post("/v1/learners/new1/overrides", json={"exclude_items": [far]}, headers=theirs).status_code == 200
    mine = c.get("/v1/learners/new1/profile", headers=h).json()["overrides"]
    assert mine["pin_items"] == [far] and mine["exclude_items"] == []


def test_class_rotation(api) -> None:
    c, h = api.client, api.h()
    learners = [f"s{i}" for i in range(8)]
    c.post("/v1/events", json=[native(i, learner=learner) for i, learner in enumerate(learners)], headers=h)
    r = c.post(
        "/v1/classes/c1/rotation",
        json={
            "learners": learners,
            "session_minutes": 60,
            "block_minutes": 20,
            "capacities": {"online_practice": 3, "reading": 3},
            "group_capacity": 4,
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["playlists"]) == set(learners)
    for load in body["station_load"]:
        assert load.get("online_practice", 0) <= 3 and load.get("reading", 0) <= 3
    for group in body["groups"]:
        assert len(group["learners"]) <= 4
    missing = c.post("/v1/classes/c1/rotation", json={"learners": ["s0", "ghost"]}, headers=h)
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "learners[1]"


def test_the_rest_of_a_session_is_planned_from_the_answers_of_its_first_block(api) -> None:
    """After block 1, ``blocks_done`` plans blocks 2-3 in the session's time, from what the
    students did in block 1; every block over is a 422 naming the field."""
    c, h = api.client, api.h()
    learners = [f"r{i}" for i in range(4)]
    for lid in learners:
        c.post(f"/v1/learners/{lid}", json={"grade": "3"}, headers=h)
    body = {"learners": learners, "session_minutes": 60, "block_minutes": 20}
    morning = c.post("/v1/classes/c1/rotation", json=body, headers=h).json()
    assert morning["blocks_done"] == 0
    events = []
    for lid in learners:  # block 1 done as planned, every answer wrong
        for n, a in enumerate(a for a in morning["playlists"][lid]["activities"] if a["start_minute"] < 20):
            events.append({"id": f"{lid}-b1-{n}", "learner_id": lid, "item_id": a["item"]["id"], "correct": False})
    assert c.post("/v1/events", json=events, headers=h).status_code == 200
    rest = c.post("/v1/classes/c1/rotation", json={**body, "blocks_done": 1}, headers=h)
    assert rest.status_code == 200, rest.text
    rest_body = rest.json()
    assert rest_body["blocks_done"] == 1 and rest_body["session_minutes"] == 60
    assert rest_body["station_load"][0] == {} and len(rest_body["station_load"]) == 3
    for lid in learners:
        starts = [a["start_minute"] for a in rest_body["playlists"][lid]["activities"]]
        assert starts and min(starts) >= 20, (lid, starts)
    assert all(g["block"] >= 1 and g["start_minute"] >= 20 for g in rest_body["groups"])
    # the answers count: the rest differs from the morning's blocks 2-3
    later = {
        lid: [a["item"]["id"] for a in morning["playlists"][lid]["activities"] if a["start_minute"] >= 20]
        for lid in learners
    }
    assert later != {lid: [a["item"]["id"] for a in rest_body["playlists"][lid]["activities"]] for lid in learners}
    for done in (3, 7):
        over = c.post("/v1/classes/c1/rotation", json={**body, "blocks_done": done}, headers=h)
        assert over.status_code == 422 and over.json()["error"]["field"] == "blocks_done", over.text
        assert "the session has 3 block(s): 0 to 2" in over.json()["error"]["message"]
    negative = c.post("/v1/classes/c1/rotation", json={**body, "blocks_done": -1}, headers=h)
    assert negative.status_code == 422


def test_placement_flow(api) -> None:
    c, h = api.client, api.h()
    c.post("/v1/learners/s9", json={"grade": "3"}, headers=h)
    state = c.post("/v1/learners/s9/placement", headers=h).json()
    assert state["asked"] == 0 and state["question"]["item"] is not None
    wrong = c.post("/v1/learners/s9/placement/answers", json={"standard": "HSA-SSE.A.1", "correct": True}, headers=h)
    assert wrong.status_code == 409 and "current question" in wrong.json()["error"]["message"]
    for _ in range(40):
        if state["finished"]:
            break
        unit = state["question"]["standard"]
        grade = api.client.app.state.engine.graph.standards[unit].grade_num or 0
        state = c.post(
            "/v1/learners/s9/placement/answers", json={"standard": unit, "correct": grade <= 2}, headers=h
        ).json()
    assert state["finished"] and state["asked"] <= 30 and state["mastered"]
    profile = c.get("/v1/learners/s9/profile", headers=h).json()
    assert profile["placement"]["grade_band"] == state["grade_band"]
    # what the diagnostic asked and saw answered right is mastered; the rest it believes known is
    # likely known (checked just in time when something builds on it)
    assert set(profile["mastered"]) & set(state["mastered"])
    for unit in state["mastered"]:
        assert unit in profile["mastered"] or profile["mastery"][unit]["status"] == "likely_known", unit
    again = c.post("/v1/learners/s9/placement/answers", json={"standard": "K.CC.A.1", "correct": True}, headers=h)
    assert again.status_code == 409


def test_a_new_learner_s_plans_start_with_the_entry_diagnostic(api) -> None:
    """A playlist or a class rotation starts a learner nothing places yet (no grade, no answer)
    with the entry diagnostic, named by the question the diagnostic then asks; it goes on until
    the diagnostic is finished, and a teacher may leave it out. A grade alone places a learner."""
    c, h = api.client, api.h()
    for learner in ("n1", "n2"):
        assert c.post(f"/v1/learners/{learner}", json={}, headers=h).status_code == 200
    assert c.post("/v1/learners/g1", json={"grade": "4"}, headers=h).status_code == 200

    def diagnostics(plan: dict) -> list[dict]:
        return [a for a in plan["activities"] if a["kind"] == "entry_diagnostic"]

    assert not diagnostics(c.post("/v1/learners/g1/playlist", json={}, headers=h).json())
    assert c.post("/v1/learners/g1/placement", headers=h).status_code == 200  # started: it goes on
    assert diagnostics(c.post("/v1/learners/g1/playlist", json={}, headers=h).json())

    playlist = c.post("/v1/learners/n1/playlist", json={"session_minutes": 60}, headers=h).json()
    first = playlist["activities"][0]
    assert (first["kind"], first["modality"], first["start_minute"], first["minutes"]) == (
        "entry_diagnostic",
        "assessment",
        0,
        20,
    )
    skipped = c.post("/v1/learners/n1/playlist", json={"entry_diagnostic": False}, headers=h).json()
    assert not diagnostics(skipped) and skipped["activities"]

    rotation = c.post("/v1/classes/c1/rotation", json={"learners": ["n1", "n2"]}, headers=h).json()
    assert [diagnostics(rotation["playlists"][n])[0]["start_minute"] for n in ("n1", "n2")] == [0, 0]
    one_seat = {"learners": ["n1", "n2"], "capacities": {"assessment": 1}}
    rotation = c.post("/v1/classes/c1/rotation", json=one_seat, headers=h).json()
    assert [diagnostics(rotation["playlists"][n])[0]["start_minute"] for n in ("n1", "n2")] == [0, 20]
    assert all(load.get("assessment", 0) <= 1 for load in rotation["station_load"])
    assert rotation["diagnostic_unseated"] == []
    no_seat = c.post("/v1/classes/c1/rotation", json={**one_seat, "capacities": {"assessment": 0}}, headers=h)
    assert no_seat.json()["diagnostic_unseated"] == ["n1", "n2"]

    state = c.post("/v1/learners/n1/placement", headers=h).json()
    assert (first["standard"], first["item"]["id"]) == (state["question"]["standard"], state["question"]["item"]["id"])
    for asked in range(40):
        if state["finished"]:
            break
        question = state["question"]
        now = c.post("/v1/learners/n1/playlist", json={"session_minutes": 30}, headers=h).json()["activities"][0]
        assert (now["kind"], now["standard"], now["item"]["id"]) == (
            "entry_diagnostic",
            question["standard"],
            question["item"]["id"],
        ), asked  # the diagnostic goes on where it stands
        grade = api.client.app.state.engine.graph.standards[question["standard"]].grade_num or 0
        answer = {"standard": question["standard"], "correct": grade <= 3}
        state = c.post("/v1/learners/n1/placement/answers", json=answer, headers=h).json()
    assert state["finished"]
    assert not diagnostics(c.post("/v1/learners/n1/playlist", json={}, headers=h).json())
    rotation = c.post("/v1/classes/c1/rotation", json={"learners": ["n1", "n2"]}, headers=h).json()
    assert not diagnostics(rotation["playlists"]["n1"]) and diagnostics(rotation["playlists"]["n2"])


def test_a_framework_with_nothing_to_learn_yet_answers_every_learner_route(api) -> None:
    """A tenant's framework imported before any item is aligned to it (``allow_empty``), here with
    no standard at all: every learner route answers (a diagnostic with nothing to ask finishes at
    once, placing no one), none fails."""
    c, h = api.client, api.h()
    empty = {"CFDocument": {"identifier": "d-empty", "title": "Not yet"}, "CFItems": [], "CFAssociations": []}
    assert c.post("/v1/standards/import?allow_empty=true", json=empty, headers=h).status_code == 200
    assert c.post("/v1/learners/e1", json={"grade": "3"}, headers=h).status_code == 200
    state = c.post("/v1/learners/e1/placement", headers=h).json()
    assert state["finished"] and state["question"] is None and state["grade_band"] == "unknown"
    assert state["confidence"] == 0.0 and state["mastered"] == []
    assert c.post("/v1/learners/e1/placement?restart=true", headers=h).json()["finished"]
    assert c.get("/v1/learners/e1/next", headers=h).json()["empty"]["code"] == "no_items"
    assert c.post("/v1/learners/e1/playlist", json={"session_minutes": 30}, headers=h).json()["activities"] == []
    assert c.get("/v1/learners/e1/profile", headers=h).json()["placement"]["grade_band"] == "unknown"
    answer = {"id": "e1-1", "learner_id": "e1", "item_id": "gen-3.NF.A.1-check", "correct": True}
    assert c.post("/v1/events", json=answer, headers=h).json()["accepted"] == 1
    assert c.get("/v1/learners/e1/next?grade=3", headers=h).status_code == 200


def test_a_standard_with_only_a_reading_is_named_and_passed_over(api) -> None:
    """A tenant's framework F.1 -> F.2; its first items are a reading on F.1 and practice on F.2.
    The admin is told F.1 can be taught but never shown learned, and learners are not held back
    on it: F.2 is offered at once. Practice on F.1 later makes it gate F.2 again."""
    c, h = api.client, api.h()

    def node(ident: str, code: str) -> dict:
        return {"identifier": ident, "uri": f"urn:uuid:{ident}", "humanCodingScheme": code,
                "fullStatement": f"statement {code}", "CFItemType": "Standard", "educationLevel": ["03"]}  # fmt: skip

    link = {"identifier": "p1", "associationType": "precedes",
            "originNodeURI": {"identifier": "f1", "uri": "urn:uuid:f1", "title": "F.1"},
            "destinationNodeURI": {"identifier": "f2", "uri": "urn:uuid:f2", "title": "F.2"}}  # fmt: skip
    framework = {"CFDocument": {"identifier": "d-f", "title": "F"}, "CFItems": [node("f1", "F.1"), node("f2", "F.2")],
                 "CFAssociations": [link]}  # fmt: skip
    assert c.post("/v1/standards/import?allow_empty=true", json=framework, headers=h).status_code == 200
    items = [
        {"id": "f1-read", "title": "F.1 reading", "standards": ["F.1"], "modality": "reading", "duration_minutes": 5},
        {
            "id": "f2-p",
            "title": "F.2 practice",
            "standards": ["F.2"],
            "modality": "online_practice",
            "duration_minutes": 5,
        },
    ]
    sent = c.put("/v1/items", json=items, headers=h).json()
    assert sent["created"] == 2 and len(sent["notes"]) == 1
    assert "only lessons, readings or videos (F.1)" in sent["notes"][0]
    assert c.get("/v1/learners/f-1/next", headers=h).json()["recommendations"][0]["standard"] == "F.2"
    practice = {**items[1], "id": "f1-p", "title": "F.1 practice", "standards": ["F.1"]}
    assert c.put("/v1/items", json=[practice], headers=h).json()["notes"] == []
    assert c.get("/v1/learners/f-2/next", headers=h).json()["recommendations"][0]["standard"] == "F.1"


def test_standards_items_and_docs(api) -> None:
    c, h = api.client, api.h()
    std = c.get("/v1/standards/CCSS.Math.Content.3.NF.A.1", headers=h).json()
    assert std["code"] == "3.NF.A.1" and set(std["prerequisites"]) == {"2.G.A.3", "2.MD.A.2"}
    missing = c.get("/v1/standards/9.ZZ.Z.9", headers=h)
    assert missing.status_code == 404 and "9.ZZ.Z.9" in missing.json()["error"]["message"]
    items = c.get("/v1/items?standard=4.NF.B.3&modality=assessment", headers=h).json()
    assert items["total"] > 0 and all(i["modality"] == "assessment" for i in items["items"])
    assert c.get("/openapi.json").status_code == 200 and c.get("/docs").status_code == 200
    assert c.get("/no/such/route").json()["error"]["code"] == "not_found"


def test_metrics_of_several_workers_add_up(tmp_path) -> None:
    """prometheus_client's multiprocess mode, as `zpd serve --workers N` runs it: two worker
    processes record, a third answers the scrape with the sums."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    worker = """
import sys
from serving.metrics import Metrics
m = Metrics()
assert m.multiprocess
for status, seconds in [tuple(x.split(":")) for x in sys.argv[1].split(",")]:
    m.observe("GET", "/healthz", int(status), float(seconds))
m.ingested(int(sys.argv[2]), int(sys.argv[3]))
m.serving("zpd-learner/3", "hybrid")
"""
    for args in (["200:0.0005", "5", "1"], ["200:0.004,503:0.2", "2", "0"]):
        subprocess.run([sys.executable, "-c", worker, *args], env=env, check=True, timeout=60)
    scrape = "from serving.metrics import Metrics; import sys; sys.stdout.write(Metrics().render().decode())"
    text = subprocess.run(
        [sys.executable, "-c", scrape], env=env, check=True, timeout=60, capture_output=True, text=True
    ).stdout
    assert 'zpd_requests_total{method="GET",route="/healthz",status="200"} 2.0' in text
    assert 'zpd_requests_total{method="GET",route="/healthz",status="503"} 1.0' in text
    assert 'zpd_request_seconds_bucket{le="0.001",method="GET",route="/healthz"} 1.0' in text
    assert 'zpd_request_seconds_bucket{le="+Inf",method="GET",route="/healthz"} 3.0' in text
    assert "zpd_events_ingested_total 7.0" in text and "zpd_events_duplicate_total 1.0" in text
    assert 'zpd_model_info{name="hybrid",version="zpd-learner/3"} 1.0' in text
    assert "process_cpu_seconds_total" in text  # the answering worker's own process metrics


def test_health_and_metrics(api) -> None:
    c, h = api.client, api.h()
    c.post("/v1/events", json=native(1), headers=h)
    c.get("/v1/learners/s1/next", headers=h)
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").json()["status"] == "ready"
    scraped = c.get("/metrics")
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    text = scraped.text
    assert 'zpd_requests_total{method="GET",route="/v1/learners/{learner_id}/next",status="200"} 1.0' in text
    assert 'zpd_request_seconds_bucket{le="+Inf",method="GET",route="/v1/learners/{learner_id}/next"} 1.0' in text
    assert "zpd_events_ingested_total 1.0" in text
    assert (
        "zpd_model_info{" in text
        and "process_resident_memory_bytes" in text
        and "python_gc_objects_collected_total" in text
    )


def test_unreadable_state_is_rebuilt_from_the_event_log(api) -> None:
    c, h = api.client, api.h()
    c.post("/v1/events", json=[native(1), native(2, item=ITEM2)], headers=h)
    record = api.store.get("tenant-a", "s1")
    good = c.get("/v1/learners/s1/profile", headers=h).json()["mastery"]
    record.state = b"PK\x03\x04 an old zip-based state"
    api.store.commit(record, record.version, [])
    again = c.get("/v1/learners/s1/profile", headers=h)
    assert again.status_code == 200 and again.json()["mastery"] == good
    # the rebuilt state was stored, so later reads do not fold the event log again
    stored = api.store.get("tenant-a", "s1")
    assert stored.state.startswith(b"ZPDS1") and stored.version == record.version + 1
    c.get("/v1/learners/s1/next", headers=h)
    assert api.store.get("tenant-a", "s1").version == stored.version


def test_state_of_another_model_is_rebuilt_once_and_stored(api) -> None:
    c, h = api.client, api.h()
    c.post("/v1/events", json=[native(1), native(2, item=ITEM2)], headers=h)
    record = api.store.get("tenant-a", "s1")
    live = record.state
    record.model_version = "older-model@1"  # as after a promotion
    record.state = b"ZPDS1 whatever the older model kept"
    api.store.commit(record, record.version, [])
    service = api.client.app.state.service
    reads = []
    original = service.store.events
    service.store.events = lambda *a: reads.append(a) or original(*a)
    try:
        for _ in range(3):
            assert c.get("/v1/learners/s1/next", headers=h).status_code == 200
    finally:
        service.store.events = original
    assert len(reads) == 1  # folded once, then served from the stored state
    stored = api.store.get("tenant-a", "s1")
    assert stored.model_version == service.core("tenant-a").version and stored.state == live
    assert stored.model_version.startswith(service.engine.models.current.version)
    assert 'zpd_rebuilt_on_read_total{why="model"} 1.0' in c.get("/metrics").text


def test_the_bundled_model_trained_on_real_learners_serves(tmp_path) -> None:
    from configs import load_config
    from serving.app import build_engine
    from serving.stores import open_store

    from .conftest import make_api

    engine = build_engine(load_config(env={}), model_uri="bundled")
    assert engine.models.current.version.startswith("hybrid@")
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    api = make_api(store, engine)
    with api.client as c:
        item = next(i.id for i in engine.catalog if i.standards == ("6.EE.B.8",) or "6.EE.B.8" in i.standards)
        assert c.post("/v1/events", json={**native(1), "item_id": item}, headers=api.h()).status_code == 200
        nxt = c.get("/v1/learners/s1/next", headers=api.h()).json()
        assert nxt["model_version"] == engine.models.current.version and nxt["recommendations"]
        mastery = c.get("/v1/learners/s1/profile", headers=api.h()).json()["mastery"]
        assert 0 < mastery["6.EE.B.8"]["p"] < 1 and 0 < mastery["K.CC.A.1"]["p"] < 1
    store.close()


def test_an_item_moved_to_other_standards_counts_there_for_the_learners_who_answered_it(
    api, tmp_path, monkeypatch
) -> None:
    """An admin moves one of the tenant's items to other standards: the answers received on it
    before count on the new standards from the next request that reads their learner (folded
    again from the log). A learner who never answered it keeps the state as stored, stamped with
    the new alignment, checkpoints too (a late answer still resumes from one), and `zpd replay
    --check` finds every learner as its log gives them."""
    from serving import checkpoints

    monkeypatch.setattr(checkpoints, "EVERY", 2)
    c, h, store = api.client, api.h(), api.store
    engine = c.app.state.engine
    version = engine.models.current.version
    stamp = c.app.state.service.core("tenant-a").version  # the model and the deployment's catalog
    assert stamp.startswith(f"{version}+c")
    item = {"id": "own-1", "title": "Own item", "standards": ["3.NF.A.1"], "modality": "online_practice"}
    first = c.put("/v1/items", json=[{**item, "duration_minutes": 5}], headers=h).json()
    assert (first["created"], first["realigned"], first["notes"]) == (1, [], [])
    shared = next(i.id for i in engine.catalog if i.standards == ("K.CC.A.1",))

    def answer(k: int, learner: str, item_id: str, minute: float) -> dict:
        return {"id": f"{learner}{k}", "learner_id": learner, "item_id": item_id, "correct": True,
                "timestamp": 1_790_000_000.0 + 60 * minute}  # fmt: skip

    answers = [answer(k, "lia", "own-1", k) for k in range(3)] + [answer(k, "bob", shared, k) for k in range(2)]
    assert c.post("/v1/events", json=answers, headers=h).status_code == 200
    more = [answer(k, "bob", shared, k) for k in range(2, 4)]  # a checkpoint after each batch
    assert c.post("/v1/events", json=more, headers=h).status_code == 200

    def evidence(learner: str) -> dict[str, int]:
        mastery = c.get(f"/v1/learners/{learner}/profile", params={"recent": 0}, headers=h).json()["mastery"]
        return {code: m["evidence"] for code, m in mastery.items() if m["evidence"]}

    assert set(evidence("lia")) == {"3.NF.A.1"}
    bob = store.get("tenant-a", "bob")
    assert bob is not None and bob.model_version == stamp and len(bob.meta["cp"]) == 2
    same = c.put("/v1/items", json=[{**item, "duration_minutes": 10}], headers=h).json()  # not its standards
    assert (same["updated"], same["realigned"], same["notes"]) == (1, [], [])
    moved = c.put("/v1/items", json=[{**item, "standards": ["4.NF.A.1"], "duration_minutes": 10}], headers=h).json()
    assert moved["realigned"] == ["own-1"] and "own-1" in moved["notes"][0]
    assert "folded again with the new standards when a request next reads them" in moved["notes"][0]
    assert set(evidence("lia")) == {"4.NF.A.1"}  # the first read folds her again, and keeps it
    assert store.get("tenant-a", "lia").model_version == f"{stamp}+a1"
    # her evidence as the profile lists it, and what changed since a date, are on the new standards too
    profile = c.get("/v1/learners/lia/profile", params={"changed_since": "2026-09-01T00:00:00Z"}, headers=h).json()
    assert {tuple(e["standards"]) for e in profile["recent_evidence"]} == {("4.NF.A.1",)}
    assert "4.NF.A.1" in profile["mastery"] and "3.NF.A.1" not in profile["mastery"]

    nxt = c.get("/v1/learners/bob/next", headers=h).json()
    assert nxt["model_version"] == version  # the model reported, without the alignment
    kept = store.get("tenant-a", "bob")
    assert kept.state == bob.state and kept.model_version == f"{stamp}+a1"
    assert [cp["model"] for cp in kept.meta["cp"]] == [f"{stamp}+a1"] * len(bob.meta["cp"])
    refolds: list[str] = []
    c.app.state.service.on_refold = lambda start, answers: refolds.append(start)
    late = c.post("/v1/events", json=[answer(9, "bob", shared, 2.5)], headers=h)
    assert late.status_code == 200 and refolds == ["checkpoint"]

    summary = replay_check(store, tmp_path)
    assert summary["learners"] == summary["matching"] == 2


def test_a_withdrawn_item_is_never_offered_and_answers_on_it_still_count(api) -> None:
    """An admin withdraws a shared item and one of the tenant's own (an activity IRI): neither is
    recommended, pinned, listed or put in a playlist any more; answers on them still arrive as
    aligned and count on their standards; another tenant keeps the shared one; sending an item
    again offers it again."""
    from urllib.parse import quote

    c, h = api.client, api.h()
    check = "gen-K.CC.A.1-check"
    pin = c.post("/v1/learners/wes/overrides", json={"pin_items": [check]}, headers=h)
    assert pin.status_code == 200
    first = c.get("/v1/learners/wes/next", headers=h).json()["recommendations"][0]
    assert first["item"]["id"] == check and first["kind"] == "pinned"  # offered before

    def offered(learner: str) -> set[str]:
        body = c.get(f"/v1/learners/{learner}/next", params={"n": 20, "alternatives": 5}, headers=h).json()
        ids = {r["item"]["id"] for r in body["recommendations"]}
        return ids | {a["item"]["id"] for r in body["recommendations"] for a in r["alternatives"]}

    # a grade-1 learner aiming at K.CC.A.1 likely knows it: the mastery check tests it out
    assert c.post("/v1/learners/gia", json={"grade": "1"}, headers=h).status_code == 200
    assert c.put("/v1/learners/gia/goal", json={"standards": ["K.CC.A.1"]}, headers=h).status_code == 200
    assert check in offered("gia")

    gone = c.delete(f"/v1/items/{check}", headers=h)
    assert gone.status_code == 200, gone.text
    assert gone.json()["withdrawn"] == check and gone.json()["standards"] == ["K.CC.A.1"]
    again = c.delete(f"/v1/items/{check}", headers=h)
    assert again.status_code == 404 and "withdrawn already" in again.json()["error"]["message"]
    assert c.delete("/v1/items/no-such-item", headers=h).json()["error"]["field"] == "item_id"
    bad = c.delete("/v1/items/a%20b", headers=h)  # not an item id: said so, not "unknown"
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_item"
    assert c.delete(f"/v1/items/{check}", headers=api.h("a_teacher")).status_code == 403

    assert check not in offered("wes")  # pinned, but withdrawn
    assert check not in offered("gia") and offered("gia")  # another item of K.CC.A.1 instead
    assert c.post("/v1/learners/ann", json={"grade": "K"}, headers=h).status_code == 200
    assert check not in offered("ann")
    playlist = c.post("/v1/learners/ann/playlist", json={"session_minutes": 120}, headers=h).json()
    assert check not in json.dumps(playlist)
    refused = c.post("/v1/learners/ann/overrides", json={"pin_items": [check]}, headers=h)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "pin_items[0]"

    listed = c.get("/v1/items", params={"standard": "K.CC.A.1"}, headers=h).json()["items"]
    assert check not in {i["id"] for i in listed} and listed
    hidden = c.get("/v1/items", params={"withdrawn": True}, headers=h).json()["items"]
    assert [(i["id"], i["withdrawn"]) for i in hidden] == [(check, True)]
    assert check not in c.get("/v1/standards/K.CC.A.1", headers=h).json()["items"]
    other = c.get("/v1/items", params={"standard": "K.CC.A.1"}, headers=api.h("b_all")).json()["items"]
    assert check in {i["id"] for i in other}  # withdrawn for this tenant only

    # answers on it (a learner who had it open) are aligned and count on its standard
    answered = c.post(
        "/v1/events", json={"id": "w1", "learner_id": "ann", "item_id": check, "correct": True}, headers=h
    )
    assert answered.status_code == 200 and answered.json()["unaligned"] == 0
    mastery = c.get("/v1/learners/ann/profile", params={"recent": 0}, headers=h).json()["mastery"]
    assert mastery["K.CC.A.1"]["evidence"] == 1

    # one of the tenant's own, named by an activity IRI
    iri = "https://lms.example/activities/count-to-10"
    own = {"id": iri, "title": "Count", "standards": ["K.CC.A.1"], "modality": "video", "duration_minutes": 5}
    assert c.put("/v1/items", json=[own], headers=h).status_code == 200
    assert c.delete(f"/v1/items/{quote(iri, safe='')}", headers=h).json()["withdrawn"] == iri
    assert {i["id"] for i in c.get("/v1/items", params={"own": True}, headers=h).json()["items"]} == set()

    # sent again: offered again
    record = next(i for i in hidden if i["id"] == check)
    back = c.put("/v1/items", json=[{**record, "withdrawn": False}], headers=h)
    assert back.status_code == 200, back.text
    assert check in {i["id"] for i in c.get("/v1/items", params={"standard": "K.CC.A.1"}, headers=h).json()["items"]}
    assert c.post("/v1/learners/ann/overrides", json={"pin_items": [check]}, headers=h).status_code == 200
    assert c.get("/v1/learners/ann/next", headers=h).json()["recommendations"][0]["item"]["id"] == check


def test_a_record_of_an_older_layout_is_brought_up_to_date_on_read(api, tmp_path) -> None:
    """A record of a layout before (meta version 2: answers on items that practise several units
    counted once per unit; 3: no activities per day, the learner's own pace; 4: exposures not
    folded) is folded again on its first read when its log holds what the newer layouts count;
    one without any is read as it is (and written anew in this layout with its next change).
    ``zpd replay --check`` finds each what its log gives in its layout: no difference."""
    from engine.learner import META_VERSION

    c, h, store = api.client, api.h(), api.store
    engine = c.app.state.engine
    whole = next(i.id for i in engine.catalog if i.standards == ("3.NF.A.3",))  # four parts
    single = next(i.id for i in engine.catalog if i.standards == ("K.CC.A.1",))
    lesson = next(i.id for i in engine.catalog if i.standards == ("K.CC.A.2",) and not i.modality.answers)
    for learner, item in (("multi", whole), ("plain", single), ("seen", single)):
        answers = [{"id": f"{learner}{k}", "learner_id": learner, "item_id": item, "correct": True} for k in range(3)]
        assert c.post("/v1/events", json=answers, headers=h).status_code == 200
    watched = {"id": "seen-lesson", "learner_id": "seen", "item_id": lesson, "kind": "exposure"}
    assert c.post("/v1/events", json=watched, headers=h).json()["not_evidence"] == 1
    assert store.get("tenant-a", "seen").meta["progress"]["recent_items"][-1] == lesson
    assert c.post("/v1/learners/idle", json={"grade": "3"}, headers=h).status_code in (200, 201)
    assert c.put("/v1/learners/idle/goal", json={"standards": ["3.NF.A.3"]}, headers=h).status_code == 200
    before, older = {}, {"multi": 2, "plain": 3, "idle": 3, "seen": 4}
    for learner, layout in older.items():  # as the layouts before wrote them
        record = store.get("tenant-a", learner)
        dropped = ("shared", "days", "started") if layout == 2 else ("days", "started") if layout == 3 else ()
        progress = {k: v for k, v in record.meta["progress"].items() if k not in dropped}
        record.meta = {**record.meta, "v": layout, "progress": progress}
        if layout == 4:  # the exposure was not folded
            progress["recent_items"] = [i for i in progress["recent_items"] if i != lesson]
            record.meta["last"] = max(e.time for e in store.events("tenant-a", learner) if e.kind == "answer")
        store.commit(record, record.version, [])
        before[learner] = store.get("tenant-a", learner)
    assert "shared" not in before["multi"].meta["progress"] and META_VERSION == 5
    summary = replay_check(store, tmp_path)
    assert (summary["learners"], summary["stamp_only"], summary["differing"]) == (4, 4, []), summary

    def evidence(learner: str) -> int:
        profile = c.get(f"/v1/learners/{learner}/profile", params={"standards": "3.NF.A.3,K.CC.A.1"}, headers=h)
        return max(m["evidence"] for m in profile.json()["mastery"].values())

    assert evidence("multi") == 3  # not 12: the answers were counted again
    multi = store.get("tenant-a", "multi")
    assert multi.meta["v"] == 5 and multi.meta["progress"]["shared"] and multi.meta["progress"]["days"]
    assert evidence("plain") == 3
    plain = store.get("tenant-a", "plain")
    assert plain.meta["v"] == 5 and sum(n for _, n in plain.meta["progress"]["days"]) == 3
    assert evidence("seen") == 3
    seen = store.get("tenant-a", "seen")
    assert seen.meta["v"] == 5 and seen.meta["progress"]["recent_items"][-1] == lesson
    assert c.get("/v1/learners/idle/profile", headers=h).status_code == 200
    idle = store.get("tenant-a", "idle")
    assert idle.meta["v"] == 3 and idle.version == before["idle"].version and not idle.state
    scraped = c.get("/metrics").text
    assert 'zpd_rebuilt_on_read_total{why="layout"} 3.0' in scraped
    assert replay_check(store, tmp_path)["differing"] == []


def test_the_lean_next_route_answers_as_the_fastapi_route_does(api) -> None:
    """``GET /next`` is served by :class:`serving.deps.LeanRoute` ahead of FastAPI's routing. Every
    answer (recommendations with their alternatives and reasons, teacher flags, an empty plan,
    each kind of refusal) must be the one FastAPI's own route gives: the same requests are sent
    with the lean route and again with it taken out, the clock held still."""
    from serving.auth import create_key
    from serving.deps import LeanRoute

    c, app = api.client, api.client.app
    app.state.service.clock = lambda: 1_796_000_000.0  # 2026-11-30
    events = [native(i, item=ITEM, correct=i % 3 == 0) for i in range(8)]
    events += [native(20 + i, learner="s2", item=ITEM2, correct=False) for i in range(6)]  # struggling: a flag
    assert c.post("/v1/events", json=events, headers=api.h("a_ingest")).status_code == 200
    assert c.put("/v1/learners/s1/goal", json={"standards": ["1.OA.A.1"]}, headers=api.h("a_all")).status_code == 200
    teacher = {"Authorization": f"Bearer {create_key(api.store, 'tenant-a', ['read', 'teacher'], user='t-none')}"}
    requests = [
        ("GET", "/v1/learners/s1/next", api.h("a_read")),
        ("GET", "/v1/learners/s1/next?n=3&alternatives=5", api.h("a_read")),
        ("GET", "/v1/learners/s2/next?n=2&alternatives=0", api.h("a_all")),
        ("GET", "/v1/learners/new-1/next?grade=4", api.h("a_read")),
        ("GET", "/v1/learners/new-2/next?grade=K&n=20", api.h("a_read")),
        ("GET", "/v1/learners/s1/next?n=0", api.h("a_read")),
        ("GET", "/v1/learners/s1/next?n=three&alternatives=9", api.h("a_read")),
        ("GET", "/v1/learners/s1/next?grade=13", api.h("a_read")),
        ("GET", "/v1/learners/" + "x" * 300 + "/next", api.h("a_read")),
        ("GET", "/v1/learners/s1/next", api.h("a_ingest")),
        ("GET", "/v1/learners/s1/next", {}),
        ("GET", "/v1/learners/s1/next", {"Authorization": "Basic !!"}),
        ("GET", "/v1/learners/s1/next", teacher),
        ("GET", "/v1/learners/s1/next", api.h("b_all")),
        ("HEAD", "/v1/learners/s1/next", api.h("a_read")),
        ("POST", "/v1/learners/s1/next", api.h("a_read")),
    ]

    def answers() -> list[tuple[int, str, str | None, str | None]]:
        out = []
        for method, path, headers in requests:
            r = c.request(method, path, headers=headers)
            out.append((r.status_code, r.text, r.headers.get("allow"), r.headers.get("www-authenticate")))
        return out

    lean = [route for route in app.router.routes if isinstance(route, LeanRoute)]
    assert [route.path for route in lean] == ["/v1/learners/{learner_id}/next"]
    served = answers()
    assert [status for status, *_ in served] == [200] * 5 + [422] * 4 + [403, 401, 401, 404, 200, 405, 405]
    assert json.loads(served[2][1])["flags"] and json.loads(served[1][1])["recommendations"][0]["alternatives"]
    metrics = c.get("/metrics", headers=api.h("a_all")).text
    assert 'route="/v1/learners/{learner_id}/next"' in metrics
    for route in lean:
        app.router.routes.remove(route)
    assert answers() == served


def test_a_route_the_lean_path_cannot_serve_is_refused_when_the_app_is_built() -> None:
    """``LeanRoute`` serves path and query parameters, the service and a scope check, on an
    async endpoint: a route with a body, a sync endpoint or another dependency is refused up
    front, not served differently from FastAPI."""
    from fastapi import Depends
    from fastapi.routing import APIRoute

    from serving.deps import LeanRoute, ReadDep
    from serving.routes import learners

    playlist = next(
        r for r in learners.router.routes if isinstance(r, APIRoute) and r.endpoint is learners.post_playlist
    )
    with pytest.raises(ValueError, match="path and query parameters"):
        LeanRoute(playlist)

    def sync(principal: ReadDep) -> dict:
        return {}

    with pytest.raises(ValueError, match="async endpoint"):
        LeanRoute(APIRoute("/x", sync))

    async def other(value: int = Depends(lambda: 1)) -> dict:
        return {}

    with pytest.raises(ValueError, match="no lean resolver"):
        LeanRoute(APIRoute("/y", other))


def test_the_gps_judges_a_learner_who_has_worked_a_week_at_their_own_pace(api) -> None:
    """The profile's GPS gives the learner's own pace (activities a day over the last four weeks)
    once they have worked a week, with the estimate at it; on track or not is judged on it."""
    c, h = api.client, api.h()
    now = 1_796_000_000.0  # 2026-11-30
    c.app.state.service.clock = lambda: now
    goal = {"standards": ["K.CC.A.1"], "date": "2027-06-01T00:00:00Z"}
    assert c.put("/v1/learners/pace/goal", json=goal, headers=h).status_code == 200
    fresh = c.get("/v1/learners/pace/profile", headers=h).json()["gps"]
    assert fresh["own_pace"] is None and fresh["status"] == "not_started"
    answers = [  # one answer every five days over the last three weeks, all wrong: nothing mastered
        {
            "id": f"p{k}",
            "learner_id": "pace",
            "item_id": ITEM2,
            "correct": False,
            "timestamp": now - (20 - 5 * k) * 86400,
        }
        for k in range(5)
    ]
    assert c.post("/v1/events", json=answers, headers=h).status_code == 200
    gps = c.get("/v1/learners/pace/profile", headers=h).json()["gps"]
    assert gps["own_pace"]["days"] == 21 and gps["own_pace"]["activities_per_day"] == round(5 / 21, 2)
    assert abs(gps["own_pace"]["estimated_days"] - gps["estimated_activities"] * 21 / 5) < 0.5
    assert "learner's pace" in gps["explanation"]


def test_one_goal_for_many_learners_is_one_write_and_a_second_time_none(api) -> None:
    """A class's goal (``LearnerService.set_goals``): known and unknown learners alike get it, in
    one store write; setting it again writes nothing."""
    from engine.planner.context import Goal

    service = api.client.app.state.service
    assert api.client.post("/v1/events", json=[native(1)], headers=api.h()).status_code == 200  # s1 exists
    writes = []
    commit_many = service.store.commit_many
    service.store.commit_many = lambda prepared: writes.append(len(prepared)) or commit_many(prepared)
    goal = Goal(("4.NF.B.3",))
    service.set_goals("tenant-a", ["s1", "new-1", "new-2", "s1"], goal)
    assert writes == [3]
    assert all(service.load("tenant-a", lid).meta.goal == goal for lid in ("s1", "new-1", "new-2"))
    versions = {lid: api.store.get("tenant-a", lid).version for lid in ("s1", "new-1", "new-2")}
    service.set_goals("tenant-a", ["s1", "new-1", "new-2"], goal)
    assert writes == [3, 0] and {lid: api.store.get("tenant-a", lid).version for lid in versions} == versions
    profile = api.client.get("/v1/learners/new-2/profile", headers=api.h()).json()
    assert profile["goal"]["standards"] == ["4.NF.B.3"] and profile["events"] == 0


@contextmanager
def blocked_in(
    monkeypatch, target: object, method: str | tuple[str, ...], sends: list[Callable[[], int]]
) -> Iterator[tuple[Any, list[int]]]:
    """Each of ``sends`` (a request, returning its status) made from a thread of its own, held
    once it calls ``target.method`` (or any of several methods) until the block ends: yields a
    semaphore released by each request reaching one, and the statuses answered so far."""
    import threading

    entered, release = threading.Semaphore(0), threading.Event()

    def holding(original: Callable[..., Any]) -> Callable[..., Any]:
        def held(*args, **kwargs):
            entered.release()
            release.wait(60)
            return original(*args, **kwargs)

        return held

    for name in (method,) if isinstance(method, str) else method:
        monkeypatch.setattr(target, name, holding(getattr(target, name)))
    answers: list[int] = []
    threads = [threading.Thread(target=lambda send=send: answers.append(send())) for send in sends]
    for t in threads:
        t.start()
    try:
        yield entered, answers
    finally:
        release.set()
        for t in threads:
            t.join(60)


def test_probes_answer_while_every_request_thread_is_busy(api, monkeypatch) -> None:
    """Liveness is answered on the event loop, readiness and metrics in threads of their own:
    requests holding all ``request_threads`` (here blocked on purpose) do not hold them up, so a
    busy worker is not taken for a dead or unready one, and a scrape does not time out."""
    threads = api.client.app.state.config.serving.request_threads
    h = api.h()
    sends = [lambda: api.client.get("/v1/standards/4.NF.B.3", headers=h).status_code] * threads
    with blocked_in(monkeypatch, api.client.app.state.service, "graph", sends) as (entered, answers):
        for _ in range(threads):  # every request thread is taken
            assert entered.acquire(timeout=60)
        assert api.client.get("/healthz").json() == {"status": "ok"}
        assert api.client.get("/readyz").json()["status"] == "ready"
        assert "zpd_requests_total" in api.client.get("/metrics").text
        assert answers == []  # answered while they all still wait
    assert answers == [200] * threads


def the_others_answer(
    api, monkeypatch, held: str | tuple[str, ...], sends: list[Callable[[], int]], threads: int, learner: str
) -> None:
    """``sends`` at once, each held in the service's ``held`` method(s), which only ``threads``
    of them reach at a time (the others wait for one of those threads, not a request thread);
    meanwhile a standards read and a playlist answer. Every one of them answers 200 once released."""
    import time

    h = api.h()
    with blocked_in(monkeypatch, api.client.app.state.service, held, sends) as (entered, answers):
        for _ in range(threads):  # every such thread is taken
            assert entered.acquire(timeout=60)
        time.sleep(0.2)
        assert not entered.acquire(blocking=False)  # the others wait for one
        assert api.client.get("/v1/standards/4.NF.B.3", headers=h).status_code == 200
        playlist = api.client.post(f"/v1/learners/{learner}/playlist", json={"session_minutes": 30}, headers=h)
        assert playlist.status_code == 200 and playlist.json()["activities"]
        assert answers == []  # answered while every one of them still waits
    assert answers == [200] * len(sends)


def test_a_burst_of_event_batches_does_not_hold_up_the_other_routes(api, monkeypatch) -> None:
    """Event batches and statements are stored in the worker's ingestion threads (``[serving]
    ingest_threads``), not in its request threads: more batches than there are request threads
    (here blocked on purpose, as a burst of large batches from an LMS) leave the other routes
    answering, and wait for their turn, every one of them stored once released."""

    serving = api.client.app.state.config.serving
    h = api.h()
    burst = serving.request_threads + serving.ingest_threads

    def send(k: int) -> int:
        if k % 2:  # statements go the same way
            body = [
                {
                    "id": f"00000000-0000-4000-8000-{k:012d}",
                    "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": f"b{k}"}},
                    "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
                    "object": {"objectType": "Activity", "id": "https://content.example.com/activities/q3"},
                    "result": {"success": True},
                }
            ]
            return api.client.post("/xapi/statements", json=body, headers=h).status_code
        body = [{"id": f"burst-{k}", "learner_id": f"b{k}", "item_id": "gen-K.CC.A.1-check", "correct": True}]
        return api.client.post("/v1/events", json=body, headers=h).status_code

    sends = [lambda k=k: send(k) for k in range(burst)]
    the_others_answer(api, monkeypatch, "ingest", sends, serving.ingest_threads, "b0")
    assert all(api.store.get("tenant-a", f"b{k}") is not None for k in range(0, burst, 2))


def test_long_admin_routes_do_not_hold_up_the_other_routes(api, monkeypatch) -> None:
    """Items, erasures (and a standards import, a model through the gate) run in the worker's
    admin threads (``[serving] admin_threads``), not in its request threads: more of them at once
    than there are request threads (here blocked on purpose, as a catalog synced in parallel
    batches) leave a teacher's pages answering, and each is done once released."""

    serving = api.client.app.state.config.serving
    h = api.h()
    for k in range(8):
        assert api.client.post(f"/v1/learners/leaver-{k}", json={"grade": "3"}, headers=h).status_code == 200
    burst = serving.request_threads + serving.admin_threads

    def send(k: int) -> int:
        if k % 2:
            return api.client.post("/v1/erasures", json={"learner_ids": [f"leaver-{k}"]}, headers=h).status_code
        item = {
            "id": f"synced-{k}",
            "title": "Counting to 20",
            "standards": ["K.CC.A.1"],
            "modality": "online_practice",
            "duration_minutes": 5,
        }
        return api.client.put("/v1/items", json=[item], headers=h).status_code

    sends = [lambda k=k: send(k) for k in range(burst)]
    # PUT /v1/items held once its items are stored, POST /v1/erasures before it erases
    the_others_answer(api, monkeypatch, ("realign", "delete_learners"), sends, serving.admin_threads, "s1")
    items = {i["id"] for i in api.client.get("/v1/items?standard=K.CC.A.1&limit=1000", headers=h).json()["items"]}
    assert {f"synced-{k}" for k in range(0, burst, 2)} <= items
    assert all(api.store.get("tenant-a", f"leaver-{k}") is None for k in range(1, burst, 2))
