"""The cache-aside service on a real Redis: the stale-set race, herds in one and in two processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from adapters.cache_codec import cache_key
from adapters.redis_cache import RedisRecommendationCache, build_redis_client
from tests.domain.test_service import book_ids, get_recommendations, make_service

pytestmark = pytest.mark.redis_server

REPO_ROOT = Path(__file__).resolve().parents[2]
# Generous: the machine is shared, and a timeout here would only turn the test into a fail-open run.
TIMEOUT_MS = 2_000


def redis_cache(url: str) -> RedisRecommendationCache:
    client = build_redis_client(url, password=None, cluster=False, timeout_ms=TIMEOUT_MS)
    return RedisRecommendationCache(client, ttl_seconds=600, lease_ms=5_000)


@pytest.fixture
async def cache(shared_redis_url: str) -> AsyncIterator[RedisRecommendationCache]:
    cache = redis_cache(shared_redis_url)
    yield cache
    await cache.aclose()


@pytest.fixture
async def clean_key(shared_redis_url: str) -> AsyncIterator[None]:
    """The test data's reader 'ann' is cached under reco:ann: make sure no run leaves it behind."""
    with redis.Redis.from_url(shared_redis_url) as client:
        client.delete(cache_key("ann"))
        yield
        client.delete(cache_key("ann"))


async def test_a_fill_computed_before_a_rating_is_refused_by_redis(
    cache: RedisRecommendationCache, clean_key: None, shared_redis_url: str
) -> None:
    gate, entered = asyncio.Event(), asyncio.Event()

    async def gated(function, *args):
        entered.set()
        await gate.wait()
        return function(*args)

    service, _, _ = await make_service(cache=cache, run_blocking=gated)
    reader = asyncio.create_task(get_recommendations(service, ["ann"], limit=10))
    await entered.wait()  # ann's lease is in Redis and her old ratings are read
    with redis.Redis.from_url(shared_redis_url) as client:
        assert client.get(cache_key("ann")).startswith(b"lease:")
    await service.rate_book("ann", 4, 1)
    gate.set()
    await reader
    assert service.counters.fills_refused == 1
    with redis.Redis.from_url(shared_redis_url) as client:
        assert client.get(cache_key("ann")) is None
    [fresh] = await get_recommendations(service, ["ann"], limit=10)
    assert 4 not in book_ids(fresh)
    assert service.counters.fills == 1


async def test_a_hundred_concurrent_misses_compute_once(cache: RedisRecommendationCache, clean_key: None) -> None:
    service, _, _ = await make_service(cache=cache)
    results = await asyncio.gather(*(get_recommendations(service, ["ann"], limit=5) for _ in range(100)))
    assert service.counters.recommender_batches == 1
    assert all(result == results[0] for result in results)


HERD_PROCESS = """
import asyncio, json, sys
from tests.domain.test_service import get_recommendations, make_service
from tests.service.test_service_on_redis import redis_cache

from domain.service import LeaseWait

async def slow_compute(function, *args):
    # Long enough that the other process's herd meets the lease, well short of the wait bound (~2.5 s).
    await asyncio.sleep(0.5)
    return function(*args)

async def main(url, start_at):
    service, _, _ = await make_service(
        cache=redis_cache(url), run_blocking=slow_compute, lease_wait=LeaseWait(attempts=9, first_delay_s=0.005)
    )
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start_at - loop.time()))
    await asyncio.gather(*(get_recommendations(service, ["ann"], limit=5) for _ in range(50)))
    print(json.dumps(vars(service.counters)))

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


def test_two_processes_compute_a_users_list_at_most_once_per_lease(shared_redis_url: str, clean_key: None) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    # Both start their herd at the same monotonic instant (CLOCK_MONOTONIC is shared by processes).
    start_at = asyncio.new_event_loop().time() + 6.0
    herds = [
        subprocess.Popen([sys.executable, "-c", HERD_PROCESS, shared_redis_url, str(start_at)], env=env, cwd=REPO_ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    counters = []
    for herd in herds:
        out, err = herd.communicate(timeout=60)
        assert herd.returncode == 0, err
        counters.append(json.loads(out))
    assert sum(c["recommender_batches"] for c in counters) == 1
    assert sum(c["fills"] for c in counters) == 1
    [other] = [c for c in counters if c["recommender_batches"] == 0]
    # The other process either met the lease (it missed, waited once, and its herd joined that wait)
    # or, started late on a loaded machine, found the value already cached.
    if other["misses"]:
        assert other["lease_waits"] == 1 and other["misses"] == 1 + other["single_flight_joins"]
    assert other["hits"] + other["misses"] == 50
