"""The composition root: build the adapters the settings ask for and hand them to the service.

Everything that chooses an implementation lives here, so the domain never knows
whether it talks to SQLite or DynamoDB, memory or Redis; tests build a
container from other adapters with the same function.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from adapters.cached_catalog import CachedBookCatalog
from domain.ports import BookCatalog, RatingsRepository, RecommendationCache
from domain.recommender import ModelSnapshot, Recommender, RecommenderParams
from domain.service import ModelHolder, RecommendationService, RunBlocking
from graphql_api.loaders import CATALOG_BATCH
from graphql_api.settings import Settings

logger = logging.getLogger("bookrec.bootstrap")

# Books change only on `bookrec import`; every request reads them. Cached in process for
# this long (an import shows in other processes within it), and at most this many.
BOOK_CACHE_TTL_SECONDS = 300
BOOK_CACHE_MAX_ENTRIES = 200_000


@dataclass
class Stores:
    ratings: RatingsRepository
    catalog: BookCatalog


@dataclass
class Container:
    settings: Settings
    service: RecommendationService
    ratings: RatingsRepository
    catalog: BookCatalog
    cache: RecommendationCache
    model: ModelHolder
    run_blocking: RunBlocking = field(repr=False)

    async def readiness(self) -> dict[str, str | None]:
        """Each store's name mapped to None when it answers, else the reason it does not."""
        checks = {"ratings": self.ratings, "catalog": self.catalog, "cache": self.cache}
        report: dict[str, str | None] = {}
        for name, adapter in checks.items():
            ping = getattr(adapter, "ping", None)
            if ping is None:
                report[name] = None
                continue
            try:
                report[name] = None if await ping() else "not reachable"
            except Exception as error:  # a readiness probe reports, it never raises
                report[name] = f"{type(error).__name__}: {error}"
        return report

    async def rebuild_model(self) -> ModelSnapshot:
        """Scan every rating, build a snapshot off the event loop and swap it in."""
        snapshot = await load_snapshot(self.ratings, self.settings.recommender_params, self.run_blocking)
        self.model.swap(snapshot)
        return snapshot


@contextlib.asynccontextmanager
async def open_stores(settings: Settings) -> AsyncIterator[Stores]:
    """The ratings store and catalog the settings select: DynamoDB when DYNAMODB_TABLE is set, else SQLite."""
    if settings.dynamodb_table:
        from adapters.dynamodb_store import open_dynamodb_stores

        async with open_dynamodb_stores(
            table=settings.dynamodb_table, region=settings.aws_region, endpoint_url=settings.dynamodb_endpoint_url
        ) as (ratings, catalog):
            yield Stores(ratings, catalog)
    else:
        from adapters.sqlite_store import open_sqlite_stores

        ratings, catalog = open_sqlite_stores(settings.sqlite_path)
        try:
            yield Stores(ratings, catalog)
        finally:
            await ratings.aclose()


def build_cache(settings: Settings) -> RecommendationCache:
    """Redis when REDIS_URL is set, else the in-process TTL cache."""
    if settings.redis_url:
        from adapters.redis_cache import build_redis_cache

        return build_redis_cache(settings)
    from adapters.memory_cache import build_memory_cache

    return build_memory_cache(settings)


async def load_snapshot(ratings: RatingsRepository, params: RecommenderParams, run_blocking: RunBlocking) -> ModelSnapshot:
    columns = await ratings.scan_columns()
    snapshot = await run_blocking(ModelSnapshot.build, columns, params)
    logger.info(
        "model snapshot %s built: %d users, %d books, %d ratings in %.2f s",
        snapshot.version, snapshot.n_users, snapshot.n_books, snapshot.n_ratings, snapshot.build_seconds,
    )
    return snapshot


async def _refresh_model_forever(container: Container, every_seconds: int) -> None:
    while True:
        await asyncio.sleep(every_seconds)
        try:
            await container.rebuild_model()
        except Exception:  # keep serving the old snapshot; the next round tries again
            logger.exception("model snapshot refresh failed; keeping the current one")


@contextlib.asynccontextmanager
async def open_container(
    settings: Settings,
    *,
    stores: Stores | None = None,
    cache: RecommendationCache | None = None,
    refresh_model: bool = True,
    warm_books: bool = False,
    **service_options: Any,
) -> AsyncIterator[Container]:
    """Build the service from the settings (or from the adapters given), load the model, keep it fresh.

    The recommender gets its own thread pool, sized to the cores, so scoring never
    queues behind blocking store calls in asyncio's default pool (and never runs on
    the event loop). Books are read through a process-wide cache (adapters.cached_catalog);
    `warm_books` fills it before the container is handed out, as a serving process wants.
    """
    executor = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="recommender")
    loop = asyncio.get_running_loop()

    async def run_blocking(function: Any, *args: Any) -> Any:
        return await loop.run_in_executor(executor, partial(function, *args))

    async with contextlib.AsyncExitStack() as stack:
        stack.callback(executor.shutdown, wait=False, cancel_futures=True)
        if stores is None:
            stores = await stack.enter_async_context(open_stores(settings))
        if cache is None:
            cache = build_cache(settings)
            stack.push_async_callback(cache.aclose)
        params = settings.recommender_params
        model = ModelHolder(await load_snapshot(stores.ratings, params, run_blocking))
        catalog = CachedBookCatalog(stores.catalog, ttl_seconds=BOOK_CACHE_TTL_SECONDS, max_entries=BOOK_CACHE_MAX_ENTRIES)
        if warm_books:  # a serving process: read every book the model can recommend before the first request
            started = time.perf_counter()
            cached = await catalog.warm(model.current.book_ids.tolist(), batch_size=CATALOG_BATCH)
            logger.info("book cache warmed: %d books in %.2f s", cached, time.perf_counter() - started)
        service = RecommendationService(
            stores.ratings, catalog, cache, model, Recommender(params),
            run_blocking=service_options.pop("run_blocking", run_blocking), **service_options,
        )
        container = Container(settings, service, stores.ratings, catalog, cache, model, run_blocking)
        if refresh_model and settings.model_refresh_seconds > 0:
            refresher = asyncio.create_task(_refresh_model_forever(container, settings.model_refresh_seconds))
            stack.callback(refresher.cancel)
        yield container
