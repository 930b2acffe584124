"""The server's Prometheus metrics (prometheus-client), in a registry of each app's own."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("taskkit_requests", "HTTP requests by model, route and status code",
                                ["model", "route", "status"], registry=self.registry)
        self.errors = Counter("taskkit_errors", "Requests answered with a 4xx or 5xx status, by model, route and status",
                              ["model", "route", "status"], registry=self.registry)
        self.latency = Histogram("taskkit_request_seconds", "Request latency in seconds, by model and route",
                                 ["model", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("taskkit_batch_size", "Inputs per micro-batch run through a model",
                                    ["model"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("taskkit_queue_depth", "Inputs waiting for a micro-batch, by model",
                                 ["model"], registry=self.registry)

    def observe_request(self, model: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(model, route, str(status)).inc()
        if status >= 400:
            self.errors.labels(model, route, str(status)).inc()
        self.latency.labels(model, route).observe(seconds)

    def observe_batch(self, model: str, size: int, queued: int) -> None:
        self.batch_size.labels(model).observe(size)
        self.queue_depth.labels(model).set(queued)

    def text(self) -> bytes:
        return generate_latest(self.registry)
