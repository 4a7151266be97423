"""Batching, counted: N users' recommendations cost one cache read, one recommender batch, one fill,
and one catalog read per 100 distinct books, however the query asks for the users."""

from __future__ import annotations

import math

from tests.api.conftest import TASTES, Api

# Users through `users`, through aliases of `user`, and both (with a repeat and two cold-start users).
MIXED_QUERY = """
{
  users(ids: ["alice", "bob", "carol", "nobody"]) { id recommendations(limit: 20) { score book { id title } } }
  d: user(id: "dave") { recommendations(limit: 5) { book { id authors } } }
  e: user(id: "erin") { recommendations { book { id } } }
  again: user(id: "alice") { recommendations(limit: 3) { book { title } } }
  cold: user(id: "someone-new") { recommendations(limit: 2) { source book { id } } }
}
"""


def recommended_book_ids(data: dict) -> set[str]:
    users = [*data["users"], data["d"], data["e"], data["again"], data["cold"]]
    return {item["book"]["id"] for user in users for item in user["recommendations"] if "id" in item["book"]}


async def test_a_cold_query_for_many_users_is_one_read_one_batch_one_fill(api: Api) -> None:
    body = await api.gql(MIXED_QUERY)
    assert "errors" not in body
    counters = api.container.service.counters
    assert api.cache.calls["get_many"] == 1
    [asked] = api.cache.arguments["get_many"]
    assert sorted(asked[0]) == sorted({"alice", "bob", "carol", "nobody", "dave", "erin", "someone-new"})
    assert api.cache.calls["lease_many"] == 1
    assert api.cache.calls["fill_many"] == 1
    assert counters.recommender_batches == 1
    assert counters.users_computed == 7
    distinct_books = recommended_book_ids(body["data"])
    assert api.catalog.calls["get_many"] == math.ceil(len(distinct_books) / 100) == 1
    [(catalog_ids,)] = api.catalog.arguments["get_many"]
    assert {str(book_id) for book_id in catalog_ids} >= distinct_books


async def test_a_warm_query_for_many_users_is_one_cache_read_and_nothing_computed(api: Api) -> None:
    await api.gql(MIXED_QUERY)
    api.reset_counts()
    batches_before = api.container.service.counters.recommender_batches
    body = await api.gql(MIXED_QUERY)
    assert "errors" not in body
    assert api.cache.calls == {"get_many": 1}
    assert api.container.service.counters.recommender_batches == batches_before
    assert api.ratings.calls["get_many"] == 0
    assert api.catalog.calls["get_many"] == 0  # the books are in the process's book cache (adapters.cached_catalog)


async def test_books_are_read_in_one_catalog_batch_per_100_distinct_ids(api: Api) -> None:
    first_100 = [str(book_id) for book_id in range(1, 101)]
    next_60 = [str(book_id) for book_id in range(101, 161)]
    body = await api.gql(
        "query($a: [ID!]!, $b: [ID!]!) { a: books(ids: $a) { id } b: books(ids: $b) { id } c: book(id: \"7\") { id } "
        "d: books(ids: [\"1\", \"160\"]) { id } }",
        {"a": first_100, "b": next_60},
    )
    assert [book["id"] for book in body["data"]["a"] + body["data"]["b"]] == first_100 + next_60
    assert api.catalog.calls["get_many"] == 2  # 160 distinct ids
    assert sorted(len(ids) for (ids,) in api.catalog.arguments["get_many"]) == [60, 100]


async def test_ratings_of_many_users_are_one_store_read(api: Api) -> None:
    body = await api.gql('{ users(ids: ["alice", "bob"]) { ratings { rating } } c: user(id: "carol") { ratings { rating } } }')
    counts = [len(user["ratings"]) for user in [*body["data"]["users"], body["data"]["c"]]]
    assert counts == [len(TASTES["alice"]), len(TASTES["bob"]), len(TASTES["carol"])]
    assert api.ratings.calls["get_many"] == 1
