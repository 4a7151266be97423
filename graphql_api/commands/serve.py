"""`bookrec serve`: the API under uvicorn (uvloop, httptools), one app per worker process."""

from __future__ import annotations

import argparse

import uvicorn

from graphql_api.auth import jwt_secret
from graphql_api.observability.multiprocess_dir import metrics_directory
from graphql_api.settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the GraphQL API",
        description="Serve GraphQL at /graphql, /healthz and /readyz. Defaults come from HOST, PORT and "
        "WEB_CONCURRENCY; each worker process memory-maps the same published model.",
    )
    add_bind_arguments(parser)
    parser.add_argument("--workers", type=int, help="worker processes (default: WEB_CONCURRENCY, else 1)")
    parser.set_defaults(handler=run)


def add_bind_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="interface to bind (default: HOST, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default: PORT, else 8000)")


def run(args: argparse.Namespace) -> int:
    flags = {"host": args.host, "port": args.port, "web_concurrency": args.workers}
    overrides = {name: value for name, value in flags.items() if value is not None}
    settings = load_settings(**overrides)
    jwt_secret(settings)  # refuse here, in one line, rather than in every worker's traceback
    # Several workers share their metrics through files (docs/operations.md, multiprocess mode).
    with metrics_directory(settings.web_concurrency):
        uvicorn.run(
            "graphql_api.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.web_concurrency,
            loop="uvloop",
            http="httptools",
            log_level=settings.log_level.lower(),
            # An access log line per request costs a measurable share of a cache hit; on in development only.
            access_log=settings.debug,
        )
    return 0
