"""Injected faults (docs/architecture.md section 7): Redis killed and restarted under load, Redis answering slowly, and DynamoDB
throttling and failing on reads and writes. Requests keep being answered; what the stores hold afterwards is checked.

Each test prints what it injected and counted (run with -s), for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from botocore.exceptions import ClientError

from adapters.circuit_breaker import BreakerState
from adapters.dynamodb_store import (
    DynamoBookCatalog,
    DynamoRatingsRepository,
    DynamoTable,
    RetryPolicy,
    dynamodb_client,
    open_dynamodb_stores,
)
from adapters.memory_cache import InProcessRecommendationCache
from adapters.redis_cache import RedisRecommendationCache, build_redis_cache
from domain.models import Rating
from graphql_api.app import create_app
from graphql_api.auth import TokenAuthority
from graphql_api.bootstrap import Stores, open_container
from graphql_api.settings import Settings
from tests.api.conftest import BOOKS, RATED_AT, SECRET, TASTES, Api, api_settings, publish_model
from graphql_api.errors import SERVICE_UNAVAILABLE
from tests.hardening.support import CLIENT_CODES, response_problems, serving_over_http
from tests.redis_servers import RedisServerProcess

ADMIN = f"Bearer {TokenAuthority(SECRET).issue('root', admin=True)}"
READ = 'query($id: ID!) { user(id: $id) { recommendations(limit: 10) { score book { id title } } } }'
RATE = "mutation($u: ID!, $b: ID!, $r: Int!) { rateBook(userId: $u, bookId: $b, rating: $r) { rating { rating } } }"
USERS = list(TASTES)


@dataclass
class LoadReport:
    sent: int = 0
    failed: int = 0
    first_failure: str = ""

    def record(self, response: httpx.Response, sent: str) -> None:
        self.sent += 1
        problems = response_problems(response, sent)
        if response.status_code != 200 or "errors" in response.json() or problems:
            self.failed += 1
            self.first_failure = self.first_failure or f"{response.status_code} {response.text[:300]} {problems}"


async def client_loop(url: str, report: LoadReport, stop: asyncio.Event, rng: random.Random) -> None:
    """One client: reads a random user's recommendations, and one time in ten rates a book for them."""
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(keepalive_expiry=1)) as client:
        while not stop.is_set():
            user = rng.choice(USERS)
            if rng.random() < 0.1:
                variables: dict[str, Any] = {"u": user, "b": str(rng.randint(1, 160)), "r": rng.randint(1, 5)}
                response = await client.post("/graphql", json={"query": RATE, "variables": variables}, headers={"Authorization": ADMIN})
            else:
                variables = {"id": user}
                response = await client.post("/graphql", json={"query": READ, "variables": variables})
            report.record(response, str(variables))


@contextlib.asynccontextmanager
async def load(url: str, clients: int, seed: int) -> AsyncIterator[LoadReport]:
    """`clients` concurrent client loops against `url` for as long as the block runs."""
    report, stop = LoadReport(), asyncio.Event()
    rng = random.Random(seed)
    tasks = [asyncio.create_task(client_loop(url, report, stop, random.Random(rng.random()))) for _ in range(clients)]
    try:
        yield report
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# Redis


def redis_cache_of(api: Api) -> RedisRecommendationCache:
    cache = api.cache.inner
    assert isinstance(cache, RedisRecommendationCache)
    return cache


@pytest.mark.redis_server
class TestRedisKilledAndRestartedUnderLoad:
    @pytest.fixture
    def settings(self, tmp_path: Path, redis_server: RedisServerProcess) -> Settings:
        return api_settings(tmp_path, redis_url=redis_server.url, mutation_rate_per_minute=0)

    @pytest.fixture
    def make_cache(self) -> Callable[[Settings], Any]:
        return build_redis_cache

    async def test_no_request_fails_and_hits_resume(self, api: Api, redis_server: RedisServerProcess) -> None:
        cache = redis_cache_of(api)
        async with serving_over_http(api.client._transport.app) as url, load(url, clients=8, seed=8) as report:  # type: ignore[attr-defined]
            assert await until(lambda: report.sent >= 200, 60)
            hits_before_kill = cache.stats.hits
            assert hits_before_kill > 0

            await asyncio.to_thread(redis_server.stop)
            sent_at_kill = report.sent
            assert await until(lambda: cache.breaker.state is BreakerState.OPEN and report.sent >= sent_at_kill + 200, 60)
            errors_while_down = cache.stats.errors

            await asyncio.to_thread(redis_server.start)  # the same port: clients reconnect by themselves
            hits_at_restart = cache.stats.hits
            assert await until(lambda: cache.stats.hits >= hits_at_restart + 100, 60), "no cache hits after the restart"
            sent_during_outage = report.sent - sent_at_kill

        print(
            f"\nredis kill/restart: {report.sent} requests by 8 clients, {sent_during_outage} from the kill to 100 hits "
            f"after the restart; failed {report.failed}; redis errors {errors_while_down}, breaker opened "
            f"{cache.breaker.times_opened}x, calls skipped by the breaker {cache.stats.skipped_by_breaker}"
        )
        assert report.failed == 0, report.first_failure
        assert cache.breaker.times_opened >= 1
        assert redis_server.command_calls("mget") > 0  # the restarted server is read again


class SlowRedis(RedisServerProcess):
    """A redis-server that accepts DEBUG from loopback clients, so a test can make it stall (DEBUG SLEEP)."""

    def _command(self) -> list[str]:
        return [*super()._command(), "--enable-debug-command", "local"]


@contextlib.contextmanager
def stalled(server: RedisServerProcess, seconds_each: float) -> Iterator[Callable[[], int]]:
    """Keep the server asleep (DEBUG SLEEP, back to back, from its own connection) for the block; yields the count."""
    done = threading.Event()
    sleeps = 0

    def keep_sleeping() -> None:
        nonlocal sleeps
        with redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=seconds_each + 5) as client:
            while not done.is_set():
                client.execute_command("DEBUG", "SLEEP", seconds_each)
                sleeps += 1

    thread = threading.Thread(target=keep_sleeping, daemon=True)
    thread.start()
    time.sleep(0.05)  # the first sleep has begun
    try:
        yield lambda: sleeps
    finally:
        done.set()
        thread.join(timeout=seconds_each + 10)


@pytest.mark.redis_server
class TestRedisAnsweringSlowly:
    DELAY_S = 0.5
    REQUESTS = 50

    @pytest.fixture
    def redis_server(self, tmp_path: Path) -> Iterator[RedisServerProcess]:
        server = SlowRedis(tmp_path / "redis").start()
        try:
            yield server
        finally:
            server.stop()

    @pytest.fixture
    def settings(self, tmp_path: Path, redis_server: RedisServerProcess) -> Settings:
        return api_settings(tmp_path, redis_url=redis_server.url, redis_timeout_ms=50)

    @pytest.fixture
    def make_cache(self) -> Callable[[Settings], Any]:
        return build_redis_cache

    async def test_opens_the_breaker_so_requests_stop_waiting_for_it(self, api: Api, redis_server: RedisServerProcess) -> None:
        cache = redis_cache_of(api)
        await api.gql(READ, {"id": "alice"})  # connected and the script known: what follows is the stall alone
        assert cache.stats.errors == 0
        waited = 0.0
        started = time.monotonic()
        with stalled(redis_server, self.DELAY_S):
            for number in range(self.REQUESTS):  # 0.1 s apart, so the stall spans more than two cool-downs (2 s)
                request_started = time.monotonic()
                body = await api.gql(READ, {"id": USERS[number % len(USERS)]})
                waited += time.monotonic() - request_started
                assert "errors" not in body
                await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        # Calls that reached Redis and timed out: up to the threshold (3) each time the breaker opened from
        # closed, then one probe per cool-down; every other call was answered without touching a socket.
        reached_redis = cache.stats.errors
        probes_allowed = int(elapsed / 2.0) + 1
        print(
            f"\nslow redis ({self.DELAY_S} s DEBUG SLEEP): {self.REQUESTS} requests over {elapsed:.1f} s, {waited:.2f} s "
            f"of it in requests; calls that reached redis {reached_redis}, skipped by the breaker "
            f"{cache.stats.skipped_by_breaker}, breaker opened {cache.breaker.times_opened}x"
        )
        assert cache.breaker.times_opened >= 2  # opened, and a probe found the server still stalled
        assert reached_redis <= 3 * cache.breaker.times_opened + probes_allowed
        assert cache.stats.skipped_by_breaker >= self.REQUESTS
        # Without the breaker each request would wait out two or three timeouts; a bound generous enough
        # for a loaded machine, against the injected delay.
        assert waited < self.REQUESTS * self.DELAY_S / 2

        for _ in range(40):  # the stall is over: within a cool-down a probe succeeds and the cache is used again
            await api.gql(READ, {"id": "alice"})
            if cache.breaker.state is BreakerState.CLOSED:
                break
            await asyncio.sleep(0.1)
        assert cache.breaker.state is BreakerState.CLOSED


# DynamoDB


@dataclass(frozen=True)
class Fault:
    code: str
    status: int
    applied: bool = False  # the request reached the table and took effect; only its answer was lost


THROTTLED = Fault("ProvisionedThroughputExceededException", 400)
INTERNAL = Fault("InternalServerError", 500)
UNAVAILABLE = Fault("ServiceUnavailable", 503)
LOST_ANSWER = Fault("InternalServerError", 500, applied=True)
FAULTS = {"throttled": THROTTLED, "500": INTERNAL, "503": UNAVAILABLE, "applied, answer lost": LOST_ANSWER}


class FaultyDynamoDB:
    """The real aiobotocore client at the adapter's boundary, except that chosen calls fail as DynamoDB does.

    `failing[operation]` calls fail next (-1: every call), with `fault`; or, with `chance`,
    any call fails with a fault drawn from `FAULTS`. A fault with `applied` sends the
    request to the table first, then loses the answer: the case where a retry repeats a
    write that already happened.
    """

    OPERATIONS = {"PutItem": "put_item", "Query": "query", "BatchGetItem": "batch_get_item"}

    def __init__(self, client: Any, *, chance: float = 0.0, seed: int = 0) -> None:
        self._client = client
        self.failing: Counter[str] = Counter()
        self.fault = THROTTLED
        self.chance = chance
        self._rng = random.Random(seed)
        self.injected: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        operation = next((op for op, method in self.OPERATIONS.items() if method == name), None)
        real = getattr(self._client, name)
        if operation is None:
            return real

        async def call(**params: Any) -> Any:
            fault = self._fault_for(operation)
            if fault is None:
                return await real(**params)
            self.injected[f"{operation} {fault.code} {fault.status}{' applied' if fault.applied else ''}"] += 1
            if fault.applied:
                await real(**params)
            error = {"Error": {"Code": fault.code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": fault.status}}
            raise ClientError(error, operation)

        return call

    def _fault_for(self, operation: str) -> Fault | None:
        if self.failing[operation]:
            if self.failing[operation] > 0:
                self.failing[operation] -= 1
            return self.fault
        if self.chance and self._rng.random() < self.chance:
            return self._rng.choice(list(FAULTS.values()))
        return None


FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.004)


@dataclass
class DynamoApi:
    client: httpx.AsyncClient
    faults: FaultyDynamoDB
    table: DynamoTable
    settings: Settings

    async def post(self, query: str, variables: dict[str, Any], *, token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": token} if token else {}
        response = await self.client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
        assert not response_problems(response, str(variables), codes=CLIENT_CODES | {SERVICE_UNAVAILABLE}), response.text
        assert response.status_code == 200
        return response.json()

    async def stored(self, user_id: str) -> dict[int, int]:
        """What the table holds for a user, read past the faults: book -> stars."""
        where = self.settings
        async with open_dynamodb_stores(
            table=where.dynamodb_table or "", region=where.aws_region, endpoint_url=where.dynamodb_endpoint_url
        ) as (ratings, _):
            return {rating.book_id: rating.rating for rating in (await ratings.get_many([user_id]))[user_id]}


@pytest.fixture
async def dynamo_api(dynamodb_settings: Settings, tmp_path: Path) -> AsyncIterator[DynamoApi]:
    async with open_dynamodb_stores(
        table=dynamodb_settings.dynamodb_table or "", region=dynamodb_settings.aws_region,
        endpoint_url=dynamodb_settings.dynamodb_endpoint_url,
    ) as (ratings, catalog):
        await catalog.put_many(BOOKS)
        await ratings.put_many(Rating(user, book, stars, RATED_AT) for user, rated in TASTES.items() for book, stars in rated.items())
        settings = api_settings(
            tmp_path, mutation_rate_per_minute=0, dynamodb_table=dynamodb_settings.dynamodb_table,
            dynamodb_endpoint_url=dynamodb_settings.dynamodb_endpoint_url, aws_region=dynamodb_settings.aws_region,
        )
        await publish_model(settings, Stores(ratings, catalog))
    async with dynamodb_client(region=settings.aws_region, endpoint_url=settings.dynamodb_endpoint_url) as client:
        faults = FaultyDynamoDB(client)
        table = DynamoTable(faults, settings.dynamodb_table or "", retry=FAST_RETRY)
        stores = Stores(DynamoRatingsRepository(table), DynamoBookCatalog(table))
        cache = InProcessRecommendationCache(settings.cache_ttl_seconds, settings.cache_lease_ms, settings.cache_max_entries)
        async with open_container(settings, stores=stores, cache=cache, refresh_model=False) as container:
            app = create_app(container=container)
            async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bookrec.test"
            ) as http:
                yield DynamoApi(http, faults, table, settings)


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


@pytest.mark.moto_server
@pytest.mark.parametrize("fault", list(FAULTS.values()), ids=list(FAULTS))
async def test_a_rating_whose_write_fails_a_few_times_is_retried_and_stored_once(dynamo_api: DynamoApi, fault: Fault) -> None:
    dynamo_api.faults.failing["PutItem"], dynamo_api.faults.fault = FAST_RETRY.max_attempts - 1, fault
    before = await dynamo_api.stored("alice")

    body = await dynamo_api.post(RATE, {"u": "alice", "b": "30", "r": 2}, token=ADMIN)

    assert body == {"data": {"rateBook": {"rating": {"rating": 2}}}}
    assert await dynamo_api.stored("alice") == {**before, 30: 2}  # one item more, holding the value
    assert dynamo_api.table.counts.retries["PutItem"] == FAST_RETRY.max_attempts - 1


@pytest.mark.moto_server
@pytest.mark.parametrize("fault", [THROTTLED, INTERNAL, UNAVAILABLE], ids=["throttled", "500", "503"])
async def test_a_rating_whose_write_keeps_failing_is_service_unavailable_and_changes_nothing(dynamo_api: DynamoApi, fault: Fault) -> None:
    dynamo_api.faults.failing["PutItem"], dynamo_api.faults.fault = -1, fault
    before = await dynamo_api.stored("alice")

    body = await dynamo_api.post(RATE, {"u": "alice", "b": "1", "r": 1}, token=ADMIN)

    assert body["data"] is None
    assert codes(body) == ["SERVICE_UNAVAILABLE"]
    assert body["errors"][0]["message"] == "A data store is unavailable; try again shortly"
    assert await dynamo_api.stored("alice") == before  # the old rating of book 1, whole
    assert dynamo_api.table.counts.calls["PutItem"] == FAST_RETRY.max_attempts


@pytest.mark.moto_server
@pytest.mark.parametrize("operation", ["Query", "BatchGetItem"])
@pytest.mark.parametrize("fault", [THROTTLED, INTERNAL, UNAVAILABLE], ids=["throttled", "500", "503"])
async def test_reads_are_retried_then_service_unavailable(dynamo_api: DynamoApi, operation: str, fault: Fault) -> None:
    dynamo_api.faults.fault = fault
    dynamo_api.faults.failing[operation] = FAST_RETRY.max_attempts - 1
    retried = await dynamo_api.post(READ, {"id": "alice"})
    assert "errors" not in retried and len(retried["data"]["user"]["recommendations"]) == 10
    assert dynamo_api.table.counts.retries[operation] == FAST_RETRY.max_attempts - 1

    dynamo_api.faults.failing[operation] = -1
    failed = await dynamo_api.post(READ, {"id": "bob"})  # not cached yet: its ratings and books are read
    assert codes(failed) == ["SERVICE_UNAVAILABLE"]
    assert failed["data"] is None


@pytest.mark.moto_server
async def test_ratings_under_random_faults_are_stored_when_acknowledged_and_never_duplicated(dynamo_api: DynamoApi) -> None:
    """300 ratings, one pair at a time, while a quarter of all DynamoDB calls fail (some after taking effect).

    Afterwards the table holds, for every pair, the last acknowledged value, or the value of a
    later attempt that failed after its write took effect (the client was told it failed, not that
    nothing happened); and one item per pair.
    """
    dynamo_api.faults.chance = 0.25
    rng = random.Random(25)
    users = ["fault-u1", "fault-u2", "fault-u3"]
    acknowledged: dict[tuple[str, int], int] = {}
    maybe_applied: dict[tuple[str, int], set[int]] = {}
    outcomes: Counter[str] = Counter()
    for _ in range(300):
        user, book, stars = rng.choice(users), rng.randint(1, 40), rng.randint(1, 5)
        body = await dynamo_api.post(RATE, {"u": user, "b": str(book), "r": stars}, token=ADMIN)
        if "errors" in body:
            assert codes(body) == ["SERVICE_UNAVAILABLE"], body
            maybe_applied.setdefault((user, book), set()).add(stars)
            outcomes["SERVICE_UNAVAILABLE"] += 1
        else:
            acknowledged[(user, book)] = stars
            maybe_applied.pop((user, book), None)
            outcomes["acknowledged"] += 1
    dynamo_api.faults.chance = 0.0

    violations = []
    for user in users:
        stored = await dynamo_api.stored(user)
        for (rated_user, book), stars in acknowledged.items():
            if rated_user == user and stored.get(book) not in {stars, *maybe_applied.get((user, book), set())}:
                violations.append(f"{user}/{book}: acknowledged {stars}, stored {stored.get(book)}")
        unexpected = set(stored) - {book for (rated_user, book) in [*acknowledged, *maybe_applied] if rated_user == user}
        violations += [f"{user}/{book}: stored but never rated" for book in unexpected]
    print(
        f"\ndynamodb random faults: 300 ratings, {dict(outcomes)}; faults injected {sum(dynamo_api.faults.injected.values())} "
        f"{dict(dynamo_api.faults.injected)}; retries {dict(dynamo_api.table.counts.retries)}; violations {len(violations)}"
    )
    assert violations == []
    assert outcomes["acknowledged"] > 200  # four attempts a call: most ratings get through
