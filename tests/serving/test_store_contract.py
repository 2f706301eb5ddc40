"""One contract, two real stores: SQLite (a file in tmp_path) and a real redis-server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from serving.stores import open_store
from serving.stores.base import (
    ROSTER_HISTORY,
    ApiKeyRecord,
    Commit,
    LearnerRecord,
    RecordPages,
    StoredEvent,
    StoreError,
    StoreUnavailable,
    Unaligned,
    VersionConflict,
    page_of,
)

from .conftest import store_url


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
def store(request, tmp_path):
    s = open_store(store_url(request, tmp_path, request.param))
    yield s
    s.close()


def in_threads(work: Callable[[int], None], n: int) -> None:
    """``work(0)`` ... ``work(n - 1)`` at once, each in a thread of its own."""
    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def event(i: int, correct: float = 1.0) -> StoredEvent:
    return StoredEvent(f"e{i}", f"item-{i}", ("A",), correct, 1000.0 + i, time.time(), f"hash-{i}")


def test_commit_and_read_back(store) -> None:
    assert store.get("t1", "l1") is None
    rec = LearnerRecord("t1", "l1", model_version="bkt@1", state=b"\x00\x01state", meta={"goal": ["A"]})
    store.commit(rec, 0, [event(1), event(2)])
    assert rec.version == 1 and rec.event_count == 2
    got = store.get("t1", "l1")
    assert (got.version, got.model_version, got.state, got.meta, got.event_count) == (
        1,
        "bkt@1",
        b"\x00\x01state",
        {"goal": ["A"]},
        2,
    )
    assert [e.id for e in store.events("t1", "l1")] == ["e1", "e2"]
    first, expected = store.events("t1", "l1")[0], event(1)
    assert (first.item_id, first.standards, first.correct, first.timestamp, first.content_hash) == (
        expected.item_id,
        expected.standards,
        expected.correct,
        expected.timestamp,
        expected.content_hash,
    )
    assert store.event_hashes("t1", "l1", ["e1", "e3"]) == {"e1": "hash-1"}


def test_stale_version_is_refused_and_nothing_lands(store) -> None:
    rec = LearnerRecord("t1", "l1", state=b"s1")
    store.commit(rec, 0, [event(1)])
    stale = LearnerRecord("t1", "l1", state=b"s2")
    with pytest.raises(VersionConflict):
        store.commit(stale, 0, [event(2)])
    assert store.get("t1", "l1").state == b"s1"
    assert [e.id for e in store.events("t1", "l1")] == ["e1"]
    assert store.event_hashes("t1", "l1", ["e2"]) == {}


def test_duplicate_event_id_is_refused_atomically(store) -> None:
    rec = LearnerRecord("t1", "l1", state=b"s1")
    store.commit(rec, 0, [event(1)])
    again = LearnerRecord("t1", "l1", state=b"s2")
    with pytest.raises(VersionConflict):
        store.commit(again, 1, [event(2), event(1)])
    assert store.get("t1", "l1").state == b"s1" and len(store.events("t1", "l1")) == 1


def test_group_commit_lands_each_learner_atomically_and_refuses_only_the_stale_one(store) -> None:
    store.commit(LearnerRecord("t1", "busy", state=b"old"), 0, [event(1)])
    store.commit(LearnerRecord("t1", "dup", state=b"old"), 0, [event(2)])
    commits = [
        Commit(LearnerRecord("t1", "a", state=b"A"), 0, [event(10), event(11)]),
        Commit(LearnerRecord("t1", "busy", state=b"stale"), 0, [event(12)]),  # version is 1 now
        Commit(LearnerRecord("t1", "dup", state=b"dup"), 1, [event(13), event(2)]),  # e2 already stored
        Commit(LearnerRecord("t2", "a", state=b"other tenant"), 0, [event(10)]),
        Commit(LearnerRecord("t1", "b", state=b"B"), 0, []),
    ]
    outcome = store.commit_many(commits)
    assert [o is None for o in outcome] == [True, False, False, True, True]
    assert all(isinstance(o, VersionConflict) for o in outcome if o is not None)
    assert "busy" in str(outcome[1]) and "dup" in str(outcome[2])
    assert (commits[0].record.version, commits[0].record.event_count) == (1, 2)
    assert commits[1].record.version == 0  # a refused record is left as it was
    # the refused learners are untouched: no record change, no event, no idempotency key
    assert store.get("t1", "busy").state == b"old" and [e.id for e in store.events("t1", "busy")] == ["e1"]
    assert store.get("t1", "dup").state == b"old" and [e.id for e in store.events("t1", "dup")] == ["e2"]
    assert store.event_hashes("t1", "dup", ["e13"]) == {} and store.event_hashes("t1", "busy", ["e12"]) == {}
    # the others landed whole
    assert [e.id for e in store.events("t1", "a")] == ["e10", "e11"] and store.get("t2", "a").state == b"other tenant"
    assert store.get("t1", "b").version == 1 and store.get("t1", "b").event_count == 0
    assert sorted(store.learners("t1")) == [("t1", "a"), ("t1", "b"), ("t1", "busy"), ("t1", "dup")]
    assert store.commit_many([]) == []


def test_batched_reads(store) -> None:
    store.commit_many(
        [Commit(LearnerRecord("t1", f"l{i}", state=bytes([i])), 0, [event(i), event(100 + i)]) for i in range(3)]
    )
    store.commit(LearnerRecord("t2", "l0", state=b"t2"), 0, [event(7)])
    got = store.get_many("t1", ["l0", "l2", "missing", "l0"])
    assert sorted(got) == ["l0", "l2"] and got["l2"].state == bytes([2]) and got["l2"].event_count == 2
    assert store.get_many("t1", []) == {}
    hashes = store.event_hashes_many("t1", {"l0": ["e0", "e100", "e5"], "l1": ["e0"], "l2": [], "missing": ["e0"]})
    assert hashes == {"l0": {"e0": "hash-0", "e100": "hash-100"}}
    assert store.event_hashes_many("t2", {"l0": ["e7", "e0"]}) == {"l0": {"e7": "hash-7"}}
    many = [f"x{i}" for i in range(1200)] + ["e1"]  # more ids than one query takes
    assert store.event_hashes_many("t1", {"l1": many}) == {"l1": {"e1": "hash-1"}}


def test_concurrent_writers_never_lose_an_event(store) -> None:
    def writer(k: int) -> None:
        for j in range(10):
            while True:
                rec = store.get("t1", "l1")
                version = rec.version if rec else 0
                new = LearnerRecord("t1", "l1", state=b"x", created=rec.created if rec else 0.0)
                try:
                    store.commit(new, version, [event(k * 100 + j)])
                    break
                except VersionConflict:
                    continue

    in_threads(writer, 4)
    assert store.get("t1", "l1").event_count == 40 and len(store.events("t1", "l1")) == 40
    assert store.get("t1", "l1").version == 40


def test_the_log_is_read_from_a_position_on(store) -> None:
    """A checkpoint's learner refolds only the log after it: ``events(start=n)`` is the log from
    its n-th event on, in append order, over several commits."""
    rec = LearnerRecord("t1", "l1", state=b"s")
    for batch in range(3):
        store.commit(rec, rec.version, [event(batch * 4 + j) for j in range(4)])
    store.commit(LearnerRecord("t1", "l2", state=b"s"), 0, [event(99)])  # another learner's log
    every = [e.id for e in store.events("t1", "l1")]
    assert every == [f"e{i}" for i in range(12)]
    for start in (0, 1, 4, 7, 11, 12, 20):
        assert [e.id for e in store.events("t1", "l1", start)] == every[start:], start
    assert store.events("t1", "l1", 3)[0].timestamp == event(3).timestamp
    assert store.events("t1", "nobody", 2) == []


def test_tenants_are_separate_and_delete_erases_everything(store) -> None:
    store.commit(LearnerRecord("t1", "same", state=b"a"), 0, [event(1)])
    store.commit(LearnerRecord("t2", "same", state=b"b"), 0, [event(1)])
    store.commit(LearnerRecord("t1", "other", state=b"c"), 0, [event(2)])
    assert store.get("t2", "same").state == b"b"
    assert sorted(store.learners()) == [("t1", "other"), ("t1", "same"), ("t2", "same")]
    assert list(store.learners("t2")) == [("t2", "same")]
    assert store.delete_learner("t1", "same") is True
    assert store.get("t1", "same") is None and store.events("t1", "same") == []
    assert store.event_hashes("t1", "same", ["e1"]) == {}  # idempotency keys gone too
    assert store.get("t2", "same").state == b"b"
    assert store.delete_learner("t1", "same") is False
    # an erased learner can start again from scratch with the same event id
    store.commit(LearnerRecord("t1", "same", state=b"new"), 0, [event(1)])


def test_several_learners_are_erased_at_once(store) -> None:
    for learner in ("ana", "bob", "cy"):
        store.commit(LearnerRecord("t1", learner, state=b"s"), 0, [event(1)])
    store.claim_event_ids("t1", {"e1": "ana"})
    store.note_references("t1", [("dee", "plan@t1@c1@2026-12-01")])  # only referenced: a trace too
    assert store.delete_learners("t1", ["ana", "cy", "nobody", "ana", "dee"]) == {"ana", "cy", "dee"}
    assert [learner for _, learner in store.learners("t1")] == ["bob"]
    assert store.event_owners("t1", ["e1"]) == {} and store.references("t1", "dee") == []


def test_event_ids_are_claimed_per_tenant_and_erased_with_the_learner(store) -> None:
    assert store.claim_event_ids("t1", {"e1": "ana", "e2": "ana"}) == {"e1": "ana", "e2": "ana"}
    assert store.claim_event_ids("t1", {"e1": "bob", "e3": "bob"}) == {"e1": "ana", "e3": "bob"}  # first wins
    assert store.claim_event_ids("t2", {"e1": "bob"}) == {"e1": "bob"}  # another tenant: its own ids
    assert store.event_owners("t1", ["e1", "e3", "nope"]) == {"e1": "ana", "e3": "bob"}
    store.commit(LearnerRecord("t1", "ana", state=b"a"), 0, [event(1)])
    assert store.delete_learner("t1", "ana") is True
    assert store.event_owners("t1", ["e1", "e2", "e3"]) == {"e3": "bob"}
    assert store.claim_event_ids("t1", {"e1": "bob"}) == {"e1": "bob"}
    assert store.delete_learner("t1", "never-committed") is False


IRI = "https://apps.example/act/{x}?lang=en"  # activity ids are IRIs: any character


def test_unaligned_activities_count_per_learner_and_leave_with_them(store) -> None:
    a, b = IRI.format(x="a"), IRI.format(x="b{1}")
    store.note_unaligned("t1", [(a, "ana", 2, 50.0), (b, "ana", 1, 70.0), (a, "bob", 1, 40.0)])
    store.note_unaligned("t1", [(a, "ana", 1, 90.0)])  # adds up; the earliest time stays
    store.note_unaligned("t2", [(a, "ana", 5, 10.0)])  # another tenant: its own list
    store.note_unaligned("t1", [])
    assert store.unaligned("t1") == [Unaligned(a, 4, 2, 40.0), Unaligned(b, 1, 1, 70.0)]
    assert store.unaligned_learners("t1", [a]) == ["ana", "bob"]
    assert store.unaligned_learners("t1", [b, "unknown"]) == ["ana"] and store.unaligned_learners("t1", []) == []
    store.commit(LearnerRecord("t1", "ana", state=b"a"), 0, [event(1)])
    assert store.delete_learner("t1", "ana") is True
    assert store.unaligned("t1") == [Unaligned(a, 1, 1, 40.0)]  # b was only ana's
    assert store.delete_learner("t1", "bob") is True  # listed only: still a trace to erase
    assert store.unaligned("t1") == [] and store.unaligned("t2") == [Unaligned(a, 5, 1, 10.0)]
    store.note_unaligned("t1", [(a, "cy", 1, 5.0), (b, "cy", 1, 6.0)])
    store.drop_unaligned("t1", [a, "unknown"])
    assert store.unaligned("t1") == [Unaligned(b, 1, 1, 6.0)] and store.unaligned_learners("t1", [a]) == []


def test_concurrent_unaligned_notes_all_count(store) -> None:
    """Adding is an increment: writers never conflict and no event goes unlisted."""
    item = IRI.format(x="busy")

    def writer(k: int) -> None:
        for i in range(25):
            store.note_unaligned("t1", [(item, f"l{k}-{i % 5}", 1, float(i))])

    in_threads(writer, 4)
    assert store.unaligned("t1") == [Unaligned(item, 100, 20, 0.0)]


def test_claims_from_before_the_learners_sets_are_erased_too(redis_url) -> None:
    """A Redis store whose claims predate the per-learner sets of claimed ids (kept so a deletion
    need not read every claim of the tenant) has them indexed at its first deletion."""
    store = open_store(redis_url)
    try:
        store.client.hset(
            "zpd:{old}:event-ids", mapping={"e1": "ana", "e2": "bob", "e3": "ana"}
        )  # as such a store holds them
        store.commit(LearnerRecord("old", "ana", state=b"a"), 0, [event(1)])
        assert store.claim_event_ids("old", {"e4": "ana", "e2": "ana"}) == {"e4": "ana", "e2": "bob"}
        assert store.delete_learner("old", "ana") is True
        assert store.event_owners("old", ["e1", "e2", "e3", "e4"]) == {"e2": "bob"}
        assert store.delete_learner("old", "bob") is True and store.event_owners("old", ["e2"]) == {}
        assert not list(store.client.scan_iter("zpd:{old}:event-ids:of:*"))  # no set names them
    finally:
        store.close()


def test_learners_are_listed_a_page_at_a_time_in_id_order(store) -> None:
    ids = ["m", "b", "a10", "a2", "z", "c", "é"]
    for i in ids:
        store.commit(LearnerRecord("t1", i, state=b"s"), 0)
    store.commit(LearnerRecord("t2", "other", state=b"s"), 0)
    order = sorted(ids)  # by code point, as UTF-8 bytes compare
    assert store.learner_page("t1", 3) == (order[:3], 7)
    assert store.learner_page("t1", 3, after=order[2]) == (order[3:6], 7)
    assert store.learner_page("t1", 3, after=order[5]) == (order[6:], 7)
    assert store.learner_page("t1", 2, offset=4) == (order[4:6], 7)
    assert store.learner_page("t1", 5, after="b", offset=1) == (["m", "z", "é"], 7)
    assert store.learner_page("t1", 3, after="é") == ([], 7) and store.learner_page("t3", 3) == ([], 0)
    store.delete_learner("t1", "c")
    assert store.learner_page("t1", 10) == ([i for i in order if i != "c"], 6)
    assert [learner for _, learner in store.learners("t1")] == [i for i in order if i != "c"]


def test_the_total_follows_new_and_erased_learners(store) -> None:
    assert store.learner_page("t1", 5) == ([], 0)
    store.commit_many([Commit(LearnerRecord("t1", f"l{i}", state=b"s"), 0) for i in range(4)])
    again = store.commit_many([Commit(LearnerRecord("t1", "l0", state=b"s"), 0), Commit(LearnerRecord("t1", "l9"), 0)])
    assert again[0] is not None and again[1] is None  # a stale create is no new learner
    store.commit(LearnerRecord("t1", "l1", state=b"t"), 1)  # nor is an update
    store.commit(LearnerRecord("t2", "l1", state=b"s"), 0)
    assert store.learner_page("t1", 2) == (["l0", "l1"], 5)
    assert store.delete_learners("t1", ["l0", "l1", "nobody"]) == {"l0", "l1"}
    assert store.learner_page("t1", 9) == (["l2", "l3", "l9"], 3) and store.learner_page("t2", 9) == (["l1"], 1)


def test_learners_of_a_store_from_before_the_counts_are_counted(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        store.commit_many([Commit(LearnerRecord("t1", f"l{i}", state=b"s"), 0) for i in range(3)])
        assert store.learner_page("t1", 1)[1] == 3
        store._run(lambda c: c.execute("DELETE FROM learner_counts"))  # as such a store has none
        store.commit(LearnerRecord("t1", "l7", state=b"s"), 0)  # not counted: nothing to add to
        assert store.learner_page("t1", 1) == (["l0"], 4)
        store.delete_learner("t1", "l0")
        assert store.learner_page("t1", 1) == (["l1"], 3)
    finally:
        store.close()


def test_learners_listed_in_a_set_before_are_moved_to_the_ordered_listing(redis_url) -> None:
    store = open_store(redis_url)
    try:
        store.commit(LearnerRecord("old2", "bob", state=b"s"), 0)
        store.client.sadd("zpd:learners:old2", "ana", "cy")  # as such a store listed them
        assert store.learner_page("old2", 2) == (["ana", "bob"], 3)
        assert not store.client.exists("zpd:learners:old2")
        store.client.sadd("zpd:learners:old2", "dee")  # a worker still on the old code
        assert [learner for _, learner in store.learners() if _ == "old2"] == ["ana", "bob", "cy", "dee"]
        assert store.delete_learner("old2", "dee") is True and store.learner_page("old2", 9) == (
            ["ana", "bob", "cy"],
            3,
        )
    finally:
        store.close()


def test_references_name_documents_per_learner_and_leave_with_them(store) -> None:
    store.note_references("t1", [("ana", "plan@t1@c1@2026-12-01"), ("bob", "plan@t1@c1@2026-12-01")])
    store.note_references("t1", [("ana", "plan@t1@c2@2026-12-02"), ("ana", "plan@t1@c1@2026-12-01")])  # again: once
    store.note_references("t2", [("ana", "plan@t2@c9@2026-12-01")])
    store.note_references("t1", [])
    assert store.references("t1", "ana") == ["plan@t1@c1@2026-12-01", "plan@t1@c2@2026-12-02"]
    assert store.references("t1", "cy") == []
    assert store.delete_learner("t1", "ana") is True  # referenced only: still a trace to erase
    assert store.references("t1", "ana") == [] and store.references("t1", "bob") == ["plan@t1@c1@2026-12-01"]
    assert store.references("t2", "ana") == ["plan@t2@c9@2026-12-01"]


def test_a_roster_is_written_by_the_records_it_changes_and_read_by_what_changed(store) -> None:
    assert store.roster_version("t1") == 0
    empty = store.roster_changes("t1", 0)
    assert (empty.version, empty.full, empty.written, empty.removed) == (0, True, [], [])
    ana, bob = {"given": "Ana", "role": "student"}, {"given": "Bob", "role": "student"}
    enrolled = {"class": "c1", "user": "ana", "role": "student"}
    assert (
        store.write_roster("t1", 0, [("users", "ana", ana), ("users", "bob", bob), ("enrollments", "e1", enrolled)], [])
        == 1
    )
    store.write_roster("t2", 0, [("users", "ana", {"given": "Other"})], [])  # another tenant's
    whole = store.roster_changes("t1", 0)
    assert whole.version == 1 and whole.full and whole.removed == []
    numbers = {(kind, key): rid for rid, kind, key, _ in whole.written}
    assert {(kind, key): record for _, kind, key, record in whole.written} == {
        ("users", "ana"): ana,
        ("users", "bob"): bob,
        ("enrollments", "e1"): enrolled,
    }
    with pytest.raises(VersionConflict):
        store.write_roster("t1", 0, [("users", "cy", {})], [])
    assert store.roster_version("t1") == 1 and len(store.roster_changes("t1", 0).written) == 3  # nothing landed

    bob2 = {"given": "Robert", "role": "student"}
    assert (
        store.write_roster(
            "t1",
            1,
            [("users", "bob", bob2), ("users", "cy", {"given": "Cy"})],
            [("users", "ana"), ("enrollments", "e1"), ("users", "nobody")],
        )
        == 2
    )
    delta = store.roster_changes("t1", 1)
    assert delta.version == 2 and not delta.full
    assert sorted(delta.removed) == sorted([numbers["users", "ana"], numbers["enrollments", "e1"]])
    written = {(kind, key): (rid, record) for rid, kind, key, record in delta.written}
    assert written[("users", "bob")] == (numbers["users", "bob"], bob2)  # the same record, its number kept
    assert written[("users", "cy")][0] not in numbers.values()
    assert store.roster_changes("t1", 2).written == [] and store.roster_changes("t1", 2).removed == []

    # a record written again after its removal gets a new number: a reader never mixes them up
    store.write_roster("t1", 2, [("users", "ana", ana)], [])
    (again,) = store.roster_changes("t1", 2).written
    assert again[0] not in numbers.values() and again[0] != written[("users", "cy")][0]
    # a reader behind the removals kept, or ahead of the store, reads the whole roster
    assert store.roster_changes("t1", 9).full
    assert {key for _, kind, key, _ in store.roster_changes("t1", 0).written} == {"ana", "bob", "cy"}
    assert [r[3] for r in store.roster_changes("t2", 0).written] == [{"given": "Other"}]


def test_a_roster_keeps_the_removals_of_its_last_versions(store) -> None:
    store.write_roster("t1", 0, [("users", f"u{i}", {}) for i in range(3)], [])
    store.write_roster("t1", 1, [], [("users", "u0")])
    for version in range(2, ROSTER_HISTORY + 2):
        store.write_roster("t1", version, [("users", "u1", {"n": version})], [])
    assert store.roster_version("t1") == ROSTER_HISTORY + 2
    assert store.roster_changes("t1", 2).removed == []  # after the removal: not read again
    behind = store.roster_changes("t1", 1)  # the removal is no longer kept: the whole roster
    assert behind.full and {key for _, _, key, _ in behind.written} == {"u1", "u2"}


def test_a_large_roster_is_read_in_pages_with_a_pace_between_them(store, monkeypatch) -> None:
    """A whole roster, or many changes, are read a page at a time (on Redis outside a script, one
    ``HSCAN`` page at a time, as a script or a single command of a district's roster holds Redis
    for every worker), with ``pace`` called after each page; the records are the same. Many
    changes are answered as the whole roster on every store (a reader builds it paced)."""
    import serving.stores.redis
    import serving.stores.sqlite

    for module in (serving.stores.sqlite, serving.stores.redis):
        monkeypatch.setattr(module, "ROSTER_PAGE", 40)
        monkeypatch.setattr(module, "ROSTER_CHANGES_MAX", 200)
    records = [("users", f"u{i}", {"n": i}) for i in range(600)]
    store.write_roster("t1", 0, records[:300], [])
    store.write_roster("t1", 1, records[300:], [("users", "u0")])
    paced: list[int] = []
    whole = store.roster_changes("t1", 0, lambda: paced.append(1))
    assert whole.full and whole.version == 2
    assert sorted((kind, key, record) for _, kind, key, record in whole.written) == sorted(records[1:])
    assert len({rid for rid, *_ in whole.written}) == 599
    assert len(paced) >= 599 // 40  # a page of HSCAN holds about its count
    # many changes (beyond ROSTER_CHANGES_MAX written records): the whole roster, read the same
    # way; a few: what changed
    changed = store.roster_changes("t1", 1, lambda: None)
    assert changed.full and len(changed.written) == 599
    store.write_roster("t1", 2, records[:100], [])
    assert not store.roster_changes("t1", 2).full
    few = store.roster_changes("t1", 3)
    assert not few.full and few.written == [] and few.removed == []


def read_while_written(store, changes: list[tuple]) -> tuple:
    """A whole read of tenant t1's roster, with the next of ``changes`` (write_roster's arguments)
    written after each page from another thread (an import's own connection), each waited for
    until another connection sees it; returns the read and how many were written."""
    other = open_store(store.url)
    writers: list[threading.Thread] = []

    def write_meanwhile() -> None:
        if len(writers) == len(changes):
            return
        change = changes[len(writers)]
        writers.append(threading.Thread(target=store.write_roster, args=change))
        writers[-1].start()
        deadline = time.monotonic() + 30
        while other.roster_version("t1") != change[1] + 1 and time.monotonic() < deadline:
            time.sleep(0.005)

    try:
        return store.roster_changes("t1", 0, write_meanwhile), len(writers)
    finally:
        for writer in writers:
            writer.join(60)
        other.close()


def test_a_roster_read_in_pages_is_of_one_version_when_written_meanwhile(store, monkeypatch) -> None:
    """A write between two pages of a whole read (a worker rests between them while an import
    goes on) does not mix versions: the read answers the records of the version it names. On
    SQLite the read is one snapshot; on Redis the changes written meanwhile are applied over the
    pages."""
    import serving.stores.redis
    import serving.stores.sqlite

    for module in (serving.stores.sqlite, serving.stores.redis):
        monkeypatch.setattr(module, "ROSTER_PAGE", 40)
    store.write_roster("t1", 0, [("users", f"u{i}", {"n": i}) for i in range(400)], [])
    change = ("t1", 1, [("users", "late", {"n": -1}), ("users", "u3", {"n": 33})], [("users", "u7")])
    read, _ = read_while_written(store, [change])
    records = {key: record for _, _, key, record in read.written}
    assert read.full and store.roster_version("t1") == 2 and len(read.written) == len(records)
    if read.version == 1:  # the snapshot from before the write (SQLite)
        assert records == {f"u{i}": {"n": i} for i in range(400)}
    else:  # the version after it (Redis)
        assert read.version == 2
        assert records == {**{f"u{i}": {"n": i} for i in range(400) if i != 7}, "u3": {"n": 33}, "late": {"n": -1}}


def test_a_roster_read_in_pages_keeps_up_with_a_writer_that_does_not_rest(store, monkeypatch) -> None:
    """An import writes a step after every page of a worker's whole read: the read still ends,
    with the records of one version (reading again from the start each time would never end).
    700 records: Redis keeps a hash of up to 512 small fields in one block, which one ``HSCAN``
    call returns whole."""
    import serving.stores.redis
    import serving.stores.sqlite

    for module in (serving.stores.sqlite, serving.stores.redis):
        monkeypatch.setattr(module, "ROSTER_PAGE", 40)
    store.write_roster("t1", 0, [("users", f"u{i}", {"n": i}) for i in range(700)], [])
    # one after each page, more than twenty reads from the start would take
    steps = [("t1", k + 1, [("users", f"u{k}", {"n": -k})], []) for k in range(500)]
    read, made = read_while_written(store, steps)
    written = read.version - 1  # the steps this version holds
    assert read.full and 0 <= written <= made and made >= 5
    assert {key: record for _, _, key, record in read.written} == {
        f"u{i}": {"n": -i} if i < written else {"n": i} for i in range(700)
    }


def test_a_roster_read_catches_up_with_a_long_write_without_waiting_for_its_end(store, monkeypatch) -> None:
    """An import writes a step after every page of a worker's whole read and after every part of
    its catching up, many more records meanwhile than one answer of changes holds: the read
    still ends long before the import does, with the records of one version. Steps write records
    written before (by the first read and by earlier steps), add new ones and remove others, so
    the parts read one after another must be put together in their order."""
    import serving.stores.redis
    import serving.stores.sqlite

    for module in (serving.stores.sqlite, serving.stores.redis):
        monkeypatch.setattr(module, "ROSTER_PAGE", 40)
        monkeypatch.setattr(module, "ROSTER_CHANGES_MAX", 25)
    first = {f"u{i}": {"n": i} for i in range(700)}
    store.write_roster("t1", 0, [("users", key, record) for key, record in first.items()], [])

    def step(k: int) -> tuple:
        written = [("users", f"u{(7 * k + j) % 300}", {"n": -k, "j": j}) for j in range(12)]
        written.append(("users", f"new{k}", {"k": k}))
        removed = [("users", f"u{699 - k}"), ("users", f"new{k - 3}")] if k >= 3 else [("users", f"u{699 - k}")]
        return ("t1", k + 1, written, removed)

    steps = [step(k) for k in range(300)]
    read, made = read_while_written(store, steps)
    assert read.full and made < len(steps)  # ended while the import went on
    expected = dict(first)
    for _, _, written, removed in steps[: read.version - 1]:  # the steps the version it names holds
        expected.update((key, record) for _, key, record in written)
        for _, key in removed:
            expected.pop(key, None)
    got = {key: record for _, _, key, record in read.written}
    assert len(got) == len(read.written)  # no record twice
    assert got == expected
    if read.version > 1:  # Redis: caught up with the writer, many parts of changes after the pages
        assert read.version - 1 > 3


def test_a_removed_roster_record_leaves_no_byte(store, request) -> None:
    """A student dropped by a roster import (no learner record to delete): their record's bytes go
    from the store's files as a deleted learner's do."""
    from .conftest import files_after_erasure

    store.write_roster("t1", 0, [("users", "u-qx7-gone", {"given": "Zebulon-qx7"}), ("users", "u-kept", {})], [])
    store.write_roster("t1", 1, [], [("users", "u-qx7-gone")])
    data = files_after_erasure(request, store)
    assert b"u-kept" in data  # the check sees what is there
    assert b"qx7" not in data


def test_an_erasure_during_a_long_read_neither_waits_for_it_nor_stops_other_writers(
    store, request, monkeypatch
) -> None:
    """A worker reads a district's roster paced (on SQLite in one snapshot, for seconds) while an
    import drops a student: the import's write returns, another writer (events, settings) goes on
    meanwhile, and the dropped student's bytes still leave the files once the read has ended. On
    SQLite the WAL's truncation waited on the reader's snapshot and blocked every new writer while
    it did."""
    import serving.stores.redis
    import serving.stores.sqlite

    from .conftest import files_after_erasure

    for module in (serving.stores.sqlite, serving.stores.redis):
        monkeypatch.setattr(module, "ROSTER_PAGE", 40)
    records = [("users", f"u{i}", {"n": i}) for i in range(200)]
    store.write_roster("t1", 0, [*records, ("users", "u-qx7-gone", {"given": "Zebulon-qx7"})], [])
    done: list[str] = []

    def meanwhile() -> None:
        if done:
            return
        done.append("paced")
        for work in (
            lambda: store.write_roster("t1", 1, [], [("users", "u-qx7-gone")]),
            lambda: store.put_setting("after", "written meanwhile"),
        ):
            thread = threading.Thread(target=lambda w=work: done.append(repr(w())))
            thread.start()
            thread.join(20)
            assert not thread.is_alive(), "a write waited for the reader"

    read = store.roster_changes("t1", 0, meanwhile)
    assert done == ["paced", "2", "1"] and read.full
    assert store.get_setting("after") == (1, "written meanwhile")
    data = files_after_erasure(request, store)
    assert b"written meanwhile" in data  # the check sees what is there
    assert b"qx7" not in data


def test_concurrent_roster_writers_each_land_or_are_refused(store) -> None:
    landed: list[int] = []

    def writer(k: int) -> None:
        for i in range(10):
            while True:
                version = store.roster_version("t1")
                try:
                    landed.append(store.write_roster("t1", version, [("users", f"w{k}-{i}", {"k": k})], []))
                    break
                except VersionConflict:
                    continue

    in_threads(writer, 4)
    assert sorted(landed) == list(range(1, 41))
    assert len(store.roster_changes("t1", 0).written) == 40


def test_api_keys(store) -> None:
    key = ApiKeyRecord("k1", "t1", ("read", "ingest"), "hash", time.time(), label="demo")
    store.put_key(key)
    assert store.get_key("k1") == key
    assert store.get_key("nope") is None
    with pytest.raises(StoreError):
        store.put_key(key)
    assert [k.key_id for k in store.list_keys("t1")] == ["k1"] and store.list_keys("t2") == []
    assert store.revoke_key("k1") is True and store.get_key("k1").revoked is True
    assert store.revoke_key("nope") is False


def test_settings_are_versioned(store) -> None:
    assert store.get_setting("model") is None
    assert store.put_setting("model", '{"uri": "bundled"}') == 1
    assert store.put_setting("model", '{"uri": "bkt"}', expected_version=1) == 2
    with pytest.raises(VersionConflict):
        store.put_setting("model", "stale", expected_version=1)
    assert store.get_setting("model") == (2, '{"uri": "bkt"}')
    assert store.setting_versions(["model", "catalog"]) == {"model": 2}
    big = "x" * 2_000_000  # a CASE package or a catalog is megabytes
    assert store.put_setting("framework", big) == 1 and store.get_setting("framework") == (1, big)


def test_deleted_settings_are_gone_with_their_bytes(store, request) -> None:
    from .conftest import files_after_erasure

    store.put_setting("upload@t1@a@0", "Zebulon-qx7 " * 1000)
    store.put_setting("upload@t1@a@1", "Okafor-qx7")
    store.put_setting("kept", "still here")
    store.delete_settings(["upload@t1@a@0", "upload@t1@a@1", "never-set"])
    store.delete_settings([])
    assert store.get_setting("upload@t1@a@0") is None and store.setting_versions(["upload@t1@a@1"]) == {}
    assert store.put_setting("upload@t1@a@1", "again") == 1  # set again: a new setting
    data = files_after_erasure(request, store)
    assert b"still here" in data  # the check sees what is there
    assert b"qx7" not in data


def test_ping(store) -> None:
    store.ping()


def test_unreachable_redis_is_unavailable_not_a_hang() -> None:
    from tests.serving.conftest import free_port

    store = open_store(f"redis://127.0.0.1:{free_port()}/0")
    started = time.time()
    with pytest.raises(StoreUnavailable, match="unavailable"):
        store.get("t", "l")
    assert time.time() - started < 10


def test_unusable_sqlite_path_is_unavailable(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable):
        open_store(f"sqlite:///{blocker / 'sub' / 'zpd.db'}")


def test_closing_sqlite_waits_for_the_calls_under_way(tmp_path) -> None:
    """A worker's background thread may be reading when the app shuts down and closes the
    store: the close waits for that read (a connection closed under a running statement crashed
    the interpreter), and a call after it is refused."""
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    store.put_setting("k", "v")
    reading, got = threading.Event(), []

    def slow_read(conn):
        reading.set()
        time.sleep(0.3)  # the close comes now
        return conn.execute("SELECT value FROM settings WHERE name=?", ("k",)).fetchone()

    reader = threading.Thread(target=lambda: got.append(store._run(slow_read)))
    reader.start()
    assert reading.wait(5)
    store.close()
    reader.join(5)
    assert got and got[0] is not None, "the read under way was cut off"
    with pytest.raises(StoreUnavailable, match="closed"):
        store.get_setting("k")


def test_unknown_url() -> None:
    with pytest.raises(StoreError, match="unsupported store URL"):
        open_store("postgres://x")


def test_a_long_reads_pages_decode_as_iterated_stale_and_repeated_records_left_out() -> None:
    """A whole roster read's records: pages of the store's bytes, decoded each time they are
    iterated; a record written again or removed meanwhile (``skip``) gives way to the changes
    (``then``), and a record a scan returned twice is yielded once."""
    pages = [
        page_of([b'[1,"users","a",{"given":"A"}]', b'[2,"users","b",{"given":"B"}]']),
        page_of([b'[3,"users","c",{"given":"C"}]', b'[1,"users","a",{"given":"A"}]']),
    ]
    whole = RecordPages(pages, unique=True)
    expected = [(1, "users", "a", {"given": "A"}), (2, "users", "b", {"given": "B"}), (3, "users", "c", {"given": "C"})]
    assert list(whole) == expected and list(whole) == expected and len(whole) == 3
    assert whole == expected and whole[1] == expected[1] and whole[1:] == expected[1:]
    assert RecordPages(pages) == [*expected, expected[0]]  # without ``unique``, as the pages hold them
    moved = RecordPages(pages, skip={2, 3}, then=[(4, "users", "c", {"given": "C2"})], unique=True)
    assert list(moved) == [(1, "users", "a", {"given": "A"}), (4, "users", "c", {"given": "C2"})]
    assert RecordPages([]) == [] and len(RecordPages([])) == 0
    # numbers far apart, in any order, some again (the numbers seen are kept a byte each)
    numbers = [700_001, 5, 0, 64, 5, 700_001, 1, 64, 1_500_000, 0]
    scattered = [page_of([f'[{n},"users","u{n}",{{}}]'.encode() for n in numbers[:5]])]
    scattered.append(page_of([f'[{n},"users","u{n}",{{}}]'.encode() for n in numbers[5:]]))
    assert [rid for rid, *_ in RecordPages(scattered, unique=True)] == list(dict.fromkeys(numbers))
