"""rateBook, invalidateRecommendations and refreshRecommendations."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from adapters.memory_cache import InProcessRecommendationCache
from graphql_api.settings import Settings
from tests.api.conftest import TASTES, Api

RATE = """
mutation($user: ID!, $book: ID!, $stars: Int!) {
  rateBook(userId: $user, bookId: $book, rating: $stars) {
    rating { rating ratedAt book { id title } }
    user { id ratings { rating book { id } } recommendations(limit: 50) { book { id } } }
  }
}
"""
RECOMMENDED = 'query($user: ID!) { user(id: $user) { recommendations(limit: 50) { book { id } } } }'


async def recommended(api: Api, user: str) -> list[str]:
    body = await api.gql(RECOMMENDED, {"user": user})
    return [item["book"]["id"] for item in body["data"]["user"]["recommendations"]]


async def cached(api: Api, user: str) -> Any:
    [value] = await api.cache.inner.get_many([user])
    return value


async def stored_ratings(api: Api, user: str) -> dict[int, int]:
    found = await api.ratings.inner.get_many([user])
    return {rating.book_id: rating.rating for rating in found[user]}


async def test_rating_a_recommended_book_removes_it_from_every_later_list(api: Api) -> None:
    top = (await recommended(api, "alice"))[0]
    assert await cached(api, "alice") is not None

    body = await api.gql(RATE, {"user": "alice", "book": top, "stars": 4}, token=api.token("alice"))

    payload = body["data"]["rateBook"]
    assert payload["rating"]["rating"] == 4
    assert payload["rating"]["book"] == {"id": top, "title": f"Book {top}"}
    assert payload["rating"]["ratedAt"].endswith("+00:00")
    assert {"rating": 4, "book": {"id": top}} in payload["user"]["ratings"]
    assert top not in [item["book"]["id"] for item in payload["user"]["recommendations"]]
    assert (await stored_ratings(api, "alice"))[int(top)] == 4
    assert api.cache.arguments["delete_many"] == [(["alice"],)]
    assert top not in await recommended(api, "alice")
    assert top not in await recommended(api, "alice")  # and from the cache refilled after the rating


async def test_rating_again_overwrites(api: Api) -> None:
    token = api.token("bob")
    await api.gql(RATE, {"user": "bob", "book": "20", "stars": 2}, token=token)
    body = await api.gql(RATE, {"user": "bob", "book": "20", "stars": 5}, token=token)
    assert body["data"]["rateBook"]["rating"]["rating"] == 5
    assert [r for r in body["data"]["rateBook"]["user"]["ratings"] if r["book"]["id"] == "20"] == [{"rating": 5, "book": {"id": "20"}}]
    assert (await stored_ratings(api, "bob"))[20] == 5


async def test_two_ratings_in_one_request_each_see_the_ones_before(api: Api) -> None:
    first, second = (await recommended(api, "carol"))[:2]
    body = await api.gql(
        """mutation($a: ID!, $b: ID!) {
             a: rateBook(userId: "carol", bookId: $a, rating: 5) { user { recommendations(limit: 50) { book { id } } } }
             b: rateBook(userId: "carol", bookId: $b, rating: 1) { user { recommendations(limit: 50) { book { id } } ratings { book { id } } } }
           }""",
        {"a": first, "b": second},
        token=api.token("carol"),
    )
    after_b = body["data"]["b"]["user"]
    assert first not in [item["book"]["id"] for item in body["data"]["a"]["user"]["recommendations"]]
    assert not {first, second} & {item["book"]["id"] for item in after_b["recommendations"]}
    assert {first, second} <= {rating["book"]["id"] for rating in after_b["ratings"]}


@pytest.mark.parametrize("stars", [0, 6, -1, 100])
async def test_a_rating_outside_1_to_5_is_bad_user_input_and_changes_nothing(api: Api, stars: int) -> None:
    await recommended(api, "alice")
    before = await cached(api, "alice")
    api.reset_counts()

    body = await api.gql(RATE, {"user": "alice", "book": "30", "stars": stars}, token=api.token("alice"))

    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert error["message"] == f"rating must be between 1 and 5, got {stars}"
    assert api.ratings.calls["upsert"] == 0
    assert await stored_ratings(api, "alice") == TASTES["alice"]
    assert api.cache.calls["delete_many"] == 0
    assert await cached(api, "alice") == before


@pytest.mark.parametrize("book", ["99999", "abc", "1.5", "", "0"])
async def test_an_unknown_book_is_not_found_and_changes_nothing(api: Api, book: str) -> None:
    await recommended(api, "alice")
    before = await cached(api, "alice")
    api.reset_counts()

    body = await api.gql(RATE, {"user": "alice", "book": book, "stars": 3}, token=api.token("alice"))

    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "NOT_FOUND"}
    assert error["message"] == f"no book with id {book!r}"
    assert api.ratings.calls["upsert"] == 0
    assert await stored_ratings(api, "alice") == TASTES["alice"]
    assert api.cache.calls["delete_many"] == 0
    assert await cached(api, "alice") == before


async def test_invalidate_drops_the_cached_list(api: Api) -> None:
    await recommended(api, "dave")
    assert await cached(api, "dave") is not None
    body = await api.gql('mutation { invalidateRecommendations(userId: "dave") }', token=api.token("root", admin=True))
    assert body == {"data": {"invalidateRecommendations": True}}
    assert await cached(api, "dave") is None


REFRESH = "mutation($users: [ID!]) { refreshRecommendations(userIds: $users) { id status total processed } }"
JOB = "query($id: ID!) { refreshJob(id: $id) { id status total processed } }"


class GatedCache:
    """The in-process cache, whose lease_many waits while `gate` is closed: a refresh that can be held mid-way."""

    def __init__(self, inner: InProcessRecommendationCache) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.gate.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def lease_many(self, user_ids: Any) -> Any:
        await self.gate.wait()
        return await self.inner.lease_many(user_ids)


@pytest.fixture
def make_cache() -> Callable[[Settings], Any]:
    return lambda settings: GatedCache(
        InProcessRecommendationCache(settings.cache_ttl_seconds, settings.cache_lease_ms, settings.cache_max_entries)
    )


async def job_until(api: Api, job_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for _ in range(500):
        job = (await api.gql(JOB, {"id": job_id}))["data"]["refreshJob"]
        if done(job):
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"refresh job never reached the state wanted; last seen {job}")


async def test_refresh_returns_at_once_reports_progress_and_runs_one_job_at_a_time(api: Api) -> None:
    admin = api.token("root", admin=True)
    gate = api.cache.inner.gate
    gate.clear()

    started = (await api.gql(REFRESH, token=admin))["data"]["refreshRecommendations"]
    assert started["status"] == "QUEUED"
    assert started["processed"] == 0

    running = await job_until(api, started["id"], lambda job: job["status"] == "RUNNING" and job["total"] == len(TASTES))
    assert running["processed"] == 0
    second = (await api.gql(REFRESH, {"users": ["alice"]}, token=admin))["data"]["refreshRecommendations"]
    assert second["id"] == started["id"]

    gate.set()
    finished = await job_until(api, started["id"], lambda job: job["status"] == "SUCCEEDED")
    assert finished["processed"] == finished["total"] == len(TASTES)
    assert all(value is not None for value in await api.cache.inner.inner.get_many(list(TASTES)))

    third = (await api.gql(REFRESH, {"users": ["alice", "nobody", "alice"]}, token=admin))["data"]["refreshRecommendations"]
    assert third["id"] != started["id"]
    assert third["total"] == 2
    done = await job_until(api, third["id"], lambda job: job["status"] == "SUCCEEDED")
    assert done["processed"] == 2


async def test_an_unknown_job_is_null(api: Api) -> None:
    assert (await api.gql(JOB, {"id": "no-such-job"}))["data"] == {"refreshJob": None}
