"""The Prometheus metrics: what they are called, and how they are filled.

Two kinds of source:

- Per-request and per-batch figures (requests, latency, batch sizes) are observed
  where they happen, in histograms and counters that prometheus-client keeps.
- The service, the cache adapter and the DynamoDB adapter already keep plain
  counters (`ServiceCounters`, `CacheStats`, `DynamoCallCounts`). Those are not
  counted twice: `sync` adds what each grew by since its last look to a Prometheus
  counter, and sets the gauges (breaker, model, refresh job).

Why mirror instead of a custom Collector read at scrape time: with several uvicorn
workers (PROMETHEUS_MULTIPROC_DIR set) a scrape reaches one worker, which reads
every worker's metric files; a custom collector would only see the worker that
answered. Mirrored counters live in those files, so each worker syncs every few
seconds (and the answering worker once more at scrape time). The single-process
mode uses the same path, so there is one behaviour to test.
"""

from __future__ import annotations

import glob
import os
import re
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from graphql_api.observability.labels import BoundedLabels
from graphql_api.observability.multiprocess_dir import MULTIPROC_DIR_ENV

if TYPE_CHECKING:
    from domain.item_model import ItemModel
    from domain.service import ServiceCounters
    from graphql_api.jobs import RefreshJob

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}

# Plain counters kept elsewhere, mirrored into Prometheus counters: source field -> (name, help).
SERVICE_COUNTERS = {
    "hits": ("bookrec_cache_hits", "Users whose recommendations a request found in the cache."),
    "misses": ("bookrec_cache_misses", "Users whose recommendations a request did not find in the cache."),
    "lease_waits": ("bookrec_cache_lease_waits", "Users a request waited for while another lease holder computed them."),
    "single_flight_joins": ("bookrec_cache_single_flight_joins", "Misses that joined a computation already running in this process."),
    "invalidations": ("bookrec_cache_invalidations", "Cached lists dropped after a rating or an explicit invalidation."),
}
CACHE_COUNTERS = {
    "fills": ("bookrec_cache_fills", "Computed lists written to the cache under a lease."),
    "fills_refused": ("bookrec_cache_fills_refused", "Fills refused because the lease was voided (a rating) or expired."),
    "errors": ("bookrec_cache_errors", "Cache calls that failed and were answered fail-open."),
    "skipped_by_breaker": ("bookrec_cache_breaker_skips", "Cache calls answered without the server while the breaker was open."),
    "delete_failures": ("bookrec_cache_delete_failures", "Keys a delete could not reach after its retries (stale until their TTL)."),
    "read_pipelines": ("bookrec_cache_read_pipelines", "Pipelines that carried the MGETs of several concurrent reads in one write (Redis)."),
}
DYNAMODB_COUNTERS = {
    "calls": ("bookrec_dynamodb_calls", "DynamoDB requests sent by the adapter, its own retries included."),
    "retries": ("bookrec_dynamodb_retries", "DynamoDB requests re-sent after throttling or a partial batch."),
    "sdk_retries": ("bookrec_dynamodb_sdk_retries", "Extra HTTP attempts botocore made inside the adapter's requests."),
}


def multiprocess_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR: prometheus-client chose its value storage from it when it was imported."""
    return os.environ.get(MULTIPROC_DIR_ENV) or None


class _Mirror:
    """A Prometheus counter that follows a cumulative count kept elsewhere, adding only what is new."""

    __slots__ = ("_counter", "_seen")

    def __init__(self, counter: Any) -> None:
        self._counter = counter
        self._seen = 0

    def follow(self, value: int) -> None:
        # A smaller value means the source restarted from zero (a new adapter): all of it is new.
        grown = value - self._seen if value >= self._seen else value
        if grown:
            self._counter.inc(grown)
        self._seen = value


class Metrics:
    """Every metric the service exports, in a registry of its own (one per app, so tests do not share counts)."""

    def __init__(self) -> None:
        self.multiprocess_dir = multiprocess_dir()
        if self.multiprocess_dir:
            os.makedirs(self.multiprocess_dir, exist_ok=True)
            forget_dead_workers(self.multiprocess_dir)
        self.registry = registry = CollectorRegistry(auto_describe=True)
        if not self.multiprocess_dir:
            # Process figures come from /proc of the answering process: meaningless summed over workers.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)

        self.requests = Counter(
            "bookrec_graphql_requests", "GraphQL HTTP requests by operation name and outcome (ok or error code).",
            ["operation", "outcome"], registry=registry,
        )
        self.request_seconds = Histogram(
            "bookrec_graphql_request_duration_seconds", "Time to answer a GraphQL HTTP request.",
            ["operation"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.recommender_batch_users = Histogram(
            "bookrec_recommender_batch_users", "Users scored in one vectorised recommender call.",
            buckets=BATCH_BUCKETS, registry=registry,
        )
        self.recommender_batch_seconds = Histogram(
            "bookrec_recommender_batch_duration_seconds", "Time of one recommender call, thread pool queueing included.",
            buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.dataloader_batch_keys = Histogram(
            "bookrec_dataloader_batch_keys", "Keys one DataLoader batch asked for.",
            ["loader"], buckets=BATCH_BUCKETS, registry=registry,
        )
        self.breaker_state = Gauge(
            "bookrec_cache_breaker_state", "Redis circuit breaker: 0 closed, 1 half-open, 2 open (worst worker).",
            registry=registry, multiprocess_mode="livemax",
        )
        self.breaker_opened = Counter(
            "bookrec_cache_breaker_opened", "Times the Redis circuit breaker opened.", registry=registry,
        )
        self.model_age = Gauge(
            "bookrec_model_age_seconds", "Seconds since the served item model was trained (oldest worker).",
            registry=registry, multiprocess_mode="livemax",
        )
        self.model_training_seconds = Gauge(
            "bookrec_model_training_duration_seconds", "Time the served item model took to train.",
            registry=registry, multiprocess_mode="livemax",
        )
        self.model_size = Gauge(
            "bookrec_model_size", "Size of the served item model, by dimension (users, books, ratings it was trained on; weights).",
            ["dimension"], registry=registry, multiprocess_mode="livemax",
        )
        self.model_fallback = Gauge(
            "bookrec_model_fallback", "1 while a worker serves the popularity fallback because no trained model is usable.",
            registry=registry, multiprocess_mode="livemax",
        )
        self.job_running = Gauge(
            "bookrec_refresh_job_running", "1 while a refreshRecommendations job runs (summed over workers).",
            registry=registry, multiprocess_mode="livesum",
        )
        self.job_processed = Gauge(
            "bookrec_refresh_job_processed_users", "Users the latest refresh job has refreshed so far.",
            registry=registry, multiprocess_mode="livesum",
        )
        self.job_total = Gauge(
            "bookrec_refresh_job_users", "Users the latest refresh job is to refresh.",
            registry=registry, multiprocess_mode="livesum",
        )
        self._service_mirrors = self._mirrors(SERVICE_COUNTERS)
        self._cache_mirrors = self._mirrors(CACHE_COUNTERS)
        self._dynamodb_counters = {
            field: Counter(name, help_text, ["operation"], registry=registry)
            for field, (name, help_text) in DYNAMODB_COUNTERS.items()
        }
        self._dynamodb_mirrors: dict[tuple[str, str], _Mirror] = {}
        # DynamoDB operation names come from the adapter, not from clients; bounded all the same.
        self._dynamodb_operations = BoundedLabels(r"[A-Za-z]{1,32}", cap=16, overflow="other")
        self._breaker_opened = _Mirror(self.breaker_opened)
        # Labelled children, looked up once: `labels()` takes a lock and builds a tuple each call.
        self._request_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.books_batch_keys = self.dataloader_batch_keys.labels("books")
        self.recommendations_batch_keys = self.dataloader_batch_keys.labels("recommendations")

    def _mirrors(self, spec: Mapping[str, tuple[str, str]]) -> dict[str, _Mirror]:
        return {field: _Mirror(Counter(name, help_text, registry=self.registry)) for field, (name, help_text) in spec.items()}

    # Observed where they happen

    def request_finished(self, operation: str, outcome: str, seconds: float) -> None:
        children = self._request_children.get((operation, outcome))
        if children is None:
            children = self.requests.labels(operation, outcome), self.request_seconds.labels(operation)
            self._request_children[(operation, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    # Mirrored from the counters objects

    def sync(
        self,
        *,
        service_counters: ServiceCounters,
        cache: object,
        stores: Iterable[object],
        model: ItemModel,
        job: RefreshJob | None,
    ) -> None:
        """Bring the mirrored counters and the gauges up to date with their sources."""
        for field, mirror in self._service_mirrors.items():
            mirror.follow(getattr(service_counters, field))
        stats = getattr(cache, "stats", None)
        if stats is not None:
            for field, mirror in self._cache_mirrors.items():
                mirror.follow(getattr(stats, field, 0))
        breaker = getattr(cache, "breaker", None)
        if breaker is not None:
            self.breaker_state.set(BREAKER_STATE_VALUES.get(str(breaker.state.value), 0))
            self._breaker_opened.follow(breaker.times_opened)
        self._sync_dynamodb(stores)
        self.model_age.set(max(0.0, time.time() - model.created_at))
        self.model_training_seconds.set(float(model.manifest.get("training_seconds", 0.0)))
        for dimension in ("users", "books", "ratings", "weights"):
            self.model_size.labels(dimension).set(float(model.manifest.get(f"n_{dimension}", 0)))
        self.model_fallback.set(1 if model.fallback else 0)
        self.job_running.set(1 if job is not None and not job.finished else 0)
        self.job_processed.set(job.processed if job is not None else 0)
        self.job_total.set(job.total if job is not None else 0)

    def _sync_dynamodb(self, stores: Iterable[object]) -> None:
        # The ratings repository and the catalog share one table and so one counts object.
        seen: set[int] = set()
        for store in stores:
            counts = getattr(store, "counts", None)
            if counts is None or id(counts) in seen:
                continue
            seen.add(id(counts))
            for field, counter in self._dynamodb_counters.items():
                for operation, value in getattr(counts, field).items():
                    label = self._dynamodb_operations(operation)
                    mirror = self._dynamodb_mirrors.get((field, label))
                    if mirror is None:
                        mirror = self._dynamodb_mirrors[(field, label)] = _Mirror(counter.labels(label))
                    mirror.follow(value)

    # Exposition

    def render(self) -> bytes:
        """The Prometheus text format: this registry, or every worker's files in multiprocess mode."""
        if not self.multiprocess_dir:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry)


_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db")


def forget_dead_workers(directory: str) -> None:
    """Drop the live gauges of worker processes that no longer exist.

    uvicorn has no hook that tells a sibling a worker died (gunicorn's `child_exit`),
    so each worker does this when it starts, which is when a dead one is replaced.
    Counters and histograms of dead workers are kept: totals must not go down.
    """
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        match = _LIVE_GAUGE_FILE.fullmatch(os.path.basename(path))
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not _process_exists(pid):
            multiprocess.mark_process_dead(pid, directory)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True
