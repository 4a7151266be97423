"""Cache-Control: public only for anonymous, successful catalog queries; private, no-store for everything else."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from graphql import parse

from graphql_api.http_cache import PRIVATE, cache_control, public_max_age
from graphql_api.settings import Settings
from tests.api.conftest import api_settings
from tests.web.conftest import POPULAR_QUERY, hashed_get_params, persisted, sha256_hex, token

MAX_AGE = 120


def decide(query: str, operation_name: str | None = None, *, authenticated: bool = False, succeeded: bool = True) -> str:
    return cache_control(parse(query), operation_name, authenticated=authenticated, succeeded=succeeded, max_age=MAX_AGE)


@pytest.mark.parametrize(
    "query",
    [
        "{ popularBooks { id } }",
        "{ book(id: 1) { title } books(ids: [1, 2]) { title } __typename }",
        "query { ...Catalog } fragment Catalog on Query { popularBooks { id } }",
        "query { ... on Query { book(id: 3) { id } } }",
    ],
    ids=["popular", "book-books-typename", "fragment", "inline-fragment"],
)
def test_anonymous_catalog_queries_are_public(query: str) -> None:
    assert decide(query) == f"public, max-age={MAX_AGE}"


@pytest.mark.parametrize(
    "query",
    [
        '{ user(id: "1") { id } }',
        '{ popularBooks { id } users(ids: ["1"]) { id } }',
        "query { ...Mine } fragment Mine on Query { popularBooks { id } user(id: \"1\") { id } }",
        "query { ... on Query { refreshJob(id: \"j\") { id } } }",
        "{ __schema { queryType { name } } }",
        'mutation { rateBook(userId: "1", bookId: "1", rating: 5) { rating { rating } } }',
    ],
    ids=["user", "users-beside-catalog", "user-in-fragment", "job-in-inline-fragment", "introspection", "mutation"],
)
def test_user_data_jobs_introspection_and_mutations_are_private(query: str) -> None:
    assert decide(query) == PRIVATE


def test_an_authenticated_request_is_private_even_for_catalog_fields() -> None:
    assert decide("{ popularBooks { id } }", authenticated=True) == PRIVATE


def test_a_response_with_errors_is_private() -> None:
    assert decide("{ popularBooks { id } }", succeeded=False) == PRIVATE


def test_the_operation_named_in_the_request_decides() -> None:
    document = 'query Public { popularBooks { id } } query Mine { user(id: "1") { id } }'

    assert decide(document, "Public") == f"public, max-age={MAX_AGE}"
    assert decide(document, "Mine") == PRIVATE
    assert decide(document, None) == PRIVATE  # ambiguous: graphql-core finds no operation


@pytest.mark.parametrize(
    ("ttl", "refresh", "expected"),
    [(600, 300, 300), (600, 0, 600), (60, 300, 60)],
)
def test_public_max_age_is_bounded_by_the_cache_ttl_and_the_model_refresh(tmp_path: Path, ttl: int, refresh: int, expected: int) -> None:
    settings = api_settings(tmp_path, cache_ttl_seconds=ttl, model_refresh_seconds=refresh)

    assert public_max_age(settings) == expected


@pytest.fixture
def web_settings(tmp_path: Path) -> Settings:
    return api_settings(tmp_path, cache_ttl_seconds=90, model_refresh_seconds=0)


async def test_an_anonymous_popular_books_get_is_public(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": POPULAR_QUERY})

    assert response.headers["cache-control"] == "public, max-age=90"


async def test_an_apq_get_by_hash_is_public_for_catalog_queries(client: httpx.AsyncClient) -> None:
    await client.post("/graphql", json={"query": POPULAR_QUERY, "extensions": persisted(sha256_hex(POPULAR_QUERY))})

    response = await client.get("/graphql", params=hashed_get_params(POPULAR_QUERY))

    assert response.json()["data"]["popularBooks"]
    assert response.headers["cache-control"] == "public, max-age=90"


async def test_the_same_query_with_a_token_is_private(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": POPULAR_QUERY}, headers={"authorization": f"Bearer {token('alice')}"})

    assert response.headers["cache-control"] == PRIVATE


async def test_a_user_query_is_private(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": '{ user(id: "alice") { recommendations { score } } }'})

    assert response.json()["data"]["user"]["recommendations"]
    assert response.headers["cache-control"] == PRIVATE


async def test_a_mutation_is_private(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        json={"query": 'mutation { rateBook(userId: "alice", bookId: "30", rating: 3) { rating { rating } } }'},
        headers={"authorization": f"Bearer {token('alice')}"},
    )

    assert response.json()["data"]["rateBook"]["rating"]["rating"] == 3
    assert response.headers["cache-control"] == PRIVATE


async def test_an_error_response_is_private(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": "{ popularBooks(limit: 500) { id } }"})

    assert response.json()["errors"]
    assert response.headers["cache-control"] == PRIVATE
