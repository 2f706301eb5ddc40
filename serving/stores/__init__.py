"""Learner stores: the interface (:mod:`serving.stores.base`) and its implementations, SQLite
(:mod:`serving.stores.sqlite`) and Redis (:mod:`serving.stores.redis`). :func:`open_store` lives
here, the one module that knows them all (the implementations import the interface, never the
other way round)."""

from __future__ import annotations

from serving.stores.base import LearnerStore, StoreError

__all__ = ["open_store"]


def open_store(url: str) -> LearnerStore:
    """``sqlite:///path/to/file.db`` (relative paths are relative to the working directory),
    ``redis://host:port/db`` or ``redis+cluster://host:port`` (a Redis Cluster, through any node)."""
    if url.startswith("sqlite:///"):
        from serving.stores.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
        from serving.stores.redis import RedisStore

        return RedisStore(url)
    raise StoreError(
        f"unsupported store URL {url!r}: expected sqlite:///PATH, redis://HOST:PORT/DB or redis+cluster://HOST:PORT"
    )
