"""The API fixtures of tests/api (real SQLite stores, in-process or Redis cache), a /metrics reader, log readers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.circuit_breaker import CircuitBreaker
from adapters.redis_cache import RedisRecommendationCache, build_redis_client
from adapters.sqlite_store import open_sqlite_stores
from domain.models import Rating
from graphql_api.observability.logging_config import configure_logging
from graphql_api.settings import Settings
from tests.api.conftest import RATED_AT, TASTES, Api, api, make_cache, seeded_stores, settings, wrap_stores  # noqa: F401
from tests.redis_servers import RedisServerProcess

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

RECOMMENDATIONS = "query Recs($id: ID!) { user(id: $id) { recommendations(limit: 3) { score book { title } } } }"
RATE = "mutation Rate($u: ID!, $b: ID!) { rateBook(userId: $u, bookId: $b, rating: 5) { rating { rating } } }"


async def scrape(api: Api) -> tuple[str, Samples]:
    """GET /metrics: the text, and every sample keyed by (name, labels)."""
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return response.text, samples


def seed_sqlite(path: Path) -> None:
    """A SQLite ratings store holding the API tests' users, for commands and servers run from files."""

    async def seed() -> None:
        ratings, _ = open_sqlite_stores(path)
        try:
            await ratings.put_many(Rating(user, book, stars, RATED_AT) for user, rated in TASTES.items() for book, stars in rated.items())
        finally:
            await ratings.aclose()

    asyncio.run(seed())


def log_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines in captured stderr."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def request_lines(text: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(text) if line["logger"] == "bookrec.request"]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(autouse=True)
def json_logs() -> None:
    """JSON lines on stderr, as a production server writes them (create_app configures the same)."""
    configure_logging("INFO", human=False)


@pytest.fixture
def redis_cache_on(redis_server: RedisServerProcess) -> Callable[[Settings], Any]:
    """A Redis cache on the test's private server, with a breaker that opens after two failures and stays open."""

    def build(settings: Settings) -> RedisRecommendationCache:
        client = build_redis_client(redis_server.url, password=None, cluster=False, timeout_ms=200)
        return RedisRecommendationCache(
            client, ttl_seconds=settings.cache_ttl_seconds, lease_ms=settings.cache_lease_ms,
            breaker=CircuitBreaker(failure_threshold=2, cooldown_seconds=3600),
        )

    return build
