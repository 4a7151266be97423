"""The app's observability, in one object: metrics, tracing, the hit-ratio window and the per-request finish.

`create_app` makes one; its lifespan attaches it to the container (the service
then reports to it) and runs the sync loop that mirrors the counters objects into
Prometheus every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from adapters import cache_inspection
from adapters.circuit_breaker import BreakerState
from adapters.redis_cache import REDIS_FAILURES
from domain.ports import BookCatalog
from domain.service import NoObserver
from graphql_api.observability.hit_ratio import HitRatio, HitRatioWindow
from graphql_api.observability.hooks import ObservedCatalog, ServiceMetrics
from graphql_api.observability.labels import ANONYMOUS_OPERATION, OK, operation_labels, outcome_labels
from graphql_api.observability.metrics import Metrics
from graphql_api.observability.requests import RequestRecord
from graphql_api.observability.tracing import RequestSpan, Tracing

if TYPE_CHECKING:
    from graphql_api.bootstrap import Container
    from graphql_api.jobs import RefreshJobs

logger = logging.getLogger("bookrec.observability")
request_logger = logging.getLogger("bookrec.request")

SYNC_EVERY_SECONDS = 5.0
GRAPHQL_PATH = "/graphql"
# Probes and scrapes every few seconds would drown the request log: they log at DEBUG.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MANIFEST_PATH = Path(__file__).resolve().parents[1] / "web" / "static" / "persisted-queries.json"


def manifest_operation_names(path: Path = MANIFEST_PATH) -> list[str]:
    """The SPA's operation names, labelled from the start whatever else arrives first."""
    try:
        return [str(operation["name"]) for operation in json.loads(path.read_text(encoding="utf-8"))["operations"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


@dataclass(frozen=True, slots=True)
class CacheFigures:
    """What `cacheStats` reports, for this process."""

    backend: str
    hit_ratio: HitRatio
    keys_cached: int | None
    keys_exact: bool
    breaker_state: str | None
    snapshot_version: str
    snapshot_age_seconds: float


class Observability:
    def __init__(self, tracing: Tracing, *, sync_every_seconds: float = SYNC_EVERY_SECONDS) -> None:
        self.metrics = Metrics()
        self.tracing = tracing
        self.hit_window = HitRatioWindow(sample_every_seconds=sync_every_seconds)
        self.service_metrics = ServiceMetrics(self.metrics, tracing)
        self._sync_every_seconds = sync_every_seconds
        self._operations = operation_labels(manifest_operation_names())
        self._outcomes = outcome_labels()
        self._container: Container | None = None
        self._jobs: RefreshJobs | None = None
        self._catalog: ObservedCatalog | None = None

    # Life cycle

    @contextlib.asynccontextmanager
    async def attached(self, container: Container, jobs: RefreshJobs) -> AsyncIterator[None]:
        """Report the service's work here and keep the mirrored metrics fresh while the app runs."""
        self._container, self._jobs = container, jobs
        container.service.observer = self.service_metrics
        self.sync()
        task = asyncio.create_task(self._sync_forever(), name="metrics-sync")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            container.service.observer = NoObserver()
            self._container = self._jobs = None

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sync_every_seconds)
            try:
                self.sync()
            except Exception:  # a metrics bug must not stop the next sync, nor the service
                logger.exception("metrics sync failed")

    def sync(self) -> None:
        container, jobs = self._container, self._jobs
        if container is None or jobs is None:
            return
        counters = container.service.counters
        self.metrics.sync(
            service_counters=counters,
            cache=container.cache,
            stores=(container.ratings, container.catalog),
            model=container.model.current,
            job=jobs.latest,
        )
        self.hit_window.sample(counters.hits, counters.misses)

    # Per request

    def catalog(self, catalog: BookCatalog) -> BookCatalog:
        """`catalog` wrapped for the BookLoader; made once, not per request."""
        if self._catalog is None or self._catalog.inner is not catalog:
            self._catalog = ObservedCatalog(catalog, self.metrics, self.tracing)
        return self._catalog

    def finish_request(self, scope: Scope, record: RequestRecord, status: int, seconds: float, span: RequestSpan | None) -> None:
        """Count, time and log one finished request (and end its span)."""
        path = scope["path"]
        operation = self._operations(record.operation or ANONYMOUS_OPERATION)
        outcome = self._outcomes(record.outcome or (OK if status < 400 else f"HTTP_{status}"))
        if path == GRAPHQL_PATH:
            self.metrics.request_finished(operation, outcome, seconds)
        if span is not None:
            self.tracing.end_request(span, status=status, operation=operation, outcome=outcome, request_id=record.request_id)
        level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
        if request_logger.isEnabledFor(level):
            # The record is made here and handed to the logger: Logger.log's generic path (the
            # `extra` merge, the caller lookup) costs a third of this line, on every request.
            line = logging.LogRecord(request_logger.name, level, __file__, 0, f"{scope['method']} {path} {status}", None, None)
            line.fields = {
                "request_id": record.request_id,
                "method": scope["method"],
                "path": path,
                "status": status,
                "operation": record.operation,
                "outcome": outcome,
                "duration_ms": round(seconds * 1000, 3),
                "cache_hits": record.cache_hits,
                "cache_misses": record.cache_misses,
            }
            request_logger.handle(line)

    # Endpoints and figures

    async def metrics_endpoint(self, request: Request) -> Response:
        self.sync()
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def cache_figures(self, window_seconds: float) -> CacheFigures:
        container = self._container
        if container is None:
            raise RuntimeError("observability is not attached to a running container")
        counters = container.service.counters
        cache = container.cache
        breaker = getattr(cache, "breaker", None)
        keys, exact = await _cached_keys(cache, breaker)
        snapshot = container.model.current
        return CacheFigures(
            backend="redis" if getattr(cache, "client", None) is not None else "memory",
            hit_ratio=self.hit_window.over(window_seconds, counters.hits, counters.misses),
            keys_cached=keys,
            keys_exact=exact,
            breaker_state=None if breaker is None else str(breaker.state.value),
            snapshot_version=snapshot.version,
            snapshot_age_seconds=max(0.0, time.time() - snapshot.created_at),
        )


async def _cached_keys(cache: Any, breaker: Any) -> tuple[int | None, bool]:
    """Keys in the cache: Redis counted (or estimated) on the server, the in-process cache by its length.

    Unknown (None) while the breaker is open or Redis fails: an admin query must
    not wait out timeouts the request path is being spared.
    """
    client = getattr(cache, "client", None)
    if client is None:
        size = getattr(cache, "__len__", None)  # getattr, so that a forwarding proxy (tests' Counted) works too
        return (size(), True) if size is not None else (None, False)
    if breaker is not None and breaker.state is not BreakerState.CLOSED:
        return None, False
    try:
        count = await cache_inspection.count_recommendation_keys(client)
    except REDIS_FAILURES as error:  # the figure is just unknown
        logger.warning("could not count cached keys: %s: %s", type(error).__name__, error)
        return None, False
    return count.keys, count.exact
