"""The API under test: create_app over a container of real embedded stores (SQLite, in-process cache).

The stores are wrapped in `Counted`, which forwards every call and counts it, so
tests can assert how many batch reads a query made without replacing the thing
that answers them.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.memory_cache import InProcessRecommendationCache
from adapters.sqlite_store import open_sqlite_stores
from domain.models import Book, Rating
from graphql_api.app import create_app
from graphql_api.auth import TokenAuthority
from adapters.model_store import LocalModelStore
from domain.item_model import ItemModel
from domain.model_service import ModelService
from graphql_api.bootstrap import Container, Stores, open_container
from graphql_api.settings import Settings, load_settings

SECRET = "api-tests-secret-that-is-32-bytes-or-longer"
CATALOG_SIZE = 160  # more than one catalog batch of 100

BOOKS = [
    Book(id=book_id, title=f"Book {book_id}", authors=(f"Author {book_id % 7}", "Co Author"),
         publication_year=1900 + book_id, image_url=f"https://img.example/{book_id}.jpg",
         average_rating=3.5, ratings_count=100 + book_id)
    for book_id in range(1, CATALOG_SIZE + 1)
]

# Users with overlapping tastes, so the known ones get COLLABORATIVE lists.
TASTES: dict[str, dict[int, int]] = {
    "alice": {1: 5, 2: 5, 3: 4, 4: 4},
    "bob": {1: 5, 2: 4, 3: 5, 5: 5, 6: 4},
    "carol": {1: 4, 2: 5, 4: 5, 5: 4, 7: 5},
    "dave": {2: 5, 3: 4, 6: 5, 7: 4, 8: 5},
    "erin": {1: 5, 3: 5, 4: 4, 8: 4, 9: 5},
    "frank": {10: 5, 11: 4, 12: 5, 1: 3, 2: 3},
    # Wide raters, so that lists run to MAX_RECOMMENDATIONS.
    "grace": {book_id: 3 + book_id % 3 for book_id in range(1, 41)},
    "heidi": {book_id: 2 + book_id % 4 for book_id in range(20, 61)},
}
RATED_AT = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


class Counted:
    """A store that forwards every method call to `inner` and counts it (with its arguments)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: collections.Counter[str] = collections.Counter()
        self.arguments: dict[str, list[tuple[Any, ...]]] = collections.defaultdict(list)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            self.arguments[name].append(args)
            return attribute(*args, **kwargs)

        return counted

    def reset(self) -> None:
        self.calls.clear()
        self.arguments.clear()


class Failing:
    """A store whose named methods raise `error`; everything else is forwarded."""

    def __init__(self, inner: Any, error: BaseException, *methods: str) -> None:
        self.inner, self.error, self.methods = inner, error, set(methods)

    def __getattr__(self, name: str) -> Any:
        if name in self.methods:
            async def fail(*args: Any, **kwargs: Any) -> Any:
                raise self.error

            return fail
        return getattr(self.inner, name)


async def publish_model(settings: Settings, stores: Stores) -> ItemModel:
    """What the scheduled `bookrec train` does: train on the stores, publish to MODEL_URI (serving on DynamoDB only loads)."""
    models = ModelService(LocalModelStore(Path(settings.model_uri)), stores.ratings, stores.catalog,
                          run_blocking=asyncio.to_thread, where=settings.model_uri)
    return await models.train_and_publish(settings.item_model_params)


def api_settings(tmp_path: Path, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "debug": False,
        "auth_jwt_secret": SECRET,
        "sqlite_path": str(tmp_path / "bookrec.db"),
        "max_recommendations": 20,
        "model_refresh_seconds": 0,
    }
    return load_settings(**{**options, **overrides})


@dataclass
class Api:
    """A running app and handles on what it runs on."""

    client: httpx.AsyncClient
    container: Container
    ratings: Counted
    catalog: Counted
    cache: Counted
    tokens: TokenAuthority
    app: Any = None  # the Starlette app, for tests that reach its GraphQL view

    async def gql(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def token(self, user_id: str, *, admin: bool = False) -> str:
        return self.tokens.issue(user_id, admin=admin)

    def reset_counts(self) -> None:
        for store in (self.ratings, self.catalog, self.cache):
            store.reset()


@pytest.fixture
async def seeded_stores(tmp_path: Path) -> AsyncIterator[Stores]:
    ratings, catalog = open_sqlite_stores(tmp_path / "bookrec.db")
    await catalog.put_many(BOOKS)
    await ratings.put_many(
        Rating(user, book_id, stars, RATED_AT) for user, rated in TASTES.items() for book_id, stars in rated.items()
    )
    try:
        yield Stores(ratings, catalog)
    finally:
        await ratings.aclose()


@pytest.fixture
def wrap_stores() -> Callable[[Stores], Stores]:
    """Override to put a failing store in front of the counters."""
    return lambda stores: stores


@pytest.fixture
def make_cache(tmp_path: Path) -> Callable[[Settings], Any]:
    """Override to run the app on another cache (a real Redis)."""

    def memory_cache(settings: Settings) -> Any:
        return InProcessRecommendationCache(settings.cache_ttl_seconds, settings.cache_lease_ms, settings.cache_max_entries)

    return memory_cache


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return api_settings(tmp_path)


@pytest.fixture
async def api(
    settings: Settings,
    seeded_stores: Stores,
    wrap_stores: Callable[[Stores], Stores],
    make_cache: Callable[[Settings], Any],
) -> AsyncIterator[Api]:
    stores = wrap_stores(seeded_stores)
    ratings, catalog, cache = Counted(stores.ratings), Counted(stores.catalog), Counted(make_cache(settings))
    async with open_container(settings, stores=Stores(ratings, catalog), cache=cache, refresh_model=False) as container:
        app = create_app(container=container)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bookrec.test") as client:
                api = Api(client, container, ratings, catalog, cache, TokenAuthority(SECRET), app)
                api.reset_counts()  # start-up's reads (the model's books checked against the catalogue) are no request's
                yield api
