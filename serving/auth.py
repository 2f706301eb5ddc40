"""API keys: one tenant and a set of scopes per key; stored hashed, compared in constant time.

A key looks like ``zpd_<key id>_<secret>``. The store keeps the id, the tenant, the scopes and
the SHA-256 of the secret (the secret has 256 bits of entropy, so a fast hash is enough);
verification recomputes the hash and compares with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Final, Literal

from serving.stores.base import ApiKeyRecord, LearnerStore

__all__ = ["SCOPES", "TENANT_SCOPES", "KeyCache", "Principal", "create_key", "has_scope", "parse_key"]

#: what a key may do within its tenant; ``admin`` has all of them
TENANT_SCOPES = ("ingest", "read", "teacher", "admin")
#: ``operator``: what acts on the whole deployment, every tenant at once (swapping the served
#: model). A tenant's admin does not have it: a district's administrator must not change what
#: every other district is served.
SCOPES = (*TENANT_SCOPES, "operator")


@dataclass(frozen=True)
class Principal:
    key_id: str
    tenant: str
    scopes: frozenset[str]
    user: str = ""  # the roster user (a teacher) the key belongs to; "" for a tenant-wide key

    @property
    def teacher(self) -> str:
        """The roster teacher whose classes and students this key is limited to; "" for a key
        that sees the whole tenant (linked to nobody, or an admin's)."""
        return self.user if self.user and "admin" not in self.scopes else ""


def has_scope(scopes: frozenset[str], scope: str) -> bool:
    """Whether a key with ``scopes`` may act with ``scope`` (admin implies every tenant scope)."""
    return scope in scopes or (scope in TENANT_SCOPES and "admin" in scopes)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(store: LearnerStore, tenant: str, scopes: list[str], label: str = "", user: str = "") -> str:
    """Create a key for ``tenant`` and return it in full (the only time the secret is shown).
    ``user``: the roster teacher the key belongs to (such a key sees only her classes)."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; expected some of {', '.join(SCOPES)}")
    if not tenant or not tenant.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"tenant must be letters, digits, '-', '_' or '.', got {tenant!r}")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    store.put_key(
        ApiKeyRecord(key_id, tenant, tuple(dict.fromkeys(scopes)), _hash(secret), time.time(), False, label, user)
    )
    return f"zpd_{key_id}_{secret}"


def parse_key(key: str) -> tuple[str, str] | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "zpd" or len(parts[1]) != 16 or not parts[2]:
        return None
    return parts[1], parts[2]


class _Miss(enum.Enum):
    """The type of the ``KeyCache.MISS`` sentinel (an enum member, so ``is`` narrows it away)."""

    MISS = enum.auto()


_MISS: Final = _Miss.MISS


def _principal(record: ApiKeyRecord | None, secret: str) -> Principal | None:
    if record is None or record.revoked or not hmac.compare_digest(record.secret_hash, _hash(secret)):
        return None
    return Principal(record.key_id, record.tenant, frozenset(record.scopes), record.user)


class KeyCache:
    """Looks keys up in the store, caching records for ``ttl_s`` seconds (revocation takes at most that long)."""

    MISS = _MISS

    def __init__(self, store: LearnerStore, ttl_s: float = 2.0):
        self.store, self.ttl_s = store, ttl_s
        self._cache: dict[str, tuple[float, ApiKeyRecord | None]] = {}
        self._lock = threading.Lock()

    def verify(self, key: str) -> Principal | None:
        """The key's principal, or None if it is malformed, unknown, revoked or wrong (may read the store)."""
        found = self.verify_cached(key)
        if found is not _MISS:
            return found
        parsed = parse_key(key)
        assert parsed is not None  # well-formed: verify_cached checked
        key_id, secret = parsed
        record = self.store.get_key(key_id)
        with self._lock:
            self._cache[key_id] = (time.monotonic(), record)
        return _principal(record, secret)

    def verify_cached(self, key: str) -> Principal | None | Literal[_Miss.MISS]:
        """Like :meth:`verify` from the cache alone (never blocks); ``MISS`` if the store must be read."""
        parsed = parse_key(key)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return _MISS
        return _principal(hit[1], secret)

    def record(self, key_id: str) -> ApiKeyRecord | None:
        """The key's record by id (cached like :meth:`verify`), for a session that holds only the id."""
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is not None and time.monotonic() - hit[0] <= self.ttl_s:
            return hit[1]
        record = self.store.get_key(key_id) if key_id else None
        with self._lock:
            self._cache[key_id] = (time.monotonic(), record)
        return record

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)
