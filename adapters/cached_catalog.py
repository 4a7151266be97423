"""A process-wide read-through cache in front of the book catalog.

Books change only when `bookrec import` writes them, while every recommendation
read asks for ten or more of them: without this cache each request pays a SQLite
thread hop or a DynamoDB BatchGetItem for data that is the same for everyone.
Entries live for at most `ttl_seconds` (all dropped at once, so a request never
mixes books read before and after an import it could have seen), and a write
through this catalog drops them at once, so this process sees its own imports
immediately and other processes within the TTL. Unknown ids are not remembered:
a client asking for made-up ids cannot fill the memory, and a book imported
later is found at once. The popular books (what is recommended before any model
exists) are cached the same way for the same TTL: one list, of the largest limit
asked, which answers every smaller limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from domain.models import Book
from domain.ports import BookCatalog


class CachedBookCatalog:
    """domain.ports.BookCatalog over another one; anything else (ping, aclose) passes straight through."""

    def __init__(
        self,
        inner: BookCatalog,
        *,
        ttl_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds <= 0 or max_entries < 1:
            raise ValueError("ttl_seconds must be positive and max_entries at least 1")
        self.inner = inner
        self._ttl_seconds = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._books: dict[int, Book] = {}
        self._popular: list[int] = []
        self._popular_limit = 0  # _popular is the inner catalog's answer to this limit
        self._expires_at = clock() + ttl_seconds

    async def get_many(self, book_ids: Sequence[int]) -> dict[int, Book]:
        """The known books among `book_ids`; one read of the inner catalog for those not cached, if any."""
        if self._clock() >= self._expires_at:
            self.clear()
        books = self._books
        found: dict[int, Book] = {}
        missing: list[int] = []
        for book_id in book_ids:
            book = books.get(book_id)
            if book is None:
                missing.append(book_id)
            else:
                found[book_id] = book
        if missing:
            fetched = await self.inner.get_many(list(dict.fromkeys(missing)))
            if len(books) + len(fetched) > self._max_entries:
                books.clear()  # a catalog larger than the bound: start again rather than grow past it
            if len(fetched) <= self._max_entries:
                books.update(fetched)
            found.update(fetched)
        return found

    async def warm(self, book_ids: Sequence[int], *, batch_size: int) -> int:
        """Read `book_ids` into the cache ahead of requests, `batch_size` per read; returns how many it holds.

        Recommended books are a long tail: filled on demand, a 10,000-book catalog still
        misses on most requests after thousands of them.
        """
        for start in range(0, min(len(book_ids), self._max_entries), batch_size):
            await self.get_many(book_ids[start : start + batch_size])
        return len(self._books)

    async def put_many(self, books: Iterable[Book]) -> int:
        written = await self.inner.put_many(books)
        self.clear()
        return written

    async def popular_book_ids(self, limit: int) -> list[int]:
        """The inner catalog's answer, read again only for a larger limit, after the TTL or after a write through here."""
        if self._clock() >= self._expires_at:
            self.clear()
        # A list shorter than the limit it answered is the whole catalogue: it answers any limit.
        known = self._popular_limit >= limit or len(self._popular) < self._popular_limit
        if not known:
            self._popular = list(await self.inner.popular_book_ids(limit))
            self._popular_limit = limit
        return self._popular[: max(limit, 0)]

    def clear(self) -> None:
        """Forget every book and popularity list; the next reads go to the inner catalog."""
        self._books = {}
        self._popular = []
        self._popular_limit = 0
        self._expires_at = self._clock() + self._ttl_seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
