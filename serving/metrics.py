"""Prometheus text-format metrics: request counts and latency histograms per route, events ingested.

Each worker process counts its own requests. With ``zpd serve --workers N`` the workers also
write their counts to a shared folder (:class:`SharedMetrics`) and ``/metrics`` answers the sum
over all of them, whichever worker the scrape reaches; a worker that exits keeps its counts in
the sum until the server restarts, so counters never go backwards. The other workers' counts are
at most a second old.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

__all__ = ["METRICS_DIR_ENV", "Metrics", "MetricsMiddleware", "SharedMetrics"]

METRICS_DIR_ENV = "ZPD_METRICS_DIR"  # set by `zpd serve`: where its workers pool their counts

BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], list[int]] = {}
        self.latency_sum: dict[tuple[str, str], float] = defaultdict(float)
        self.events_ingested = 0
        self.events_duplicate = 0
        self.model_reloads: dict[str, int] = defaultdict(int)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            counts = self.latency.setdefault((method, route), [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.latency_sum[(method, route)] += seconds

    def ingested(self, accepted: int, duplicates: int) -> None:
        with self._lock:
            self.events_ingested += accepted
            self.events_duplicate += duplicates

    def reload(self, outcome: str) -> None:
        with self._lock:
            self.model_reloads[outcome] += 1

    def snapshot(self) -> dict:
        """Plain data (JSON) of every count."""
        with self._lock:
            return {
                "requests": [[m, r, st, n] for (m, r, st), n in self.requests.items()],
                "latency": [[m, r, counts, self.latency_sum[(m, r)]] for (m, r), counts in self.latency.items()],
                "events_ingested": self.events_ingested,
                "events_duplicate": self.events_duplicate,
                "model_reloads": dict(self.model_reloads),
            }

    @classmethod
    def merged(cls, snapshots: list[dict]) -> Metrics:
        total = cls()
        for snap in snapshots:
            for m, r, st, n in snap["requests"]:
                total.requests[(m, r, int(st))] += n
            for m, r, counts, seconds in snap["latency"]:
                acc = total.latency.setdefault((m, r), [0] * (len(BUCKETS) + 1))
                for k, c in enumerate(counts[: len(acc)]):
                    acc[k] += c
                total.latency_sum[(m, r)] += seconds
            total.events_ingested += snap["events_ingested"]
            total.events_duplicate += snap["events_duplicate"]
            for outcome, n in snap["model_reloads"].items():
                total.model_reloads[outcome] += n
        return total

    def render(self) -> str:
        def esc(value: str) -> str:
            return value.replace("\\", "\\\\").replace('"', '\\"')

        lines = [
            "# HELP zpd_requests_total HTTP requests by method, route and status.",
            "# TYPE zpd_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(f'zpd_requests_total{{method="{method}",route="{esc(route)}",status="{status}"}} {n}')
            lines += [
                "# HELP zpd_request_seconds Request latency by method and route.",
                "# TYPE zpd_request_seconds histogram",
            ]
            for (method, route), counts in sorted(self.latency.items()):
                labels = f'method="{method}",route="{esc(route)}"'
                running = 0
                for bound, count in zip(BUCKETS, counts):
                    running += count
                    lines.append(f'zpd_request_seconds_bucket{{{labels},le="{bound}"}} {running}')
                running += counts[-1]
                lines.append(f'zpd_request_seconds_bucket{{{labels},le="+Inf"}} {running}')
                lines.append(f"zpd_request_seconds_sum{{{labels}}} {self.latency_sum[(method, route)]:.6f}")
                lines.append(f"zpd_request_seconds_count{{{labels}}} {running}")
            lines += [
                "# HELP zpd_events_ingested_total Events accepted (new).",
                "# TYPE zpd_events_ingested_total counter",
                f"zpd_events_ingested_total {self.events_ingested}",
                "# HELP zpd_events_duplicate_total Repeated events acknowledged without change.",
                "# TYPE zpd_events_duplicate_total counter",
                f"zpd_events_duplicate_total {self.events_duplicate}",
                "# HELP zpd_model_reloads_total Model reload attempts by outcome.",
                "# TYPE zpd_model_reloads_total counter",
            ]
            for outcome, n in sorted(self.model_reloads.items()):
                lines.append(f'zpd_model_reloads_total{{outcome="{outcome}"}} {n}')
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Plain ASGI middleware timing every HTTP request by its route template (a ``BaseHTTPMiddleware``
    costs a task and a streamed copy of every response; this costs two clock reads)."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts (an unhandled error becomes a 500 outside this middleware)

        async def send_and_observe(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_observe)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # the router records the matched route
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)


class SharedMetrics:
    """The workers of one server publish their counts as ``<pid>.json`` files in one folder."""

    def __init__(self, folder: str | Path, metrics: Metrics):
        self.folder, self.metrics = Path(folder), metrics
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{os.getpid()}.json"

    def publish(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(self.metrics.snapshot()))
        os.replace(tmp, self.path)  # readers see the old file or the new one, never half of one

    def render(self) -> str:
        """The sum over every worker's latest counts (this worker's as of now)."""
        self.publish()
        snapshots = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                snapshots.append(orjson.loads(path.read_bytes()))
            except (OSError, orjson.JSONDecodeError):  # a worker folder being cleaned up
                continue
        return Metrics.merged(snapshots).render()
