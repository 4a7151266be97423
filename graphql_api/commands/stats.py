"""`bookrec stats`: the cache and published model figures, from the command line.

A fresh process has served no request, so it cannot know the service's hit ratio
(ask the API's `cacheStats` or /metrics for that). What it can read: how many
lists Redis holds, how long they have left, which model version they were
computed with, Redis's own server-wide hit counters, and the model published at
MODEL_URI.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any
from urllib.parse import urlsplit

import orjson

from adapters import cache_inspection
from adapters.redis_cache import REDIS_FAILURES, build_redis_client
from domain.models import ArtifactError
from graphql_api.bootstrap import open_model_repository
from graphql_api.cli import CommandError
from graphql_api.observability.logging_config import configure_logging
from graphql_api.settings import Settings, load_settings

DEFAULT_SAMPLE = 200


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="print cache and published model figures",
        description="Print what the cache holds (Redis: reco:* keys, TTLs and model versions of a sample, the "
        "server's keyspace hit ratio) and the latest model published at MODEL_URI. The service's own hit "
        "ratio lives in the running servers: query cacheStats or scrape /metrics.",
    )
    parser.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, help=f"keys sampled for TTLs and versions (default {DEFAULT_SAMPLE})")
    parser.add_argument("--no-model", action="store_true", help="skip reading the published model's manifest")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.sample < 1:
        raise CommandError(f"--sample must be at least 1, got {args.sample}")
    settings = load_settings()
    configure_logging(settings.log_level, human=settings.debug or sys.stderr.isatty())
    figures = asyncio.run(gather(settings, sample=args.sample, model=not args.no_model))
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode() if args.json else render(figures))
    return 0


async def gather(settings: Settings, *, sample: int, model: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {"cache": await cache_figures(settings, sample)}
    if model:
        figures["model"] = await model_figures(settings)
        versions = figures["cache"].get("sampled_model_versions")
        if versions and figures["model"] is not None:
            figures["cache"]["sampled_on_current_model"] = versions.get(figures["model"]["version"], 0)
    return figures


async def cache_figures(settings: Settings, sample: int) -> dict[str, Any]:
    if not settings.redis_url:
        return {"backend": "memory", "note": "the in-process cache lives in each server process: query cacheStats"}
    client = build_redis_client(
        settings.redis_url,
        password=settings.redis_password,
        cluster=settings.redis_cluster,
        # A command line can wait longer than a request: SCAN and INFO are not single-key reads.
        timeout_ms=max(settings.redis_timeout_ms, 2_000),
    )
    try:
        keys = await cache_inspection.count_recommendation_keys(client)
        sampled = await cache_inspection.sample_keys(client, sample)
        ttls = await cache_inspection.sample_ttls(client, sampled)
        versions = await cache_inspection.model_versions(client, sampled)
        server = await cache_inspection.server_stats(client)
    except REDIS_FAILURES as error:
        raise CommandError(f"cannot read Redis at {_display(settings.redis_url)}: {type(error).__name__}: {error}") from None
    finally:
        await client.aclose()
    return {
        "backend": "redis",
        "url": _display(settings.redis_url),
        "keys_cached": keys.keys,
        "keys_cached_exact": keys.exact,
        "ttl_seconds": None if ttls is None else {
            "sampled": ttls.keys, "min": ttls.min_seconds, "median": ttls.median_seconds, "max": ttls.max_seconds,
        },
        "sampled_model_versions": dict(versions.most_common()),
        "server": {
            "keyspace_hits": server.keyspace_hits,
            "keyspace_misses": server.keyspace_misses,
            "hit_ratio": None if server.hit_ratio is None else round(server.hit_ratio, 4),
            "evicted_keys": server.evicted_keys,
            "expired_keys": server.expired_keys,
            "used_memory_bytes": server.used_memory_bytes,
            "maxmemory_bytes": server.maxmemory_bytes,
        },
    }


async def model_figures(settings: Settings) -> dict[str, Any] | None:
    """The manifest of the model LATEST names at MODEL_URI, or None when none is published."""
    try:
        async with open_model_repository(settings) as repository:
            manifests = await repository.versions()
    except ArtifactError as error:
        raise CommandError(str(error)) from None
    latest = next((manifest for manifest in manifests if manifest.get("latest")), None)
    if latest is None:
        return None
    return {key: latest.get(key) for key in ("version", "algorithm", "n_books", "n_users", "n_ratings", "n_weights",
                                               "training_seconds", "created_at")}


def render(figures: dict[str, Any]) -> str:
    cache = figures["cache"]
    lines = []
    if cache["backend"] == "memory":
        lines.append(f"cache: in-process ({cache['note']})")
    else:
        count = f"{cache['keys_cached']:,}" + ("" if cache["keys_cached_exact"] else " (estimated from a sample)")
        lines += [f"cache: redis {cache['url']}", f"  recommendation lists cached (reco:*): {count}"]
        if (ttls := cache["ttl_seconds"]) is not None:
            lines.append(
                f"  TTL left, {ttls['sampled']} sampled keys: min {ttls['min']} s, median {ttls['median']:.0f} s, max {ttls['max']} s"
            )
        if versions := cache["sampled_model_versions"]:
            listed = ", ".join(f"{version} x{count}" for version, count in versions.items())
            lines.append(f"  model versions of sampled lists: {listed}")
        if "sampled_on_current_model" in cache:
            lines.append(f"  sampled lists computed with the latest model: {cache['sampled_on_current_model']}")
        server = cache["server"]
        ratio = "n/a (no lookups yet)" if server["hit_ratio"] is None else f"{server['hit_ratio']:.1%}"
        lines += [
            f"  server keyspace hits {server['keyspace_hits']:,}, misses {server['keyspace_misses']:,}: "
            f"hit ratio {ratio} (every client and key, since the server started or CONFIG RESETSTAT)",
            f"  evicted keys {server['evicted_keys']:,}, expired keys {server['expired_keys']:,}",
            f"  memory used {_mebibytes(server['used_memory_bytes'])}"
            + (f" of maxmemory {_mebibytes(server['maxmemory_bytes'])}" if server["maxmemory_bytes"] else " (no maxmemory)"),
        ]
    if "model" in figures:
        model = figures["model"]
        lines.append(
            f"model: none published at MODEL_URI" if model is None else
            f"model (LATEST): version {model['version']}, {model['algorithm']}, {model['n_books']:,} books, "
            f"{model['n_ratings']:,} ratings of {model['n_users']:,} users, trained in {model['training_seconds']:.1f} s"
        )
    return "\n".join(lines)


def _mebibytes(value: int) -> str:
    return f"{value / 2**20:,.1f} MiB"


def _display(url: str) -> str:
    """The Redis URL without its password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
