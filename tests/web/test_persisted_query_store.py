"""The persisted-query stores: one contract for both, then what only each one does (LRU bound, Redis TTL, fail-open)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from graphql_api.persisted_queries import KEY_PREFIX, MemoryPersistedQueryStore, PersistedQueryStore, RedisPersistedQueryStore
from tests.redis_servers import RedisServerProcess
from tests.web.conftest import sha256_hex


# Every hash a test made, so the Redis tests can delete exactly their own keys from the shared server.
CREATED_HASHES: list[str] = []


def unique_document() -> tuple[str, str]:
    query = f"query Q {{ book(id: \"{uuid.uuid4()}\") {{ id }} }}"
    CREATED_HASHES.append(sha256_hex(query))
    return CREATED_HASHES[-1], query


class PersistedQueryStoreContract:
    """Subclasses provide a `store` fixture."""

    async def test_an_unknown_hash_is_none(self, store: PersistedQueryStore) -> None:
        sha256_hash, _ = unique_document()

        assert await store.get(sha256_hash) is None

    async def test_a_stored_document_comes_back_as_text(self, store: PersistedQueryStore) -> None:
        sha256_hash, query = unique_document()

        await store.put(sha256_hash, query)

        assert await store.get(sha256_hash) == query

    async def test_documents_are_kept_apart_by_hash(self, store: PersistedQueryStore) -> None:
        (first_hash, first), (second_hash, second) = unique_document(), unique_document()

        await store.put(first_hash, first)
        await store.put(second_hash, second)

        assert [await store.get(first_hash), await store.get(second_hash)] == [first, second]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestMemoryStore(PersistedQueryStoreContract):
    @pytest.fixture
    def store(self) -> MemoryPersistedQueryStore:
        return MemoryPersistedQueryStore(ttl_seconds=60)

    async def test_the_least_recently_used_document_goes_first(self) -> None:
        store = MemoryPersistedQueryStore(ttl_seconds=60, max_entries=2)
        (a, query_a), (b, query_b), (c, query_c) = unique_document(), unique_document(), unique_document()
        await store.put(a, query_a)
        await store.put(b, query_b)
        await store.get(a)  # a is now more recent than b

        await store.put(c, query_c)

        assert [await store.get(a), await store.get(b), await store.get(c)] == [query_a, None, query_c]

    async def test_a_document_expires_after_the_ttl(self) -> None:
        clock = FakeClock()
        store = MemoryPersistedQueryStore(ttl_seconds=60, clock=clock)
        sha256_hash, query = unique_document()
        await store.put(sha256_hash, query)

        clock.now += 59
        assert await store.get(sha256_hash) == query
        clock.now += 1
        assert await store.get(sha256_hash) is None


@pytest.mark.redis_server
class TestRedisStore(PersistedQueryStoreContract):
    """On the shared Redis (db 13): unique hashes, every `apq:` key this test wrote deleted afterwards."""

    @pytest.fixture
    async def redis_client(self, shared_redis_url: str) -> AsyncIterator[aioredis.Redis]:
        client = aioredis.Redis.from_url(shared_redis_url)
        try:
            yield client
        finally:
            if CREATED_HASHES:
                await client.delete(*(KEY_PREFIX + sha256_hash for sha256_hash in CREATED_HASHES))
                CREATED_HASHES.clear()
            await client.aclose()

    @pytest.fixture
    def store(self, redis_client: aioredis.Redis) -> RedisPersistedQueryStore:
        return RedisPersistedQueryStore(redis_client, ttl_seconds=90)

    async def test_the_key_is_apq_hash_with_the_ttl(self, store: RedisPersistedQueryStore, redis_client: aioredis.Redis) -> None:
        sha256_hash, query = unique_document()

        await store.put(sha256_hash, query)

        assert await redis_client.get(KEY_PREFIX + sha256_hash) == query.encode()
        assert 0 < await redis_client.ttl(KEY_PREFIX + sha256_hash) <= 90

    async def test_a_redis_outage_is_a_miss_not_an_error(self, redis_server: RedisServerProcess) -> None:
        client = aioredis.Redis.from_url(redis_server.url, socket_timeout=0.2, socket_connect_timeout=0.2)
        store = RedisPersistedQueryStore(client, ttl_seconds=90)
        sha256_hash, query = unique_document()
        await store.put(sha256_hash, query)
        redis_server.stop()
        try:
            assert await store.get(sha256_hash) is None
            await store.put(sha256_hash, query)  # must not raise
        finally:
            await store.aclose()
