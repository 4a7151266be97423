"""In-memory stores for tests of the domain: no I/O, same ports as the real adapters."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import numpy as np

from domain.models import Book, Rating, RatingColumns


class InMemoryRatings:
    def __init__(self, ratings: Iterable[Rating] = ()) -> None:
        self.by_user: dict[str, dict[int, Rating]] = {}
        self.get_many_calls = 0
        self.name = f"memory:{uuid.uuid4()}"
        for rating in ratings:
            self.by_user.setdefault(rating.user_id, {})[rating.book_id] = rating

    async def get_many(self, user_ids: Sequence[str]) -> dict[str, list[Rating]]:
        self.get_many_calls += 1
        return {user: sorted(self.by_user.get(user, {}).values(), key=lambda r: r.book_id) for user in user_ids}

    async def upsert(self, rating: Rating) -> Rating:
        self.by_user.setdefault(rating.user_id, {})[rating.book_id] = rating
        return rating

    async def put_many(self, ratings: Iterable[Rating]) -> int:
        count = 0
        for rating in ratings:
            await self.upsert(rating)
            count += 1
        return count

    async def scan_columns(self) -> RatingColumns:
        users = tuple(self.by_user)
        rows = [(code, r.book_id, r.rating) for code, user in enumerate(users) for r in self.by_user[user].values()]
        codes, books, values = zip(*rows) if rows else ((), (), ())
        return RatingColumns(
            users,
            np.asarray(codes, dtype=np.int32),
            np.asarray(books, dtype=np.int32),
            np.asarray(values, dtype=np.float32),
        )

    async def user_ids(self) -> list[str]:
        return sorted(user for user, ratings in self.by_user.items() if ratings)

    async def identity(self) -> str:
        return self.name


class InMemoryCatalog:
    def __init__(self, books: Iterable[Book] = ()) -> None:
        self.books = {book.id: book for book in books}
        self.get_many_calls = 0

    async def get_many(self, book_ids: Sequence[int]) -> dict[int, Book]:
        self.get_many_calls += 1
        return {book_id: self.books[book_id] for book_id in book_ids if book_id in self.books}

    async def put_many(self, books: Iterable[Book]) -> int:
        written = {book.id: book for book in books}
        self.books.update(written)
        return len(written)

    async def popular_book_ids(self, limit: int) -> list[int]:
        ranked = sorted(self.books.values(), key=lambda book: (-book.ratings_count, book.id))
        return [book.id for book in ranked[: max(limit, 0)]]
