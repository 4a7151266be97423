"""The API's GraphQL scenarios once more on the production stores: DynamoDB (moto's server over HTTP) and Redis.

The scenarios are the SQLite/memory ones, imported so pytest collects them here too: the
fixtures below replace the stores they run on, and nothing else changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.dynamodb_store import open_dynamodb_stores
from domain.models import Rating
from graphql_api.bootstrap import Stores
from graphql_api.settings import Settings
from tests.api.conftest import BOOKS, RATED_AT, TASTES, Api, api_settings, publish_model
from tests.api.test_batching_redis import make_cache  # noqa: F401  (the app's cache: real Redis)
from tests.api.test_batching import (  # noqa: F401  (collected here, on these stores)
    MIXED_QUERY,
    test_a_cold_query_for_many_users_is_one_read_one_batch_one_fill,
    test_a_warm_query_for_many_users_is_one_cache_read_and_nothing_computed,
    test_books_are_read_in_one_catalog_batch_per_100_distinct_ids,
)
from tests.api.test_mutations import (  # noqa: F401
    test_a_rating_outside_1_to_5_is_bad_user_input_and_changes_nothing,
    test_an_unknown_book_is_not_found_and_changes_nothing,
    test_rating_a_recommended_book_removes_it_from_every_later_list,
    test_rating_again_overwrites,
)
from tests.redis_servers import RedisServerProcess

pytestmark = [pytest.mark.moto_server, pytest.mark.redis_server]


@pytest.fixture
def settings(tmp_path: Path, redis_server: RedisServerProcess, dynamodb_settings: Settings) -> Settings:
    return api_settings(
        tmp_path,
        redis_url=redis_server.url,
        redis_timeout_ms=1000,
        dynamodb_table=dynamodb_settings.dynamodb_table,
        dynamodb_endpoint_url=dynamodb_settings.dynamodb_endpoint_url,
        aws_region=dynamodb_settings.aws_region,
    )


@pytest.fixture
async def seeded_stores(settings: Settings) -> AsyncIterator[Stores]:
    async with open_dynamodb_stores(
        table=settings.dynamodb_table or "", region=settings.aws_region, endpoint_url=settings.dynamodb_endpoint_url
    ) as (ratings, catalog):
        await catalog.put_many(BOOKS)
        await ratings.put_many(
            Rating(user, book_id, stars, RATED_AT) for user, rated in TASTES.items() for book_id, stars in rated.items()
        )
        await publish_model(settings, Stores(ratings, catalog))  # serving on DynamoDB only loads a model
        ratings.counts.reset()
        yield Stores(ratings, catalog)


async def test_serving_start_up_and_model_refresh_scan_nothing(api: Api, seeded_stores: Stores) -> None:
    container = api.container
    assert container.model_report()["kind"] == "trained"
    counts = container.ratings.counts
    await seeded_stores.ratings.upsert(Rating("new reader", BOOKS[0].id, 5, RATED_AT))
    newer = await publish_model(container.settings.model_copy(update={"model_l2": 7.0}), seeded_stores)
    counts.reset()

    assert await container.models.refresh(container.model)

    assert container.model.current.version == newer.version
    assert counts.calls["Scan"] == 0


async def test_a_query_for_many_users_costs_one_mget_and_dynamodb_calls_by_the_rule(
    api: Api, redis_server: RedisServerProcess
) -> None:
    """Cold: at most one Query per miss, one BatchGetItem per 100 books, no Scan. Warm: no Query at all."""
    counts = api.container.ratings.counts
    counts.reset()
    mgets = redis_server.command_calls("mget")
    cold = await api.gql(MIXED_QUERY)
    assert "errors" not in cold
    assert redis_server.command_calls("mget") == mgets + 1
    misses = api.container.service.counters.misses
    assert counts.calls.get("Query", 0) <= misses
    assert counts.calls.get("Scan", 0) == 0
    assert counts.calls.get("BatchGetItem", 0) == 1

    counts.reset()
    assert await api.gql(MIXED_QUERY) == cold
    assert counts.calls.get("Query", 0) == 0 and counts.calls.get("Scan", 0) == 0
