"""Automatic persisted queries over HTTP on the real app: Apollo Client's protocol, and the allow-list mode."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from graphql import parse, validate

from graphql_api.bootstrap import Stores
from graphql_api.persisted_queries import KEY_PREFIX, MANIFEST_PATH, load_manifest
from graphql_api.schema import build_schema
from graphql_api.settings import Settings
from tests.api.conftest import api_settings
from tests.web.conftest import POPULAR_QUERY, error_code, hashed_get_params, open_client, persisted, sha256_hex, token


async def test_an_unknown_hash_is_persisted_query_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params=hashed_get_params(POPULAR_QUERY))

    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["message"] == "PersistedQueryNotFound"
    assert error_code(body) == "PERSISTED_QUERY_NOT_FOUND"
    # A CDN that kept this answer would break the operation for everyone until it expired.
    assert response.headers["cache-control"] == "private, no-store"


async def test_registered_by_post_then_served_by_get_with_the_hash_alone(client: httpx.AsyncClient) -> None:
    registered = await client.post("/graphql", json={"query": POPULAR_QUERY, "extensions": persisted(sha256_hex(POPULAR_QUERY))})
    assert "errors" not in registered.json()

    by_hash = await client.get("/graphql", params=hashed_get_params(POPULAR_QUERY))

    assert by_hash.status_code == 200
    assert by_hash.json() == registered.json()
    assert len(by_hash.json()["data"]["popularBooks"]) == 3


async def test_hashed_get_carries_variables(client: httpx.AsyncClient) -> None:
    query = "query Book($id: ID!) { book(id: $id) { id title } }"
    await client.post("/graphql", json={"query": query, "variables": {"id": "7"}, "extensions": persisted(sha256_hex(query))})

    response = await client.get("/graphql", params=hashed_get_params(query, {"id": "12"}))

    assert response.json() == {"data": {"book": {"id": "12", "title": "Book 12"}}}


async def test_a_hash_that_is_not_the_querys_is_refused_and_not_stored(client: httpx.AsyncClient) -> None:
    wrong_hash = sha256_hex("query Other { popularBooks { id } }")

    response = await client.post("/graphql", json={"query": POPULAR_QUERY, "extensions": persisted(wrong_hash)})

    assert error_code(response.json()) == "BAD_USER_INPUT"
    assert "hash mismatch" in response.json()["errors"][0]["message"]
    later = await client.get("/graphql", params=hashed_get_params(POPULAR_QUERY, sha256_hash=wrong_hash))
    assert error_code(later.json()) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    "persisted_query",
    [{"version": 2, "sha256Hash": "0" * 64}, {"version": 1, "sha256Hash": "not-a-hash"}, "v1"],
    ids=["other-version", "malformed-hash", "not-an-object"],
)
async def test_a_malformed_persisted_query_extension_is_bad_user_input(client: httpx.AsyncClient, persisted_query: object) -> None:
    response = await client.post("/graphql", json={"query": POPULAR_QUERY, "extensions": {"persistedQuery": persisted_query}})

    assert error_code(response.json()) == "BAD_USER_INPUT"


async def test_a_document_that_fails_validation_is_not_stored(client: httpx.AsyncClient) -> None:
    invalid = "query Nope { noSuchField }"
    first = await client.post("/graphql", json={"query": invalid, "extensions": persisted(sha256_hex(invalid))})
    assert error_code(first.json()) == "GRAPHQL_VALIDATION_FAILED"

    later = await client.get("/graphql", params=hashed_get_params(invalid))

    assert error_code(later.json()) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize("accept", ["*/*", "text/html,application/json"])
async def test_a_hashed_get_is_answered_with_json_never_the_graphiql_page(client: httpx.AsyncClient, accept: str) -> None:
    # Apollo Client 3 sends `Accept: */*`; without a `query` parameter Strawberry would take it for a browser visit.
    response = await client.get("/graphql", params=hashed_get_params(POPULAR_QUERY), headers={"accept": accept})

    assert response.headers["content-type"].startswith("application/json")
    assert error_code(response.json()) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_mutation_runs_by_hash_after_registration(client: httpx.AsyncClient) -> None:
    mutation = "mutation Rate($b: ID!) { rateBook(userId: \"alice\", bookId: $b, rating: 4) { rating { rating } } }"
    headers = {"authorization": f"Bearer {token('alice')}"}
    unknown = await client.post("/graphql", json={"variables": {"b": "20"}, "extensions": persisted(sha256_hex(mutation))}, headers=headers)
    assert error_code(unknown.json()) == "PERSISTED_QUERY_NOT_FOUND"
    await client.post("/graphql", json={"query": mutation, "variables": {"b": "20"}, "extensions": persisted(sha256_hex(mutation))}, headers=headers)

    by_hash = await client.post("/graphql", json={"variables": {"b": "21"}, "extensions": persisted(sha256_hex(mutation))}, headers=headers)

    assert by_hash.json() == {"data": {"rateBook": {"rating": {"rating": 4}}}}


def test_the_manifest_ids_are_the_hashes_of_valid_operations() -> None:
    operations = load_manifest(MANIFEST_PATH)
    schema = build_schema(introspection=True)._schema

    assert {parse(body).definitions[0].name.value for body in operations.values()} == {"PopularBooks", "UserPage", "RateBook"}
    for body in operations.values():
        assert validate(schema, parse(body)) == []


def test_a_manifest_entry_whose_id_is_not_its_hash_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        '{"format": "apollo-persisted-query-manifest", "version": 1, '
        f'"operations": [{{"id": "{"0" * 64}", "name": "X", "type": "query", "body": "{{ __typename }}"}}]}}'
    )

    with pytest.raises(ValueError, match="not the sha256 of its body"):
        load_manifest(manifest)


class TestAllowListMode:
    """PERSISTED_QUERIES_ONLY=true: only the manifest's operations run, by hash or by their exact text."""

    @pytest.fixture
    def web_settings(self, tmp_path: Path) -> Settings:
        return api_settings(tmp_path, persisted_queries_only=True)

    @pytest.fixture
    def popular_books(self) -> tuple[str, str]:
        (sha256_hash, body), = [(h, b) for h, b in load_manifest().items() if b.startswith("query PopularBooks")]
        return sha256_hash, body

    async def test_a_plain_query_not_in_the_manifest_is_forbidden(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/graphql", json={"query": POPULAR_QUERY})

        assert error_code(response.json()) == "FORBIDDEN"
        assert response.json()["data"] is None

    async def test_a_new_document_cannot_be_registered(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/graphql", json={"query": POPULAR_QUERY, "extensions": persisted(sha256_hex(POPULAR_QUERY))})
        assert error_code(response.json()) == "FORBIDDEN"

        later = await client.get("/graphql", params=hashed_get_params(POPULAR_QUERY))
        assert error_code(later.json()) == "FORBIDDEN"

    async def test_a_registered_operation_runs_by_hash(self, client: httpx.AsyncClient, popular_books: tuple[str, str]) -> None:
        sha256_hash, body = popular_books

        response = await client.get("/graphql", params=hashed_get_params(body, {"limit": 2}, sha256_hash=sha256_hash))

        assert [book["id"] for book in response.json()["data"]["popularBooks"]] != []
        assert len(response.json()["data"]["popularBooks"]) == 2

    async def test_a_registered_operation_runs_by_its_exact_text(self, client: httpx.AsyncClient, popular_books: tuple[str, str]) -> None:
        _, body = popular_books

        response = await client.post("/graphql", json={"query": body, "variables": {"limit": 1}})

        assert len(response.json()["data"]["popularBooks"]) == 1


@pytest.mark.redis_server
class TestRedisStoreAcrossProcesses:
    """With REDIS_URL the store is shared: a document registered through one app is served by hash by another."""

    @pytest.fixture
    def web_settings(self, tmp_path: Path, shared_redis_url: str) -> Settings:
        return api_settings(tmp_path, redis_url=shared_redis_url, apq_ttl_seconds=120)

    async def test_registered_in_one_app_served_by_another(
        self, client: httpx.AsyncClient, web_settings: Settings, seeded_stores: Stores, shared_redis_url: str
    ) -> None:
        query = f"# {uuid.uuid4()}\n{POPULAR_QUERY}"  # a hash no other test run uses
        key = KEY_PREFIX + sha256_hex(query)
        redis_client = aioredis.Redis.from_url(shared_redis_url)
        try:
            await client.post("/graphql", json={"query": query, "extensions": persisted(sha256_hex(query))})
            assert 0 < await redis_client.ttl(key) <= 120

            async with open_client(web_settings, seeded_stores) as other_process:
                response = await other_process.get("/graphql", params=hashed_get_params(query))

            assert len(response.json()["data"]["popularBooks"]) == 3
        finally:
            await redis_client.delete(key)
            await redis_client.aclose()
