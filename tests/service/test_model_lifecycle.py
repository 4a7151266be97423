"""The model a serving process serves: loaded at start, refused when foreign or damaged, swapped when newer.

In-memory stores and a real model directory (LocalModelStore); the S3 variant runs against
moto's server over HTTP. Every refusal must leave the served model as it was and log one line.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from adapters.model_store import LocalModelStore, open_model_store
from domain.model_service import ModelService
from domain.models import Rating, RecommendationSource
from graphql_api.bootstrap import Stores, open_container
from graphql_api.settings import Settings, load_settings
from tests.api.conftest import BOOKS, RATED_AT, TASTES
from tests.fakes import InMemoryCatalog, InMemoryRatings


def make_stores(tastes: dict[str, dict[int, int]] = TASTES) -> Stores:
    ratings = InMemoryRatings(Rating(user, book, stars, RATED_AT) for user, books in tastes.items() for book, stars in books.items())
    return Stores(ratings, InMemoryCatalog(BOOKS))


def trainer(stores: Stores, model_uri: str) -> ModelService:
    return ModelService(LocalModelStore(Path(model_uri)), stores.ratings, stores.catalog, run_blocking=asyncio.to_thread, where=model_uri)


@pytest.fixture
def settings(model_uri: str) -> Settings:
    return load_settings(model_uri=model_uri, model_refresh_seconds=0)


@pytest.fixture
def dynamodb_mode(settings: Settings) -> Settings:
    """Settings that say DynamoDB (the stores are passed in): a serving process that may not train."""
    return settings.model_copy(update={"dynamodb_table": "ratings-table"})


async def test_the_embedded_store_trains_at_start_and_publishes(settings: Settings) -> None:
    stores = make_stores()
    async with open_container(settings, stores=stores, refresh_model=False) as container:
        served = container.model.current
        assert container.model_report() == {"version": served.version, "kind": "trained"}
    assert await LocalModelStore(Path(settings.model_uri)).latest_version() == served.version
    assert sorted(served.user_ids()) == sorted(TASTES)


async def test_a_model_of_another_store_is_never_served(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """A stale ./data/model of an earlier demo: same books, other data. The embedded store trains its own."""
    stale = await trainer(make_stores({"zed": {1: 5, 9: 4}, "yan": {9: 5, 10: 5}}), settings.model_uri).train_and_publish(
        settings.item_model_params)
    stores = make_stores()
    with caplog.at_level(logging.ERROR):
        async with open_container(settings, stores=stores, refresh_model=False) as container:
            served = container.model.current
    assert served.version != stale.version and not served.fallback
    assert await stores.ratings.identity() == served.manifest["source"]
    assert [r.message for r in caplog.records if r.levelno >= logging.ERROR and stale.version in r.message]
    assert await LocalModelStore(Path(settings.model_uri)).latest_version() == served.version


async def test_without_a_model_dynamodb_mode_serves_popular_books_uncached_then_picks_the_model_up(
    dynamodb_mode: Settings,
) -> None:
    stores = make_stores()
    async with open_container(dynamodb_mode, stores=stores, refresh_model=False) as container:
        report = container.model_report()
        assert report["kind"] == "popularity fallback" and "no model published" in report["reason"]
        [fallback] = await container.service.recommendation_lists(["alice"])
        assert {item.source for item in fallback.items} == {RecommendationSource.POPULAR}
        assert not {1, 2, 3, 4} & {item.book_id for item in fallback.items}  # her own books stay out
        top_by_count = sorted(BOOKS, key=lambda book: (-book.ratings_count, book.id))
        assert fallback.items[0].book_id == next(book.id for book in top_by_count if book.id not in TASTES["alice"])
        assert await container.cache.get_many(["alice"]) == [None]  # never cached

        published = await trainer(stores, dynamodb_mode.model_uri).train_and_publish(dynamodb_mode.item_model_params)
        assert await container.models.refresh(container.model)

        assert container.model.current.version == published.version
        assert container.model_report() == {"version": published.version, "kind": "trained"}
        [trained] = await container.service.recommendation_lists(["alice"])
        assert trained.model_version == published.version
        assert RecommendationSource.COLLABORATIVE in {item.source for item in trained.items}
        assert (await container.cache.get_many(["alice"]))[0] is not None


async def test_a_damaged_newer_model_is_refused_once_and_the_served_one_stays(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    stores = make_stores()
    async with open_container(settings, stores=stores, refresh_model=False) as container:
        served = container.model.current.version
        stores.ratings.by_user["newcomer"] = {1: Rating("newcomer", 1, 5, RATED_AT)}
        newer = await trainer(stores, settings.model_uri).train_and_publish(settings.item_model_params)
        weights = Path(settings.model_uri) / "versions" / newer.version / "weights_data.npy"
        weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)

        with caplog.at_level(logging.ERROR, logger="bookrec.model"):
            assert not await container.models.refresh(container.model)
            assert not await container.models.refresh(container.model)

        assert container.model.current.version == served
        lines = [record.message for record in caplog.records if record.name == "bookrec.model" and record.levelno >= logging.ERROR]
        assert len(lines) == 1 and newer.version in lines[0] and "damaged" in lines[0] and "\n" not in lines[0]
        assert (await container.service.recommendation_lists(["alice"]))[0].model_version == served


async def test_a_model_naming_books_the_catalogue_lacks_is_refused(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    stores = make_stores()
    async with open_container(settings, stores=stores, refresh_model=False) as container:
        served = container.model.current.version
        shrunk = Stores(stores.ratings, InMemoryCatalog(book for book in BOOKS if book.id != 1))
        models = ModelService(LocalModelStore(Path(settings.model_uri)), stores.ratings, shrunk.catalog,
                              run_blocking=asyncio.to_thread, where=settings.model_uri)
        stores.ratings.by_user["newcomer"] = {2: Rating("newcomer", 2, 4, RATED_AT)}
        await models.train_and_publish(settings.item_model_params)
        with caplog.at_level(logging.ERROR, logger="bookrec.model"):
            assert not await models.refresh(container.model)
        assert container.model.current.version == served
        assert any("1 books the catalogue does not hold" in record.message for record in caplog.records)


async def test_refresh_every_user_means_the_users_of_the_served_model(settings: Settings) -> None:
    stores = make_stores()
    async with open_container(settings, stores=stores, refresh_model=False) as container:
        computed = await container.service.refresh()
        assert computed == len(TASTES)
        assert all(value is not None for value in await container.cache.get_many(list(TASTES)))


def memory_mapped(array: object) -> bool:
    """Whether an array is a view of a file mapping (scipy keeps views of the memmaps it is given)."""
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


@pytest.fixture
async def s3_uri(moto_server: str) -> AsyncIterator[str]:
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    async with open_model_store(f"s3://{bucket}/item-model", region="us-east-1", endpoint_url=moto_server,
                                cache_dir=Path("/tmp"), keep=3) as store:
        await store.client.create_bucket(Bucket=bucket)
    yield f"s3://{bucket}/item-model"


@pytest.mark.moto_server
async def test_a_model_in_s3_is_served_and_an_unreachable_s3_keeps_it(
    s3_uri: str, moto_server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(model_uri=s3_uri, model_s3_endpoint_url=moto_server, model_cache_dir=str(tmp_path / "cache"),
                             model_refresh_seconds=0, dynamodb_table="ratings-table")
    stores = make_stores()
    async with open_model_store(s3_uri, region="us-east-1", endpoint_url=moto_server, cache_dir=tmp_path / "cache", keep=3) as store:
        published = await ModelService(store, stores.ratings, stores.catalog, run_blocking=asyncio.to_thread,
                                       where=s3_uri).train_and_publish(settings.item_model_params)
    async with open_container(settings, stores=stores, refresh_model=False) as container:
        assert container.model.current.version == published.version
        weights = container.model.current.weights
        assert all(memory_mapped(array) for array in (weights.data, weights.indices, weights.indptr))

    async with open_container(settings, stores=stores, refresh_model=False) as container:
        async with open_model_store(s3_uri, region="us-east-1", endpoint_url="http://127.0.0.1:9",
                                    cache_dir=tmp_path / "cache", keep=3) as down:
            models = ModelService(down, stores.ratings, stores.catalog, run_blocking=asyncio.to_thread, where=s3_uri)
            with caplog.at_level(logging.ERROR, logger="bookrec.model"):
                assert not await models.refresh(container.model)
                assert not await models.refresh(container.model)
        assert container.model.current.version == published.version
        assert len([r for r in caplog.records if r.name == "bookrec.model" and r.levelno >= logging.ERROR]) == 1
