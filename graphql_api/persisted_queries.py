"""Automatic persisted queries (Apollo's APQ protocol) and the allow-list mode.

A client sends `extensions.persistedQuery = {version: 1, sha256Hash}` without the
query text; an unknown hash is answered with PERSISTED_QUERY_NOT_FOUND, and the
client then sends the text with the same hash, which the server checks and stores.
Hash-only requests are small and fit a GET URL, so a CDN can cache them.

Stored documents live in Redis with a TTL when REDIS_URL is set (`apq:{hash}`),
else in a bounded in-process LRU. Like the recommendation cache, the store is an
optimisation: when Redis fails, a lookup is a miss and the client resends the text.

With PERSISTED_QUERIES_ONLY=true the store is not used at all: only the operations
of the committed manifest (Apollo's persisted-query manifest format) run, so a
production server executes no document its own clients did not ship.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from graphql import GraphQLError
from strawberry.types import ExecutionResult

from adapters.redis_cache import REDIS_FAILURES, RedisClient, build_redis_client
from graphql_api.http_cache import PRIVATE

if TYPE_CHECKING:
    from graphql_api.settings import Settings

logger = logging.getLogger("bookrec.persisted_queries")

APQ_VERSION = 1
KEY_PREFIX = "apq:"
MEMORY_STORE_MAX_ENTRIES = 1_000
# The SPA's operations; the web page fetches the same file, so they cannot drift apart.
MANIFEST_PATH = Path(__file__).parent / "web" / "static" / "persisted-queries.json"
MANIFEST_FORMAT = "apollo-persisted-query-manifest"

PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
BAD_USER_INPUT = "BAD_USER_INPUT"
FORBIDDEN = "FORBIDDEN"

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def sha256_hex(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


class PersistedQueryStore(Protocol):
    """Where automatically persisted documents live between requests (and processes, with Redis)."""

    async def get(self, sha256_hash: str) -> str | None: ...

    async def put(self, sha256_hash: str, query: str) -> None: ...

    async def aclose(self) -> None: ...


class MemoryPersistedQueryStore:
    """A per-process LRU with a TTL: bounded, because any client may register documents."""

    def __init__(
        self,
        *,
        ttl_seconds: int,
        max_entries: int = MEMORY_STORE_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def get(self, sha256_hash: str) -> str | None:
        entry = self._entries.get(sha256_hash)
        if entry is None:
            return None
        expires_at, query = entry
        if expires_at <= self._clock():
            del self._entries[sha256_hash]
            return None
        self._entries.move_to_end(sha256_hash)
        return query

    async def put(self, sha256_hash: str, query: str) -> None:
        self._entries[sha256_hash] = (self._clock() + self._ttl, query)
        self._entries.move_to_end(sha256_hash)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def aclose(self) -> None:
        self._entries.clear()


class RedisPersistedQueryStore:
    """`apq:{hash}` keys with a TTL, shared by every process; a Redis failure is a miss, never an error."""

    def __init__(self, client: RedisClient, *, ttl_seconds: int) -> None:
        self._client = client
        self._ttl = ttl_seconds

    async def get(self, sha256_hash: str) -> str | None:
        try:
            value = await self._client.get(KEY_PREFIX + sha256_hash)
        except REDIS_FAILURES as error:
            logger.warning("persisted query lookup failed (%s: %s); the client will resend the text", type(error).__name__, error)
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, sha256_hash: str, query: str) -> None:
        try:
            await self._client.set(KEY_PREFIX + sha256_hash, query.encode(), ex=self._ttl)
        except REDIS_FAILURES as error:
            logger.warning("persisted query not stored (%s: %s)", type(error).__name__, error)

    async def aclose(self) -> None:
        await self._client.aclose()


class PersistedQueryError(Exception):
    """A request the protocol refuses before execution; shown to the client with its code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def as_graphql_error(self) -> GraphQLError:
        return GraphQLError(str(self), extensions={"code": self.code})


@dataclass(frozen=True, slots=True)
class ResolvedQuery:
    """The document to run, and the hash to store it under once it has run (None: nothing to store)."""

    query: str | None
    register_hash: str | None = None


class PersistedQueries:
    """Turns a request's `query` and `extensions` into the document to execute."""

    def __init__(self, store: PersistedQueryStore, *, allow_list: Mapping[str, str] | None = None) -> None:
        self.store = store
        self.allow_list = allow_list

    async def resolve(self, query: str | None, extensions: Mapping[str, Any] | None) -> ResolvedQuery:
        sha256_hash = _requested_hash(extensions)
        if self.allow_list is not None:
            return ResolvedQuery(_allowed(self.allow_list, query, sha256_hash))
        if sha256_hash is None:
            return ResolvedQuery(query)
        if query is None:
            stored = await self.store.get(sha256_hash)
            if stored is None:
                raise PersistedQueryError(PERSISTED_QUERY_NOT_FOUND, "PersistedQueryNotFound")
            return ResolvedQuery(stored)
        _check_hash(query, sha256_hash)
        return ResolvedQuery(query, register_hash=sha256_hash)

    async def register(self, sha256_hash: str, query: str) -> None:
        await self.store.put(sha256_hash, query)

    async def aclose(self) -> None:
        await self.store.aclose()


def _allowed(allow_list: Mapping[str, str], query: str | None, sha256_hash: str | None) -> str | None:
    """The allow-listed document a request names by hash or by exact text; FORBIDDEN for any other."""
    if sha256_hash is None:
        if query is None:  # no document at all: Strawberry answers that with a 400
            return None
        sha256_hash = sha256_hex(query)
    elif query is not None:
        _check_hash(query, sha256_hash)
    allowed = allow_list.get(sha256_hash)
    if allowed is None:
        raise PersistedQueryError(
            FORBIDDEN, "this server only runs its registered operations (PERSISTED_QUERIES_ONLY) and this one is not registered"
        )
    return allowed


def _requested_hash(extensions: Mapping[str, Any] | None) -> str | None:
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, Mapping) or persisted.get("version") != APQ_VERSION:
        raise PersistedQueryError(BAD_USER_INPUT, f"unsupported persisted query: expected {{version: {APQ_VERSION}, sha256Hash}}")
    sha256_hash = persisted.get("sha256Hash")
    if not isinstance(sha256_hash, str) or not _SHA256_HEX.fullmatch(sha256_hash):
        raise PersistedQueryError(BAD_USER_INPUT, "persistedQuery.sha256Hash must be 64 lowercase hex digits")
    return sha256_hash


def _check_hash(query: str, sha256_hash: str) -> None:
    if sha256_hex(query) != sha256_hash:
        raise PersistedQueryError(BAD_USER_INPUT, "provided sha256Hash does not match the query (hash mismatch)")


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, str]:
    """Hash -> document from an Apollo persisted-query manifest, refusing an entry whose id is not its body's hash."""
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("version") != 1:
        raise ValueError(f"{path}: not an {MANIFEST_FORMAT} version 1")
    operations: dict[str, str] = {}
    for operation in manifest["operations"]:
        if sha256_hex(operation["body"]) != operation["id"]:
            raise ValueError(f"{path}: operation {operation.get('name')!r} has an id that is not the sha256 of its body")
        operations[operation["id"]] = operation["body"]
    return operations


def build_persisted_queries(settings: Settings) -> PersistedQueries:
    """The manifest alone in allow-list mode; otherwise APQ over Redis when REDIS_URL is set, else in memory."""
    store: PersistedQueryStore
    if settings.redis_url and not settings.persisted_queries_only:
        client = build_redis_client(
            settings.redis_url,
            password=settings.redis_password,
            cluster=settings.redis_cluster,
            timeout_ms=settings.redis_timeout_ms,
        )
        store = RedisPersistedQueryStore(client, ttl_seconds=settings.apq_ttl_seconds)
    else:
        store = MemoryPersistedQueryStore(ttl_seconds=settings.apq_ttl_seconds)
    allow_list = load_manifest() if settings.persisted_queries_only else None
    return PersistedQueries(store, allow_list=allow_list)


class PersistedQueriesMixin:
    """Adds APQ to `strawberry.asgi.GraphQL`: list it before GraphQL in the view's bases.

    It works per operation in `execute_single`, where a refusal can still be a
    GraphQL error response with a code (the protocol needs that: Apollo Client
    retries on PERSISTED_QUERY_NOT_FOUND) rather than Strawberry's plain-text 400.
    """

    def __init__(self, *args: Any, persisted_queries: PersistedQueries, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.persisted_queries = persisted_queries

    def should_render_graphql_ide(self, request: Any) -> bool:
        # Apollo Client's hashed GET has no `query` and may send `Accept: */*`; it is not a visit to GraphiQL.
        return super().should_render_graphql_ide(request) and "extensions" not in request.query_params  # type: ignore[misc]

    async def execute_single(self, *, request_data: Any, sub_response: Any, **kwargs: Any) -> ExecutionResult:
        try:
            resolved = await self.persisted_queries.resolve(request_data.query, request_data.extensions)
        except PersistedQueryError as error:
            # A CDN that kept "not found" for a hash URL would break that operation for everyone.
            sub_response.headers["cache-control"] = PRIVATE
            return ExecutionResult(data=None, errors=[error.as_graphql_error()])
        result: ExecutionResult = await super().execute_single(  # type: ignore[misc]
            request_data=replace(request_data, query=resolved.query), sub_response=sub_response, **kwargs
        )
        # Only a document that ran is worth keeping: garbage that fails to parse or validate is not stored.
        if resolved.register_hash and resolved.query is not None and result.data is not None:
            await self.persisted_queries.register(resolved.register_hash, resolved.query)
        return result
