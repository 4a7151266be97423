"""On a real redis-server the test starts and kills: the cache counters, then an outage counted and the breaker open."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from graphql_api.settings import Settings
from tests.api.conftest import Api
from tests.observability.conftest import RATE, RECOMMENDATIONS, scrape, value
from tests.redis_servers import RedisServerProcess

pytestmark = pytest.mark.redis_server

CACHE_STATS = "query Stats { cacheStats(windowMinutes: 5) { backend hits misses hitRatio keysCached keysCachedExact breakerState } }"


@pytest.fixture
def make_cache(redis_cache_on: Callable[[Settings], Any]) -> Callable[[Settings], Any]:
    return redis_cache_on


async def test_miss_hit_rate_miss_then_redis_down(api: Api, redis_server: RedisServerProcess) -> None:
    alice = {"id": "alice"}
    await api.gql(RECOMMENDATIONS, alice)  # miss
    await api.gql(RECOMMENDATIONS, alice)  # hit
    await api.gql(RATE, {"u": "alice", "b": "100"}, token=api.token("alice"))  # DEL reco:alice
    await api.gql(RECOMMENDATIONS, alice)  # miss
    _, samples = await scrape(api)
    assert (value(samples, "bookrec_cache_hits_total"), value(samples, "bookrec_cache_misses_total")) == (1, 2)
    assert value(samples, "bookrec_cache_fills_total") == 2
    assert value(samples, "bookrec_cache_invalidations_total") == 1
    assert value(samples, "bookrec_cache_errors_total") == 0
    assert value(samples, "bookrec_cache_breaker_state") == 0
    with redis_server.client() as client:
        assert client.exists("reco:alice") == 1

    redis_server.stop()
    # The read fails, then the lease: two failures open the breaker (threshold 2); the answer is served all the same.
    down = await api.gql(RECOMMENDATIONS, alice)
    assert "errors" not in down and down["data"]["user"]["recommendations"]
    # With the breaker open, the next request does not touch the network at all.
    await api.gql(RECOMMENDATIONS, alice)
    _, samples = await scrape(api)
    assert value(samples, "bookrec_cache_errors_total") == 2
    assert value(samples, "bookrec_cache_breaker_state") == 2
    assert value(samples, "bookrec_cache_breaker_opened_total") == 1
    assert value(samples, "bookrec_cache_breaker_skips_total") == 2
    assert value(samples, "bookrec_cache_misses_total") == 4
    assert value(samples, "bookrec_graphql_requests_total", operation="Recs", outcome="ok") == 5


async def test_cache_stats_counts_redis_keys_and_reports_the_breaker(api: Api, redis_server: RedisServerProcess) -> None:
    admin = api.token("root", admin=True)
    await api.gql("query { users(ids: [\"alice\", \"bob\", \"carol\"]) { recommendations(limit: 1) { score } } }")
    await api.gql(RECOMMENDATIONS, {"id": "alice"})
    with redis_server.client() as client:
        client.set("apq:not-a-recommendation", "x")  # other keys in the database are not counted

    stats = (await api.gql(CACHE_STATS, token=admin))["data"]["cacheStats"]
    assert stats == {
        "backend": "REDIS", "hits": 1, "misses": 3, "hitRatio": 0.25,
        "keysCached": 3, "keysCachedExact": True, "breakerState": "CLOSED",
    }

    redis_server.stop()
    await api.gql(RECOMMENDATIONS, {"id": "dave"})  # two failures: the breaker opens
    stats = (await api.gql(CACHE_STATS, token=admin))["data"]["cacheStats"]
    assert stats["breakerState"] == "OPEN"
    assert stats["keysCached"] is None and stats["keysCachedExact"] is False
    assert (stats["hits"], stats["misses"]) == (1, 4)


async def test_concurrent_reads_are_one_mget_each_sent_in_shared_pipelines(api: Api, redis_server: RedisServerProcess) -> None:
    users = [f"reader-{index}" for index in range(8)]
    for user in users:
        await api.gql(RECOMMENDATIONS, {"id": user})  # computed and cached, one at a time
    with redis_server.client() as client:
        before = client.info("commandstats")["cmdstat_mget"]["calls"]
    answers = await asyncio.gather(*(api.gql(RECOMMENDATIONS, {"id": user}) for user in users))
    assert all("errors" not in answer for answer in answers)
    with redis_server.client() as client:
        assert client.info("commandstats")["cmdstat_mget"]["calls"] - before == len(users)
    _, samples = await scrape(api)
    assert value(samples, "bookrec_cache_hits_total") == len(users)
    assert value(samples, "bookrec_cache_read_pipelines_total") >= 1
