"""DynamoDB adapter speed: import and snapshot scan against moto's server, request reads, and the client's own scan cost.

    .venv/bin/python -m bench.bench_dynamodb [--runs 3] [--import-runs 1] [--segments 1 4 8]
                                             [--subset 30000] [--full-scan-segments 8] [--client-side-only]

1. The client's share of a snapshot scan: the 298k ratings of ratings-5pct-users.csv
   served as pre-built Scan pages by a stub HTTP server that only writes bytes, so
   what is timed is aiohttp, response decoding and the adapter's column build; once
   more with botocore's own response parser, for comparison.
2. A `--subset`-rating table (plus the 10k books) on a moto server running in its own
   process, as DynamoDB Local would: the reads of one GraphQL request for 50 users
   (their ratings by Query, 500 of their books by BatchGetItem, requests counted),
   then its scan for each `--segments`, `--runs` times each.
3. `bookrec import`'s code path (books.csv + the 298k ratings) into a fresh moto table,
   then the snapshot scan of the whole table once per `--full-scan-segments`.
   moto sorts the whole table for every Query and Scan page, so moto's figures
   measure moto far more than the adapter.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from adapters.dynamodb_store import CLIENT_CONFIG, DynamoCallCounts, create_table, dynamodb_client, open_dynamodb_stores
from adapters.goodbooks_csv import IMPORTED_RATED_AT, parse_ratings, read_books
from aiobotocore.config import AioConfig
from graphql_api.commands.import_data import import_files
from graphql_api.settings import Settings, load_settings

DATA = Path(os.environ.get("BOOKREC_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "goodbooks-10k")
MOTO_CONFIG = CLIENT_CONFIG.merge(AioConfig(read_timeout=3600))  # one moto Scan page of a 300k-item table takes tens of seconds
STUB_PAGE_ITEMS = 8_000  # about what DynamoDB's 1 MB page holds of these ~110-byte rating items


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_server_process() -> Iterator[str]:
    """A moto server in a child process on a free port; yields its endpoint URL."""
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.kill()  # werkzeug waits for busy request threads on SIGTERM
        server.wait(timeout=30)


class Results:
    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}

    async def time(self, name: str, work: Callable[[], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        value = await work()
        elapsed = time.perf_counter() - started
        self.seconds.setdefault(name, []).append(elapsed)
        print(f"  {name}: {elapsed:.2f} s", flush=True)
        return value

    def report(self) -> None:
        print("\n| measurement | median | min | max | runs |\n|---|---|---|---|---|")
        for name, seconds in self.seconds.items():
            print(f"| {name} | {statistics.median(seconds):.3f} s | {min(seconds):.3f} | {max(seconds):.3f} | {len(seconds)} |")


def where(settings: Settings) -> dict[str, Any]:
    """The settings' table, region and endpoint, as open_dynamodb_stores takes them."""
    return {"table": settings.dynamodb_table or "", "region": settings.aws_region, "endpoint_url": settings.dynamodb_endpoint_url}


@contextmanager
def fresh_table(endpoint: str) -> Iterator[Settings]:
    settings = load_settings(dynamodb_table=f"bench-{uuid.uuid4().hex[:8]}", dynamodb_endpoint_url=endpoint)
    asyncio.run(create_table(table=settings.dynamodb_table or "", region=settings.aws_region, endpoint_url=endpoint))
    try:
        yield settings
    finally:

        async def drop() -> None:
            async with dynamodb_client(region=settings.aws_region, endpoint_url=endpoint) as client:
                await client.delete_table(TableName=settings.dynamodb_table)

        asyncio.run(drop())


async def request_reads(settings: Settings, users: list[str], results: Results, runs: int) -> DynamoCallCounts:
    """The reads of a request for 50 users: one Query each, then their books 100 a BatchGetItem."""
    async with open_dynamodb_stores(**where(settings), config=MOTO_CONFIG) as (ratings, catalog):
        for _ in range(runs):
            ratings.counts.reset()
            found = await results.time("request: ratings of 50 users (Query)", lambda: ratings.get_many(users))
            books = sorted({rating.book_id for user in users for rating in found[user]})[:500]
            await results.time(f"request: {len(books)} books by id (BatchGetItem)", lambda: catalog.get_many(books))
        return ratings.counts


async def scan(settings: Settings, segments: int, results: Results, name: str, expected: int) -> None:
    async with open_dynamodb_stores(
        **where(settings), scan_segments=segments, config=MOTO_CONFIG, scan_read_timeout=MOTO_CONFIG.read_timeout
    ) as (ratings, _):
        columns = await results.time(name, ratings.scan_columns)
        assert len(columns) == expected, (len(columns), expected)
        print(f"    {ratings.counts.calls['Scan']} Scan pages", flush=True)


def stub_scan_pages(user_ids: list[str], book_ids: list[int], stars: list[int], segments: int) -> list[list[bytes]]:
    """Scan responses as DynamoDB would send them, per segment and page, serialised once in advance."""
    items: list[list[dict[str, Any]]] = [[] for _ in range(segments)]
    for user, book, rating in zip(user_ids, book_ids, stars):
        item = {"user_id": {"S": user}, "book_id": {"N": str(book)}, "rating": {"N": str(rating)}}
        items[zlib.crc32(user.encode()) % segments].append(item)  # a partition key's items share a segment
    pages: list[list[bytes]] = []
    for segment_items in items:
        chunks = [segment_items[start : start + STUB_PAGE_ITEMS] for start in range(0, len(segment_items), STUB_PAGE_ITEMS)] or [[]]
        pages.append(
            [
                orjson.dumps(
                    {"Items": chunk, "Count": len(chunk), "ScannedCount": len(chunk)}
                    | ({"LastEvaluatedKey": {"pk": {"S": "page"}, "sk": {"S": str(index + 1)}}} if index + 1 < len(chunks) else {})
                )
                for index, chunk in enumerate(chunks)
            ]
        )
    return pages


async def client_side_scans(ratings_path: Path, segment_counts: list[int], results: Results, runs: int) -> None:
    parsed = parse_ratings(ratings_path).deduplicated()
    user_ids, book_ids, stars = [str(u) for u in parsed.user_ids.tolist()], parsed.book_ids.tolist(), parsed.ratings.tolist()
    pages = {segments: stub_scan_pages(user_ids, book_ids, stars, segments) for segments in segment_counts}

    async def answer(request: web.Request) -> web.Response:
        body = await request.json()
        segment_pages = pages[body.get("TotalSegments", 1)][body.get("Segment", 0)]
        page = int(body["ExclusiveStartKey"]["sk"]["S"]) if "ExclusiveStartKey" in body else 0
        return web.Response(body=segment_pages[page], content_type="application/x-amz-json-1.0")

    app = web.Application()
    app.router.add_post("/", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        settings = load_settings(dynamodb_table="stub", dynamodb_endpoint_url=f"http://127.0.0.1:{port}")
        for segments, parser in [(segments, "orjson") for segments in segment_counts] + [(max(segment_counts), "botocore")]:
            async with open_dynamodb_stores(**where(settings), scan_segments=segments) as (ratings, _):
                if parser == "botocore":  # the comparison: let botocore parse Scan bodies as it does by default
                    ratings.table.scan_client.meta.events.unregister("before-parse.dynamodb.Scan", unique_id="bookrec-raw-Scan")
                for _ in range(runs):
                    name = f"client side of a full scan, {segments} segment(s), stub server, {parser} decoding"
                    columns = await results.time(name, ratings.scan_columns)
                    assert len(columns) == len(user_ids)
    finally:
        await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repeats of each scan and request measurement")
    parser.add_argument("--import-runs", type=int, default=1, help="full imports (about 7 minutes each on moto)")
    parser.add_argument("--segments", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--subset", type=int, default=30_000, help="ratings in the table of the scan-per-segments series")
    parser.add_argument("--full-scan-segments", type=int, nargs="*", default=[8], help="segment counts of full-table scans on moto")
    parser.add_argument("--ratings", type=Path, default=DATA / "ratings-5pct-users.csv")
    parser.add_argument("--client-side-only", action="store_true", help="skip everything that needs moto")
    args = parser.parse_args()
    books_path = args.ratings.parent / "books.csv"
    if not args.ratings.is_file() or not books_path.is_file():
        print(f"skipped: {args.ratings} or {books_path} not found", file=sys.stderr)
        return 0
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    results = Results()
    ratings = list(parse_ratings(args.ratings).deduplicated().ratings_at(IMPORTED_RATED_AT))
    print(f"{len(ratings):,} ratings in {args.ratings.name}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)

    print("client side (stub server):", flush=True)
    asyncio.run(client_side_scans(args.ratings, args.segments, results, args.runs))
    if args.client_side_only:
        results.report()
        return 0

    with moto_server_process() as endpoint:
        print("subset table on moto:", flush=True)
        with fresh_table(endpoint) as settings:

            async def load_subset() -> None:
                async with open_dynamodb_stores(**where(settings)) as (repository, catalog):
                    await catalog.put_many(read_books(books_path))
                    await repository.put_many(ratings[: args.subset])

            asyncio.run(load_subset())
            users = list(dict.fromkeys(rating.user_id for rating in ratings[: args.subset]))[:50]
            counts = asyncio.run(request_reads(settings, users, results, args.runs))
            print(f"    requests of the last request-read run: {dict(counts.calls)}", flush=True)
            for segments in args.segments:
                for _ in range(args.runs):
                    asyncio.run(scan(settings, segments, results, f"moto: scan of {args.subset:,} ratings + 10k books, {segments} segment(s)", args.subset))

        for run in range(args.import_runs):
            print(f"full import {run + 1}/{args.import_runs} on moto:", flush=True)
            with fresh_table(endpoint) as settings:
                summary = asyncio.run(results.time("moto: bookrec import of books.csv + 298k ratings", lambda: import_files(settings, books_path, args.ratings)))
                assert summary.ratings == len(ratings), summary
                if run == 0:
                    for segments in args.full_scan_segments:
                        asyncio.run(scan(settings, segments, results, f"moto: full scan of 298k ratings + 10k books, {segments} segment(s)", len(ratings)))
    results.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
