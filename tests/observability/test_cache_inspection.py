"""Counting `reco:*` keys on a real server: exact on a small keyspace, estimated from a sample on a large one."""

from __future__ import annotations

import pytest

from adapters import cache_inspection
from adapters.redis_cache import build_redis_client
from tests.redis_servers import RedisServerProcess

pytestmark = pytest.mark.redis_server


async def test_exact_then_estimated_counts_ttls_versions_and_server_stats(redis_server: RedisServerProcess) -> None:
    with redis_server.client() as setup:
        for index in range(300):
            setup.set(f"reco:{index}", b'{"v": 2, "model_version": "m1", "computed_at": 0, "book_ids": [], "scores": [], "sources": []}', ex=600)
        setup.set("reco:leased", b"lease:abc", px=2000)
        setup.set("reco:bad", b"not json", ex=600)
        for index in range(700):
            setup.set(f"apq:{index}", b"x")
        setup.get("reco:1")
        setup.get("reco:none")
    client = build_redis_client(redis_server.url, password=None, cluster=False, timeout_ms=2000)
    try:
        # Read first: TTL and MGET below are keyspace lookups too.
        server = await cache_inspection.server_stats(client)
        assert (server.keyspace_hits, server.keyspace_misses) == (1, 1) and server.hit_ratio == 0.5
        assert server.used_memory_bytes > 0

        exact = await cache_inspection.count_recommendation_keys(client)
        assert (exact.keys, exact.exact) == (302, True)
        # Past the exact bound the sample (every key here, in SCAN order) gives the share of reco: keys.
        estimate = await cache_inspection.count_recommendation_keys(client, exact_up_to=100, sample_size=5_000)
        assert (estimate.keys, estimate.exact) == (302, False)
        rough = await cache_inspection.count_recommendation_keys(client, exact_up_to=100, sample_size=200)
        assert not rough.exact and 100 <= rough.keys <= 600

        keys = await cache_inspection.sample_keys(client, 1_000)
        assert len(keys) == 302
        ttls = await cache_inspection.sample_ttls(client, keys)
        assert ttls is not None and ttls.keys == 302 and ttls.min_seconds >= 1 and ttls.max_seconds <= 600
        assert await cache_inspection.model_versions(client, keys) == {"m1": 300, "lease": 1, "unreadable": 1}

    finally:
        await client.aclose()
