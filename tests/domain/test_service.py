"""The cache-aside service with no I/O: in-memory stores, the in-process cache, the real recommender."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from adapters.memory_cache import InProcessRecommendationCache
from domain.models import Book, InvalidRating, Rating, RecommendationSource, StoreUnavailable, UnknownBook
from domain.ports import Leases
from domain.item_model import ItemModelParams, ItemRecommender, train
from domain.service import LeaseWait, ModelHolder, RecommendationService
from tests.fakes import InMemoryCatalog, InMemoryRatings

PARAMS = ItemModelParams(l2=1.0)  # a tiny catalogue wants little regularisation
LIST_LENGTH = 10
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)

# Readers of fantasy (1-4) and of crime (5-8); "ann" has not read book 4 yet, which all
# her neighbours loved, so it must come first for her.
TASTES = {
    "ann": {1: 5, 2: 5, 3: 4},
    "bob": {1: 5, 2: 4, 3: 5, 4: 5},
    "cat": {1: 4, 2: 5, 4: 5},
    "dan": {5: 5, 6: 5, 7: 4, 8: 5},
    "eve": {5: 4, 6: 5, 8: 5},
}


def make_ratings() -> list[Rating]:
    return [Rating(user, book, stars, EPOCH) for user, books in TASTES.items() for book, stars in books.items()]


async def make_service(cache=None, **options) -> tuple[RecommendationService, InMemoryRatings, InProcessRecommendationCache]:
    ratings = InMemoryRatings(make_ratings())
    catalog = InMemoryCatalog(Book(book_id, f"Book {book_id}", ("Someone",)) for book_id in range(1, 10))
    cache = cache or InProcessRecommendationCache(ttl_seconds=600, lease_ms=2_000, max_entries=1_000)
    model = train(await ratings.scan_columns(), PARAMS)
    service = RecommendationService(ratings, catalog, cache, ModelHolder(model), ItemRecommender(LIST_LENGTH), **options)
    return service, ratings, cache


async def get_recommendations(service: RecommendationService, user_ids: list[str], limit: int) -> list[list]:
    return [list(entry.items[:limit]) for entry in await service.recommendation_lists(user_ids)]


def book_ids(items) -> list[int]:
    return [item.book_id for item in items]


async def test_a_miss_computes_once_then_hits() -> None:
    service, _, _ = await make_service()
    [first] = await get_recommendations(service, ["ann"], limit=3)
    [second] = await get_recommendations(service, ["ann"], limit=3)
    assert book_ids(first)[0] == 4
    assert first[0].source is RecommendationSource.COLLABORATIVE
    assert second == first
    assert service.counters.recommender_batches == 1
    assert (service.counters.hits, service.counters.misses) == (1, 1)


async def test_many_users_are_one_cache_read_one_batch_one_fill() -> None:
    service, _, cache = await make_service()
    users = ["ann", "bob", "dan", "ann", "stranger"]
    lists = await service.recommendation_lists(users)
    assert [entry.user_id for entry in lists] == users
    assert service.counters.cache_gets == 1
    assert service.counters.recommender_batches == 1
    assert service.counters.users_computed == 4  # duplicates asked once
    assert service.counters.fills == 4
    assert all(value is not None for value in await cache.get_many(["ann", "bob", "dan", "stranger"]))


async def test_limit_slices_the_cached_list() -> None:
    service, _, _ = await make_service()
    [full] = await get_recommendations(service, ["stranger"], limit=10)
    [two] = await get_recommendations(service, ["stranger"], limit=2)
    assert two == full[:2]
    assert service.counters.recommender_batches == 1


async def test_unknown_user_gets_popular_books() -> None:
    service, _, _ = await make_service()
    [items] = await get_recommendations(service, ["nobody"], limit=10)
    assert items and all(item.source is RecommendationSource.POPULAR for item in items)
    assert book_ids(items)[:3] == await service.popular_book_ids(3)


async def test_rate_book_stores_invalidates_and_next_read_excludes_the_book() -> None:
    service, ratings, cache = await make_service()
    [before] = await get_recommendations(service, ["ann"], limit=10)
    assert 4 in book_ids(before)
    stored = await service.rate_book("ann", 4, 2)
    assert (stored.user_id, stored.book_id, stored.rating) == ("ann", 4, 2)
    assert ratings.by_user["ann"][4].rating == 2
    assert await cache.get_many(["ann"]) == [None]
    [after] = await get_recommendations(service, ["ann"], limit=10)
    assert 4 not in book_ids(after)
    assert service.counters.recommender_batches == 2


@pytest.mark.parametrize("stars", [0, 6, -1])
async def test_out_of_range_rating_writes_nothing_and_keeps_the_cache(stars: int) -> None:
    service, ratings, cache = await make_service()
    await get_recommendations(service, ["ann"], limit=10)
    with pytest.raises(InvalidRating):
        await service.rate_book("ann", 4, stars)
    assert 4 not in ratings.by_user["ann"]
    assert (await cache.get_many(["ann"]))[0] is not None


async def test_unknown_book_writes_nothing_and_keeps_the_cache() -> None:
    service, ratings, cache = await make_service()
    await get_recommendations(service, ["ann"], limit=10)
    with pytest.raises(UnknownBook):
        await service.rate_book("ann", 999, 4)
    assert 999 not in ratings.by_user["ann"]
    assert (await cache.get_many(["ann"]))[0] is not None


async def test_a_failed_write_still_voids_the_cached_list() -> None:
    """A store that gave up may have applied the write and lost the answer."""
    service, ratings, cache = await make_service()
    await get_recommendations(service, ["ann"], limit=10)

    async def unavailable(rating: Rating) -> Rating:
        raise StoreUnavailable("throttled")

    ratings.upsert = unavailable
    with pytest.raises(StoreUnavailable):
        await service.rate_book("ann", 4, 5)
    assert await cache.get_many(["ann"]) == [None]


async def test_a_fill_computed_before_a_rating_is_refused() -> None:
    """The stale-set race, made deterministic: the computation waits at a gate while the user rates."""
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def gated(function, *args):
        entered.set()
        await gate.wait()
        return function(*args)

    service, _, cache = await make_service(run_blocking=gated)
    reader = asyncio.create_task(get_recommendations(service, ["ann"], limit=10))
    await entered.wait()  # the reader holds the lease and has read ann's old ratings
    await service.rate_book("ann", 4, 1)
    gate.set()
    [stale] = await reader
    assert 4 in book_ids(stale)  # issued before the rating: may be old, but it is not cached
    assert service.counters.fills_refused == 1
    assert await cache.get_many(["ann"]) == [None]
    [fresh] = await get_recommendations(service, ["ann"], limit=10)
    assert 4 not in book_ids(fresh)


async def test_a_read_issued_after_a_rating_does_not_join_an_older_computation() -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()
    calls = 0

    async def gated_first(function, *args):
        nonlocal calls
        calls += 1
        if calls == 1:
            entered.set()
            await gate.wait()
        return function(*args)

    service, _, _ = await make_service(run_blocking=gated_first)
    old_reader = asyncio.create_task(get_recommendations(service, ["ann"], limit=10))
    await entered.wait()
    await service.rate_book("ann", 4, 1)
    new_reader = asyncio.create_task(get_recommendations(service, ["ann"], limit=10))
    await asyncio.sleep(0)
    gate.set()
    await old_reader
    [fresh] = await new_reader
    assert 4 not in book_ids(fresh)


async def test_concurrent_misses_for_one_user_compute_once() -> None:
    service, _, _ = await make_service()
    results = await asyncio.gather(*(get_recommendations(service, ["ann"], limit=5) for _ in range(100)))
    assert service.counters.recommender_batches == 1
    assert all(result == results[0] for result in results)


async def test_a_joiner_cancelled_does_not_cancel_the_owner() -> None:
    gate = asyncio.Event()

    async def gated(function, *args):
        await gate.wait()
        return function(*args)

    service, _, _ = await make_service(run_blocking=gated)
    owner = asyncio.create_task(get_recommendations(service, ["ann"], limit=5))
    await asyncio.sleep(0.01)
    joiner = asyncio.create_task(get_recommendations(service, ["ann"], limit=5))
    await asyncio.sleep(0.01)
    joiner.cancel()
    gate.set()
    [items] = await owner
    assert items
    assert joiner.cancelled()


async def test_a_lease_held_elsewhere_is_waited_for_then_used() -> None:
    sleeps: list[float] = []
    service, _, cache = await make_service()
    other = await cache.lease_many(["ann"])  # another process is computing ann
    holder_value = (await make_service())[0]

    async def other_process_fills(delay: float) -> None:
        sleeps.append(delay)
        if len(sleeps) == 2:
            [value] = await holder_value.recommendation_lists(["ann"])
            assert await cache.fill_many([value], other.granted) == 1

    service._sleep = other_process_fills
    [items] = await get_recommendations(service, ["ann"], limit=3)
    assert book_ids(items)[0] == 4
    assert service.counters.recommender_batches == 0
    assert service.counters.lease_waits == 1
    assert sleeps == LeaseWait().delays()[:2]


async def test_a_lease_never_filled_is_waited_for_a_bounded_time_then_computed_unwritten() -> None:
    sleeps: list[float] = []

    async def record(delay: float) -> None:
        sleeps.append(delay)

    service, _, cache = await make_service(sleep=record)
    await cache.lease_many(["ann"])
    [items] = await get_recommendations(service, ["ann"], limit=3)
    assert book_ids(items)[0] == 4
    assert sleeps == LeaseWait().delays()
    assert service.counters.recommender_batches == 1
    assert service.counters.fills == 0
    assert await cache.get_many(["ann"]) == [None]


class UnreachableCache:
    """A cache that cannot answer: every read misses, no lease is granted, nothing is written."""

    def __init__(self) -> None:
        self.fills = 0

    async def get_many(self, user_ids, items=None):
        return [None] * len(user_ids)

    async def lease_many(self, user_ids):
        return Leases()

    async def fill_many(self, values, leases):
        self.fills += 1
        return 0

    async def delete_many(self, user_ids):
        return None


async def test_an_unreachable_cache_still_serves_recommendations_without_waiting() -> None:
    cache = UnreachableCache()
    service, _, _ = await make_service(cache=cache, sleep=pytest.fail)
    [items] = await get_recommendations(service, ["ann"], limit=3)
    assert book_ids(items)[0] == 4
    assert cache.fills == 0
    assert service.counters.lease_waits == 0


async def test_refresh_computes_every_snapshot_user_and_reports_progress() -> None:
    service, _, cache = await make_service()
    progress: list[tuple[int, int]] = []
    computed = await service.refresh(batch_size=2, on_progress=lambda done, total: progress.append((done, total)))
    users = sorted(TASTES)
    assert computed == len(users)
    assert progress == [(0, 5), (2, 5), (4, 5), (5, 5)]
    assert all(value is not None for value in await cache.get_many(users))
    assert service.counters.recommender_batches == 3


async def test_refresh_replaces_an_older_cached_list() -> None:
    service, ratings, cache = await make_service()
    await get_recommendations(service, ["ann"], limit=10)
    ratings.by_user["ann"][4] = Rating("ann", 4, 5, EPOCH)  # written behind the service's back
    await service.refresh(["ann"])
    [items] = await get_recommendations(service, ["ann"], limit=10)
    assert 4 not in book_ids(items)
