"""The Redis cache against real servers: the port's contract standalone and on a 3-node cluster,
one MGET and one pipelined round per batch, leases across processes, and failing open.

The contract runs on the shared server (db 13, unique keys per test, deleted afterwards)
and on the session's cluster. Tests that count commands, or stop and freeze a server,
start a private redis-server so that nothing else's traffic or uptime is involved.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from adapters.cache_codec import cache_key
from adapters.circuit_breaker import BreakerState, CircuitBreaker
from adapters.redis_cache import RedisRecommendationCache, build_redis_cache, build_redis_client
from domain.ports import Leases
from graphql_api.settings import load_settings
from tests.contract.cache_contract import (
    CONTRACT_LEASE_MS,
    CONTRACT_TTL_SECONDS,
    RecommendationCacheContract,
    recommendations_for,
)
from tests.redis_servers import RedisClusterProcesses, RedisServerProcess

pytestmark = pytest.mark.redis_server

REPO_ROOT = Path(__file__).resolve().parents[2]
# Generous: on a busy CI box a contract or counting test must not turn into a fail-open miss.
CONTRACT_TIMEOUT_MS = 2_000
# For the frozen-server test: short, yet long enough that its warm-up succeeds on a busy box.
# (A killed server refuses connections at once, whatever the timeout.)
FROZEN_SERVER_TIMEOUT_MS = 200


def contract_cache(url: str, *, cluster: bool) -> RedisRecommendationCache:
    client = build_redis_client(url, password=None, cluster=cluster, timeout_ms=CONTRACT_TIMEOUT_MS)
    return RedisRecommendationCache(client, ttl_seconds=CONTRACT_TTL_SECONDS, lease_ms=CONTRACT_LEASE_MS)


async def closed_without_errors(cache: RedisRecommendationCache) -> None:
    await cache.aclose()
    # A Redis failure is answered as a miss, which some contract tests would mistake for success.
    assert cache.stats.errors == 0, f"the cache failed open during a contract test: {cache.stats}"


async def delete_keys_under(client: redis.asyncio.Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"reco:{prefix}*", count=1_000)]
    if keys:
        await client.delete(*keys)


class TestRedisContract(RecommendationCacheContract):
    @pytest.fixture
    async def raw_client(self, shared_redis_url: str, user_id_prefix: str) -> AsyncIterator[redis.asyncio.Redis]:
        client = redis.asyncio.Redis.from_url(shared_redis_url)
        try:
            yield client
        finally:
            await delete_keys_under(client, user_id_prefix)
            await client.aclose()

    @pytest.fixture
    async def recommendation_cache(self, shared_redis_url: str, raw_client) -> AsyncIterator[RedisRecommendationCache]:
        cache = contract_cache(shared_redis_url, cluster=False)
        yield cache
        await closed_without_errors(cache)

    @pytest.fixture
    def write_raw(self, raw_client: redis.asyncio.Redis):
        return lambda key, raw: raw_client.set(key, raw, ex=60)

    @pytest.fixture
    def advance_time(self):
        return asyncio.sleep


class TestRedisClusterContract(RecommendationCacheContract):
    """The same contract on a real cluster; the cluster is the session's own, so keys need no cleanup."""

    @pytest.fixture
    async def raw_client(self, redis_cluster: RedisClusterProcesses) -> AsyncIterator[RedisCluster]:
        client = await RedisCluster.from_url(redis_cluster.url).initialize()
        yield client
        await client.aclose()

    @pytest.fixture
    async def recommendation_cache(self, redis_cluster: RedisClusterProcesses) -> AsyncIterator[RedisRecommendationCache]:
        cache = contract_cache(redis_cluster.url, cluster=True)
        yield cache
        await closed_without_errors(cache)

    @pytest.fixture
    def write_raw(self, raw_client: RedisCluster):
        return lambda key, raw: raw_client.set(key, raw, ex=60)

    @pytest.fixture
    def advance_time(self):
        return asyncio.sleep

    async def test_one_read_spans_slots_and_nodes_in_the_order_asked(
        self, recommendation_cache: RedisRecommendationCache, raw_client: RedisCluster,
        redis_cluster: RedisClusterProcesses, users,
    ) -> None:
        batch = users(*(f"reader-{index}" for index in range(40)))
        slots = {key_slot(cache_key(user).encode()) for user in batch}
        nodes = {raw_client.nodes_manager.get_node_from_slot(slot).name for slot in slots}
        assert len(slots) >= 2 and len(nodes) >= 2
        values = [recommendations_for(user, n_items=index % 4) for index, user in enumerate(batch)]
        await self.cache_values(recommendation_cache, values)
        order = list(reversed(batch))

        mgets_before = redis_cluster.command_calls("mget")
        assert await recommendation_cache.get_many(order) == list(reversed(values))
        # MGET cannot cross slots: one per slot, all sent in one pipelined round.
        assert redis_cluster.command_calls("mget") - mgets_before == len(slots)


# Counting what reaches the network


def counting_cache(
    server: RedisServerProcess, *, breaker: CircuitBreaker | None = None, timeout_ms: int = CONTRACT_TIMEOUT_MS, **options
) -> tuple[RedisRecommendationCache, collections.Counter[str]]:
    """A cache whose client counts its socket opens ("connects") and command writes ("writes")."""
    touches: collections.Counter[str] = collections.Counter()

    class CountingConnection(Connection):
        async def _connect(self) -> None:
            touches["connects"] += 1
            await super()._connect()

        async def send_packed_command(self, command, check_health: bool = True) -> None:
            touches["writes"] += 1
            await super().send_packed_command(command, check_health)

    client = build_redis_client(server.url, password=None, cluster=False, timeout_ms=timeout_ms)
    client.connection_pool.connection_class = CountingConnection
    # Long TTL and lease: these tests count, and a slow CI box must not expire what they count.
    cache = RedisRecommendationCache(client, ttl_seconds=60, lease_ms=60_000, breaker=breaker or CircuitBreaker(), **options)
    return cache, touches


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def cache_users(cache: RedisRecommendationCache, users: list[str]) -> None:
    leases = await cache.lease_many(users)
    assert await cache.fill_many([recommendations_for(user) for user in users], leases.granted) == len(users)


async def test_every_batch_is_one_round_trip_and_the_script_is_loaded_once(redis_server: RedisServerProcess) -> None:
    cache, touches = counting_cache(redis_server)
    first, second = [f"first-{index}" for index in range(300)], [f"second-{index}" for index in range(300)]
    await cache.ping()
    touches.clear()

    leases = await cache.lease_many(first)
    assert touches["writes"] == 1 and len(leases.granted) == 300
    assert await cache.fill_many([recommendations_for(user) for user in first], leases.granted) == 300, cache.stats
    # The server has never seen the script: EVALSHA batch, NOSCRIPT, SCRIPT LOAD, the batch again.
    assert touches["writes"] == 1 + 3
    assert redis_server.command_calls("script|load") == 1

    touches.clear()
    leases = await cache.lease_many(second)
    assert await cache.fill_many([recommendations_for(user) for user in second], leases.granted) == 300
    assert touches["writes"] == 2
    assert redis_server.command_calls("script|load") == 1  # registered once: no SCRIPT EXISTS/LOAD per batch
    assert redis_server.command_calls("script|exists") == 0

    touches.clear()
    mgets_before = redis_server.command_calls("mget")
    assert await cache.get_many(first + second) == [recommendations_for(user) for user in first + second]
    await cache.get_many(first[:1])
    assert redis_server.command_calls("mget") - mgets_before == 2
    assert touches["writes"] == 2

    touches.clear()
    await cache.delete_many(first + second)
    assert touches["writes"] == 1
    assert redis_server.command_calls("del") == 1
    assert touches["connects"] == 0  # every call above reused one pooled connection
    await cache.aclose()


async def test_the_factory_applies_ttl_and_lease_period(shared_redis_url: str) -> None:
    settings = load_settings(
        redis_url=shared_redis_url, redis_timeout_ms=CONTRACT_TIMEOUT_MS, cache_ttl_seconds=120, cache_lease_ms=3_000
    )
    cache = build_redis_cache(settings)
    raw = redis.asyncio.Redis.from_url(shared_redis_url)
    user = f"factory-{os.urandom(6).hex()}"
    try:
        leases = await cache.lease_many([user])
        assert list(leases.granted) == [user]
        assert 0 < await raw.pttl(cache_key(user)) <= 3_000
        assert await cache.fill_many([recommendations_for(user)], leases.granted) == 1
        assert 3 < await raw.ttl(cache_key(user)) <= 120
        assert await cache.ping() is True
    finally:
        await raw.delete(cache_key(user))
        await raw.aclose()
        await cache.aclose()


# Reads asked for in the same loop iteration share one pipeline


def answered(reads):
    """The readers' results; a reader the cache leaves waiting fails the test instead of hanging it."""
    return asyncio.wait_for(reads, 5)


class WireControl:
    """Installed on a cache's pool before it connects: holds back replies, or fails sends, on demand."""

    def __init__(self, cache: RedisRecommendationCache) -> None:
        self.hold_replies = False  # replies to what is sent meanwhile wait until `released` is set
        self.sent_while_holding = asyncio.Event()
        self.released = asyncio.Event()
        self.failing_sends = 0  # sends that raise the ConnectionError a socket closed by the server would
        control = self
        pool = cache.client.connection_pool

        class ControlledConnection(pool.connection_class):
            holding = False

            async def send_packed_command(self, command, check_health: bool = True) -> None:
                if control.failing_sends:
                    control.failing_sends -= 1
                    raise RedisConnectionError("injected: connection reset by peer")
                await super().send_packed_command(command, check_health)
                if control.hold_replies:
                    self.holding = True
                    control.sent_while_holding.set()

            async def read_response(self, *args, **kwargs):
                if self.holding:
                    self.holding = False
                    await control.released.wait()
                return await super().read_response(*args, **kwargs)

        pool.connection_class = ControlledConnection


def readers() -> list[list[str]]:
    """What eight concurrent requests ask for: one to four users each, overlapping, one of them uncached."""
    asked = [[f"user-{(reader * 3 + index) % 10}" for index in range(reader % 4 + 1)] for reader in range(8)]
    asked[5].append("nobody")
    return asked


def expected(users: list[str]) -> list:
    return [None if user == "nobody" else recommendations_for(user) for user in users]


async def test_reads_asked_for_together_are_one_mget_each_in_one_write(redis_server: RedisServerProcess) -> None:
    cache, touches = counting_cache(redis_server)
    await cache_users(cache, [f"user-{index}" for index in range(10)])
    touches.clear()
    mgets_before = redis_server.command_calls("mget")

    results = await answered(asyncio.gather(*(cache.get_many(users) for users in readers())))

    assert results == [expected(users) for users in readers()]
    assert redis_server.command_calls("mget") - mgets_before == 8  # INFO commandstats: one MGET per read
    assert touches["writes"] == 1 and cache.stats.read_pipelines == 1
    # A read alone in its iteration is a plain MGET: no pipeline.
    assert await cache.get_many(["user-1"]) == expected(["user-1"])
    assert touches["writes"] == 2 and cache.stats.read_pipelines == 1
    assert touches["connects"] == 0
    await cache.aclose()


async def test_a_read_that_starts_after_a_delete_is_sent_after_it_while_a_batch_is_out(
    redis_server: RedisServerProcess,
) -> None:
    cache, _ = counting_cache(redis_server)
    wire = WireControl(cache)
    await cache_users(cache, ["ann", "bob"])
    mgets_before = redis_server.command_calls("mget")

    wire.hold_replies = True
    out = asyncio.gather(cache.get_many(["ann"]), cache.get_many(["ann", "bob"]))
    await wire.sent_while_holding.wait()
    wire.hold_replies = False
    assert redis_server.command_calls("mget") - mgets_before == 2  # the server answered; the client holds the replies

    await cache.delete_many(["ann"])
    # Not attached to the batch still out: that one would wait for the held replies, and carry ann's old value.
    assert await answered(cache.get_many(["ann", "bob"])) == [None, recommendations_for("bob")]

    wire.released.set()
    assert await answered(out) == [expected(["ann"]), expected(["ann", "bob"])]  # read before the delete, as they were sent
    assert cache.stats.read_pipelines == 1 and cache.stats.errors == 0
    await cache.aclose()


async def test_cancelling_one_waiting_reader_leaves_the_others_answered(redis_server: RedisServerProcess) -> None:
    cache, touches = counting_cache(redis_server)
    wire = WireControl(cache)
    await cache_users(cache, ["ann", "bob", "cy"])
    mgets_before = redis_server.command_calls("mget")

    # Cancelled before the batch is sent: it is left out of the pipeline.
    first, cancelled, last = (asyncio.ensure_future(cache.get_many([user])) for user in ("ann", "bob", "cy"))
    await asyncio.sleep(0)  # all three are waiting for the send scheduled behind this test's turn
    cancelled.cancel()
    assert await answered(asyncio.gather(first, last)) == [expected(["ann"]), expected(["cy"])]
    assert cancelled.cancelled()
    assert redis_server.command_calls("mget") - mgets_before == 2 and cache.stats.read_pipelines == 1

    # Cancelled while the batch is out: its reply is read and dropped, so the connection stays in step.
    wire.hold_replies = True
    first, cancelled, last = (asyncio.ensure_future(cache.get_many([user])) for user in ("ann", "bob", "cy"))
    await wire.sent_while_holding.wait()
    wire.hold_replies = False
    cancelled.cancel()
    wire.released.set()
    assert await answered(asyncio.gather(first, last)) == [expected(["ann"]), expected(["cy"])]
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert redis_server.command_calls("mget") - mgets_before == 2 + 3 and cache.stats.read_pipelines == 2

    touches.clear()
    assert await cache.get_many(["bob"]) == expected(["bob"])
    assert touches == {"writes": 1}  # a pooled connection, with no stray reply waiting on it
    assert cache.stats.errors == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}  # no batch left behind
    await cache.aclose()


async def test_a_connection_error_sends_the_batch_once_more_then_every_reader_misses(
    redis_server: RedisServerProcess,
) -> None:
    cache, _ = counting_cache(redis_server, breaker=CircuitBreaker(failure_threshold=10))
    wire = WireControl(cache)
    await cache_users(cache, [f"user-{index}" for index in range(10)])

    wire.failing_sends = 1  # the pipeline goes through the connection's retry: reconnect, send again
    assert await answered(asyncio.gather(*(cache.get_many(users) for users in readers()))) == [
        expected(users) for users in readers()
    ]
    assert cache.stats.errors == 0 and cache.stats.read_pipelines == 1

    wire.failing_sends = 2  # the retry fails too: every reader is answered, with misses, and counts a failure
    assert await answered(asyncio.gather(*(cache.get_many(users) for users in readers()))) == [
        [None] * len(users) for users in readers()
    ]
    assert cache.stats.errors == 8 and cache.stats.read_pipelines == 2
    await cache.aclose()


async def test_when_the_server_freezes_every_waiting_reader_misses_and_counts_a_failure(
    redis_server: RedisServerProcess,
) -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_seconds=5.0, clock=FakeClock())
    cache, _ = counting_cache(redis_server, breaker=breaker, timeout_ms=FROZEN_SERVER_TIMEOUT_MS)
    assert await cache.ping() is True

    redis_server.freeze()
    try:
        results = await answered(asyncio.gather(*(cache.get_many(users) for users in readers())))
    finally:
        redis_server.resume()
    assert results == [[None] * len(users) for users in readers()]
    assert cache.stats.errors == 8 and cache.stats.misses == sum(map(len, readers()))
    assert cache.stats.read_pipelines == 1 and breaker.state is BreakerState.OPEN
    await cache.aclose()


# Leases across processes

RACE_FOR_LEASES = """
import asyncio, json, sys
from adapters.redis_cache import RedisRecommendationCache, build_redis_client

async def main(url, users):
    client = build_redis_client(url, password=None, cluster=False, timeout_ms=5_000)
    cache = RedisRecommendationCache(client, ttl_seconds=60, lease_ms=60_000)
    assert await cache.ping()  # connected before the start signal, so both race from the same line
    print("ready", flush=True)
    sys.stdin.readline()
    leases = await cache.lease_many(users)
    print(json.dumps({"granted": sorted(leases.granted), "held": sorted(leases.held_elsewhere),
                      "errors": cache.stats.errors}), flush=True)
    await cache.aclose()

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
"""


@pytest.fixture
def race_users(shared_redis_url: str) -> Iterator[list[str]]:
    users = [f"race-{os.urandom(6).hex()}-{index}" for index in range(500)]
    yield users
    with redis.Redis.from_url(shared_redis_url) as client:
        client.delete(*(cache_key(user) for user in users))


def test_two_processes_racing_for_the_same_leases_get_each_exactly_once(shared_redis_url: str, race_users: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE_FOR_LEASES, shared_redis_url, json.dumps(race_users)],
            cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    try:
        for racer in racers:
            assert racer.stdout.readline().strip() == "ready", racer.stderr.read()
        for racer in racers:
            racer.stdin.write("go\n")
            racer.stdin.flush()
        results = [json.loads(racer.communicate(timeout=30)[0]) for racer in racers]
    finally:
        for racer in racers:
            racer.kill()

    first, second = ({*result["granted"]} for result in results)
    assert first.isdisjoint(second)
    assert first | second == set(race_users)
    assert [set(result["held"]) for result in results] == [second, first]
    assert [result["errors"] for result in results] == [0, 0]


# Failing open


async def test_a_dead_server_is_a_miss_then_the_breaker_stops_calling_it_until_it_is_back(
    redis_server: RedisServerProcess,
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_seconds=5.0, clock=clock)
    cache, touches = counting_cache(redis_server, breaker=breaker)
    await cache_users(cache, ["ann"])
    assert (await cache.get_many(["ann"]))[0] is not None

    redis_server.stop()
    assert await cache.get_many(["ann", "bob"]) == [None, None]
    assert await cache.lease_many(["bob"]) == Leases()  # "cannot answer": compute, serve, do not write
    assert breaker.state is BreakerState.OPEN
    assert cache.stats.errors == 2
    assert await cache.ping() is False

    touches_when_opened = touches.copy()
    assert await cache.get_many(["ann"]) == [None]
    assert await cache.lease_many(["ann"]) == Leases()
    assert await cache.fill_many([recommendations_for("ann")], {"ann": "token"}) == 0
    redis_server.start()  # back, but the breaker is still cooling down
    assert await cache.get_many(["ann"]) == [None]
    assert touches == touches_when_opened
    assert cache.stats.skipped_by_breaker == 4 and cache.stats.errors == 2

    clock.now += 5.0
    assert await cache.get_many(["ann"]) == [None]  # the probe: answered, by an empty restarted server
    assert breaker.state is BreakerState.CLOSED
    assert touches["connects"] > touches_when_opened["connects"]
    await cache_users(cache, ["ann"])  # the new server has no script: NOSCRIPT, load, fill
    assert (await cache.get_many(["ann"]))[0] == recommendations_for("ann")
    assert redis_server.command_calls("script|load") == 1
    await cache.aclose()


async def test_a_frozen_server_times_out_and_opens_the_breaker(
    redis_server: RedisServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_seconds=5.0, clock=clock)
    cache, touches = counting_cache(redis_server, breaker=breaker, timeout_ms=FROZEN_SERVER_TIMEOUT_MS)
    assert await cache.ping() is True

    redis_server.freeze()  # connections are accepted, nothing is answered
    try:
        assert await cache.get_many(["ann"]) == [None]
        assert await cache.fill_many([recommendations_for("ann")], {"ann": "token"}) == 0
        assert breaker.state is BreakerState.OPEN and cache.stats.errors == 2
        assert "TimeoutError" in caplog.text
        touches_when_opened = touches.copy()
        assert await cache.get_many(["ann"]) == [None]
        assert touches == touches_when_opened
    finally:
        redis_server.resume()

    clock.now += 5.0
    await cache_users(cache, ["ann"])
    assert breaker.state is BreakerState.CLOSED
    assert (await cache.get_many(["ann"]))[0] == recommendations_for("ann")
    await cache.aclose()


async def test_a_delete_is_retried_then_logged_and_counted_when_redis_stays_down(
    redis_server: RedisServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    sleeps: list[float] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    breaker = CircuitBreaker(failure_threshold=3, cooldown_seconds=5.0, clock=FakeClock())
    cache, touches = counting_cache(redis_server, breaker=breaker, sleep=record_sleep)
    await cache_users(cache, ["ann", "bob"])

    redis_server.stop()
    await cache.delete_many(["ann", "bob"])
    assert sleeps == [0.01, 0.04]
    assert cache.stats.delete_failures == 2 and cache.stats.errors == 3
    assert breaker.state is BreakerState.OPEN
    assert "could not delete 2 cached recommendation list(s) after 3 attempt(s)" in caplog.text

    # Deleting matters more than sparing a dead server: with the breaker open it still tries, once.
    touches_before = touches.copy()
    await cache.delete_many(["ann"])
    assert touches["connects"] > touches_before["connects"]
    assert sleeps == [0.01, 0.04] and cache.stats.delete_failures == 3

    redis_server.start()
    assert await cache.lease_many(["ann"]) == Leases()  # the breaker is still open for everything else...
    assert cache.stats.skipped_by_breaker == 1
    await cache.delete_many(["ann"])  # ...but a delete that reaches the server closes it
    assert breaker.state is BreakerState.CLOSED
    await cache_users(cache, ["ann"])
    await cache.aclose()
