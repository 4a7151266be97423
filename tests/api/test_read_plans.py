"""Read plans (graphql_api.read_plans) answer exactly as Strawberry does, and never from stale data.

The first run of a document goes through Strawberry and admits it; the same request
again is answered by its plan. Each test compares the two answers byte for byte and
counts which path answered (`ReadPlans.answered`).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from domain.models import Book
from graphql_api.app import create_app
from graphql_api.bootstrap import Stores
from graphql_api.read_plans import BOOK_FIELDS, BookFragments, ReadPlans
from graphql_api.settings import Settings
from tests.api.conftest import Api, Counted

HOT = "query($id: ID!) { user(id: $id) { recommendations(limit: 10) { score book { id title authors } } } }"
EVERY_FIELD = """query($ids: [ID!]!, $n: Int!) {
  __typename
  people: users(ids: $ids) {
    __typename who: id
    top: recommendations(limit: $n) { __typename source score book { __typename id title authors publicationYear imageUrl averageRating ratingsCount } }
    more: recommendations(limit: 20) { book { id } s: score }
  }
  one: user(id: "carol") { recommendations { source } id }
}"""

# (document, variables): every shape the planner accepts, over known, unknown (POPULAR) and repeated users.
PLANNED = [
    (HOT, {"id": "alice"}),
    (HOT, {"id": "someone-new"}),
    (HOT, {"id": ""}),
    (EVERY_FIELD, {"ids": ["alice", "bob", "alice", "nobody", "grace"], "n": 7}),
    (EVERY_FIELD, {"ids": [], "n": 50}),
    ('{ users(ids: ["heidi", "dave"]) { id recommendations(limit: 1) { score } } }', None),
    ('query Named { a: user(id: "erin") { id } b: user(id: "frank") { recommendations(limit: 3) { book { title } } } }', None),
    ("query($id: ID!) { user(id: $id) { recommendations { book { id } } } }", {"id": "grace", "unused": 1}),
]


def view_plans(api: Api) -> ReadPlans:
    route = next(route for route in api.app.routes if getattr(route, "path", None) == "/graphql")
    return route.endpoint.read_plans


async def post(api: Api, query: str, variables: dict[str, Any] | None, **extra: Any) -> httpx.Response:
    response = await api.client.post("/graphql", json={"query": query, "variables": variables, **extra})
    assert response.status_code == 200, response.text
    return response


def comparable_headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name not in ("x-request-id", "content-length")}


@pytest.mark.parametrize(("query", "variables"), PLANNED)
async def test_a_plan_answers_the_same_bytes_as_strawberry(api: Api, query: str, variables: dict[str, Any] | None) -> None:
    plans = view_plans(api)
    by_strawberry = await post(api, query, variables)
    assert plans.answered == 0
    by_plan = await post(api, query, variables)
    assert plans.answered == 1
    assert "errors" not in by_strawberry.json()
    assert by_plan.content == by_strawberry.content
    assert comparable_headers(by_plan) == comparable_headers(by_strawberry)


async def test_both_sources_are_written_as_strawberry_writes_them(api: Api) -> None:
    sources = set()
    for padding, user in enumerate(("grace", "nobody")):
        query = "query($id: ID!) { user(id: $id) { recommendations(limit: 50) { source } } }" + " " * padding  # its own document
        first, second = await post(api, query, {"id": user}), await post(api, query, {"id": user})
        assert second.content == first.content
        sources |= {item["source"] for item in second.json()["data"]["user"]["recommendations"]}
    assert view_plans(api).answered == 2
    assert sources == {"COLLABORATIVE", "POPULAR"}


@pytest.mark.parametrize(
    "query",
    [
        'query { user(id: "alice") { ...R } } fragment R on User { recommendations { score } }',
        'query { user(id: "alice") { recommendations @include(if: true) { score } } }',
        'query { user(id: "alice") { ratings { rating } } }',
        'query { user(id: "alice") { id } user(id: "alice") { recommendations { score } } }',
        'query { book(id: "7") { title } }',
        "query { __typename }",
        'query A { user(id: "alice") { id } } query B { user(id: "bob") { id } }',
        'query { users(ids: "alice") { id } }',
    ],
)
async def test_documents_outside_the_planned_shapes_always_run_through_strawberry(api: Api, query: str) -> None:
    operation = "A" if "query A" in query else None
    first = await post(api, query, None, operationName=operation)
    second = await post(api, query, None, operationName=operation)
    assert view_plans(api).answered == 0
    assert second.content == first.content


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({"id": 58}, None),  # an ID given as a number: the executor coerces it
        ({"id": None}, "BAD_USER_INPUT"),
        ({}, "BAD_USER_INPUT"),
    ],
)
async def test_variables_a_plan_does_not_cover_go_to_strawberry(api: Api, variables: dict[str, Any], code: str | None) -> None:
    await post(api, HOT, {"id": "alice"})  # admits the document
    body = (await post(api, HOT, variables)).json() if code is None else (await api.client.post("/graphql", json={"query": HOT, "variables": variables})).json()
    assert view_plans(api).answered == 0
    if code is None:
        assert body["data"]["user"]["recommendations"]
    else:
        assert body["errors"][0]["extensions"]["code"] == code


@pytest.mark.parametrize(
    ("variables", "message"),
    [({"ids": ["alice"], "n": 0}, "`limit` must be between 1 and 50"), ({"ids": [str(i) for i in range(101)], "n": 5}, "at most 100 ids")],
)
async def test_a_value_the_resolvers_refuse_gets_strawberrys_error(api: Api, variables: dict[str, Any], message: str) -> None:
    await post(api, EVERY_FIELD, {"ids": ["alice"], "n": 5})
    body = (await post(api, EVERY_FIELD, variables)).json()
    assert view_plans(api).answered == 0
    assert message in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_document_that_failed_is_not_admitted(api: Api) -> None:
    query = "query($n: Int!) { user(id: \"alice\") { recommendations(limit: $n) { score } } }"
    assert "errors" in (await post(api, query, {"n": 99})).json()
    await post(api, query, {"n": 3})  # the first success admits it
    assert view_plans(api).answered == 0
    await post(api, query, {"n": 3})
    assert view_plans(api).answered == 1


async def test_requests_with_persisted_query_extensions_are_never_planned(api: Api) -> None:
    await post(api, HOT, {"id": "alice"})
    await post(api, HOT, {"id": "alice"}, extensions={})  # empty: nothing for the persisted-query layer to do
    assert view_plans(api).answered == 1
    wrong_hash = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    refused = await api.client.post("/graphql", json={"query": HOT, "variables": {"id": "alice"}, "extensions": wrong_hash})
    assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"  # the hash does not match
    assert view_plans(api).answered == 1


@pytest.mark.parametrize("variables", [[], "", 0, ["alice"]])
async def test_variables_that_are_not_an_object_go_to_strawberry(api: Api, variables: Any) -> None:
    query = '{ user(id: "alice") { recommendations { score } } }'
    await post(api, query, None)
    response = await api.client.post("/graphql", json={"query": query, "variables": variables})
    assert view_plans(api).answered == 0
    assert response.status_code in (200, 400)


async def test_a_plan_reads_as_the_resolvers_do_one_cache_read_and_one_catalog_batch(api: Api) -> None:
    variables = {"ids": ["alice", "bob", "carol", "nobody", "alice"], "n": 20}
    await post(api, EVERY_FIELD, variables)
    api.container.catalog.clear()  # the process's book cache, so the catalog read below is counted
    api.reset_counts()
    await post(api, EVERY_FIELD, variables)
    assert view_plans(api).answered == 1
    assert api.cache.calls == {"get_many": 1}
    [(users,)] = api.cache.arguments["get_many"]
    assert sorted(users) == ["alice", "bob", "carol", "nobody"]
    assert api.catalog.calls["get_many"] == 1


async def rate_and_read(api: Api, user: str) -> None:
    """Rate the first recommended book; the very next planned read must not recommend it."""
    before = (await post(api, HOT, {"id": user})).json()["data"]["user"]["recommendations"]
    answered = view_plans(api).answered
    rated = before[0]["book"]["id"]
    mutation = "mutation($u: ID!, $b: ID!) { rateBook(userId: $u, bookId: $b, rating: 5) { rating { rating } } }"
    response = await api.client.post(
        "/graphql", json={"query": mutation, "variables": {"u": user, "b": rated}},
        headers={"Authorization": f"Bearer {api.token(user)}"},
    )
    assert "errors" not in response.json(), response.text
    after = (await post(api, HOT, {"id": user})).json()["data"]["user"]["recommendations"]
    assert view_plans(api).answered == answered + 1
    assert rated not in [item["book"]["id"] for item in after]


async def test_after_rate_book_the_next_planned_read_shows_the_new_list(api: Api) -> None:
    await post(api, HOT, {"id": "grace"})  # admit, and cache grace's list
    await rate_and_read(api, "grace")


async def test_a_title_changed_through_the_catalog_is_served_at_once(api: Api) -> None:
    query = 'query { user(id: "grace") { recommendations(limit: 1) { book { id title } } } }'
    await post(api, query, None)
    [item] = (await post(api, query, None)).json()["data"]["user"]["recommendations"]
    book_id = int(item["book"]["id"])
    await api.container.catalog.put_many([Book(id=book_id, title="Renamed", authors=("Someone",))])
    [renamed] = (await post(api, query, None)).json()["data"]["user"]["recommendations"]
    assert renamed["book"] == {"id": str(book_id), "title": "Renamed"}
    assert view_plans(api).answered == 2


async def test_a_book_changed_by_another_process_is_rendered_afresh_once_the_book_cache_rereads_it(api: Api) -> None:
    query = 'query { user(id: "grace") { recommendations(limit: 2) { score book { id title authors } } } }'
    await post(api, query, None)
    before = (await post(api, query, None)).json()["data"]["user"]["recommendations"]
    book_id = int(before[1]["book"]["id"])
    # As an import by another process writes it: to the catalog behind this process's book cache.
    await api.catalog.put_many([Book(id=book_id, title="Second Edition", authors=("New Author",))])
    assert (await post(api, query, None)).json()["data"]["user"]["recommendations"] == before  # within the TTL

    api.container.catalog.clear()  # what the book cache's TTL does: its next reads are new Book objects
    by_plan = await post(api, query, None)
    assert [item["book"] for item in by_plan.json()["data"]["user"]["recommendations"]] == [
        before[0]["book"], {"id": str(book_id), "title": "Second Edition", "authors": ["New Author"]},
    ]
    assert view_plans(api).answered == 3
    by_strawberry = await post(api, query + " ", None)  # another document: its first run is Strawberry's
    assert by_plan.content == by_strawberry.content


def test_a_rendered_book_is_reused_for_the_same_book_object_only_and_within_the_bound() -> None:
    rendered: list[int] = []
    selection = (("id", lambda book: rendered.append(book.id) or str(book.id)), ("title", BOOK_FIELDS["title"]))
    fragments = BookFragments(max_entries=2)
    one, two, three = (Book(id=book_id, title=f"T{book_id}", authors=()) for book_id in (1, 2, 3))

    first = fragments.render(selection, {1: one, 2: two})
    assert orjson.dumps([first[1], first[2]]) == b'[{"id":"1","title":"T1"},{"id":"2","title":"T2"}]'
    assert fragments.render(selection, {2: two, 1: one}) == first and rendered == [1, 2]
    renamed = Book(id=1, title="Renamed", authors=())
    assert orjson.dumps(fragments.render(selection, {1: renamed})[1]) == b'{"id":"1","title":"Renamed"}'
    assert rendered == [1, 2, 1]
    fragments.render(selection, {3: three})  # a third book: past the bound, the renderings start again
    fragments.render(selection, {2: two, 3: three})
    assert rendered == [1, 2, 1, 3, 2]


async def test_a_serving_app_reads_its_books_before_the_first_request(settings: Settings, seeded_stores: Stores) -> None:
    app = create_app(settings)  # opens its own container, as `bookrec serve` does
    async with app.router.lifespan_context(app):
        route = next(route for route in app.routes if getattr(route, "path", None) == "/graphql")
        catalog = route.endpoint._runtime.container.catalog
        catalog.inner = counted = Counted(catalog.inner)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bookrec.test") as client:
            response = await client.post("/graphql", json={"query": HOT, "variables": {"id": "grace"}})
    assert len(response.json()["data"]["user"]["recommendations"]) == 10
    assert counted.calls["get_many"] == 0
