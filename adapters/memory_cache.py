"""The in-process RecommendationCache: Redis's semantics (TTL, leases in the key's slot) in one dict.

The default when REDIS_URL is unset. Unlike Redis it keeps the frozen
RecommendationList objects themselves, not their envelopes: a hit then costs no
decoding, and a 50-item list takes less memory as objects than as JSON. Bounded by
`max_entries` with least-recently-used eviction; evicting a lease just makes its
fill a refused one, as Redis's own eviction would.

No locks: every method runs on the event loop without awaiting, so each one is atomic.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from adapters.cache_codec import cache_key, new_lease_token
from adapters.cache_stats import CacheStats
from domain.models import RecommendationList
from domain.ports import Leases

if TYPE_CHECKING:
    from graphql_api.settings import Settings


@dataclass(slots=True)
class _Entry:
    value: RecommendationList | None  # None while the key is leased
    lease_token: str | None
    expires_at: float


class InProcessRecommendationCache:
    def __init__(
        self,
        ttl_seconds: float,
        lease_ms: int,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._ttl_seconds = ttl_seconds
        self._lease_seconds = lease_ms / 1000
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    async def get_many(self, user_ids: Sequence[str], *, items: int | None = None) -> list[RecommendationList | None]:
        """The stored lists themselves, whole whatever `items` says: cutting them would cost, not save."""
        values: list[RecommendationList | None] = []
        for user_id in user_ids:
            key = cache_key(user_id)
            entry = self._live(key)
            value = None if entry is None else entry.value
            if value is None:
                self.stats.misses += 1
            else:
                self.stats.hits += 1
                self._entries.move_to_end(key)
            values.append(value)
        return values

    async def lease_many(self, user_ids: Sequence[str]) -> Leases:
        token = new_lease_token()
        granted: dict[str, str] = {}
        held_elsewhere: list[str] = []
        for user_id in dict.fromkeys(user_ids):
            key = cache_key(user_id)
            if self._live(key) is not None:
                held_elsewhere.append(user_id)
            else:
                self._store_lease(key, token, self._lease_seconds)
                granted[user_id] = token
        self.stats.leases_granted += len(granted)
        self.stats.leases_held_elsewhere += len(held_elsewhere)
        return Leases(granted, tuple(held_elsewhere))

    async def fill_many(self, values: Sequence[RecommendationList], leases: Mapping[str, str]) -> int:
        stored = 0
        for value in values:
            token = leases.get(value.user_id)
            if token is None:
                continue
            key = cache_key(value.user_id)
            entry = self._live(key)
            if entry is not None and entry.lease_token == token:
                self._store_value(key, value, self._ttl_seconds)
                stored += 1
            else:
                self.stats.fills_refused += 1
        self.stats.fills += stored
        return stored

    async def delete_many(self, user_ids: Sequence[str]) -> None:
        for user_id in user_ids:
            self._entries.pop(cache_key(user_id), None)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._entries.clear()

    def _live(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= self._clock():
            del self._entries[key]
            return None
        return entry

    def _store_value(self, key: str, value: RecommendationList, lifetime_seconds: float) -> None:
        self._store(key, _Entry(value, None, self._clock() + lifetime_seconds))

    def _store_lease(self, key: str, token: str, lifetime_seconds: float) -> None:
        self._store(key, _Entry(None, token, self._clock() + lifetime_seconds))

    def _store(self, key: str, entry: _Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


def build_memory_cache(settings: Settings) -> InProcessRecommendationCache:
    return InProcessRecommendationCache(
        ttl_seconds=settings.cache_ttl_seconds,
        lease_ms=settings.cache_lease_ms,
        max_entries=settings.cache_max_entries,
    )
