"""The per-batch hooks: what the service reports (cache reads, recommender batches) and the catalog batches.

One call per batch, never per user or field: a histogram observation or two, the
request's own cache figures, and a span when tracing is on. Batch latencies are
spans only: as histograms they would cost every request two more observations.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from domain.models import Book
from domain.ports import BookCatalog
from graphql_api.observability.metrics import Metrics
from graphql_api.observability.requests import current_request
from graphql_api.observability.tracing import Tracing


class ServiceMetrics:
    """The service's observer (domain.service.ServiceObserver) for this app."""

    def __init__(self, metrics: Metrics, tracing: Tracing) -> None:
        self._lookup_keys = metrics.recommendations_batch_keys
        self._batch_users = metrics.recommender_batch_users
        self._batch_seconds = metrics.recommender_batch_seconds
        self._tracing = tracing

    def cache_read(self, hits: int, misses: int, seconds: float) -> None:
        request = current_request.get()
        if request is not None:
            request.cache_hits += hits
            request.cache_misses += misses
        # The service reads the cache once per RecommendationLoader batch: its size is the batch's.
        self._lookup_keys.observe(hits + misses)
        if self._tracing.enabled:
            self._tracing.record_span("cache get_many", seconds, {"bookrec.users": hits + misses, "bookrec.cache_hits": hits})

    def recommender_batch(self, users: int, seconds: float) -> None:
        self._batch_users.observe(users)
        self._batch_seconds.observe(seconds)
        if self._tracing.enabled:
            self._tracing.record_span("recommender batch", seconds, {"bookrec.users": users})


class ObservedCatalog:
    """The catalog as a request's BookLoader sees it: each batch read sized (and traced).

    Made once per app and wrapped around the container's catalog; everything but
    `get_many` passes straight through.
    """

    def __init__(self, catalog: BookCatalog, metrics: Metrics, tracing: Tracing) -> None:
        self.inner = catalog
        self._batch_keys = metrics.books_batch_keys
        self._tracing = tracing

    async def get_many(self, book_ids: Sequence[int]) -> dict[int, Book]:
        self._batch_keys.observe(len(book_ids))
        if not self._tracing.enabled:
            return await self.inner.get_many(book_ids)
        started = time.perf_counter()
        found = await self.inner.get_many(book_ids)
        self._tracing.record_span("catalog batch", time.perf_counter() - started, {"bookrec.books": len(book_ids)})
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
