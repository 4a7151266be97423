"""`cacheStats`: the recommendation cache and the served item model as this server process sees them. Admin only.

The hit ratio is this process's (each uvicorn worker answers for its own
requests; the Prometheus metrics add the workers up). Keys cached are counted on
the Redis server (estimated from a sample past 10,000 keys) or are the in-process
cache's length.
"""

from __future__ import annotations

import enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from graphql_api.context import RequestContext
from graphql_api.errors import BadUserInput
from graphql_api.observability.hit_ratio import MAX_WINDOW_SECONDS

MAX_WINDOW_MINUTES = MAX_WINDOW_SECONDS // 60

WindowMinutes = Annotated[
    int, strawberry.argument(description=f"How many of the last minutes the hit ratio covers, from 1 to {MAX_WINDOW_MINUTES}.")
]


@strawberry.enum(description="Which cache holds the recommendation lists.")
class CacheBackend(enum.Enum):
    REDIS = strawberry.enum_value("redis", description="Redis (REDIS_URL is set), shared by every worker and task.")
    MEMORY = strawberry.enum_value("memory", description="The in-process cache of this worker.")


@strawberry.enum(description="The Redis circuit breaker: while it is open the service serves without the cache.")
class CircuitBreakerState(enum.Enum):
    CLOSED = strawberry.enum_value("closed", description="Calls go to Redis.")
    OPEN = strawberry.enum_value("open", description="Redis kept failing: calls are skipped until a cool-down passes.")
    HALF_OPEN = strawberry.enum_value("half_open", description="Cool-down over: one probe call decides.")


@strawberry.type(description="Cache effectiveness and the served item model, for this server process.")
class CacheStats:
    backend: CacheBackend = strawberry.field(description="Which cache serves.")
    hit_ratio: float | None = strawberry.field(
        description="Share of user lookups answered from the cache over the window; null when there were none."
    )
    hits: int = strawberry.field(description="User lookups answered from the cache over the window.")
    misses: int = strawberry.field(description="User lookups the cache could not answer over the window.")
    window_seconds: float = strawberry.field(
        description="Seconds the hit figures cover: the window asked for, or less in a process younger than it."
    )
    keys_cached: int | None = strawberry.field(
        description="Cached recommendation lists (`reco:*` keys), approximate; null when the cache cannot be asked."
    )
    keys_cached_exact: bool = strawberry.field(description="Whether `keysCached` was counted rather than estimated.")
    breaker_state: CircuitBreakerState | None = strawberry.field(
        description="The Redis circuit breaker's state; null for the in-process cache, which has none."
    )
    snapshot_version: str = strawberry.field(description="Version of the item model being served (in cache envelopes too).")
    snapshot_age_seconds: float = strawberry.field(description="Seconds since that model was trained.")


async def resolve_cache_stats(info: Info[RequestContext, None], window_minutes: int) -> CacheStats:
    context = info.context
    context.principal().require_admin()
    if not 1 <= window_minutes <= MAX_WINDOW_MINUTES:
        raise BadUserInput(f"`windowMinutes` must be between 1 and {MAX_WINDOW_MINUTES}, got {window_minutes}")
    if context.observability is None:
        raise RuntimeError("cacheStats needs the app's observability in the request context")
    figures = await context.observability.cache_figures(window_minutes * 60)
    return CacheStats(
        backend=CacheBackend(figures.backend),
        hit_ratio=figures.hit_ratio.ratio,
        hits=figures.hit_ratio.hits,
        misses=figures.hit_ratio.misses,
        window_seconds=round(figures.hit_ratio.seconds, 3),
        keys_cached=figures.keys_cached,
        keys_cached_exact=figures.keys_exact,
        breaker_state=None if figures.breaker_state is None else CircuitBreakerState(figures.breaker_state),
        snapshot_version=figures.snapshot_version,
        snapshot_age_seconds=round(figures.snapshot_age_seconds, 3),
    )
