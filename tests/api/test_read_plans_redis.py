"""Read plans on a real Redis: a rating on one app instance is seen by the next planned read on another."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.redis_cache import build_redis_cache
from adapters.sqlite_store import open_sqlite_stores
from graphql_api.app import create_app
from graphql_api.bootstrap import Stores, open_container
from graphql_api.settings import Settings
from tests.api.conftest import Api
from tests.api.test_batching_redis import make_cache, settings  # noqa: F401 - the real-Redis fixtures
from tests.api.test_read_plans import HOT, post, rate_and_read, view_plans

pytestmark = pytest.mark.redis_server


async def test_after_rate_book_the_next_planned_read_shows_the_new_list(api: Api) -> None:
    await post(api, HOT, {"id": "heidi"})
    await rate_and_read(api, "heidi")


@pytest.fixture
async def second_instance(settings: Settings, tmp_path: Path, api: Api) -> AsyncIterator[Any]:  # noqa: F811
    """Another app on the same SQLite file and the same Redis, as a second worker process would be."""
    ratings, catalog = open_sqlite_stores(tmp_path / "bookrec.db")
    cache = build_redis_cache(settings)
    try:
        async with open_container(settings, stores=Stores(ratings, catalog), cache=cache, refresh_model=False) as container:
            app = create_app(container=container)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://second.test") as client:
                    yield Api(client, container, api.ratings, api.catalog, api.cache, api.tokens, app)
    finally:
        await cache.aclose()
        await ratings.aclose()


async def test_a_rating_on_one_instance_is_never_served_stale_by_another(api: Api, second_instance: Api) -> None:
    user = "grace"
    for _ in range(2):  # the second read on the second instance is a planned one
        before = (await post(second_instance, HOT, {"id": user})).json()["data"]["user"]["recommendations"]
    assert view_plans(second_instance).answered == 1
    for item in before[:3]:
        mutation = "mutation($u: ID!, $b: ID!) { rateBook(userId: $u, bookId: $b, rating: 4) { rating { rating } } }"
        rated = await api.client.post(
            "/graphql", json={"query": mutation, "variables": {"u": user, "b": item["book"]["id"]}},
            headers={"Authorization": f"Bearer {api.token(user)}"},
        )
        assert "errors" not in rated.json(), rated.text
        after = (await post(second_instance, HOT, {"id": user})).json()["data"]["user"]["recommendations"]
        assert item["book"]["id"] not in [entry["book"]["id"] for entry in after]
    assert view_plans(second_instance).answered == 4
