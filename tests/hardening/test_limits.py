"""Every limit of docs/architecture.md section 8.2, each refused with its code: depth, aliases, repeats, tokens, body size,
list arguments, batching, the mutation rate, introspection, and CORS for the SPA."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import parse, specified_rules, validate

from graphql_api.app import create_app
from graphql_api.bootstrap import Stores
from graphql_api.limits import MAX_SAME_FIELD, MutationRateLimiter, QueryLimits, document_rules
from graphql_api.schema import build_schema
from graphql_api.settings import Settings
from tests.api.conftest import Api, api_settings
from tests.api.test_auth import BAD_TOKENS

RATE = 'mutation { rateBook(userId: "alice", bookId: "30", rating: 4) { rating { rating } } }'
DEEPEST = 'mutation { rateBook(userId: "alice", bookId: "30", rating: 4) { user { recommendations { book { title } } } } }'


def codes(body: dict) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


def only_error(response: httpx.Response) -> dict[str, Any]:
    [error] = response.json()["errors"]
    return error


def validation_messages(document: str, limits: QueryLimits = QueryLimits()) -> list[str]:
    schema = build_schema(limits=limits)._schema
    return [error.message for error in validate(schema, parse(document), [*specified_rules, *document_rules(limits)])]


# Document shape: depth, aliases, repeated fields


@pytest.mark.parametrize(
    ("document", "depth"),
    [
        ('{ user(id: "a") { id } }', 2),
        (DEEPEST, 5),  # the deepest document this schema has
        ("{ popularBooks { ...Card } } fragment Card on Book { id title }", 2),
        ("{ popularBooks { ... on Book { id } } }", 2),
        ('{ user(id: "a") { ...R } } fragment R on User { recommendations { ...B } } fragment B on Recommendation { book { id } }', 4),
        ("{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }", 0),  # introspection is not measured
    ],
)
def test_depth_counts_nested_fields_through_fragments(document: str, depth: int) -> None:
    assert validation_messages(document, QueryLimits(max_depth=depth)) == []
    if depth:
        assert validation_messages(document, QueryLimits(max_depth=depth - 1)) == [
            f"the operation nests fields more than {depth - 1} deep (MAX_QUERY_DEPTH)"
        ]


async def test_a_document_deeper_than_the_limit_is_refused_before_the_other_rules(api: Api) -> None:
    body = await api.gql("{" + "a {" * 40 + "b" + "}" * 40 + "}")
    assert body["data"] is None
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]  # not also 40 unknown-field errors: validation stopped
    assert body["errors"][0]["message"] == "the operation nests fields more than 8 deep (MAX_QUERY_DEPTH)"


def test_aliases_are_counted_through_fragments_each_time_they_are_spread() -> None:
    document = '{ ...Two ...Two } fragment Two on Query { a: user(id: "1") { id } b: user(id: "2") { id } }'
    assert validation_messages(document, QueryLimits(max_aliases=4)) == []
    assert validation_messages(document, QueryLimits(max_aliases=3)) == ["the operation uses more than 3 aliases (MAX_QUERY_ALIASES)"]


def test_a_fragment_bomb_is_measured_in_linear_time() -> None:
    """60 fragments each spreading the next twice: 2**60 aliased fields once expanded. Strawberry's
    MaxAliases walked every expansion (22 fragments took it over 20 s); each fragment is measured once here."""
    fragments = " ".join(f"fragment F{n} on Query {{ ...F{n + 1} ...F{n + 1} }}" for n in range(60))
    document = f'{{ ...F0 }} {fragments} fragment F60 on Query {{ a: user(id: "1") {{ id }} }}'
    assert validation_messages(document) == [
        "the operation uses more than 30 aliases (MAX_QUERY_ALIASES)",
        f"`a` is selected more than {MAX_SAME_FIELD} times in one selection set",
    ]


@pytest.mark.parametrize(
    "document",
    [
        "{ " + "popularBooks { id } " * (MAX_SAME_FIELD + 1) + "}",
        "{ popularBooks { " + "id " * (MAX_SAME_FIELD + 1) + "} }",
        "{ popularBooks { " + "... on Book { id } " * (MAX_SAME_FIELD + 1) + "} }",
        "{ popularBooks { " + " ".join(f"...F{n}" for n in range(MAX_SAME_FIELD + 1)) + " } } "
        + " ".join(f"fragment F{n} on Book {{ id }}" for n in range(MAX_SAME_FIELD + 1)),
    ],
    ids=["root field", "leaf", "inline fragments", "fragment spreads"],
)
def test_one_field_selected_too_often_in_one_selection_set_is_refused(document: str) -> None:
    """graphql-core compares every pair of same-named fields: 490 copies cost it 3.5 s of event loop."""
    [message] = validation_messages(document)
    assert message.endswith(f"is selected more than {MAX_SAME_FIELD} times in one selection set")


def test_a_field_repeated_as_often_as_allowed_passes() -> None:
    assert validation_messages("{ " + "popularBooks { id } " * MAX_SAME_FIELD + "}") == []


class TestLowerLimitsFromSettings:
    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        return api_settings(tmp_path, max_query_depth=3, max_query_aliases=2, max_query_tokens=100)

    async def test_are_applied(self, api: Api) -> None:
        assert "errors" not in await api.gql('{ user(id: "a") { recommendations(limit: 1) { score } } }')
        deep = await api.gql('{ user(id: "a") { recommendations(limit: 1) { book { id } } } }')
        assert deep["errors"][0]["message"] == "the operation nests fields more than 3 deep (MAX_QUERY_DEPTH)"
        assert "errors" not in await api.gql('{ a: user(id: "a") { id } b: user(id: "b") { id } }')
        aliased = await api.gql('{ a: user(id: "a") { id } b: user(id: "b") { id } c: user(id: "c") { id } }')
        assert aliased["errors"][0]["message"] == "the operation uses more than 2 aliases (MAX_QUERY_ALIASES)"
        long = await api.gql("{ " + "popularBooks { id } " * 25 + "}")  # 102 tokens
        assert codes(long) == ["GRAPHQL_PARSE_FAILED"]
        assert "100 tokens" in long["errors"][0]["message"]


# Request size


async def test_a_body_over_the_limit_is_413_with_a_code_and_never_parsed(api: Api) -> None:
    query = "{ popularBooks { id } }" + " " * 70_000
    response = await api.client.post("/graphql", json={"query": query})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert only_error(response) == {
        "message": "the request is larger than 65536 bytes (MAX_REQUEST_BYTES)",
        "extensions": {"code": "PAYLOAD_TOO_LARGE"},
    }
    assert api.catalog.calls["get_many"] == 0


async def test_a_body_exactly_at_the_limit_is_read(api: Api) -> None:
    body = b'{"query":"{ popularBooks(limit: 1) { id } }"}'
    body = body[:-1] + b" " * (65_536 - len(body)) + b"}"
    response = await api.client.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert len(body) == 65_536 and response.status_code == 200
    assert response.json() == {"data": {"popularBooks": [{"id": "1"}]}}


async def test_a_streamed_body_without_content_length_is_cut_off_after_the_limit(api: Api) -> None:
    chunks_sent = 0

    async def endless_json() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        yield b'{"query": "'
        for _ in range(1_000):  # 8 MB, were it all read
            chunks_sent += 1
            yield b" " * 8_192

    response = await api.client.post("/graphql", content=endless_json(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert only_error(response)["extensions"] == {"code": "PAYLOAD_TOO_LARGE"}
    assert chunks_sent <= 65_536 // 8_192 + 1


async def test_a_content_length_that_understates_the_body_is_not_trusted(api: Api) -> None:
    """The bytes are counted as they arrive: a client declaring 100 bytes and sending 80 KB is still cut off."""
    app = api.client._transport.app  # type: ignore[attr-defined]
    chunks = [b'{"query": "' + b" " * 16_384] * 5 + [b'"}']
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        body = chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/graphql", "raw_path": b"/graphql", "root_path": "", "query_string": b"",
        "headers": [(b"host", b"bookrec.test"), (b"content-type", b"application/json"), (b"content-length", b"100")],
        "client": ("127.0.0.1", 5000), "server": ("bookrec.test", 80),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert b"PAYLOAD_TOO_LARGE" in sent[1]["body"]


@pytest.mark.parametrize("length", ["70000", "-1", "12abc"])
async def test_a_declared_length_over_the_limit_or_malformed_is_refused_before_reading(api: Api, length: str) -> None:
    response = await api.client.post(
        "/graphql", content=b'{"query": "{ popularBooks { id } }"}', headers={"Content-Type": "application/json", "Content-Length": length}
    )
    assert response.status_code == 413


class TestASmallerBodyLimit:
    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        return api_settings(tmp_path, max_request_bytes=2_048)

    async def test_comes_from_max_request_bytes(self, api: Api) -> None:
        response = await api.client.post("/graphql", json={"query": "{ popularBooks { id } }" + " " * 2_048})
        assert response.status_code == 413
        assert only_error(response)["message"] == "the request is larger than 2048 bytes (MAX_REQUEST_BYTES)"

    async def test_applies_to_a_get_query_string_too(self, api: Api) -> None:
        response = await api.client.get("/graphql", params={"query": "{ popularBooks { id } }" + " " * 2_048})
        assert response.status_code == 413
        assert only_error(response)["extensions"] == {"code": "PAYLOAD_TOO_LARGE"}


# List arguments


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("query($ids: [ID!]!) { users(ids: $ids) { id } }", "`ids` takes at most 100 ids, got 101"),
        ("query($ids: [ID!]!) { books(ids: $ids) { id } }", "`ids` takes at most 100 ids, got 101"),
        ("{ popularBooks(limit: 51) { id } }", "`limit` must be between 1 and 50, got 51"),
        ("{ popularBooks(limit: 0) { id } }", "`limit` must be between 1 and 50, got 0"),
        ('{ user(id: "alice") { recommendations(limit: 51) { score } } }', "`limit` must be between 1 and 50, got 51"),
    ],
)
async def test_list_arguments_past_their_bounds_are_bad_user_input_and_read_nothing(api: Api, query: str, message: str) -> None:
    body = await api.gql(query, {"ids": [str(n) for n in range(101)]} if "$ids" in query else None)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["message"] == message
    assert api.catalog.calls["get_many"] == api.cache.calls["get_many"] == 0


async def test_list_arguments_at_their_bounds_are_answered(api: Api) -> None:
    ids = [str(n) for n in range(1, 101)]
    body = await api.gql(
        'query($ids: [ID!]!) { users(ids: $ids) { id } books(ids: $ids) { id } popularBooks(limit: 50) { id } '
        'user(id: "grace") { recommendations(limit: 50) { score } } }',
        {"ids": ids},
    )
    assert "errors" not in body
    assert len(body["data"]["users"]) == len(body["data"]["books"]) == 100


# Batching: disabled


async def test_a_batch_of_operations_is_refused_with_400_and_a_code(api: Api) -> None:
    """One document already batches every read through the DataLoaders; an HTTP batch would multiply
    each per-document bound by its length, so it is off (Strawberry's default)."""
    response = await api.client.post("/graphql", json=[{"query": "{ popularBooks { id } }"}] * 2)
    assert response.status_code == 400
    assert only_error(response) == {"message": "Batching is not enabled", "extensions": {"code": "BAD_REQUEST"}}
    assert api.catalog.calls["get_many"] == 0


# The mutation rate


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_holds_the_burst_and_refills_at_the_rate() -> None:
    clock = FakeClock()
    limiter = MutationRateLimiter(per_minute=60, burst=2, clock=clock)
    assert [limiter.acquire("a"), limiter.acquire("a"), limiter.acquire("a")] == [0.0, 0.0, 1.0]
    assert limiter.acquire("b") == 0.0  # buckets are per client
    clock.now += 0.5
    assert limiter.acquire("a") == 0.5  # half a token back; a refusal takes nothing
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    clock.now += 3_600
    assert [limiter.acquire("a"), limiter.acquire("a"), limiter.acquire("a")] == [0.0, 0.0, 1.0]  # never above the burst


def test_the_least_recently_seen_clients_are_forgotten_past_the_bound() -> None:
    limiter = MutationRateLimiter(per_minute=1, burst=1, max_clients=2, clock=FakeClock())
    assert [limiter.acquire(client) for client in ("a", "b", "a", "c")] == [0.0, 0.0, 60.0, 0.0]
    assert limiter.acquire("a") == 60.0  # still known: "b" was the least recently seen
    assert limiter.acquire("b") == 0.0  # forgotten, so a full bucket again


class TestTheMutationRate:
    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        return api_settings(tmp_path, mutation_rate_per_minute=6, mutation_rate_burst=3)

    async def test_past_the_burst_a_mutation_is_429_with_retry_after_and_writes_nothing(self, api: Api) -> None:
        token = api.token("alice")
        for _ in range(3):
            assert "errors" not in await api.gql(RATE, token=token)
        response = await api.client.post("/graphql", json={"query": RATE}, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "10"  # one token at 6 a minute
        assert response.json() == {
            "data": None,
            "errors": [
                {
                    "message": "too many mutations from this client; retry after 10 s",
                    "locations": [{"line": 1, "column": 12}],
                    "path": ["rateBook"],
                    "extensions": {"code": "RATE_LIMITED"},
                }
            ],
        }
        assert api.ratings.calls["upsert"] == 3

    async def test_each_user_has_their_own_bucket_and_queries_are_not_limited(self, api: Api) -> None:
        for _ in range(3):
            await api.gql(RATE, token=api.token("alice"))
        refused = await api.client.post("/graphql", json={"query": RATE}, headers={"Authorization": f"Bearer {api.token('alice')}"})
        assert codes(refused.json()) == ["RATE_LIMITED"]
        assert "errors" not in await api.gql(RATE.replace("alice", "bob"), token=api.token("bob"))
        for _ in range(10):
            assert "errors" not in await api.gql("{ popularBooks(limit: 1) { id } }", token=api.token("alice"))

    async def test_requests_without_a_valid_token_share_their_address_bucket(self, api: Api) -> None:
        for token in list(BAD_TOKENS.values())[:3]:
            assert codes(await api.gql(RATE, token=token)) == ["UNAUTHENTICATED"]
        response = await api.client.post("/graphql", json={"query": RATE})
        assert response.status_code == 429
        assert codes(response.json()) == ["RATE_LIMITED"]
        assert "errors" not in await api.gql(RATE, token=api.token("alice"))  # a verified user is not that address

    async def test_each_mutation_field_takes_a_turn_and_a_later_refusal_keeps_the_status_200(self, api: Api) -> None:
        two = 'mutation { a: invalidateRecommendations(userId: "alice") b: invalidateRecommendations(userId: "bob") }'
        token = api.token("root", admin=True)
        assert (await api.gql(two, token=token))["data"] == {"a": True, "b": True}
        response = await api.client.post("/graphql", json={"query": two}, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200  # the first field ran, so the request was not refused whole
        assert response.headers["retry-after"] == "10"
        assert codes(response.json()) == ["RATE_LIMITED"]
        assert response.json()["errors"][0]["path"] == ["b"]
        assert [args for args in api.cache.arguments["delete_many"]] == [(["alice"],), (["bob"],), (["alice"],)]


class TestNoMutationRate:
    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        return api_settings(tmp_path, mutation_rate_per_minute=0)

    async def test_when_the_rate_is_0(self, api: Api) -> None:
        token = api.token("alice")
        for _ in range(40):
            assert "errors" not in await api.gql(RATE, token=token)
        assert api.ratings.calls["upsert"] == 40


# Introspection and CORS


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app as `bookrec serve` builds it from settings (over the seeded SQLite file)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bookrec.test"
    ) as client:
        yield client


@pytest.mark.parametrize(
    ("options", "answered"),
    [({}, False), ({"introspection": True}, True), ({"debug": True}, True), ({"debug": True, "introspection": False}, False)],
)
async def test_introspection_is_off_outside_debug_unless_enabled(
    tmp_path: Path, seeded_stores: Stores, options: dict[str, bool], answered: bool
) -> None:
    async with serve(api_settings(tmp_path, **options)) as client:
        body = (await client.post("/graphql", json={"query": "{ __schema { queryType { name } } }"})).json()
        if answered:
            assert body == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
        else:
            assert set(codes(body)) == {"GRAPHQL_VALIDATION_FAILED"}


SPA = "https://spa.example"


async def test_cors_preflight_from_an_allowed_origin(tmp_path: Path, seeded_stores: Stores) -> None:
    async with serve(api_settings(tmp_path, cors_origins=f"{SPA}, https://admin.example")) as client:
        preflight = await client.options(
            "/graphql",
            headers={"Origin": SPA, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == SPA
        assert set(preflight.headers["access-control-allow-methods"].split(", ")) >= {"GET", "POST"}
        assert {"authorization", "content-type"} <= set(preflight.headers["access-control-allow-headers"].lower().split(", "))
        answer = await client.post("/graphql", json={"query": "{ popularBooks(limit: 1) { id } }"}, headers={"Origin": SPA})
        assert answer.headers["access-control-allow-origin"] == SPA
        assert "Retry-After" in answer.headers["access-control-expose-headers"].split(", ")


async def test_cors_preflight_from_another_origin_is_refused(tmp_path: Path, seeded_stores: Stores) -> None:
    async with serve(api_settings(tmp_path, cors_origins=SPA)) as client:
        preflight = await client.options(
            "/graphql", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers
        answer = await client.post("/graphql", json={"query": "{ popularBooks(limit: 1) { id } }"}, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in answer.headers


async def test_without_cors_origins_no_cross_origin_call_is_allowed(tmp_path: Path, seeded_stores: Stores) -> None:
    async with serve(api_settings(tmp_path)) as client:
        preflight = await client.options("/graphql", headers={"Origin": SPA, "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in preflight.headers
        assert preflight.status_code == 405

