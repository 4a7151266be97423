"""The real app (create_app) over seeded embedded stores, for the web features: APQ, cache headers, static files."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.memory_cache import InProcessRecommendationCache
from graphql_api.app import create_app
from graphql_api.auth import TokenAuthority
from graphql_api.bootstrap import Stores, open_container
from graphql_api.settings import Settings
from tests.api.conftest import SECRET, api_settings, seeded_stores  # noqa: F401  (seeded_stores is a fixture)

POPULAR_QUERY = "query Popular { popularBooks(limit: 3) { id title } }"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(sha256_hash: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256_hash}}


def hashed_get_params(query: str, variables: dict[str, Any] | None = None, *, sha256_hash: str | None = None) -> dict[str, str]:
    """Apollo Client's GET for a persisted query: no `query`, JSON-encoded `extensions` and `variables`."""
    params = {"extensions": json.dumps(persisted(sha256_hash or sha256_hex(query)))}
    if variables is not None:
        params["variables"] = json.dumps(variables)
    return params


def token(user_id: str, *, admin: bool = False) -> str:
    return TokenAuthority(SECRET).issue(user_id, admin=admin)


def error_code(body: dict[str, Any]) -> str:
    return body["errors"][0]["extensions"]["code"]


@pytest.fixture
def web_settings(tmp_path: Path) -> Settings:
    """Override in a module or class for other settings (allow-list mode, Redis, GraphiQL off)."""
    return api_settings(tmp_path, graphiql=True)


@contextlib.asynccontextmanager
async def open_client(settings: Settings, stores: Stores) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on a fresh app (as one server process would be) over `stores`."""
    cache = InProcessRecommendationCache(settings.cache_ttl_seconds, settings.cache_lease_ms, settings.cache_max_entries)
    async with open_container(settings, stores=stores, cache=cache, refresh_model=False) as container:
        app = create_app(container=container)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bookrec.test") as http:
                yield http


@pytest.fixture
async def client(web_settings: Settings, seeded_stores: Stores) -> AsyncIterator[httpx.AsyncClient]:  # noqa: F811
    async with open_client(web_settings, seeded_stores) as http:
        yield http
