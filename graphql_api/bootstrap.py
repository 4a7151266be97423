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
from pathlib import Path
from typing import Any

from adapters.cached_catalog import CachedBookCatalog
from domain.item_model import ItemModel, ItemRecommender
from domain.model_service import EmptyStore, ModelService
from domain.models import ArtifactError
from domain.ports import BookCatalog, ModelRepository, RatingsRepository, RecommendationCache
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
    models: ModelService
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

    def model_report(self) -> dict[str, str]:
        """The served model's version, and why it is the popularity fallback when it is."""
        current = self.model.current
        report = {"version": current.version, "kind": "popularity fallback" if current.fallback else "trained"}
        if current.fallback and self.models.problem:
            report["reason"] = self.models.problem
        return report


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


@contextlib.asynccontextmanager
async def open_model_repository(settings: Settings) -> AsyncIterator[ModelRepository]:
    """The model repository at MODEL_URI: a local directory or S3."""
    from adapters.model_store import open_model_store

    async with open_model_store(
        settings.model_uri, region=settings.aws_region, endpoint_url=settings.model_s3_endpoint_url,
        cache_dir=Path(settings.model_cache_dir), keep=settings.model_keep_versions,
    ) as repository:
        yield repository


async def model_to_serve(models: ModelService, settings: Settings) -> ItemModel:
    """The latest published model; else, on the embedded store, one trained now; else the popularity fallback.

    With DynamoDB a serving process never reads every rating: training is `bookrec train`'s job,
    and until it has published a model the catalogue's popularity ranking is served.
    """
    try:
        model = await models.load_latest()
        if model is not None:
            logger.info("model %s loaded from %s: %d books, %d weights", model.version, settings.model_uri, model.n_books, model.weights.nnz)
            return model
        reason = f"no model published at {settings.model_uri}"
    except ArtifactError as error:
        reason = str(error)
        logger.error("%s; not serving it", reason)
    if not settings.dynamodb_table:
        logger.info("%s: training one now on the embedded store", reason)
        try:
            return await models.train_and_publish(settings.item_model_params)
        except EmptyStore as error:
            reason = f"{reason}, and {error}"
    models.problem = f"{reason}: serving the popularity ranking until `bookrec train` publishes a model"
    logger.warning("%s", models.problem)
    return await models.popular_fallback()


async def _refresh_model_forever(models: ModelService, holder: ModelHolder, every_seconds: int) -> None:
    while True:
        await asyncio.sleep(every_seconds)
        try:
            await models.refresh(holder)
        except Exception:  # a bug must not end the polling for the life of the process
            logger.exception("model refresh failed; keeping model %s", holder.current.version)


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
    """Build the service from the settings (or from the adapters given), load the model, watch for newer ones.

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
        catalog = CachedBookCatalog(stores.catalog, ttl_seconds=BOOK_CACHE_TTL_SECONDS, max_entries=BOOK_CACHE_MAX_ENTRIES)
        repository = await stack.enter_async_context(open_model_repository(settings))
        # Models are checked against the catalogue itself, not the process's book cache, which may be behind it.
        models = ModelService(repository, stores.ratings, stores.catalog, run_blocking=run_blocking, where=settings.model_uri)
        model = ModelHolder(await model_to_serve(models, settings))
        if warm_books:  # a serving process: read every book the model can recommend before the first request
            started = time.perf_counter()
            cached = await catalog.warm(model.current.book_ids.tolist(), batch_size=CATALOG_BATCH)
            logger.info("book cache warmed: %d books in %.2f s", cached, time.perf_counter() - started)
        service = RecommendationService(
            stores.ratings, catalog, cache, model, ItemRecommender(settings.max_recommendations),
            run_blocking=service_options.pop("run_blocking", run_blocking), **service_options,
        )
        container = Container(settings, service, stores.ratings, catalog, cache, model, models, run_blocking)
        if refresh_model and settings.model_refresh_seconds > 0:
            refresher = asyncio.create_task(_refresh_model_forever(models, model, settings.model_refresh_seconds))
            stack.callback(refresher.cancel)
        yield container
