"""The in-process cache: the port's contract on an injected clock, plus its size bound."""

from __future__ import annotations

import pytest

from adapters import cache_codec
from adapters.memory_cache import InProcessRecommendationCache, build_memory_cache
from graphql_api.settings import load_settings
from tests.contract.cache_contract import (
    CONTRACT_LEASE_MS,
    CONTRACT_TTL_SECONDS,
    RecommendationCacheContract,
    recommendations_for,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def make_cache(clock: FakeClock, max_entries: int = 10_000) -> InProcessRecommendationCache:
    return InProcessRecommendationCache(
        ttl_seconds=CONTRACT_TTL_SECONDS, lease_ms=CONTRACT_LEASE_MS, max_entries=max_entries, clock=clock
    )


async def cache_users(cache: InProcessRecommendationCache, *users: str) -> None:
    leases = await cache.lease_many(users)
    assert await cache.fill_many([recommendations_for(user) for user in users], leases.granted) == len(users)


class TestInProcessCacheContract(RecommendationCacheContract):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def recommendation_cache(self, clock: FakeClock) -> InProcessRecommendationCache:
        return make_cache(clock)

    @pytest.fixture
    def write_raw(self, recommendation_cache: InProcessRecommendationCache):
        async def write(key: str, raw: bytes) -> None:
            # This cache holds objects, never bytes, so it stores what the bytes stand for:
            # a lease, a value, or (unreadable bytes) nothing, which is what reading them must amount to.
            if cache_codec.is_lease_placeholder(raw):
                recommendation_cache._store_lease(key, raw.removeprefix(cache_codec.LEASE_PREFIX).decode(), 60)
            elif (value := cache_codec.decode(raw, key.removeprefix(cache_codec.KEY_PREFIX))) is not None:
                recommendation_cache._store_value(key, value, 60)

        return write

    @pytest.fixture
    def advance_time(self, clock: FakeClock):
        async def advance(seconds: float) -> None:
            clock.now += seconds

        return advance


async def test_least_recently_used_entries_are_evicted_beyond_max_entries() -> None:
    cache = make_cache(FakeClock(), max_entries=3)
    await cache_users(cache, "a", "b", "c")
    await cache.get_many(["a"])  # "a" is now the most recently used; "b" the least

    await cache_users(cache, "d")

    assert len(cache) == 3
    assert [value is not None for value in await cache.get_many(["a", "b", "c", "d"])] == [True, False, True, True]


async def test_a_lease_evicted_for_space_makes_its_fill_refused() -> None:
    cache = make_cache(FakeClock(), max_entries=2)
    leases = await cache.lease_many(["a"])
    await cache_users(cache, "b", "c")

    assert await cache.fill_many([recommendations_for("a")], leases.granted) == 0
    assert cache.stats.fills_refused == 1


async def test_an_expiry_is_exact_on_the_injected_clock() -> None:
    clock = FakeClock()
    cache = make_cache(clock)
    await cache_users(cache, "a")

    clock.now += CONTRACT_TTL_SECONDS - 0.001
    assert (await cache.get_many(["a"]))[0] is not None
    clock.now += 0.001
    assert await cache.get_many(["a"]) == [None]
    assert len(cache) == 0


async def test_stats_count_hits_misses_leases_and_refusals() -> None:
    cache = make_cache(FakeClock())
    await cache_users(cache, "a")
    held = await cache.lease_many(["a", "b"])
    await cache.delete_many(["b"])
    await cache.fill_many([recommendations_for("b")], held.granted)
    await cache.get_many(["a", "b", "a"])

    stats = cache.stats.as_dict()
    assert (stats["hits"], stats["misses"]) == (2, 1)
    assert (stats["leases_granted"], stats["leases_held_elsewhere"]) == (2, 1)
    assert (stats["fills"], stats["fills_refused"]) == (1, 1)
    assert stats["errors"] == 0


async def test_a_hit_returns_the_stored_object_itself() -> None:
    cache = make_cache(FakeClock())
    value = recommendations_for("a")
    leases = await cache.lease_many(["a"])
    await cache.fill_many([value], leases.granted)

    assert (await cache.get_many(["a"]))[0] is value  # frozen, so sharing it is safe and decoding is skipped


async def test_built_from_settings() -> None:
    cache = build_memory_cache(load_settings(cache_ttl_seconds=7, cache_lease_ms=300, cache_max_entries=2))
    for user in ("a", "b", "c"):
        await cache_users(cache, user)

    assert len(cache) == 2
    assert await cache.ping() is True
    await cache.aclose()
    assert len(cache) == 0
