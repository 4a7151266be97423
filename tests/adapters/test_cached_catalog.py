"""The process's book cache: counted reads of the real SQLite catalog behind it, a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.cached_catalog import CachedBookCatalog
from adapters.sqlite_store import open_sqlite_stores
from domain.models import Book
from tests.api.conftest import Counted

TTL = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def book(book_id: int, title: str | None = None) -> Book:
    return Book(id=book_id, title=title or f"Book {book_id}", authors=(f"Author {book_id}",))


@pytest.fixture
async def inner(tmp_path: Path) -> AsyncIterator[Counted]:
    ratings, catalog = open_sqlite_stores(tmp_path / "books.db")
    await catalog.put_many(book(book_id) for book_id in range(1, 11))
    try:
        yield Counted(catalog)
    finally:
        await ratings.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cached(inner: Counted, clock: Clock) -> CachedBookCatalog:
    return CachedBookCatalog(inner, ttl_seconds=TTL, max_entries=100, clock=clock)


async def test_books_are_read_from_the_store_once_then_served_from_memory(cached: CachedBookCatalog, inner: Counted) -> None:
    assert await cached.get_many([1, 2, 3]) == {1: book(1), 2: book(2), 3: book(3)}
    assert await cached.get_many([3, 2, 1, 2]) == {1: book(1), 2: book(2), 3: book(3)}
    assert inner.calls["get_many"] == 1

    assert await cached.get_many([2, 4, 4, 5]) == {2: book(2), 4: book(4), 5: book(5)}
    assert inner.arguments["get_many"][-1] == ([4, 5],)  # only what was missing, once each


async def test_unknown_ids_are_not_remembered(cached: CachedBookCatalog, inner: Counted) -> None:
    assert await cached.get_many([99]) == {}
    await inner.inner.put_many([book(99)])
    assert await cached.get_many([99]) == {99: book(99)}
    assert inner.calls["get_many"] == 2


async def test_everything_is_read_again_after_the_ttl(cached: CachedBookCatalog, inner: Counted, clock: Clock) -> None:
    await cached.get_many([1])
    await inner.inner.put_many([book(1, "Changed by an import elsewhere")])
    clock.now += TTL - 1
    assert (await cached.get_many([1]))[1].title == "Book 1"
    clock.now += 1
    assert (await cached.get_many([1]))[1].title == "Changed by an import elsewhere"
    assert inner.calls["get_many"] == 2


async def test_a_write_through_the_cache_is_read_back_at_once(cached: CachedBookCatalog, inner: Counted) -> None:
    await cached.get_many([1, 2])
    assert await cached.put_many([book(1, "Renamed")]) == 1
    assert await cached.get_many([1, 2]) == {1: book(1, "Renamed"), 2: book(2)}
    assert inner.calls["get_many"] == 2


async def test_memory_stays_within_max_entries(inner: Counted, clock: Clock) -> None:
    cached = CachedBookCatalog(inner, ttl_seconds=TTL, max_entries=3, clock=clock)
    await cached.get_many([1, 2])
    await cached.get_many([3, 4])  # 4 would not fit: the cache starts again with these two
    inner.reset()
    await cached.get_many([3, 4])
    assert inner.calls["get_many"] == 0
    await cached.get_many([1])
    assert inner.calls["get_many"] == 1
    await cached.get_many([5, 6, 7, 8])  # more than the bound in one read: served, not kept
    await cached.get_many([5])
    assert inner.calls["get_many"] == 3


def test_anything_else_reaches_the_store_behind_it(cached: CachedBookCatalog, inner: Counted) -> None:
    assert cached.inner is inner
    assert cached.database is inner.inner.database  # e.g. what readiness and close reach


def test_nonsense_bounds_are_refused(inner: Counted) -> None:
    with pytest.raises(ValueError):
        CachedBookCatalog(inner, ttl_seconds=0, max_entries=10)
    with pytest.raises(ValueError):
        CachedBookCatalog(inner, ttl_seconds=1, max_entries=0)


async def test_warming_reads_the_given_books_in_batches(cached: CachedBookCatalog, inner: Counted) -> None:
    assert await cached.warm(list(range(1, 13)), batch_size=5) == 10  # 11 and 12 are not in the catalog
    assert [len(ids) for (ids,) in inner.arguments["get_many"]] == [5, 5, 2]
    inner.reset()
    assert await cached.get_many(range(1, 11)) == {book_id: book(book_id) for book_id in range(1, 11)}
    assert inner.calls["get_many"] == 0


def counted_book(book_id: int, ratings_count: int) -> Book:
    return Book(id=book_id, title=f"Book {book_id}", authors=(f"Author {book_id}",), ratings_count=ratings_count)


async def test_popular_books_are_read_once_and_larger_limits_read_again(cached: CachedBookCatalog, inner: Counted) -> None:
    await inner.inner.put_many([counted_book(3, 30), counted_book(7, 70), counted_book(5, 30)])

    assert await cached.popular_book_ids(2) == [7, 3]
    assert await cached.popular_book_ids(2) == [7, 3]
    assert await cached.popular_book_ids(1) == [7]  # a smaller limit: the same list, cut
    assert inner.calls["popular_book_ids"] == 1

    assert await cached.popular_book_ids(3) == [7, 3, 5]  # a larger one: asked again
    assert inner.arguments["popular_book_ids"] == [(2,), (3,)]
    assert await cached.popular_book_ids(0) == []
    assert inner.calls["popular_book_ids"] == 2


async def test_a_short_popular_list_is_the_whole_catalog(cached: CachedBookCatalog, inner: Counted) -> None:
    assert await cached.popular_book_ids(50) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]  # all at 0 ratings: by id

    assert await cached.popular_book_ids(500) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert inner.calls["popular_book_ids"] == 1


async def test_popular_books_are_read_again_after_the_ttl_and_after_a_write(
    cached: CachedBookCatalog, inner: Counted, clock: Clock
) -> None:
    assert await cached.popular_book_ids(2) == [1, 2]
    await inner.inner.put_many([counted_book(9, 900)])  # an import elsewhere
    clock.now += TTL - 1
    assert await cached.popular_book_ids(2) == [1, 2]
    clock.now += 1
    assert await cached.popular_book_ids(2) == [9, 1]

    await cached.put_many([counted_book(4, 4_000)])
    assert await cached.popular_book_ids(2) == [4, 9]
    assert inner.calls["popular_book_ids"] == 3


async def test_the_popular_list_handed_out_is_the_callers_own(cached: CachedBookCatalog) -> None:
    first = await cached.popular_book_ids(3)
    first.clear()

    assert await cached.popular_book_ids(3) == [1, 2, 3]
