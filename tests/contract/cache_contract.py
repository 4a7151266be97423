"""The RecommendationCache contract: what every cache adapter must do, run against each one.

A test module subclasses `RecommendationCacheContract` and provides three fixtures:

- `recommendation_cache`: an empty cache built with `CONTRACT_TTL_SECONDS` and `CONTRACT_LEASE_MS`;
- `write_raw(key, raw)`: an async function storing `raw` bytes under `key` as the server would
  hold them (for values written by another format version, or damaged, or another process's
  lease); an adapter that holds objects rather than bytes stores what the bytes stand for;
- `advance_time(seconds)`: an async function after which `seconds` have passed for the cache
  (an injected clock for the in-process cache, a real sleep for Redis).

Every test names its users under `user_id_prefix`, unique per test, so adapters backed
by a shared server never see another test's keys and can delete exactly their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import orjson
import pytest

from adapters.cache_codec import FORMAT_VERSION, cache_key, lease_placeholder
from domain.models import Recommendation, RecommendationList, RecommendationSource
from domain.ports import Leases, RecommendationCache

# Short enough to wait out with real sleeps against Redis, long enough that a busy CI box
# never sees a value or lease expire between two steps of one test.
CONTRACT_TTL_SECONDS = 2
CONTRACT_LEASE_MS = 2_000
# Past an expiry with room for a server's clock granularity; the in-process clock needs none.
EXPIRY_MARGIN_SECONDS = 0.15

WriteRaw = Callable[[str, bytes], Awaitable[object]]
AdvanceTime = Callable[[float], Awaitable[None]]

ODD_USER_IDS = (
    "user:with:colons",
    "a user with spaces",
    "ünïcødé-用户-🙂",
    "{hash-tag}",
    "glob*?[chars]",
    "tab\tand\nnewline",
    "",
)


def recommendations_for(user_id: str, *, model_version: str = "model-1", n_items: int = 3) -> RecommendationList:
    items = tuple(
        Recommendation(
            book_id=1000 + index,
            score=1.0 / (index + 3),
            source=RecommendationSource.COLLABORATIVE if index % 2 else RecommendationSource.POPULAR,
        )
        for index in range(n_items)
    )
    return RecommendationList(user_id, items, model_version, computed_at=1_700_000_000.25)


class RecommendationCacheContract:
    @pytest.fixture
    def user_id_prefix(self) -> str:
        return f"contract-{uuid.uuid4().hex[:12]}:"

    @pytest.fixture
    def users(self, user_id_prefix: str) -> Callable[..., list[str]]:
        return lambda *names: [user_id_prefix + name for name in names]

    async def cache_values(
        self, cache: RecommendationCache, values: list[RecommendationList]
    ) -> Leases:
        """Lease and fill `values` the way the service does; asserts every one was stored."""
        leases = await cache.lease_many([value.user_id for value in values])
        assert set(leases.granted) == {value.user_id for value in values}
        assert await cache.fill_many(values, leases.granted) == len(values)
        return leases

    # Reads

    async def test_get_many_of_nothing_is_empty(self, recommendation_cache: RecommendationCache) -> None:
        assert await recommendation_cache.get_many([]) == []

    async def test_get_many_answers_in_the_order_asked_with_none_for_absent(
        self, recommendation_cache: RecommendationCache, users
    ) -> None:
        ann, bob, absent = users("ann", "bob", "absent")
        values = {user: recommendations_for(user, n_items=n) for user, n in ((ann, 2), (bob, 5))}
        await self.cache_values(recommendation_cache, list(values.values()))

        assert await recommendation_cache.get_many([bob, absent, ann, bob]) == [values[bob], None, values[ann], values[bob]]

    async def test_a_read_for_the_first_items_gets_at_least_those_items_in_order(
        self, recommendation_cache: RecommendationCache, users
    ) -> None:
        ann, bob, absent = users("ann", "bob", "absent")
        values = {user: recommendations_for(user, n_items=n) for user, n in ((ann, 5), (bob, 2))}
        await self.cache_values(recommendation_cache, list(values.values()))

        read = await recommendation_cache.get_many([ann, bob, absent], items=3)

        assert read[2] is None
        for value, full in zip(read[:2], values.values()):
            assert value is not None
            assert value.items[:3] == full.items[:3] and len(value.items) >= min(3, len(full.items))
            assert (value.user_id, value.model_version, value.computed_at) == (full.user_id, full.model_version, full.computed_at)

    async def test_values_round_trip_exactly(self, recommendation_cache: RecommendationCache, users) -> None:
        (ann, empty) = users("ann", "empty")
        value = RecommendationList(
            ann,
            (
                Recommendation(7, 4.123456789012345, RecommendationSource.COLLABORATIVE),
                Recommendation(2_147_483_647, -0.0, RecommendationSource.POPULAR),
                Recommendation(3, 1e-300, RecommendationSource.POPULAR),
            ),
            "snapshot 2024-01-01T00:00:00Z/abc",
            1_712_345_678.123456,
        )
        no_items = RecommendationList(empty, (), "m", 0.0)
        await self.cache_values(recommendation_cache, [value, no_items])

        assert await recommendation_cache.get_many([ann, empty]) == [value, no_items]

    async def test_large_batches_of_a_thousand_users(self, recommendation_cache: RecommendationCache, users) -> None:
        batch = users(*(f"user-{index}" for index in range(1_000)))
        values = [recommendations_for(user, n_items=index % 7) for index, user in enumerate(batch)]

        leases = await recommendation_cache.lease_many(batch)
        assert len(leases.granted) == 1_000 and leases.held_elsewhere == ()
        assert await recommendation_cache.fill_many(values, leases.granted) == 1_000

        assert await recommendation_cache.get_many(batch) == values
        await recommendation_cache.delete_many(batch)
        assert await recommendation_cache.get_many(batch) == [None] * 1_000

    async def test_user_ids_with_odd_characters(self, recommendation_cache: RecommendationCache, users) -> None:
        odd = users(*ODD_USER_IDS)
        values = [recommendations_for(user) for user in odd]
        await self.cache_values(recommendation_cache, values)

        assert await recommendation_cache.get_many(odd) == values
        await recommendation_cache.delete_many(odd[:1])
        assert await recommendation_cache.get_many(odd) == [None, *values[1:]]

    # Leases and fills

    async def test_a_lease_is_granted_once(self, recommendation_cache: RecommendationCache, users) -> None:
        (ann,) = users("ann")
        first = await recommendation_cache.lease_many([ann, ann])
        second = await recommendation_cache.lease_many([ann])

        assert list(first.granted) == [ann] and first.held_elsewhere == ()
        assert second.granted == {} and list(second.held_elsewhere) == [ann]

    async def test_a_leased_key_reads_as_a_miss(self, recommendation_cache: RecommendationCache, users) -> None:
        (ann,) = users("ann")
        await recommendation_cache.lease_many([ann])

        assert await recommendation_cache.get_many([ann]) == [None]

    async def test_a_cached_value_is_not_leased_again(self, recommendation_cache: RecommendationCache, users) -> None:
        ann, bob = users("ann", "bob")
        await self.cache_values(recommendation_cache, [recommendations_for(ann)])

        leases = await recommendation_cache.lease_many([ann, bob])

        assert list(leases.granted) == [bob] and list(leases.held_elsewhere) == [ann]

    async def test_a_fill_needs_the_granted_lease(self, recommendation_cache: RecommendationCache, users) -> None:
        ann, bob = users("ann", "bob")
        leases = await recommendation_cache.lease_many([ann])

        assert await recommendation_cache.fill_many([recommendations_for(bob)], {}) == 0
        assert await recommendation_cache.fill_many([recommendations_for(bob)], {bob: "never-granted"}) == 0
        assert await recommendation_cache.fill_many([recommendations_for(ann)], {ann: "someone-else's"}) == 0
        assert await recommendation_cache.get_many([ann, bob]) == [None, None]
        # The real holder can still fill: a wrong token does not disturb the lease.
        assert await recommendation_cache.fill_many([recommendations_for(ann)], leases.granted) == 1

    async def test_a_fill_counts_only_what_it_stored(self, recommendation_cache: RecommendationCache, users) -> None:
        ann, bob, cat = users("ann", "bob", "cat")
        leases = await recommendation_cache.lease_many([ann, bob])
        await recommendation_cache.delete_many([bob])
        values = [recommendations_for(user) for user in (ann, bob, cat)]

        assert await recommendation_cache.fill_many(values, {**leases.granted, cat: "no-lease"}) == 1
        assert await recommendation_cache.get_many([ann, bob, cat]) == [values[0], None, None]

    async def test_a_fill_happens_once_per_lease(self, recommendation_cache: RecommendationCache, users) -> None:
        (ann,) = users("ann")
        leases = await recommendation_cache.lease_many([ann])
        first, later = recommendations_for(ann, model_version="first"), recommendations_for(ann, model_version="later")

        assert await recommendation_cache.fill_many([first], leases.granted) == 1
        assert await recommendation_cache.fill_many([later], leases.granted) == 0
        assert await recommendation_cache.get_many([ann]) == [first]

    async def test_delete_voids_a_lease_so_a_stale_fill_is_refused(
        self, recommendation_cache: RecommendationCache, users
    ) -> None:
        (ann,) = users("ann")
        stale_holder = await recommendation_cache.lease_many([ann])
        await recommendation_cache.delete_many([ann])  # a rating arrives while the stale list is computed

        assert await recommendation_cache.fill_many([recommendations_for(ann, model_version="stale")], stale_holder.granted) == 0
        assert await recommendation_cache.get_many([ann]) == [None]

        fresh_holder = await recommendation_cache.lease_many([ann])
        assert list(fresh_holder.granted) == [ann]
        assert fresh_holder.granted[ann] != stale_holder.granted[ann]
        assert await recommendation_cache.fill_many([recommendations_for(ann, model_version="stale")], stale_holder.granted) == 0
        fresh = recommendations_for(ann, model_version="fresh")
        assert await recommendation_cache.fill_many([fresh], fresh_holder.granted) == 1
        assert await recommendation_cache.get_many([ann]) == [fresh]

    async def test_delete_drops_values_and_ignores_absent_keys(self, recommendation_cache: RecommendationCache, users) -> None:
        ann, bob, absent = users("ann", "bob", "absent")
        values = [recommendations_for(ann), recommendations_for(bob)]
        await self.cache_values(recommendation_cache, values)

        await recommendation_cache.delete_many([ann, absent, ann])
        await recommendation_cache.delete_many([])

        assert await recommendation_cache.get_many([ann, bob, absent]) == [None, values[1], None]

    # Time

    async def test_values_expire_after_the_ttl(
        self, recommendation_cache: RecommendationCache, users, advance_time: AdvanceTime
    ) -> None:
        (ann,) = users("ann")
        await self.cache_values(recommendation_cache, [recommendations_for(ann)])
        assert (await recommendation_cache.get_many([ann]))[0] is not None

        await advance_time(CONTRACT_TTL_SECONDS + EXPIRY_MARGIN_SECONDS)

        assert await recommendation_cache.get_many([ann]) == [None]
        assert list((await recommendation_cache.lease_many([ann])).granted) == [ann]

    async def test_an_abandoned_lease_expires(
        self, recommendation_cache: RecommendationCache, users, advance_time: AdvanceTime
    ) -> None:
        (ann,) = users("ann")
        crashed_holder = await recommendation_cache.lease_many([ann])

        await advance_time(CONTRACT_LEASE_MS / 1000 + EXPIRY_MARGIN_SECONDS)

        next_holder = await recommendation_cache.lease_many([ann])
        assert list(next_holder.granted) == [ann]
        assert await recommendation_cache.fill_many([recommendations_for(ann)], crashed_holder.granted) == 0
        assert await recommendation_cache.fill_many([recommendations_for(ann)], next_holder.granted) == 1

    # Values the current code did not write

    @pytest.mark.parametrize(
        "raw",
        [
            pytest.param(b"not json at all", id="garbage"),
            pytest.param(b"\xff\xfe\x00binary", id="binary"),
            pytest.param(b"{\"v\": 1, \"items\": [", id="truncated"),
            pytest.param(b"[1, 2, 3]", id="json-array"),
            pytest.param(b"{}", id="empty-object"),
            pytest.param(
                orjson.dumps({"v": FORMAT_VERSION - 1, "computed_at": 1.0, "model_version": "m",
                              "items": [{"book_id": 1, "score": 1.0, "source": "POPULAR"}]}),
                id="older-version",
            ),
            pytest.param(
                orjson.dumps({"v": FORMAT_VERSION + 1, "computed_at": 1.0, "model_version": "m",
                              "book_ids": [], "scores": [], "sources": []}),
                id="newer-version",
            ),
            pytest.param(
                orjson.dumps({"v": FORMAT_VERSION, "computed_at": 1.0, "model_version": "m",
                              "book_ids": ["1"], "scores": [1.0], "sources": ["POPULAR"]}),
                id="string-book-id",
            ),
            pytest.param(
                orjson.dumps({"v": FORMAT_VERSION, "computed_at": 1.0, "model_version": "m",
                              "book_ids": [1], "scores": [1.0], "sources": ["EDITORIAL"]}),
                id="unknown-source",
            ),
            pytest.param(
                orjson.dumps({"v": FORMAT_VERSION, "computed_at": 1.0, "model_version": "m",
                              "book_ids": [1, 2], "scores": [1.0, 0.5], "sources": ["POPULAR"]}),
                id="arrays-of-different-lengths",
            ),
            # A JSON object text, which lease placeholders are guaranteed not to look like.
            pytest.param(b"{\"legacy\": [[1, 0.5]]}", id="seed-format"),
        ],
    )
    async def test_an_unreadable_value_is_a_miss_that_can_be_recomputed(
        self, recommendation_cache: RecommendationCache, users, write_raw: WriteRaw, raw: bytes
    ) -> None:
        ann, bob = users("ann", "bob")
        await write_raw(cache_key(ann), raw)
        await self.cache_values(recommendation_cache, [recommendations_for(bob)])

        assert await recommendation_cache.get_many([ann, bob]) == [None, recommendations_for(bob)]

        fresh = recommendations_for(ann)
        await self.cache_values(recommendation_cache, [fresh])
        assert await recommendation_cache.get_many([ann]) == [fresh]

    async def test_another_holder_placeholder_reads_as_a_miss_and_is_held(
        self, recommendation_cache: RecommendationCache, users, write_raw: WriteRaw
    ) -> None:
        (ann,) = users("ann")
        await write_raw(cache_key(ann), lease_placeholder("another-process"))

        assert await recommendation_cache.get_many([ann]) == [None]
        leases = await recommendation_cache.lease_many([ann])
        assert leases.granted == {} and list(leases.held_elsewhere) == [ann]
        assert await recommendation_cache.fill_many([recommendations_for(ann)], {ann: "another-process"}) == 1
