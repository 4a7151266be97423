"""Fuzzing /graphql: generated queries and mutations, random variables, and requests that are not GraphQL.

Whatever arrives, the answer is never a 5xx, every error has an allowed
`extensions.code` (INTERNAL_SERVER_ERROR included among the failures: with healthy
stores it means a bug was masked), no message shows internals, and the server
stays up with bounded memory. In process (ASGI) for volume, then a shorter run
against a real `bookrec serve` whose memory is measured.

The default run is bounded (1,100 requests in process, 400 over HTTP, 60-90 s);
BOOKREC_HARDENING_SCALE=10 runs ten times as many.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import hypothesis
from hypothesis import HealthCheck, given, note
from hypothesis import strategies as st

from adapters.sqlite_store import open_sqlite_stores
from domain.models import Rating
from graphql_api.settings import Settings
from tests.api.conftest import BOOKS, RATED_AT, SECRET, TASTES, Api, api_settings
from tests.hardening.strategies import HttpRequest, not_graphql, operations_with_variables, schema_operations
from tests.hardening.support import ServeProcess, examples, response_problems, rss_bytes

FUZZ_SETTINGS = hypothesis.settings(
    deadline=None,
    database=None,  # nothing written into the work tree; a failure prints the request that caused it
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fuzz_settings(default_examples: int, **options: object) -> hypothesis.settings:
    return hypothesis.settings(FUZZ_SETTINGS, max_examples=examples(default_examples), **options)


# What the runs sent, by kind and by status, for docs/reliability.md (printed with -s).
SENT: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    yield
    print(f"\nfuzzing: {sum(count for key, count in SENT.items() if key.startswith('sent '))} requests; {dict(sorted(SENT.items()))}")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The API fixture's settings without the mutation rate, so generated mutations reach their resolvers."""
    return api_settings(tmp_path, mutation_rate_per_minute=0)


async def send(client: httpx.AsyncClient, request: HttpRequest, kind: str) -> httpx.Response:
    note(f"{request.method} {request.headers} {request.params} {request.content[:2_000]!r}")
    response = await client.request(
        request.method, "/graphql", content=request.content or None, headers=request.headers, params=request.params
    )
    SENT[f"sent {kind}"] += 1
    SENT[f"status {response.status_code}"] += 1
    return response


def assert_well_formed(response: httpx.Response, request: HttpRequest) -> None:
    problems = response_problems(response, request.text)
    assert not problems, f"{problems} for {request.method} {request.content[:500]!r} {request.params}: {response.text[:500]}"


@fuzz_settings(400)
@given(request=schema_operations())
async def test_generated_operations_in_process(api: Api, request: HttpRequest) -> None:
    assert_well_formed(await send(api.client, request, "generated operation"), request)


@fuzz_settings(300)
@given(request=operations_with_variables())
async def test_operations_with_random_variables_in_process(api: Api, request: HttpRequest) -> None:
    assert_well_formed(await send(api.client, request, "operation with variables"), request)


@fuzz_settings(400)
@given(request=not_graphql())
async def test_requests_that_are_not_graphql_in_process(api: Api, request: HttpRequest) -> None:
    assert_well_formed(await send(api.client, request, "not GraphQL"), request)


# Against a real server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """`bookrec serve` over a seeded SQLite file, with production settings (rate limit on, introspection off)."""
    directory = tmp_path_factory.mktemp("fuzz-server")

    async def seed() -> None:
        ratings, catalog = open_sqlite_stores(directory / "bookrec.db")
        try:
            await catalog.put_many(BOOKS)
            await ratings.put_many(
                Rating(user, book_id, stars, RATED_AT) for user, rated in TASTES.items() for book_id, stars in rated.items()
            )
        finally:
            await ratings.aclose()

    asyncio.run(seed())
    environment = {
        "DEBUG": "false",
        "AUTH_JWT_SECRET": SECRET,
        "SQLITE_PATH": str(directory / "bookrec.db"),
        "MODEL_REFRESH_SECONDS": "0",
        "LOG_LEVEL": "ERROR",
    }
    with ServeProcess(environment, directory / "server.log") as process:
        yield process


def over_http(client: httpx.Client, request: HttpRequest, kind: str) -> None:
    note(f"{request.method} {request.headers} {request.params} {request.content[:2_000]!r}")
    response = client.request(
        request.method, "/graphql", content=request.content or None, headers=request.headers, params=request.params
    )
    SENT[f"sent {kind} over HTTP"] += 1
    SENT[f"status {response.status_code}"] += 1
    assert_well_formed(response, request)


mixed_requests = st.one_of(schema_operations(), operations_with_variables(), not_graphql())


@pytest.mark.slow
def test_a_real_server_answers_every_kind_of_request_and_its_memory_stays_bounded(server: ServeProcess) -> None:
    client = httpx.Client(base_url=server.url, timeout=30)
    @fuzz_settings(100, phases=[hypothesis.Phase.generate])
    @given(request=mixed_requests)
    def warm_up(request: HttpRequest) -> None:
        over_http(client, request, "warm-up")

    @fuzz_settings(300)
    @given(request=mixed_requests)
    def fuzz(request: HttpRequest) -> None:
        over_http(client, request, "mixed")
        assert server.alive, server.log()

    with client:
        warm_up()
        before = rss_bytes(server.pid)
        fuzz()
        after = rss_bytes(server.pid)
    print(f"\nserver RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")
    # The caches that grow with distinct documents are bounded (parse and validation LRUs, APQ, rate buckets).
    assert after - before < 64 * 2**20
    assert httpx.get(f"{server.url}/healthz").status_code == 200


@pytest.mark.slow
def test_a_real_server_answers_413_to_a_streamed_body_without_buffering_it(server: ServeProcess) -> None:
    def sixteen_megabytes() -> Iterator[bytes]:
        yield b'{"query": "'
        for _ in range(2_000):
            yield b" " * 8_192

    before = rss_bytes(server.pid)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        # httpx sends the whole body before reading the answer; the server answered after 64 KiB and dropped the rest.
        response = client.post("/graphql", content=sixteen_megabytes(), headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["errors"][0]["extensions"] == {"code": "PAYLOAD_TOO_LARGE"}
        assert client.post("/graphql", json={"query": "{ popularBooks(limit: 1) { id } }"}).status_code == 200
    assert rss_bytes(server.pid) - before < 8 * 2**20
