"""What observability costs per request, in process: the hot cache-hit query with and without it.

    python -m bench.bench_observability [--requests 3000] [--rounds 5]

The app is driven through raw ASGI calls (no HTTP server, no client), so the
difference between variants is the per-request work this code adds: the
middleware (request id, one record, counters, a histogram, the log line) and the
per-batch hooks (cache read, catalog batch). Variants take turns within each
round; each prints the median [min, max] over the rounds of CPU microseconds per request.

- shipped, INFO:    as deployed with LOG_LEVEL=INFO (a JSON line per request, here to /dev/null)
- shipped, WARNING: LOG_LEVEL=WARNING (no request line; metrics and request ids still on)
- stripped:         middleware removed, the service's observer and the catalog wrapper off
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from adapters.sqlite_store import open_sqlite_stores
from adapters.synthetic_data import generate
from domain.models import Rating
from domain.service import NoObserver
from graphql_api.app import create_app
from graphql_api.bootstrap import Stores, open_container
from graphql_api.observability.middleware import RequestObservation
from graphql_api.settings import load_settings

USERS, BOOKS, RATINGS, SEED = 2_000, 1_000, 60_000, 7
RATED_AT = datetime(2024, 1, 1, tzinfo=timezone.utc)
HOT_QUERY = "query Hot($id: ID!) { user(id: $id) { recommendations(limit: 10) { score book { id title authors } } } }"
VARIANTS = ("shipped, INFO", "shipped, WARNING", "stripped")


async def seed(path: Path) -> None:
    data = generate(USERS, BOOKS, RATINGS, SEED)
    ratings, catalog = open_sqlite_stores(path)
    try:
        await catalog.put_many(data.books)
        await ratings.put_many(
            Rating(str(user), int(book), int(stars), RATED_AT)
            for user, book, stars in zip(data.user_ids, data.book_ids, data.ratings)
        )
    finally:
        await ratings.aclose()


class Driver:
    """One app, called the way uvicorn calls it, with one body per user."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.bodies = [
            orjson.dumps({"query": HOT_QUERY, "variables": {"id": str(user)}}) for user in range(1, USERS + 1)
        ]

    async def request(self, body: bytes) -> int:
        status = 0
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/graphql", "raw_path": b"/graphql", "query_string": b"", "root_path": "",
            "headers": [(b"host", b"bench"), (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(scope, receive, send)
        return status

    async def run(self, requests: int) -> float:
        """CPU microseconds of this thread (the event loop's) per request, over `requests` sequential requests.

        CPU time, not wall time: on a shared, loaded machine wall time mostly measures
        the other processes; the hit path runs entirely on this thread.
        """
        started = time.thread_time()
        for index in range(requests):
            assert await self.request(self.bodies[index % USERS]) == 200
        return (time.thread_time() - started) / requests * 1e6


@contextlib.asynccontextmanager
async def running_app(database: Path, *, strip: bool) -> AsyncIterator[Driver]:
    settings = load_settings(sqlite_path=str(database), auth_jwt_secret="x" * 32, model_refresh_seconds=0, max_recommendations=20)
    ratings, catalog = open_sqlite_stores(database)
    try:
        async with open_container(settings, stores=Stores(ratings, catalog), refresh_model=False) as container:
            app = create_app(container=container)
            if strip:
                app.user_middleware = [m for m in app.user_middleware if m.cls is not RequestObservation]
            async with app.router.lifespan_context(app):
                if strip:
                    container.service.observer = NoObserver()
                    view = next(route.endpoint for route in app.routes if getattr(route, "path", "") == "/graphql")
                    view._runtime.observability.catalog = lambda inner: inner  # the BookLoader gets the bare catalog
                yield Driver(app)
    finally:
        await ratings.aclose()


async def main(requests: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        database = Path(directory) / "bench.db"
        await seed(database)
        results: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        real_stderr = sys.stderr
        async with running_app(database, strip=False) as shipped, running_app(database, strip=True) as stripped:
            drivers = {"shipped, INFO": shipped, "shipped, WARNING": shipped, "stripped": stripped}
            for driver in (shipped, stripped):  # every user's list cached: the hot path is a hit
                await driver.run(USERS)
            sys.stderr = open("/dev/null", "w")  # noqa: SIM115 - the JSON lines go nowhere, but are formatted and written
            try:
                for _ in range(rounds):
                    for variant in VARIANTS:
                        logging.getLogger("bookrec").setLevel("WARNING" if variant.endswith("WARNING") else "INFO")
                        results[variant].append(await drivers[variant].run(requests))
            finally:
                sys.stderr.close()
                sys.stderr = real_stderr
    baseline = statistics.median(results["stripped"])
    print(f"hot cache-hit query, {requests} requests x {rounds} rounds, CPU microseconds per request (median [min, max]):")
    for variant, values in results.items():
        median = statistics.median(values)
        print(f"  {variant:<17} {median:8.1f} [{min(values):.1f}, {max(values):.1f}]   +{median - baseline:.1f} us vs stripped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.rounds))
