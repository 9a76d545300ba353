"""Prometheus metrics: what an operator watches (traffic, latency, audio, cache, queue).

One registry per server (or test app), so several in one process do not collide. The
speech service records audio seconds and cache results here; every listener (the HTTP
guard, the Wyoming server) records its requests; the composition root adds the gauges
of the engine pool and the job runner.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The server's counters, histograms and gauges in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "orate_requests", "Requests by dialect and status", ["dialect", "status"], registry=r
        )
        self.latency = Histogram(
            "orate_request_seconds",
            "Time to the end of the response",
            ["dialect"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.first_audio = Histogram(
            "orate_first_audio_seconds",
            "Time to the first byte of the response body (the first audio, on speech routes)",
            ["dialect"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.audio = Counter(
            "orate_audio_seconds", "Seconds of audio produced", ["dialect", "engine"], registry=r
        )
        self.cache = Counter("orate_cache_lookups", "Speech cache results", ["result"], registry=r)

    def request(self, dialect: str, status: int, seconds: float, first: float | None) -> None:
        """One finished request of a listener: its status, duration and first byte."""
        self.requests.labels(dialect, str(status)).inc()
        self.latency.labels(dialect).observe(seconds)
        if first is not None:
            self.first_audio.labels(dialect).observe(first)

    def gauges(
        self,
        queue: Callable[[], float],
        restarts: Callable[[], float],
        workers: Callable[[], float],
        jobs: Callable[[], float],
    ) -> None:
        Gauge(
            "orate_queue_depth", "Requests waiting for an engine worker", registry=self.registry
        ).set_function(queue)
        Gauge(
            "orate_worker_restarts", "Engine workers replaced after dying", registry=self.registry
        ).set_function(restarts)
        Gauge("orate_workers", "Engine workers alive", registry=self.registry).set_function(workers)
        Gauge(
            "orate_jobs_running", "Async jobs running in this process", registry=self.registry
        ).set_function(jobs)

    def render(self) -> bytes:
        """The registry in Prometheus' text format (the /metrics body)."""
        return generate_latest(self.registry)
