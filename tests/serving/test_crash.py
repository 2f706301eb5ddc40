"""Crashes and races on the ingestion path, over real HTTP.

* ``zpd serve`` is SIGKILLed while client threads post batches (on Redis, redis-server is
  SIGKILLed too and restarted on its data directory). After a restart every event whose batch was
  acknowledged is there, no stored event differs from what was first sent under its id, nothing
  of a batch refused with 409 is stored, and every learner's state is a fresh fold of its log.
* Many clients post the same event ids at once through two workers on one store: each event is
  stored once and counted once as accepted; a conflicting repeat is refused whole (409), or, if
  the conflict shows only after other learners of the batch were written, its learner's events
  are listed in ``retry``: a 409 never follows a partial write.

A SIGKILL stops processes, not the machine: it checks that an acknowledgement follows the commit
and that commits are atomic, not that the store's fsync reaches the disk (a power loss).
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from configs import load_config
from models.base import state_from_bytes
from serving.app import create_app
from serving.auth import create_key
from serving.service import LearnerService
from serving.stores import open_store
from serving.stores.base import LearnerStore
from zpd.cli import app as cli

from .conftest import LiveServer, RedisServer, ZpdServer
from .test_live import make_config

ITEMS = ("gen-K.CC.A.1-check", "gen-K.G.A.1-practice-1", "gen-K.CC.B.4.a-check")
LEARNERS = tuple(f"k{n}" for n in range(8))
T0 = 1_800_000_000  # event times (epoch seconds), 2027
TENANT = "crash"

#: what an event is, as the store keeps it: learner, item, outcome, time
Content = tuple[str, str, float, float]


# ---------------------------------------------------------------------------- the clients' ledger
@dataclass
class Ledger:
    """What the clients sent under each id (first content only), what was acknowledged, what was
    refused with 409, any answer no client should ever get, and the requests in flight."""

    sent: dict[str, Content] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def flying(self) -> Iterator[None]:
        with self.lock:
            self.in_flight += 1
        try:
            yield
        finally:
            with self.lock:
                self.in_flight -= 1

    def send(self, contents: dict[str, Content]) -> None:
        with self.lock:
            for event_id, content in contents.items():
                self.sent.setdefault(event_id, content)

    def ack(self, ids: set[str]) -> None:
        with self.lock:
            self.acked |= ids

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


def native(event_id: str, learner: str, item: str, correct: bool, timestamp: int) -> dict[str, Any]:
    return {"id": event_id, "learner_id": learner, "item_id": item, "correct": correct, "timestamp": timestamp}


def statement(statement_id: str, learner: str, item: str, success: bool, timestamp: int) -> dict[str, Any]:
    return {
        "id": statement_id,
        "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": learner}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"objectType": "Activity", "id": item},
        "result": {"success": success},
        "timestamp": datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z"),
    }


def native_content(event: dict[str, Any]) -> Content:
    return (event["learner_id"], event["item_id"], float(event["correct"]), float(event["timestamp"]))


def post_native(client: int, url: str, key: str, ledger: Ledger, stop: threading.Event, crashing: threading.Event):
    """Fresh batches over a few shared learners (and now and then a new one); every 5th batch
    resends an acknowledged one (all duplicates); every 7th repeats an acknowledged id with the
    other outcome next to a fresh event (409: the fresh event must never be stored)."""
    rng = random.Random(client)
    done: list[list[dict[str, Any]]] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        b = 0
        while not stop.is_set():
            b += 1
            t = T0 + 10_000 * client + 10 * b
            fresh = [
                native(
                    f"c{client}-b{b}-{j}",
                    f"n{client}-{b}" if j == 0 and b % 3 == 0 else rng.choice(LEARNERS),
                    rng.choice(ITEMS),
                    rng.random() < 0.6,
                    t + j,
                )
                for j in range(rng.randint(1, 12))
            ]
            kind = "fresh"
            if b % 5 == 0 and done:
                kind, batch = "resend", rng.choice(done)
            elif b % 7 == 0 and done:
                old = rng.choice(rng.choice(done))
                kind, batch = "conflict", [fresh[0], {**old, "correct": not old["correct"]}]
            else:
                batch = fresh
            ledger.send({e["id"]: native_content(e) for e in batch})
            try:
                with ledger.flying():
                    r = http.post("/v1/events", json=batch)
            except httpx.HTTPError as exc:
                if not crashing.is_set():
                    ledger.error(f"client {client}: {type(exc).__name__} before the crash: {exc}")
                return
            ids = {e["id"] for e in batch}
            if r.status_code == 200:
                answer = r.json()
                ledger.ack(ids - set(answer["retry"]))
                if kind == "conflict" and batch[1]["id"] not in answer["retry"]:
                    ledger.error(f"client {client}: a conflicting repeat was acknowledged: {answer}")
                elif kind == "resend" and (answer["accepted"], answer["duplicates"]) != (0, len(batch)):
                    ledger.error(f"client {client}: a resent batch was not all duplicates: {answer}")
                elif kind == "fresh":
                    done.append(batch)
            elif r.status_code == 409 and kind == "conflict":
                with ledger.lock:
                    ledger.refused.add(fresh[0]["id"])
            elif not (r.status_code == 503 and crashing.is_set()):
                ledger.error(f"client {client}: {kind} batch answered {r.status_code}: {r.text[:300]}")


def post_statements(url: str, key: str, ledger: Ledger, stop: threading.Event, crashing: threading.Event) -> None:
    """xAPI statements as an LRS forwards them (HTTP Basic, the key as the password)."""
    rng = random.Random(99)
    with httpx.Client(base_url=url, auth=("lrs", key), timeout=30) as http:
        b = 0
        while not stop.is_set():
            b += 1
            batch = [
                statement(
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    rng.choice(LEARNERS),
                    rng.choice(ITEMS),
                    rng.random() < 0.5,
                    T0 + 900_000 + 10 * b + j,
                )
                for j in range(rng.randint(1, 6))
            ]
            ledger.send(
                {
                    st["id"]: (
                        st["actor"]["account"]["name"],
                        st["object"]["id"],
                        float(st["result"]["success"]),
                        float(T0 + 900_000 + 10 * b + j),
                    )
                    for j, st in enumerate(batch)
                }
            )
            try:
                with ledger.flying():
                    r = http.post("/xapi/statements", json=batch)
            except httpx.HTTPError as exc:
                if not crashing.is_set():
                    ledger.error(f"statements: {type(exc).__name__} before the crash: {exc}")
                return
            if r.status_code == 200:
                ledger.ack({st["id"] for st in batch})
            elif not (r.status_code == 503 and (crashing.is_set() or r.json()["error"]["code"] == "busy")):
                ledger.error(f"statements answered {r.status_code}: {r.text[:300]}")


# ---------------------------------------------------------------------------- checking a store
def stored_events(store: LearnerStore, tenant: str, learners: set[str]) -> dict[str, tuple[Content, int]]:
    """Every event of these learners: id -> (content, how many times it is stored)."""
    found: dict[str, tuple[Content, int]] = {}
    for learner in learners:
        for e in store.events(tenant, learner):
            assert e.correct is not None
            previous = found.get(e.id)
            found[e.id] = ((learner, e.item_id, e.correct, e.timestamp), 1 + (previous[1] if previous else 0))
    return found


def assert_states_are_replays(store: LearnerStore, engine: Any, tenant: str, learners: set[str]) -> None:
    """Each learner's stored state and meta equal a fresh fold of its event log."""
    service = LearnerService(engine, store)
    core = service.core(tenant)
    for learner in sorted(learners):
        record = store.get(tenant, learner)
        assert record is not None, f"learner {learner} has events but no record"
        assert record.event_count == len(store.events(tenant, learner)), learner
        assert record.model_version == core.version, (learner, record.model_version, core.version)
        fold = service.rebuild(core, record)
        live = state_from_bytes(record.state)
        assert live.keys() == fold.state.keys(), learner
        assert all(np.allclose(live[k], fold.state[k], rtol=1e-6, atol=1e-9) for k in live), learner
        assert json.loads(json.dumps(fold.meta.to_json())) == record.meta, learner


def assert_ledger_holds(store: LearnerStore, tenant: str, ledger: Ledger) -> set[str]:
    """Acknowledged events are stored once with the content first sent, refused ones are not
    stored; returns the learners that have events."""
    learners = {content[0] for content in ledger.sent.values()}
    stored = stored_events(store, tenant, learners)
    lost = sorted(ledger.acked - stored.keys())
    assert not lost, f"{len(lost)} acknowledged events lost, e.g. {lost[:5]}"
    twice = sorted(i for i, (_, n) in stored.items() if n > 1)
    assert not twice, f"events stored more than once: {twice[:5]}"
    unknown = sorted(stored.keys() - ledger.sent.keys())
    assert not unknown, f"events nobody sent: {unknown[:5]}"
    changed = {i: (c, ledger.sent[i]) for i, (c, _) in stored.items() if c != ledger.sent[i]}
    assert not changed, f"events stored with other content than first sent: {list(changed.items())[:3]}"
    landed = sorted(ledger.refused & stored.keys())
    assert not landed, f"events of batches refused with 409 were stored: {landed[:5]}"
    return {content[0] for content, _ in stored.values()}


# ---------------------------------------------------------------------------- kill -9 mid-stream
def run_clients(url: str, key: str, ledger: Ledger, crash: Callable[[], None], min_acked: int = 150) -> None:
    """Three native clients and an LRS post until ``min_acked`` events are acknowledged; then
    ``crash`` runs while at least two requests are in flight."""
    stop, crashing = threading.Event(), threading.Event()
    threads = [threading.Thread(target=post_native, args=(n, url, key, ledger, stop, crashing)) for n in range(3)]
    threads.append(threading.Thread(target=post_statements, args=(url, key, ledger, stop, crashing)))
    for t in threads:
        t.start()
    try:
        deadline = time.time() + 60
        while len(ledger.acked) < min_acked and time.time() < deadline and not ledger.errors:
            time.sleep(0.02)
        deadline = time.time() + 10
        while ledger.in_flight < 2 and time.time() < deadline:
            time.sleep(0.001)
        crashing.set()
        crash()
    finally:
        crashing.set()
        stop.set()
        for t in threads:
            t.join(30)
    assert not any(t.is_alive() for t in threads), "a client hangs after the crash"
    assert not ledger.errors, ledger.errors[:5]
    assert len(ledger.acked) >= min_acked, f"only {len(ledger.acked)} events acknowledged before the crash"


def replay_check(config: Path) -> dict[str, Any]:
    check = CliRunner().invoke(cli, ["--config", str(config), "replay", "--check", "--json"])
    assert check.exit_code == 0, check.output
    return json.loads(check.stdout.strip().splitlines()[-1])


def assert_recovered(config: Path, url: str, key: str, ledger: Ledger, engine: Any) -> None:
    """After the restart: the API answers for every learner with every event the store holds,
    the ledger holds, and states are replays (``zpd replay --check`` agrees)."""
    server = ZpdServer(config)
    try:
        with open_store(url) as store:
            learners = assert_ledger_holds(store, TENANT, ledger)
            counts = {learner: len(store.events(TENANT, learner)) for learner in learners}
            listed = {learner for _, learner in store.learners(TENANT)}
            assert learners <= listed, f"stored but not listed: {sorted(learners - listed)}"
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            for learner, n in sorted(counts.items()):
                r = http.get(f"/v1/learners/{learner}/profile", params={"recent": 0})
                assert r.status_code == 200 and r.json()["events"] == n, (learner, n, r.text[:300])
    finally:
        server.stop()
    with open_store(url) as store:
        assert_states_are_replays(store, engine, TENANT, learners)
    summary = replay_check(config)
    assert summary["differing"] == [] and summary["matching"] == summary["learners"] >= len(LEARNERS), summary


def test_acknowledged_events_survive_a_sigkill_of_the_server_on_sqlite(tmp_path, shared_engine) -> None:
    url = f"sqlite:///{(tmp_path / 'zpd.db').as_posix()}"
    with open_store(url) as store:
        key = create_key(store, TENANT, ["ingest", "read"])
    config = make_config(tmp_path, url)
    ledger = Ledger()
    server = ZpdServer(config)
    try:
        run_clients(server.url, key, ledger, server.kill)
    finally:
        server.kill()
    assert_recovered(config, url, key, ledger, shared_engine)


def test_acknowledged_events_survive_a_sigkill_of_the_server_and_redis(tmp_path, shared_engine) -> None:
    """Redis runs with ``appendonly yes`` and ``appendfsync always`` (see RedisServer)."""
    folder = tmp_path / "redis"
    folder.mkdir()
    redis = RedisServer(folder)
    try:
        with open_store(redis.url) as store:
            key = create_key(store, TENANT, ["ingest", "read"])
        ledger = Ledger()
        server = ZpdServer(make_config(tmp_path, redis.url))

        def crash() -> None:
            redis.proc.kill()  # SIGKILL: no shutdown, no final AOF flush
            redis.proc.wait(10)
            server.kill()

        try:
            run_clients(server.url, key, ledger, crash)
        finally:
            server.kill()
        redis = RedisServer(folder)  # the same data directory, its append-only file
        assert_recovered(make_config(tmp_path, redis.url), redis.url, key, ledger, shared_engine)
    finally:
        redis.stop()


# ---------------------------------------------------------------------------- the same ids at once
@pytest.fixture(params=["sqlite", "redis"])
def two_workers(request, tmp_path, shared_engine) -> Iterator[tuple[list[str], dict[str, str], LearnerStore]]:
    """Two API workers over real HTTP, each with its own service and store connection on one
    store: their writes race in the store, not only in one worker's locks."""
    url = f"sqlite:///{tmp_path / 'zpd.db'}" if request.param == "sqlite" else request.getfixturevalue("redis_url")
    stores = [open_store(url), open_store(url)]
    key = create_key(stores[0], TENANT, ["ingest", "read"])
    servers = [LiveServer(create_app(load_config(env={}), store=s, engine=shared_engine)) for s in stores]
    try:
        yield [s.url for s in servers], {"Authorization": f"Bearer {key}"}, stores[0]
    finally:
        for server in servers:
            server.stop()
        for s in stores:
            s.close()


def all_at_once(urls: list[str], headers: dict[str, str], bodies: list[Any]) -> list[httpx.Response]:
    """POST /v1/events with each body from its own thread, released together, alternating workers."""
    barrier = threading.Barrier(len(bodies))
    clients = [httpx.Client(base_url=urls[k % len(urls)], headers=headers, timeout=60) for k in range(len(bodies))]

    def post(k: int) -> httpx.Response:
        barrier.wait(30)
        return clients[k].post("/v1/events", json=bodies[k])

    try:
        with ThreadPoolExecutor(len(bodies)) as pool:
            return list(pool.map(post, range(len(bodies))))
    finally:
        for c in clients:
            c.close()


THREADS = 8


def test_the_same_events_posted_at_once_are_stored_once(two_workers, shared_engine) -> None:
    """Every thread sends the same batch: one stores it, the others are told it is a duplicate."""
    urls, h, store = two_workers
    sent: dict[str, Content] = {}
    learners = {"d0", "d1", "d2"}
    for r in range(15):
        batch = [
            native(f"r{r}-{j}", f"d{(r + j) % 3}", ITEMS[j % 3], j % 2 == 0, T0 + 100 * r + j) for j in range(1 + r % 5)
        ]
        sent |= {e["id"]: native_content(e) for e in batch}
        answers = all_at_once(urls, h, [batch] * THREADS)
        assert [a.status_code for a in answers] == [200] * THREADS, [a.text[:200] for a in answers]
        bodies = [a.json() for a in answers]
        for body in bodies:
            assert body["accepted"] + body["duplicates"] + len(body["retry"]) == len(batch), body
        assert sum(b["accepted"] for b in bodies) == len(batch), (r, bodies)
    stored = stored_events(store, TENANT, learners)
    assert {i: c for i, (c, _) in stored.items()} == sent
    assert all(n == 1 for _, n in stored.values())
    assert_states_are_replays(store, shared_engine, TENANT, learners)


def test_a_conflicting_repeat_posted_at_once_is_refused_whole(two_workers, shared_engine) -> None:
    """Each round, every thread sends one contested id in one of three versions (two outcomes for
    learner c0, one for learner c1) next to fresh events of its own, for c0 and for a learner of
    its own. One version is stored. A thread that sent it is acknowledged; a thread that sent
    another gets 409 with none of its events stored, or, if the conflict showed only once its
    other learner was written, 200 with the contested learner's events listed in ``retry`` and
    not stored (a 409 never follows a partial write)."""
    urls, h, store = two_workers
    learners = {"c0", "c1"} | {f"o{k}" for k in range(THREADS)}
    sent: dict[str, Content] = {}
    problems: list[str] = []
    for r in range(20):
        versions = [("c0", True), ("c0", False), ("c1", True)]
        batches = []
        for k in range(THREADS):
            learner, correct = versions[(k + r) % 3]
            batch = [
                native(f"r{r}-x", learner, ITEMS[0], correct, T0 + 100 * r),
                native(f"r{r}-k{k}-own", f"o{k}", ITEMS[1], True, T0 + 100 * r + 1),
                native(f"r{r}-k{k}-c0", "c0", ITEMS[2], False, T0 + 100 * r + 2),
            ]
            batches.append(batch)
            sent |= {e["id"]: native_content(e) for e in batch[1:]}
        answers = all_at_once(urls, h, batches)
        stored = {i: c for i, (c, _) in stored_events(store, TENANT, learners).items()}
        winner = stored.get(f"r{r}-x")
        assert winner is not None, f"round {r}: no version of the contested event was stored"
        sent[f"r{r}-x"] = winner
        for k, (batch, answer) in enumerate(zip(batches, answers)):
            mine, where = native_content(batch[0]), f"round {r} thread {k}"
            if answer.status_code == 409:
                if mine == winner:
                    problems.append(f"{where}: sent the stored version, got 409")
                landed = {e["id"] for e in batch[1:]} & stored.keys()
                if landed:
                    problems.append(f"{where}: refused with 409 but stored {sorted(landed)}")
            elif answer.status_code == 200:
                retry = set(answer.json()["retry"])
                acked = {e["id"] for e in batch} - retry
                wrong = {i for i in acked if stored.get(i) != native_content(next(e for e in batch if e["id"] == i))}
                if wrong:
                    problems.append(f"{where}: acknowledged, not stored as sent: {sorted(wrong)} ({answer.json()})")
                landed = (retry - {batch[0]["id"]}) & stored.keys()
                if landed:
                    problems.append(f"{where}: listed for a retry but stored: {sorted(landed)}")
            else:
                problems.append(f"{where}: answered {answer.status_code}: {answer.text[:200]}")
    assert not problems, "\n".join(problems[:10]) + f"\n({len(problems)} in all)"
    stored_all = stored_events(store, TENANT, learners)
    assert all(n == 1 for _, n in stored_all.values())
    assert {i: c for i, (c, _) in stored_all.items()}.items() <= sent.items()
    assert_states_are_replays(store, shared_engine, TENANT, {c[0] for c, _ in stored_all.values()})
