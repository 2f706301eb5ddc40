"""The embedded default store: one SQLite file in WAL mode with durable commits.

``synchronous=FULL`` makes every commit durable before it returns (an acknowledged event survives
a crash or power loss); a batch of learners is one transaction, so one fsync. Writers serialize on SQLite's write lock (``BEGIN IMMEDIATE``); each
thread gets its own connection.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from serving.stores.base import (
    ROSTER_CHANGES_MAX,
    ROSTER_HISTORY,
    ROSTER_PAGE,
    ApiKeyRecord,
    Commit,
    LearnerRecord,
    LearnerStore,
    RecordPages,
    RosterChanges,
    RosterKey,
    RosterRecord,
    StoredEvent,
    StoreError,
    StoreUnavailable,
    Unaligned,
    VersionConflict,
    page_of,
    parse_meta,
)

__all__ = ["SQLiteStore"]

log = logging.getLogger("zpd.serving")

_T = TypeVar("_T")
_CHUNK = 500  # ids per IN (...) query (SQLite limits the number of bound parameters)
COMPACT_AFTER_S = 0.5  # how long the VACUUM after a deletion waits for the deletions that follow it

SCHEMA = """
CREATE TABLE IF NOT EXISTS learners (
    tenant TEXT NOT NULL, learner_id TEXT NOT NULL, version INTEGER NOT NULL, model_version TEXT NOT NULL,
    state BLOB NOT NULL, meta TEXT NOT NULL, event_count INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (tenant, learner_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS learner_counts (
    tenant TEXT PRIMARY KEY, n INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    tenant TEXT NOT NULL, learner_id TEXT NOT NULL, seq INTEGER NOT NULL, event_id TEXT NOT NULL,
    content_hash TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (tenant, learner_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_idempotency ON events (tenant, learner_id, event_id);
CREATE TABLE IF NOT EXISTS event_ids (
    tenant TEXT NOT NULL, event_id TEXT NOT NULL, learner_id TEXT NOT NULL,
    PRIMARY KEY (tenant, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS event_ids_by_learner ON event_ids (tenant, learner_id);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, scopes TEXT NOT NULL, secret_hash TEXT NOT NULL,
    created REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, label TEXT NOT NULL DEFAULT '',
    user_id TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS unaligned (
    tenant TEXT NOT NULL, item_id TEXT NOT NULL, learner_id TEXT NOT NULL, events INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    PRIMARY KEY (tenant, item_id, learner_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS unaligned_by_learner ON unaligned (tenant, learner_id);
CREATE TABLE IF NOT EXISTS learner_refs (
    tenant TEXT NOT NULL, learner_id TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (tenant, learner_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rosters (
    tenant TEXT PRIMARY KEY, version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS roster_records (
    rid INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL,
    record TEXT NOT NULL, version INTEGER NOT NULL, UNIQUE (tenant, kind, id)
);
CREATE INDEX IF NOT EXISTS roster_records_by_version ON roster_records (tenant, version);
CREATE TABLE IF NOT EXISTS roster_removed (
    tenant TEXT NOT NULL, rid INTEGER NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (tenant, rid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS roster_removed_by_version ON roster_removed (tenant, version);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY, version INTEGER NOT NULL, value TEXT NOT NULL, updated REAL NOT NULL
);
"""


class SQLiteStore(LearnerStore):
    def __init__(self, url: str, timeout_s: float = 5.0):
        self.url = url
        self.path = Path(url.removeprefix("sqlite:///"))
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._closed = False
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # calls under way (``_run``): closing waits for them, since a connection closed while
        # another thread runs a statement on it crashes the interpreter
        self._calls = 0
        self._calls_done = threading.Condition()
        self._vacuum_wanted = threading.Event()
        self._vacuum_idle = threading.Event()
        self._vacuum_idle.set()
        self._vacuumer: threading.Thread | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._conn() as conn:
                conn.executescript(SCHEMA)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(api_keys)")}
                if "user_id" not in columns:  # a store created before keys named a roster user
                    try:
                        conn.execute("ALTER TABLE api_keys ADD COLUMN user_id TEXT NOT NULL DEFAULT ''")
                    except sqlite3.OperationalError as exc:  # another worker added it first
                        if "duplicate column" not in str(exc):
                            raise
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {exc}") from None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreUnavailable(f"SQLite store {self.path} is closed")
            try:
                conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                # erased rows are overwritten with zeros, not just unlinked (learner deletion)
                conn.execute("PRAGMA secure_delete=ON")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"cannot open SQLite store {self.path}: {exc}") from None
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def _run(self, fn):
        with self._calls_done:
            if self._closed:
                raise StoreUnavailable(f"SQLite store {self.path} is closed")
            self._calls += 1
        try:
            return fn(self._conn())
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite store {self.path} is unavailable: {exc}") from None
        finally:
            with self._calls_done:
                self._calls -= 1
                if not self._calls:
                    self._calls_done.notify_all()

    # ------------------------------------------------------------------ learners
    def get(self, tenant: str, learner_id: str) -> LearnerRecord | None:
        row = self._run(
            lambda c: c.execute(
                "SELECT version, model_version, state, meta, event_count, created, updated FROM learners "
                "WHERE tenant=? AND learner_id=?",
                (tenant, learner_id),
            ).fetchone()
        )
        if row is None:
            return None
        return LearnerRecord(
            tenant, learner_id, row[0], row[1], bytes(row[2]), parse_meta(row[3]), row[4], row[5], row[6]
        )

    def get_many(self, tenant: str, learner_ids: Sequence[str]) -> dict[str, LearnerRecord]:
        ids = list(dict.fromkeys(learner_ids))
        found: dict[str, LearnerRecord] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows = self._run(
                lambda c, chunk=chunk: c.execute(
                    "SELECT learner_id, version, model_version, state, meta, event_count, created, updated FROM learners "
                    f"WHERE tenant=? AND learner_id IN ({','.join('?' * len(chunk))})",
                    (tenant, *chunk),
                ).fetchall()
            )
            for r in rows:
                found[r[0]] = LearnerRecord(tenant, r[0], r[1], r[2], bytes(r[3]), parse_meta(r[4]), r[5], r[6], r[7])
        return found

    def event_hashes_many(self, tenant: str, event_ids: Mapping[str, Sequence[str]]) -> dict[str, dict[str, str]]:
        def read(conn: sqlite3.Connection) -> dict[str, dict[str, str]]:
            found: dict[str, dict[str, str]] = {}
            for learner_id, wanted in event_ids.items():
                ids = list(dict.fromkeys(wanted))
                for start in range(0, len(ids), _CHUNK):
                    chunk = ids[start : start + _CHUNK]
                    rows = conn.execute(
                        "SELECT event_id, content_hash FROM events WHERE tenant=? AND learner_id=? "
                        f"AND event_id IN ({','.join('?' * len(chunk))})",
                        (tenant, learner_id, *chunk),
                    ).fetchall()
                    if rows:
                        found.setdefault(learner_id, {}).update(rows)
            return found

        return self._run(read)

    def commit_many(self, commits: Sequence[Commit]) -> list[VersionConflict | None]:
        """One ``BEGIN IMMEDIATE`` transaction (one fsync) with a savepoint per learner."""
        if not commits:
            return []

        def txn(conn: sqlite3.Connection) -> list[VersionConflict | None]:
            outcome: list[VersionConflict | None] = []
            staged: list[tuple[LearnerRecord, int, int, float]] = []
            conn.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                for c in commits:
                    conn.execute("SAVEPOINT learner")
                    try:
                        staged.append(self._apply(conn, c, now))
                        conn.execute("RELEASE learner")
                        outcome.append(None)
                    except (VersionConflict, sqlite3.IntegrityError) as exc:
                        conn.execute("ROLLBACK TO learner")
                        conn.execute("RELEASE learner")
                        outcome.append(
                            exc
                            if isinstance(exc, VersionConflict)
                            else VersionConflict(
                                f"learner {c.record.learner_id}: an event id was stored concurrently ({exc})"
                            )
                        )
                new: dict[str, int] = {}  # learners that have a record now, per tenant
                for c, conflict in zip(commits, outcome):
                    if conflict is None and c.expected_version == 0:
                        new[c.record.tenant] = new.get(c.record.tenant, 0) + 1
                _count(conn, new)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            for record, version, count, created in staged:  # only once the transaction is durable
                record.version, record.event_count, record.created, record.updated = version, count, created, now
            return outcome

        return self._run(txn)

    @staticmethod
    def _apply(conn: sqlite3.Connection, c: Commit, now: float) -> tuple[LearnerRecord, int, int, float]:
        record = c.record
        row = conn.execute(
            "SELECT version, event_count, created FROM learners WHERE tenant=? AND learner_id=?",
            (record.tenant, record.learner_id),
        ).fetchone()
        current = row[0] if row else 0
        if current != c.expected_version:
            raise VersionConflict(
                f"learner {record.learner_id} changed (version {current}, expected {c.expected_version})"
            )
        seq0 = row[1] if row else 0
        created = row[2] if row else now
        conn.executemany(
            "INSERT INTO events (tenant, learner_id, seq, event_id, content_hash, body) VALUES (?,?,?,?,?,?)",
            [
                (record.tenant, record.learner_id, seq0 + i + 1, e.id, e.content_hash, e.to_json())
                for i, e in enumerate(c.events)
            ],
        )
        version, count = c.expected_version + 1, seq0 + len(c.events)
        conn.execute(
            "INSERT INTO learners (tenant, learner_id, version, model_version, state, meta, event_count, created, updated) "
            "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (tenant, learner_id) DO UPDATE SET version=excluded.version, "
            "model_version=excluded.model_version, state=excluded.state, meta=excluded.meta, "
            "event_count=excluded.event_count, updated=excluded.updated",
            (
                record.tenant,
                record.learner_id,
                version,
                record.model_version,
                record.state,
                record.meta_json(),
                count,
                created,
                now,
            ),
        )
        return record, version, count, created

    def claim_event_ids(self, tenant: str, claims: Mapping[str, str]) -> dict[str, str]:
        if not claims:
            return {}

        self._executemany(
            "INSERT OR IGNORE INTO event_ids (tenant, event_id, learner_id) VALUES (?,?,?)",
            [(tenant, e, learner) for e, learner in claims.items()],
        )
        return self.event_owners(tenant, list(claims))

    def event_owners(self, tenant: str, event_ids: Sequence[str]) -> dict[str, str]:
        return self._run(lambda c: self._owners(c, tenant, list(dict.fromkeys(event_ids))))

    @staticmethod
    def _owners(conn: sqlite3.Connection, tenant: str, ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows = conn.execute(
                f"SELECT event_id, learner_id FROM event_ids WHERE tenant=? AND event_id IN ({','.join('?' * len(chunk))})",
                (tenant, *chunk),
            ).fetchall()
            found.update(rows)
        return found

    def events(self, tenant: str, learner_id: str, start: int = 0) -> list[StoredEvent]:
        rows = self._run(  # the n-th event has seq n (from 1): a range of the primary key
            lambda c: c.execute(
                "SELECT body FROM events WHERE tenant=? AND learner_id=? AND seq>? ORDER BY seq",
                (tenant, learner_id, start),
            ).fetchall()
        )
        return [StoredEvent.from_json(r[0]) for r in rows]

    def learners(self, tenant: str | None = None) -> Iterator[tuple[str, str]]:
        if tenant is None:
            rows = self._run(lambda c: c.execute("SELECT tenant, learner_id FROM learners ORDER BY 1, 2").fetchall())
        else:
            rows = self._run(
                lambda c: c.execute(
                    "SELECT tenant, learner_id FROM learners WHERE tenant=? ORDER BY 2", (tenant,)
                ).fetchall()
            )
        return iter([(r[0], r[1]) for r in rows])

    def learner_page(self, tenant: str, limit: int, *, after: str = "", offset: int = 0) -> tuple[list[str], int]:
        def read(c: sqlite3.Connection) -> tuple[list[str], int | None]:
            rows = c.execute(
                "SELECT learner_id FROM learners WHERE tenant=? AND learner_id>? ORDER BY learner_id LIMIT ? OFFSET ?",
                (tenant, after, limit, offset),
            ).fetchall()
            total = c.execute("SELECT n FROM learner_counts WHERE tenant=?", (tenant,)).fetchone()
            return [r[0] for r in rows], None if total is None else int(total[0])

        page, total = self._run(read)
        if total is None:  # a tenant counted for the first time (a store from before the counts)
            total = self._transaction(
                lambda c: c.execute(
                    "INSERT INTO learner_counts (tenant, n) SELECT ?, count(*) FROM learners WHERE tenant=? "
                    "ON CONFLICT (tenant) DO UPDATE SET n=n RETURNING n",
                    (tenant, tenant),
                ).fetchone()[0]
            )
        return page, int(total)

    def delete_learner(self, tenant: str, learner_id: str) -> bool:
        return bool(self.delete_learners(tenant, [learner_id]))

    def delete_learners(self, tenant: str, learner_ids: Sequence[str]) -> set[str]:
        """Delete the rows (their bytes zeroed by ``secure_delete``) in one transaction, checkpoint
        the WAL into the database and truncate it (in the background, when a reader's older
        snapshot holds it: see :meth:`_truncate_wal`); then, in the background, ``VACUUM``: a row that
        a page split or rebalance copied elsewhere earlier left its old bytes in the free space of
        a page that is still in use, which ``secure_delete`` never sees, and rewriting the file
        leaves none. The rewrite costs about a second per 80 MB of database and blocks writers
        meanwhile, so deletions that come together share one (:meth:`compaction_pending` tells
        when it is done)."""
        tables = ("learners", "events", "event_ids", "unaligned", "learner_refs")

        def delete(conn: sqlite3.Connection) -> set[str]:
            found, records = set(), 0
            for learner_id in dict.fromkeys(learner_ids):
                for table in tables:
                    sql = f"DELETE FROM {table} WHERE tenant=? AND learner_id=?"  # the tables above
                    deleted = conn.execute(sql, (tenant, learner_id)).rowcount
                    if deleted:
                        found.add(learner_id)
                        records += deleted if table == "learners" else 0
            _count(conn, {tenant: -records})
            return found

        removed = self._transaction(delete)
        self._truncate_wal()
        if removed:
            self._compact_soon()
        return removed

    def _compact_soon(self) -> None:
        """Have the background thread ``VACUUM`` (see :meth:`delete_learners`)."""
        self._vacuum_idle.clear()
        self._vacuum_wanted.set()
        with self._lock:
            if self._vacuumer is None or not self._vacuumer.is_alive():
                self._vacuumer = threading.Thread(target=self._compact, name="zpd-sqlite-vacuum", daemon=True)
                self._vacuumer.start()

    def _compact(self) -> None:
        """VACUUM while deletions ask for it (one rewrite serves every deletion before it), each
        time :data:`COMPACT_AFTER_S` after the request: the writes of one erasure (the roster's,
        then the learners') and erasures sent one after another then share the rewrite, instead
        of the next one waiting for it (the rewrite blocks writers)."""
        while self._vacuum_wanted.is_set() and not self._closed:
            time.sleep(COMPACT_AFTER_S)
            self._vacuum_wanted.clear()
            try:
                self._run(lambda c: c.execute("VACUUM"))
                # a long reader's snapshot keeps the WAL (and the bytes erased in it) meanwhile
                while not self._truncate_wal() and not self._closed and not self._vacuum_wanted.is_set():
                    time.sleep(COMPACT_AFTER_S)
            except StoreError as exc:  # busy or closing: the next deletion asks again
                self._vacuum_wanted.set()
                time.sleep(0.2)
                if self._closed:
                    break
                log.warning("VACUUM after a learner deletion failed: %s", exc)
        self._vacuum_idle.set()

    def compaction_pending(self, wait_s: float = 0.0) -> bool:
        """True while a deletion's VACUUM is wanted or running (``wait_s``: wait that long for it)."""
        return not self._vacuum_idle.wait(wait_s)

    def _truncate_wal(self, attempts: int = 50) -> bool:
        """``wal_checkpoint(TRUNCATE)``, True once done. A reader holding an older snapshot makes it
        busy, and a checkpoint waiting for that reader (SQLite's busy handler) blocks every new
        writer meanwhile: a worker's paced read of a district's roster holds its snapshot for
        seconds, and an import's step or an erasure stopped the writes of every worker for as
        long. So each try gives up at once when busy, and the next comes a little later; what is
        left is truncated by the background compaction, which tries until it is done."""
        wait_ms = int(self.timeout_s * 1000)

        def checkpoint(c: sqlite3.Connection) -> int:
            c.execute("PRAGMA busy_timeout=0")
            try:
                return c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                c.execute(f"PRAGMA busy_timeout={wait_ms}")

        for _ in range(attempts):
            try:
                busy = self._run(checkpoint)
            except StoreUnavailable:  # locked by a writer or another checkpoint
                busy = 1
            if not busy:
                return True
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------------ keys
    def put_key(self, key: ApiKeyRecord) -> None:
        try:
            self._run(
                lambda c: c.execute(
                    "INSERT INTO api_keys (key_id, tenant, scopes, secret_hash, created, revoked, label, user_id) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (
                        key.key_id,
                        key.tenant,
                        ",".join(key.scopes),
                        key.secret_hash,
                        key.created,
                        int(key.revoked),
                        key.label,
                        key.user,
                    ),
                )
            )
        except sqlite3.IntegrityError:
            raise StoreError(f"API key id {key.key_id} already exists") from None

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        row = self._run(
            lambda c: c.execute(
                "SELECT key_id, tenant, scopes, secret_hash, created, revoked, label, user_id FROM api_keys WHERE key_id=?",
                (key_id,),
            ).fetchone()
        )
        return _key(row) if row else None

    def list_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        sql = "SELECT key_id, tenant, scopes, secret_hash, created, revoked, label, user_id FROM api_keys"
        rows = self._run(
            lambda c: c.execute(
                sql + (" WHERE tenant=?" if tenant else "") + " ORDER BY created", (tenant,) if tenant else ()
            ).fetchall()
        )
        return [_key(r) for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        return bool(self._run(lambda c: c.execute("UPDATE api_keys SET revoked=1 WHERE key_id=?", (key_id,)).rowcount))

    # ------------------------------------------------------------------ references
    def note_references(self, tenant: str, pairs: Sequence[tuple[str, str]]) -> None:
        self._executemany(
            "INSERT OR IGNORE INTO learner_refs (tenant, learner_id, name) VALUES (?,?,?)",
            [(tenant, learner, name) for learner, name in pairs],
        )

    def references(self, tenant: str, learner_id: str) -> list[str]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT name FROM learner_refs WHERE tenant=? AND learner_id=? ORDER BY name", (tenant, learner_id)
            ).fetchall()
        )
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ unaligned activities
    def note_unaligned(self, tenant: str, seen: Sequence[tuple[str, str, int, float]]) -> None:
        self._executemany(
            "INSERT INTO unaligned (tenant, item_id, learner_id, events, first_seen) VALUES (?,?,?,?,?) "
            "ON CONFLICT (tenant, item_id, learner_id) DO UPDATE SET events = events + excluded.events, "
            "first_seen = min(first_seen, excluded.first_seen)",
            [(tenant, item, learner, n, t) for item, learner, n, t in seen],
        )

    def unaligned(self, tenant: str) -> list[Unaligned]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT item_id, sum(events), count(*), min(first_seen) FROM unaligned WHERE tenant=? "
                "GROUP BY item_id ORDER BY item_id",
                (tenant,),
            ).fetchall()
        )
        return [Unaligned(item, int(events), int(learners), float(first)) for item, events, learners, first in rows]

    def unaligned_learners(self, tenant: str, item_ids: Sequence[str]) -> list[str]:
        found: set[str] = set()
        for start in range(0, len(item_ids), _CHUNK):
            chunk = tuple(item_ids[start : start + _CHUNK])
            found.update(
                row[0]
                for row in self._run(
                    lambda c, chunk=chunk: c.execute(
                        f"SELECT DISTINCT learner_id FROM unaligned WHERE tenant=? AND item_id IN "
                        f"({','.join('?' * len(chunk))})",
                        (tenant, *chunk),
                    ).fetchall()
                )
            )
        return sorted(found)

    def drop_unaligned(self, tenant: str, item_ids: Sequence[str]) -> None:
        self._executemany("DELETE FROM unaligned WHERE tenant=? AND item_id=?", [(tenant, i) for i in item_ids])

    def _executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """One statement over many rows, in one transaction (all rows or none)."""
        if rows:
            self._transaction(lambda conn: conn.executemany(sql, rows))

    def _transaction(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """``work`` in one ``BEGIN IMMEDIATE`` transaction: committed, or rolled back if it raises."""

        def txn(conn: sqlite3.Connection) -> _T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return result

        return self._run(txn)

    # ------------------------------------------------------------------ rosters
    def roster_version(self, tenant: str) -> int:
        return self._run(lambda c: _roster_version(c, tenant))

    def roster_changes(self, tenant: str, since: int, pace: Callable[[], None] | None = None) -> RosterChanges:
        def read(c: sqlite3.Connection) -> RosterChanges:
            c.execute("BEGIN")  # one snapshot for the version and the rows (its readers do not stop writers)
            try:
                version = _roster_version(c, tenant)
                # each record as one JSON array, [number, kind, id, record], joined into pages
                # decoded by the reader as it iterates (see RecordPages): nothing of a row is kept
                select = (
                    "SELECT CAST(printf('[%d,%s,%s,%s]', rid, json_quote(kind), json_quote(id), record) AS BLOB)"
                    " FROM roster_records WHERE tenant=?"
                )
                full = since <= 0 or since > version or since < version - ROSTER_HISTORY
                if not full:
                    count = "SELECT COUNT(*) FROM roster_records WHERE tenant=? AND version>?"
                    full = c.execute(count, (tenant, since)).fetchone()[0] > ROSTER_CHANGES_MAX
                cursor = c.execute(select, (tenant,)) if full else c.execute(select + " AND version>?", (tenant, since))
                pages: list[bytes] = []
                while rows := cursor.fetchmany(ROSTER_PAGE):
                    pages.append(page_of(r[0] for r in rows))
                    if pace is not None:
                        pace()
                written = RecordPages(pages)
                if full:
                    return RosterChanges(version, True, written, [])
                removed = c.execute("SELECT rid FROM roster_removed WHERE tenant=? AND version>?", (tenant, since))
                return RosterChanges(version, False, list(written), [r[0] for r in removed])
            finally:
                c.execute("COMMIT")

        return self._run(read)

    def write_roster(
        self, tenant: str, expected: int, written: Sequence[RosterRecord], removed: Sequence[RosterKey]
    ) -> int:
        def write(c: sqlite3.Connection) -> tuple[int, int]:
            current = _roster_version(c, tenant)
            if current != expected:
                raise VersionConflict(
                    f"the roster of tenant {tenant!r} changed (version {current}, expected {expected})"
                )
            version = current + 1
            gone = 0
            for kind, key in removed:
                found = c.execute(
                    "DELETE FROM roster_records WHERE tenant=? AND kind=? AND id=? RETURNING rid", (tenant, kind, key)
                ).fetchone()
                if found:
                    c.execute(
                        "INSERT INTO roster_removed (tenant, rid, version) VALUES (?,?,?)", (tenant, found[0], version)
                    )
                    gone += 1
            c.executemany(
                "INSERT INTO roster_records (tenant, kind, id, record, version) VALUES (?,?,?,?,?) "
                "ON CONFLICT (tenant, kind, id) DO UPDATE SET record=excluded.record, version=excluded.version",
                [(tenant, kind, key, orjson.dumps(record).decode(), version) for kind, key, record in written],
            )
            c.execute("DELETE FROM roster_removed WHERE tenant=? AND version<=?", (tenant, version - ROSTER_HISTORY))
            c.execute(
                "INSERT INTO rosters (tenant, version) VALUES (?,?) ON CONFLICT (tenant) DO UPDATE SET version=excluded.version",
                (tenant, version),
            )
            return version, gone

        version, gone = self._transaction(write)
        if gone:  # a removed record's bytes go as a deleted learner's do
            self._truncate_wal()
            self._compact_soon()
        return version

    # ------------------------------------------------------------------ settings
    def get_setting(self, name: str) -> tuple[int, str] | None:
        row = self._run(lambda c: c.execute("SELECT version, value FROM settings WHERE name=?", (name,)).fetchone())
        return (row[0], row[1]) if row else None

    def setting_versions(self, names: Sequence[str]) -> dict[str, int]:
        rows = self._run(
            lambda c: c.execute(
                f"SELECT name, version FROM settings WHERE name IN ({','.join('?' * len(names))})", tuple(names)
            ).fetchall()
        )
        return dict(rows)

    def put_setting(self, name: str, value: str, expected_version: int | None = None) -> int:
        def put(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT version FROM settings WHERE name=?", (name,)).fetchone()
            current = row[0] if row else 0
            if expected_version is not None and current != expected_version:
                raise VersionConflict(f"setting {name!r} changed (version {current}, expected {expected_version})")
            conn.execute(
                "INSERT INTO settings (name, version, value, updated) VALUES (?,?,?,?) "
                "ON CONFLICT (name) DO UPDATE SET version=excluded.version, value=excluded.value, "
                "updated=excluded.updated",
                (name, current + 1, value, time.time()),
            )
            return current + 1

        return self._transaction(put)

    def delete_settings(self, names: Sequence[str]) -> None:
        if not names:
            return
        marks = ",".join("?" * len(names))
        gone = self._transaction(
            lambda c: c.execute(f"DELETE FROM settings WHERE name IN ({marks})", tuple(names)).rowcount
        )
        if gone:
            self._truncate_wal()
            self._compact_soon()

    # ------------------------------------------------------------------ lifecycle
    def ping(self) -> None:
        self._run(lambda c: c.execute("SELECT 1").fetchone())

    def close(self, wait_s: float = 30.0) -> None:
        """Close every connection, once the calls under way (another thread's, up to ``wait_s``)
        are over; a call after this is refused (StoreUnavailable)."""
        if not self._vacuum_idle.is_set():  # let a deletion's rewrite finish: its bytes must go
            self._vacuum_idle.wait(60)
        with self._calls_done:
            self._closed = True
            self._calls_done.wait_for(lambda: not self._calls, wait_s)
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
        self._local = threading.local()


def _roster_version(conn: sqlite3.Connection, tenant: str) -> int:
    row = conn.execute("SELECT version FROM rosters WHERE tenant=?", (tenant,)).fetchone()
    return int(row[0]) if row else 0


def _count(conn: sqlite3.Connection, added: Mapping[str, int]) -> None:
    """Keep each tenant's count of learners with a record (``GET /v1/learners`` answers it with
    every page; counting the rows cost 18 ms a page at 500,000 learners). A tenant not counted
    yet is counted from its rows when first asked."""
    for tenant, n in added.items():
        if n:
            conn.execute("UPDATE learner_counts SET n=n+? WHERE tenant=?", (n, tenant))


def _key(row) -> ApiKeyRecord:
    return ApiKeyRecord(
        row[0], row[1], tuple(s for s in row[2].split(",") if s), row[3], row[4], bool(row[5]), row[6], row[7]
    )
