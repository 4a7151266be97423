"""Reads: what each root field returns, and the bounds on its arguments."""

from __future__ import annotations

from tests.api.conftest import BOOKS, TASTES, Api

BOOK_FIELDS = "id title authors publicationYear imageUrl averageRating ratingsCount"


async def test_a_book_has_every_field_of_the_catalog_entry(api: Api) -> None:
    body = await api.gql(f'{{ book(id: "3") {{ {BOOK_FIELDS} }} }}')
    book = BOOKS[2]
    assert body == {
        "data": {
            "book": {
                "id": "3",
                "title": book.title,
                "authors": list(book.authors),
                "publicationYear": book.publication_year,
                "imageUrl": book.image_url,
                "averageRating": book.average_rating,
                "ratingsCount": book.ratings_count,
            }
        }
    }


async def test_unknown_and_malformed_book_ids_are_null(api: Api) -> None:
    body = await api.gql('{ book(id: "99999") { id } bad: book(id: "1_0") { id } books(ids: ["2", "abc", "99999", "-1", "2"]) { id } }')
    assert body == {"data": {"book": None, "bad": None, "books": [{"id": "2"}, None, None, None, {"id": "2"}]}}


async def test_known_users_get_collaborative_lists_without_their_rated_books(api: Api) -> None:
    body = await api.gql('{ user(id: "alice") { id recommendations(limit: 5) { score source book { id } } } }')
    items = body["data"]["user"]["recommendations"]
    assert body["data"]["user"]["id"] == "alice"
    assert len(items) == 5
    assert {item["source"] for item in items} == {"COLLABORATIVE"}
    assert not {int(item["book"]["id"]) for item in items} & set(TASTES["alice"])
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)


async def test_an_unknown_user_is_a_cold_start_user_with_popular_books(api: Api) -> None:
    body = await api.gql('{ user(id: "nobody") { ratings { rating } recommendations(limit: 3) { source book { id } } } '
                         'popularBooks(limit: 3) { id } }')
    user = body["data"]["user"]
    assert user["ratings"] == []
    assert [item["source"] for item in user["recommendations"]] == ["POPULAR"] * 3
    assert [item["book"] for item in user["recommendations"]] == body["data"]["popularBooks"]


async def test_limit_slices_one_cached_list(api: Api) -> None:
    body = await api.gql('{ user(id: "bob") { ten: recommendations { book { id } } three: recommendations(limit: 3) { book { id } } } }')
    user = body["data"]["user"]
    assert len(user["ten"]) == 10
    assert user["three"] == user["ten"][:3]
    assert api.cache.calls["get_many"] == 1


async def test_users_come_back_in_the_order_asked(api: Api) -> None:
    body = await api.gql('{ users(ids: ["erin", "alice", "nobody", "alice"]) { id } }')
    assert [user["id"] for user in body["data"]["users"]] == ["erin", "alice", "nobody", "alice"]


async def test_a_users_ratings_carry_their_books(api: Api) -> None:
    body = await api.gql('{ user(id: "bob") { ratings { rating ratedAt book { id title } } } }')
    ratings = body["data"]["user"]["ratings"]
    assert {(int(r["book"]["id"]), r["rating"]) for r in ratings} == set(TASTES["bob"].items())
    assert {r["ratedAt"] for r in ratings} == {"2024-01-02T03:04:05+00:00"}
    assert ratings[0]["book"]["title"] == f"Book {ratings[0]['book']['id']}"


async def test_limit_outside_1_to_50_is_bad_user_input(api: Api) -> None:
    for field in ('user(id: "alice") { recommendations(limit: %d) { score } }', "popularBooks(limit: %d) { id }"):
        for limit in (0, 51, -3):
            body = await api.gql("{ %s }" % (field % limit))
            assert body["data"] is None
            [error] = body["errors"]
            assert error["extensions"]["code"] == "BAD_USER_INPUT"
            assert error["message"] == f"`limit` must be between 1 and 50, got {limit}"
    assert api.cache.calls["get_many"] == 0


async def test_limit_bounds_themselves_are_allowed(api: Api) -> None:
    body = await api.gql('{ user(id: "alice") { one: recommendations(limit: 1) { score } fifty: recommendations(limit: 50) { score } } }')
    assert len(body["data"]["user"]["one"]) == 1
    assert len(body["data"]["user"]["fifty"]) == 20  # the whole cached list: MAX_RECOMMENDATIONS is 20 here


async def test_more_than_100_ids_is_bad_user_input(api: Api) -> None:
    ids = [str(number) for number in range(101)]
    for field in ("users", "books"):
        body = await api.gql("query($ids: [ID!]!) { %s(ids: $ids) { id } }" % field, {"ids": ids})
        assert body["data"] is None
        [error] = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["message"] == "`ids` takes at most 100 ids, got 101"
    assert api.catalog.calls["get_many"] == 0
    exactly_100 = await api.gql("query($ids: [ID!]!) { users(ids: $ids) { id } books(ids: $ids) { id } }", {"ids": ids[:100]})
    assert len(exactly_100["data"]["users"]) == len(exactly_100["data"]["books"]) == 100


async def test_popular_books_are_the_most_rated_first(api: Api) -> None:
    body = await api.gql("{ popularBooks(limit: 2) { id } }")
    # books 1 and 2 are each rated by six users, more than any other
    assert body == {"data": {"popularBooks": [{"id": "1"}, {"id": "2"}]}}
