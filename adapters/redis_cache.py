"""The Redis RecommendationCache: one MGET per read, leases in the key's own slot, fail-open.

docs/architecture.md sections 2, 3, 4 and 7.1. Every key is `reco:{user_id}`; it holds either an
envelope (adapters.cache_codec) or, while someone computes it, a lease placeholder
set with `SET NX PX`. A fill is a Lua script that writes only if the key still holds
the filler's placeholder, so a `DEL` after a rating voids any fill computed from the
old ratings. Each key is one hash slot, so all of this works unchanged in cluster mode.

Redis is an optimisation, never a dependency: no method raises for a Redis failure.
Timeouts are tens of milliseconds with at most one immediate reconnect, and a circuit
breaker stops calling a server that keeps failing, so a Redis outage costs requests
nothing but their cache hits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, NoScriptError, RedisClusterException, RedisError, TimeoutError
from redis.maint_notifications import MaintNotificationsConfig

from adapters import cache_codec
from adapters.cache_stats import CacheStats
from adapters.circuit_breaker import BreakerState, CircuitBreaker
from domain.models import RecommendationList
from domain.ports import Leases

if TYPE_CHECKING:
    from graphql_api.settings import Settings

logger = logging.getLogger("bookrec.cache.redis")

T = TypeVar("T")
RedisClient = Redis | RedisCluster

# ConnectionError and TimeoutError are separate RedisError subclasses, named here so
# no reader wonders whether a timeout is caught; RedisClusterException (slot coverage,
# topology) is not a RedisError at all, and OSError covers a socket error redis-py
# did not wrap.
REDIS_FAILURES: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    RedisError,
    RedisClusterException,
    OSError,
)

# KEYS[1] = reco:{user_id}; ARGV = lease placeholder, envelope, TTL seconds.
FILL_IF_LEASED = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
    return 1
end
return 0
"""


# A read's keys, and the future its MGET reply is delivered to.
_WaitingRead = tuple[list[str], asyncio.Future[list[bytes | None] | None]]


class PipelinedReads:
    """MGETs asked for in the same event-loop iteration, written to Redis as one pipeline.

    Each read stays one MGET of its caller's keys, but a batch of them costs one pool
    checkout, one retry wrapper and one write and read on the socket instead of one of
    each per read: under concurrent requests, about half the CPU of separate MGETs.
    The first read of an iteration schedules the send; reads asked for before it ran
    join that batch, later ones the next. So a read that starts after a write returned
    is sent after it, never attached to a batch already on the wire. Batches do not
    wait for each other: each takes its own pooled connection.
    """

    def __init__(self, client: Redis, stats: CacheStats) -> None:
        self._client = client
        self._stats = stats
        self._waiting: list[_WaitingRead] = []
        # The event loop only holds tasks weakly: this keeps each batch alive until it is answered.
        self._sending: set[asyncio.Task[None]] = set()

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._send_waiting)
        future: asyncio.Future[list[bytes | None] | None] = loop.create_future()
        self._waiting.append((keys, future))
        replies = await future
        # None: this read was alone in its iteration, and is sent by its own task as a plain MGET.
        return await self._client.mget(keys) if replies is None else replies

    def _send_waiting(self) -> None:
        # A read cancelled while waiting is left out: nobody would take its reply.
        batch = [(keys, future) for keys, future in self._waiting if not future.cancelled()]
        self._waiting = []
        if len(batch) == 1:
            batch[0][1].set_result(None)  # no task to start, no pipeline to build for one command
        elif batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_WaitingRead]) -> None:
        self._stats.read_pipelines += 1
        # Pipeline.execute goes through the connection's retry like execute_command: one
        # reconnect on a ConnectionError, then every MGET is sent again (they only read).
        pipe = self._client.pipeline(transaction=False)
        for keys, _ in batch:
            pipe.mget(keys)
        replies: list[Any]
        try:
            replies = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as error:  # each reader's _guarded records it and answers misses
            replies = [error] * len(batch)
        for (_, future), reply in zip(batch, replies):
            if future.done():  # its reader was cancelled while the batch was out
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


class RedisRecommendationCache:
    def __init__(
        self,
        client: RedisClient,
        *,
        ttl_seconds: int,
        lease_ms: int,
        breaker: CircuitBreaker | None = None,
        delete_attempts: int = 3,
        delete_first_backoff_seconds: float = 0.01,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._ttl_seconds = ttl_seconds
        self._lease_ms = lease_ms
        self._delete_attempts = delete_attempts
        self._delete_first_backoff_seconds = delete_first_backoff_seconds
        self._sleep = sleep
        # register_script only hashes the script: it is loaded on the first NOSCRIPT
        # (first use, or a server restarted since), never checked before each batch.
        self._fill_script = client.register_script(FILL_IF_LEASED)
        self.breaker = breaker or CircuitBreaker()
        self.stats = CacheStats()
        # A cluster's MGET cannot cross slots: mget_nonatomic already pipelines one per slot.
        self._mget: Callable[[list[str]], Awaitable[list[bytes | None]]] = (
            client.mget_nonatomic if isinstance(client, RedisCluster) else PipelinedReads(client, self.stats).mget
        )

    @property
    def client(self) -> RedisClient:
        return self._client

    async def get_many(self, user_ids: Sequence[str], *, items: int | None = None) -> list[RecommendationList | None]:
        """One MGET, pipelined with other reads of the same loop iteration (cluster: one MGET per slot
        in one pipelined round, in the order asked); with `items`, only that many recommendations of
        each list are decoded."""
        if not user_ids:
            return []
        keys = [cache_codec.cache_key(user_id) for user_id in user_ids]
        raws = await self._guarded("get_many", lambda: self._mget(keys), None)
        if raws is None:
            self.stats.misses += len(keys)
            return [None] * len(keys)
        values = [cache_codec.decode(raw, user_id, items) for raw, user_id in zip(raws, user_ids)]
        unreadable = [
            key
            for key, raw, value in zip(keys, raws, values)
            if value is None and raw is not None and not cache_codec.is_lease_placeholder(raw)
        ]
        if unreadable:
            # SET NX cannot lease over an old-format value: drop it so the miss is cached again.
            # Should another reader have replaced it with a lease meanwhile, this costs that
            # reader one refused fill, never a wrong value.
            await self._guarded("drop unreadable values", lambda: self._client.delete(*unreadable), None)
        hits = sum(value is not None for value in values)
        self.stats.hits += hits
        self.stats.misses += len(values) - hits
        return values

    async def lease_many(self, user_ids: Sequence[str]) -> Leases:
        """One pipelined round of `SET key placeholder NX PX lease_ms`.

        A key that already exists is reported held elsewhere whether it holds another
        lease or a value filled since the caller's read: either way, waiting and
        reading again is right. Keys Redis could not answer for are in neither list.
        """
        unique = list(dict.fromkeys(user_ids))
        if not unique:
            return Leases()
        token = cache_codec.new_lease_token()
        placeholder = cache_codec.lease_placeholder(token)

        async def take_leases() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for user_id in unique:
                pipe.set(cache_codec.cache_key(user_id), placeholder, nx=True, px=self._lease_ms)
            return await pipe.execute(raise_on_error=False)

        replies = await self._guarded("lease_many", take_leases, None)
        if replies is None:
            return Leases()
        granted = {user_id: token for user_id, reply in zip(unique, replies) if reply is True}
        held_elsewhere = tuple(user_id for user_id, reply in zip(unique, replies) if reply is None)
        self.stats.leases_granted += len(granted)
        self.stats.leases_held_elsewhere += len(held_elsewhere)
        return Leases(granted, held_elsewhere)

    async def fill_many(self, values: Sequence[RecommendationList], leases: Mapping[str, str]) -> int:
        """One pipelined round of the lease-checked fill script, by SHA; values without a lease are skipped."""
        fills = [
            (
                cache_codec.cache_key(value.user_id),
                cache_codec.lease_placeholder(leases[value.user_id]),
                cache_codec.encode(value),
            )
            for value in values
            if value.user_id in leases
        ]
        if not fills:
            return 0
        replies = await self._guarded("fill_many", lambda: self._run_fills(fills), None)
        if replies is None:
            return 0
        stored = sum(reply == 1 for reply in replies)
        self.stats.fills += stored
        self.stats.fills_refused += sum(reply == 0 for reply in replies)
        return stored

    async def delete_many(self, user_ids: Sequence[str]) -> None:
        """DEL, retried a few times: a missed delete leaves a stale list until its TTL.

        Deleting goes through even while the breaker is open (one attempt then),
        because correctness rests on it; what stays undeleted is logged and counted.
        """
        keys = list(dict.fromkeys(cache_codec.cache_key(user_id) for user_id in user_ids))
        if not keys:
            return
        attempts = self._delete_attempts if self.breaker.state is BreakerState.CLOSED else 1
        for attempt in range(attempts):
            if attempt:
                await self._sleep(self._delete_first_backoff_seconds * 4 ** (attempt - 1))
            try:
                await self._client.delete(*keys)
            except REDIS_FAILURES as error:
                self._record_failure("delete_many", error)
                continue
            self.breaker.record_success()
            return
        self.stats.delete_failures += len(keys)
        logger.error(
            "could not delete %d cached recommendation list(s) after %d attempt(s); "
            "they expire within %d s (first: %s)",
            len(keys), attempts, self._ttl_seconds, keys[0],
        )

    async def ping(self) -> bool:
        """Readiness: does Redis answer now? Bypasses the breaker, never raises."""
        try:
            return bool(await self._client.ping())
        except REDIS_FAILURES:
            return False

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _run_fills(self, fills: list[tuple[str, bytes, bytes]]) -> list[Any]:
        replies = await self._evalsha_fills(fills)
        unloaded = [index for index, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if unloaded:
            # Cluster: SCRIPT LOAD goes to every primary, so a restarted node gets it too.
            await self._client.script_load(self._fill_script.script)
            retried = await self._evalsha_fills([fills[index] for index in unloaded])
            for index, reply in zip(unloaded, retried):
                replies[index] = reply
        return replies

    async def _evalsha_fills(self, fills: list[tuple[str, bytes, bytes]]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for key, placeholder, envelope in fills:
            # execute_command, not pipe.evalsha: the cluster pipeline blocks evalsha() because
            # it cannot vet a script's keys in general; with one declared key it routes by its slot.
            pipe.execute_command("EVALSHA", self._fill_script.sha, 1, key, placeholder, envelope, self._ttl_seconds)
        return await pipe.execute(raise_on_error=False)

    async def _guarded(self, operation: str, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        """Run `call` unless the breaker is open; any Redis failure returns `fallback` instead of raising.

        A pipeline run with raise_on_error=False reports per-command errors in its
        replies; one there counts as a failure too, and the caller treats that
        command as unanswered.
        """
        if not self.breaker.allow():
            self.stats.skipped_by_breaker += 1
            return fallback
        try:
            result = await call()
        except REDIS_FAILURES as error:
            self._record_failure(operation, error)
            return fallback
        replies = result if isinstance(result, list) else []
        error = next((reply for reply in replies if isinstance(reply, Exception)), None)
        if error is None:
            self.breaker.record_success()
        else:
            self._record_failure(operation, error)
        return result

    def _record_failure(self, operation: str, error: BaseException) -> None:
        self.stats.errors += 1
        was_open = self.breaker.state is BreakerState.OPEN
        self.breaker.record_failure()
        # At most `failure_threshold` of these per outage, then one per probe: the breaker bounds the noise.
        opened = not was_open and self.breaker.state is BreakerState.OPEN
        logger.warning(
            "redis %s failed (%s: %s); %s",
            operation, type(error).__name__, error,
            "circuit breaker open, serving without the cache" if opened else "served without the cache",
        )


def build_redis_client(url: str, *, password: str | None, cluster: bool, timeout_ms: int) -> RedisClient:
    """A client whose every call gives up within about `timeout_ms`.

    redis-py 8 defaults to 5 s timeouts and 10 retries with backoff, which would make
    each request wait out an outage. The standalone client retries once, at once, and
    only a ConnectionError (a pooled socket a restarted server closed); a timeout is not
    retried, that would just double it. The cluster client does not retry: its pipeline
    retry sleeps 0.25 s. No health_check_interval: it would spend a PING round trip
    before commands on idle connections, and TCP keepalive (on by default) plus the one
    reconnect already handle dead sockets. `rediss://` gives a TLS connection verifying
    the server's certificate against the system CAs (ElastiCache's are publicly signed).
    """
    timeout_s = timeout_ms / 1000
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        # On by default ("auto") with RESP3, and it relaxes timeouts to 10 s during a
        # server's maintenance: the opposite of failing fast.
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }
    if password and not urlsplit(url).password:
        options["password"] = password
    if cluster:
        return RedisCluster.from_url(url, retry=Retry(NoBackoff(), 0), **options)
    return Redis.from_url(url, retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)), **options)


def build_redis_cache(settings: Settings, *, breaker: CircuitBreaker | None = None) -> RedisRecommendationCache:
    if not settings.redis_url:
        raise ValueError("REDIS_URL is not set")
    client = build_redis_client(
        settings.redis_url,
        password=settings.redis_password,
        cluster=settings.redis_cluster,
        timeout_ms=settings.redis_timeout_ms,
    )
    return RedisRecommendationCache(
        client,
        ttl_seconds=settings.cache_ttl_seconds,
        lease_ms=settings.cache_lease_ms,
        breaker=breaker,
    )
