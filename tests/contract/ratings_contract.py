"""The RatingsRepository contract: what every ratings adapter must do, whatever it stores in.

An adapter's test module subclasses `RatingsRepositoryContract` (as `Test...`)
and provides a `ratings_repository` fixture yielding an EMPTY repository.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from domain.models import Rating
from domain.ports import RatingsRepository

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
USER_IDS = ("alice", "58", "058", "Zoë 🦉", "user with spaces", "USER#1", "a,b")


def rating(user_id: str, book_id: int, stars: int, minutes: int = 0) -> Rating:
    return Rating(user_id, book_id, stars, T0 + timedelta(minutes=minutes))


def triples(by_user: dict[str, list[Rating]]) -> set[tuple[str, int, int]]:
    return {(r.user_id, r.book_id, r.rating) for ratings in by_user.values() for r in ratings}


def by_book(ratings: list[Rating]) -> list[Rating]:
    return sorted(ratings, key=lambda r: r.book_id)


class RatingsRepositoryContract:
    async def test_users_without_ratings_map_to_empty_lists(self, ratings_repository: RatingsRepository) -> None:
        assert await ratings_repository.get_many(["nobody", "58"]) == {"nobody": [], "58": []}

    async def test_get_many_returns_each_users_ratings(self, ratings_repository: RatingsRepository) -> None:
        alice = [rating("alice", 1, 5), rating("alice", 7, 2, minutes=1)]
        bob = [rating("bob", 7, 4, minutes=2)]
        await ratings_repository.put_many(alice + bob)

        found = await ratings_repository.get_many(["alice", "bob", "carol"])

        assert set(found) == {"alice", "bob", "carol"}
        assert by_book(found["alice"]) == alice
        assert found["bob"] == bob
        assert found["carol"] == []

    async def test_get_many_does_not_depend_on_the_order_asked(self, ratings_repository: RatingsRepository) -> None:
        await ratings_repository.put_many([rating("alice", 1, 5), rating("bob", 2, 3), rating("carol", 3, 1)])

        forward = await ratings_repository.get_many(["alice", "bob", "carol"])
        backward = await ratings_repository.get_many(["carol", "bob", "alice"])

        assert {user: by_book(rs) for user, rs in forward.items()} == {user: by_book(rs) for user, rs in backward.items()}
        assert triples(forward) == {("alice", 1, 5), ("bob", 2, 3), ("carol", 3, 1)}

    async def test_upsert_returns_the_rating_and_stores_it(self, ratings_repository: RatingsRepository) -> None:
        given = rating("alice", 3, 4)

        assert await ratings_repository.upsert(given) == given
        assert await ratings_repository.get_many(["alice"]) == {"alice": [given]}

    async def test_re_rating_overwrites_rating_and_rated_at(self, ratings_repository: RatingsRepository) -> None:
        await ratings_repository.upsert(rating("alice", 3, 2))
        await ratings_repository.upsert(rating("alice", 3, 5, minutes=30))

        [stored] = (await ratings_repository.get_many(["alice"]))["alice"]

        assert stored == rating("alice", 3, 5, minutes=30)

    async def test_rated_at_comes_back_as_the_same_instant_in_utc(self, ratings_repository: RatingsRepository) -> None:
        plus_two = timezone(timedelta(hours=2))
        given = Rating("alice", 3, 4, datetime(2024, 5, 1, 14, 0, 0, 654321, tzinfo=plus_two))

        returned = await ratings_repository.upsert(given)
        [stored] = (await ratings_repository.get_many(["alice"]))["alice"]

        for moment in (returned.rated_at, stored.rated_at):
            assert moment == given.rated_at
            assert moment.utcoffset() == timedelta(0)

    async def test_put_many_keeps_the_last_of_duplicate_pairs(self, ratings_repository: RatingsRepository) -> None:
        written = await ratings_repository.put_many(
            [rating("alice", 1, 1), rating("bob", 1, 2), rating("alice", 1, 4, minutes=5), rating("alice", 2, 3)]
        )

        found = await ratings_repository.get_many(["alice", "bob"])

        assert written == 3  # distinct (user, book) pairs
        assert by_book(found["alice"]) == [rating("alice", 1, 4, minutes=5), rating("alice", 2, 3)]
        assert found["bob"] == [rating("bob", 1, 2)]

    async def test_put_many_overwrites_what_is_stored(self, ratings_repository: RatingsRepository) -> None:
        await ratings_repository.put_many([rating("alice", 1, 1), rating("alice", 2, 2)])
        await ratings_repository.put_many([rating("alice", 1, 5, minutes=9)])

        found = await ratings_repository.get_many(["alice"])

        assert by_book(found["alice"]) == [rating("alice", 1, 5, minutes=9), rating("alice", 2, 2)]

    async def test_put_many_takes_any_iterable(self, ratings_repository: RatingsRepository) -> None:
        written = await ratings_repository.put_many(rating("alice", book, 3) for book in range(1, 6))

        assert written == 5
        assert len((await ratings_repository.get_many(["alice"]))["alice"]) == 5

    async def test_user_ids_are_arbitrary_strings(self, ratings_repository: RatingsRepository) -> None:
        await ratings_repository.put_many(rating(user, index + 1, index % 5 + 1) for index, user in enumerate(USER_IDS))

        found = await ratings_repository.get_many(list(USER_IDS))

        assert triples(found) == {(user, index + 1, index % 5 + 1) for index, user in enumerate(USER_IDS)}
        assert all(len(found[user]) == 1 and found[user][0].user_id == user for user in USER_IDS)

    async def test_get_many_of_more_than_a_thousand_users(self, ratings_repository: RatingsRepository) -> None:
        users = [f"user-{n}" for n in range(1_050)]
        await ratings_repository.put_many(rating(user, n % 40 + 1, n % 5 + 1) for n, user in enumerate(users))

        found = await ratings_repository.get_many(users + ["unknown"])

        assert len(found) == 1_051 and found["unknown"] == []
        assert triples(found) == {(user, n % 40 + 1, n % 5 + 1) for n, user in enumerate(users)}

    async def test_scan_columns_of_an_empty_store(self, ratings_repository: RatingsRepository) -> None:
        columns = await ratings_repository.scan_columns()

        assert len(columns) == 0 and columns.user_ids == ()

    async def test_scan_columns_matches_get_many(self, ratings_repository: RatingsRepository) -> None:
        ratings = [rating(user, book, (book * 7 + index) % 5 + 1) for index, user in enumerate(USER_IDS) for book in range(index, 12)]
        await ratings_repository.put_many(ratings)
        await ratings_repository.upsert(rating("58", 11, 1, minutes=1))

        columns = await ratings_repository.scan_columns()
        found = await ratings_repository.get_many(list(USER_IDS))

        assert columns.user_codes.dtype == np.int32 and columns.book_ids.dtype == np.int32
        assert columns.ratings.dtype == np.float32
        assert len(columns) == len(ratings) == len(columns.book_ids) == len(columns.user_codes)
        assert sorted(columns.user_ids) == sorted(USER_IDS)
        scanned = {
            (columns.user_ids[code], int(book), int(stars))
            for code, book, stars in zip(columns.user_codes, columns.book_ids, columns.ratings)
        }
        assert scanned == triples(found)
        assert ("58", 11, 1) in scanned

    async def test_user_ids_of_an_empty_store(self, ratings_repository: RatingsRepository) -> None:
        assert await ratings_repository.user_ids() == []

    async def test_user_ids_are_every_rater_once_in_ascending_order(self, ratings_repository: RatingsRepository) -> None:
        await ratings_repository.put_many(rating(user, book, 4) for user in USER_IDS for book in (1, 2, 3))
        await ratings_repository.upsert(rating("alice", 9, 1))
        await ratings_repository.get_many(["asked about, never rated"])

        found = await ratings_repository.user_ids()

        assert found == sorted(USER_IDS)  # code-point order: "058" < "58" < "USER#1" < "Zoë 🦉" < "a,b" < "alice"
        assert "asked about, never rated" not in found

    async def test_user_ids_of_many_users(self, ratings_repository: RatingsRepository) -> None:
        users = [f"user-{n:04d}" for n in range(1_050)]
        await ratings_repository.put_many(rating(user, n % 7 + 1, 3) for n, user in enumerate(reversed(users)))

        assert await ratings_repository.user_ids() == users

    async def test_identity_is_a_stable_non_empty_name(self, ratings_repository: RatingsRepository) -> None:
        before = await ratings_repository.identity()
        await ratings_repository.put_many([rating("alice", 1, 5)])
        after = await ratings_repository.identity()

        assert isinstance(before, str) and before.strip()
        assert before == after == await ratings_repository.identity()
