"""What a Redis recommendation cache holds, read from the server: for `cacheStats` and `bookrec stats`.

Counting `reco:*` keys exactly means a SCAN of the whole keyspace, which is fine
for a few thousand keys and not for millions, so above `exact_up_to` keys the count
is DBSIZE times the share of `reco:` keys in a sample. Every function here may
raise a Redis error: callers decide what a failure means for them.
"""

from __future__ import annotations

import collections
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from adapters.cache_codec import KEY_PREFIX, is_lease_placeholder
from adapters.redis_cache import RedisClient, RedisCluster

PATTERN = KEY_PREFIX + "*"
SCAN_COUNT = 1_000


@dataclass(frozen=True, slots=True)
class KeyCount:
    keys: int
    exact: bool


@dataclass(frozen=True, slots=True)
class TtlSample:
    keys: int
    min_seconds: int
    median_seconds: float
    max_seconds: int


@dataclass(frozen=True, slots=True)
class ServerStats:
    """Redis's own counters (INFO), summed over a cluster's primaries; they count every client's reads."""

    keyspace_hits: int
    keyspace_misses: int
    evicted_keys: int
    expired_keys: int
    used_memory_bytes: int
    maxmemory_bytes: int

    @property
    def hit_ratio(self) -> float | None:
        lookups = self.keyspace_hits + self.keyspace_misses
        return self.keyspace_hits / lookups if lookups else None


async def count_recommendation_keys(client: RedisClient, *, exact_up_to: int = 10_000, sample_size: int = 1_000) -> KeyCount:
    """`reco:*` keys (lease placeholders included): exact up to `exact_up_to` keys in the database, else estimated."""
    total = int(await client.dbsize())
    if total <= exact_up_to:
        return KeyCount(sum([1 async for _ in client.scan_iter(match=PATTERN, count=SCAN_COUNT)]), exact=True)
    sampled = 0
    ours = 0
    async for key in client.scan_iter(count=SCAN_COUNT):
        sampled += 1
        ours += key.startswith(KEY_PREFIX.encode())
        if sampled >= sample_size:
            break
    return KeyCount(round(total * ours / sampled) if sampled else 0, exact=False)


async def sample_keys(client: RedisClient, size: int) -> list[bytes]:
    keys: list[bytes] = []
    async for key in client.scan_iter(match=PATTERN, count=SCAN_COUNT):
        keys.append(key)
        if len(keys) >= size:
            break
    return keys


async def sample_ttls(client: RedisClient, keys: list[bytes]) -> TtlSample | None:
    """Remaining lifetimes of `keys` (keys that vanished meanwhile, or have no TTL, are left out)."""
    if not keys:
        return None
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.ttl(key)
    ttls = [int(ttl) for ttl in await pipe.execute() if int(ttl) >= 0]
    if not ttls:
        return None
    return TtlSample(len(ttls), min(ttls), statistics.median(ttls), max(ttls))


async def model_versions(client: RedisClient, keys: list[bytes]) -> collections.Counter[str]:
    """Model versions of the sampled cached lists; "lease" for keys being computed, "unreadable" for the rest."""
    if not keys:
        return collections.Counter()
    values = await (client.mget_nonatomic(keys) if isinstance(client, RedisCluster) else client.mget(keys))
    versions: collections.Counter[str] = collections.Counter()
    for raw in values:
        if raw is None:
            continue
        if is_lease_placeholder(raw):
            versions["lease"] += 1
            continue
        try:
            versions[str(orjson.loads(raw)["model_version"])] += 1
        except (orjson.JSONDecodeError, KeyError, TypeError):
            versions["unreadable"] += 1
    return versions


async def server_stats(client: RedisClient) -> ServerStats:
    stats = _per_node(await client.info("stats"))
    memory = _per_node(await client.info("memory"))

    def total(sections: list[Mapping[str, Any]], field: str) -> int:
        return sum(int(section.get(field, 0)) for section in sections)

    return ServerStats(
        keyspace_hits=total(stats, "keyspace_hits"),
        keyspace_misses=total(stats, "keyspace_misses"),
        evicted_keys=total(stats, "evicted_keys"),
        expired_keys=total(stats, "expired_keys"),
        used_memory_bytes=total(memory, "used_memory"),
        maxmemory_bytes=total(memory, "maxmemory"),
    )


def _per_node(info: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A standalone server's INFO section, or a cluster client's {node: section} as a list of sections."""
    if info and all(isinstance(value, Mapping) for value in info.values()):
        return list(info.values())
    return [info]
