"""The store interface: learner records, their event log, idempotency keys and API keys.

Each learner's record (model state, progress, goal, overrides, placement) is updated atomically
with the append of the events that produced it and their idempotency keys: a commit either
lands whole or not at all. Concurrent writers are detected with the record's version number
(optimistic concurrency): a stale commit raises :class:`VersionConflict` and the caller retries.

Idempotency keys are scoped to (tenant, learner, event id), so every key of one learner lives
with that learner (one Redis Cluster hash slot) and is erased with it.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "ApiKeyRecord",
    "LearnerRecord",
    "LearnerStore",
    "StoreError",
    "StoreUnavailable",
    "StoredEvent",
    "VersionConflict",
    "open_store",
]


class StoreError(RuntimeError):
    """A store operation failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached (the API answers 503)."""


class VersionConflict(StoreError):
    """The learner record changed since it was read; re-read and retry."""


@dataclass(frozen=True)
class StoredEvent:
    id: str
    item_id: str
    standards: tuple[str, ...]
    correct: float
    timestamp: float
    received: float
    content_hash: str
    source: str = "native"  # native | xapi | placement

    def to_json(self) -> str:
        data = asdict(self)
        data["standards"] = list(self.standards)
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "StoredEvent":
        data = json.loads(text)
        data["standards"] = tuple(data["standards"])
        return cls(**data)


def content_hash(payload: dict[str, Any]) -> str:
    """Hash of an event's meaningful content (what a repeat must match to count as identical)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class LearnerRecord:
    tenant: str
    learner_id: str
    version: int = 0
    model_version: str = ""
    state: bytes = b""
    meta: dict[str, Any] = field(default_factory=dict)  # progress, goal, overrides, interests, placement
    event_count: int = 0
    created: float = 0.0
    updated: float = 0.0

    def meta_json(self) -> str:
        return json.dumps(self.meta, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    tenant: str
    scopes: tuple[str, ...]
    secret_hash: str
    created: float
    revoked: bool = False
    label: str = ""


class LearnerStore(ABC):
    """What the API needs from a store; both implementations pass one contract suite."""

    url: str

    @abstractmethod
    def get(self, tenant: str, learner_id: str) -> LearnerRecord | None: ...

    @abstractmethod
    def event_hashes(self, tenant: str, learner_id: str, event_ids: Sequence[str]) -> dict[str, str]:
        """Content hashes of the given event ids already stored for this learner."""

    @abstractmethod
    def commit(self, record: LearnerRecord, expected_version: int, events: Sequence[StoredEvent]) -> None:
        """Atomically: check the record still has ``expected_version``, append ``events`` to the
        learner's log with their idempotency keys, and write ``record`` (its version bumped)."""

    @abstractmethod
    def events(self, tenant: str, learner_id: str) -> list[StoredEvent]:
        """The learner's event log, in append order."""

    @abstractmethod
    def learners(self, tenant: str | None = None) -> Iterator[tuple[str, str]]:
        """(tenant, learner) pairs that have a record."""

    @abstractmethod
    def delete_learner(self, tenant: str, learner_id: str) -> bool:
        """Erase every trace: record, events, idempotency keys. True if anything existed."""

    @abstractmethod
    def put_key(self, key: ApiKeyRecord) -> None: ...

    @abstractmethod
    def get_key(self, key_id: str) -> ApiKeyRecord | None: ...

    @abstractmethod
    def list_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]: ...

    @abstractmethod
    def revoke_key(self, key_id: str) -> bool: ...

    @abstractmethod
    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` if the store cannot serve requests."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "LearnerStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(url: str) -> LearnerStore:
    """``sqlite:///path/to/file.db`` (relative paths are relative to the working directory) or
    ``redis://host:port/db``."""
    if url.startswith("sqlite:///"):
        from serving.stores.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from serving.stores.redis import RedisStore

        return RedisStore(url)
    raise StoreError(f"unsupported store URL {url!r}: expected sqlite:///PATH or redis://HOST:PORT/DB")
