"""Ratings and books in one DynamoDB table, through aioboto3 (table design: adapters/DYNAMODB.md).

Every request goes through `DynamoTable.send`, the one place that retries: throttling
and 5xx errors that outlast botocore's own retry, and the `UnprocessedKeys` /
`UnprocessedItems` that batch calls hand back under load. Attempts are bounded, so a
caller either gets its answer or `StoreUnavailable` naming what was not done: a rating
is never dropped silently. A Scan or Query page that times out (read or connect
timeout, endpoint unreachable) is re-sent too, with the same ExclusiveStartKey: a slow
page must not abort a whole scan. `DynamoCallCounts` counts every request, so tests and
metrics can hold the request path to its budget (one Query per user, one
BatchGetItem per 100 books, no Scan).

The adapters take plain values (table name, region, endpoint URL), never the
application's Settings: the composition root reads the settings and passes them in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, TypeVar

import aioboto3
import numpy as np
import orjson
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from domain.models import Book, Rating, RatingColumns, StoreUnavailable

logger = logging.getLogger("bookrec.dynamodb")

T = TypeVar("T")
Item = dict[str, Any]  # an item in DynamoDB's wire format: {"pk": {"S": "USER#58"}, ...}

BATCH_WRITE_LIMIT = 25  # items per BatchWriteItem (a DynamoDB limit)
BATCH_GET_LIMIT = 100  # keys per BatchGetItem (a DynamoDB limit)
# Items evaluated per Scan page (DynamoDB applies Limit before the filter). A 1 MB page is
# ~10k ratings: quick on DynamoDB, but tens of seconds on moto, past the read timeout.
# 1,000 keeps every page short on both, at the price of ~10x more (small) requests.
SCAN_PAGE_SIZE = 1_000
# The popularity item (pk=CATALOG, sk=POPULAR): the top POPULAR_KEPT books by ratings_count,
# kept by DynamoBookCatalog.put_many so that popular_book_ids is one GetItem, never a Scan.
POPULAR_KEPT = 1_000
POPULAR_UPDATE_ATTEMPTS = 20  # read-merge-write rounds before an import gives up on conflicting writers

# botocore's own retries per request (first attempt included), in "standard" mode: one
# quick re-send of a dropped connection, a 5xx or a throttle, paced by botocore's
# retry quota. Our loop in `DynamoTable.send` wraps each of these requests.
SDK_TOTAL_MAX_ATTEMPTS = 2
CLIENT_CONFIG = AioConfig(
    retries={"total_max_attempts": SDK_TOTAL_MAX_ATTEMPTS, "mode": "standard"},
    connect_timeout=2,
    read_timeout=10,  # DynamoDB answers in milliseconds; a hung socket must not hold a request for botocore's 60 s
    max_pool_connections=32,  # above the adapters' concurrency, so requests never queue for a socket
)
# Scans (training, batch jobs) go through a second client whose read timeout is longer: a
# Scan page is bigger work than a key lookup, and on moto's server, which sorts the whole
# table for every page, a page of a 30k-item table takes ~10 s while 8 segments run at once.
# A page that still times out is re-sent (DynamoTable.send).
SCAN_READ_TIMEOUT = 60.0

_RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
# Reads whose response bodies the adapter decodes itself. botocore's shape-driven parser
# walks every attribute of every item in Python, on the event loop: it was 80% of the
# client's time in a snapshot Scan (BENCHMARKS.md), and it would stall requests the same
# way for every Query. orjson decodes the same wire-format JSON, which is what the
# adapter reads anyway, several times faster.
_RAW_OPERATIONS = ("Query", "Scan", "BatchGetItem")
_RAW_BODY = "RawBody"
# A page of these reads that timed out is re-sent as is (same ExclusiveStartKey): reading it
# again is harmless, and a scan is a batch job (training, warm). Writes are not (a timed-out write may have
# been applied), nor is a request-path Query (it must not wait out several timeouts), nor any
# other operation: botocore's one retry is all they get.
_TIMEOUT_RETRIED_OPERATIONS = frozenset({"Scan"})
_TIMEOUTS = (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError)

_METHODS = {
    "BatchGetItem": "batch_get_item",
    "BatchWriteItem": "batch_write_item",
    "DescribeTable": "describe_table",
    "GetItem": "get_item",
    "PutItem": "put_item",
    "Query": "query",
    "Scan": "scan",
}


def rating_key(user_id: str, book_id: int) -> Item:
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"BOOK#{book_id:08d}"}}


def book_key(book_id: int) -> Item:
    return {"pk": {"S": f"BOOK#{book_id:08d}"}, "sk": {"S": "META"}}


POPULAR_KEY: Item = {"pk": {"S": "CATALOG"}, "sk": {"S": "POPULAR"}}


class WriteConflict(Exception):
    """A conditional write found the item changed since it was read (ConditionalCheckFailedException)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times, and how patiently, one request is sent before the caller gets StoreUnavailable.

    Full jitter ("Exponential Backoff and Jitter", AWS Architecture Blog): the wait
    before retry n is uniform in [0, min(max_delay, base_delay * 2**(n-1))], so
    clients throttled together do not come back together. `sleep` and `random` are
    parameters so tests can record the waits instead of taking them.
    """

    max_attempts: int = 6
    base_delay: float = 0.025
    max_delay: float = 1.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    random: Callable[[], float] = random.random

    def delay_cap(self, retry: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (retry - 1))

    def delay(self, retry: int) -> float:
        return self.random() * self.delay_cap(retry)

    @property
    def max_total_delay(self) -> float:
        """The most one request can sleep in our loop: the bound tests and operators rely on."""
        return sum(self.delay_cap(retry) for retry in range(1, self.max_attempts))


@dataclass
class DynamoCallCounts:
    """Requests by operation name ("Query", "BatchGetItem" ...), for tests and /metrics.

    `calls` counts every request the adapter sent, its own retries included (a Scan
    counts one per page); `retries` counts the subset that re-sent a throttled, timed-out
    or partly processed request;
    `sdk_retries` counts extra HTTP attempts botocore made inside those requests.
    """

    calls: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    sdk_retries: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        self.calls.clear()
        self.retries.clear()
        self.sdk_retries.clear()


class DynamoTable:
    """The table as the adapters use it: one shared client, the retry loop and the call counts.

    `region` defaults to the client's own; it is part of the stores' identity. Scan pages
    go through `scan_client` when given (the same client otherwise): one whose read
    timeout suits a page of a full-table scan rather than a key lookup.
    """

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        region: str | None = None,
        scan_client: Any = None,
        retry: RetryPolicy | None = None,
        counts: DynamoCallCounts | None = None,
    ) -> None:
        self.client = client
        self.scan_client = scan_client if scan_client is not None else client
        self.name = name
        self.region = region or str(client.meta.region_name)
        self.retry = retry or RetryPolicy()
        self.counts = counts or DynamoCallCounts()
        for each in {id(client): client, id(self.scan_client): self.scan_client}.values():
            for operation in _RAW_OPERATIONS:
                each.meta.events.register(f"before-parse.dynamodb.{operation}", _keep_body_raw, unique_id=f"bookrec-raw-{operation}")

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """One request, re-sent while DynamoDB throttles it or fails with a 5xx (or, for a page, times out)."""
        return (await self.send(operation, params))[-1]

    async def send(self, operation: str, params: dict[str, Any], *, remainder: str | None = None) -> list[dict[str, Any]]:
        """Send a request until it is fully done; returns the response of every attempt that answered.

        With `remainder` ("UnprocessedKeys" / "UnprocessedItems") a partial answer is
        re-sent for the part left over, under the same attempt budget as throttling. A
        Query or Scan page that timed out is re-sent whole, under the same budget too. A
        failed ConditionExpression raises WriteConflict, for the caller to read and retry.
        """
        method = getattr(self.scan_client if operation == "Scan" else self.client, _METHODS[operation])
        responses: list[dict[str, Any]] = []
        last_error: Exception | None = None
        reason = ""
        for attempt in range(1, self.retry.max_attempts + 1):
            if attempt > 1:
                self.counts.retries[operation] += 1
                await self.retry.sleep(self.retry.delay(attempt - 1))
            self.counts.calls[operation] += 1
            try:
                response = await method(**params)
            except ClientError as error:
                self._count_sdk_retries(operation, error.response)
                if _error_code(error) == "ConditionalCheckFailedException":
                    raise WriteConflict(f"DynamoDB {operation} on table {self.name!r}: {_explain(error)}") from error
                if not _is_retryable(error):
                    raise StoreUnavailable(f"DynamoDB {operation} on table {self.name!r} failed: {_explain(error)}") from error
                last_error, reason = error, _error_code(error)
                continue
            except _TIMEOUTS as error:
                if operation not in _TIMEOUT_RETRIED_OPERATIONS:  # botocore already retried it once; do not stack timeouts
                    raise StoreUnavailable(f"DynamoDB {operation} on table {self.name!r} failed: {error}") from error
                logger.warning("DynamoDB %s page on table %s: %s; re-sending it", operation, self.name, error)
                last_error, reason = error, type(error).__name__
                continue
            except BotoCoreError as error:  # no credentials, a bad parameter...: retrying cannot fix it
                raise StoreUnavailable(f"DynamoDB {operation} on table {self.name!r} failed: {error}") from error
            self._count_sdk_retries(operation, response)
            if _RAW_BODY in response:
                response = orjson.loads(response.pop(_RAW_BODY)) | response
            responses.append(response)
            pending = response.get(remainder) if remainder else None
            if not pending:
                return responses
            params = {**params, "RequestItems": pending}
            last_error, reason = None, remainder
        raise StoreUnavailable(
            f"DynamoDB {operation} on table {self.name!r} gave up after {self.retry.max_attempts} attempts "
            f"({reason}); not done: {_describe_pending(operation, params)}"
        ) from last_error

    def _count_sdk_retries(self, operation: str, response: dict[str, Any]) -> None:
        retries = int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        if retries:
            self.counts.sdk_retries[operation] += retries

    async def pages(self, operation: str, params: dict[str, Any]) -> AsyncIterator[list[Item]]:
        """The items of a Query or Scan, page by page, following LastEvaluatedKey."""
        while True:
            response = await self.call(operation, params)
            yield response.get("Items", [])
            start = response.get("LastEvaluatedKey")
            if not start:
                return
            params = {**params, "ExclusiveStartKey": start}

    async def put_all(self, keyed_items: Iterable[tuple[Hashable, Item]], *, concurrency: int) -> int:
        """BatchWriteItem every item, 25 a request, `concurrency` requests at a time; returns items written.

        Items are deduplicated (last one wins) a window at a time and windows are
        written in order, so a later duplicate always overwrites an earlier one, and
        no batch carries a key twice (DynamoDB rejects that batch whole). Within a
        window each partition key belongs to one lane, written batch after batch, so
        concurrent requests never write the same partition: that spreads the load
        over DynamoDB's partitions, and moto's server, which can drop items written
        concurrently to a new partition key, stays exact.
        """
        written = 0
        for window in _deduplicated_windows(keyed_items, BATCH_WRITE_LIMIT * concurrency * 4):
            lanes: list[list[Item]] = [[] for _ in range(concurrency)]
            for item in window:
                lanes[hash(item["pk"]["S"]) % concurrency].append(item)
            await _gather_bounded([functools.partial(self._put_lane, lane) for lane in lanes if lane], concurrency)
            written += len(window)
        return written

    async def _put_lane(self, items: list[Item]) -> None:
        for start in range(0, len(items), BATCH_WRITE_LIMIT):
            await self._put_chunk(items[start : start + BATCH_WRITE_LIMIT])

    async def _put_chunk(self, items: list[Item]) -> None:
        requests = [{"PutRequest": {"Item": item}} for item in items]
        await self.send("BatchWriteItem", {"RequestItems": {self.name: requests}}, remainder="UnprocessedItems")

    async def ping(self) -> bool:
        response = await self.call("DescribeTable", {"TableName": self.name})
        return response["Table"]["TableStatus"] == "ACTIVE"


class DynamoRatingsRepository:
    """domain.ports.RatingsRepository: item pk=USER#{user}, sk=BOOK#{book:08d}, so a user's ratings are one Query."""

    def __init__(
        self,
        table: DynamoTable,
        *,
        page_size: int | None = None,
        scan_page_size: int | None = SCAN_PAGE_SIZE,
        scan_segments: int = 8,
        concurrency: int = 16,
    ) -> None:
        self.table = table
        self.page_size = page_size  # Limit per Query page; None lets DynamoDB fill 1 MB pages
        self.scan_page_size = scan_page_size  # Limit per Scan page; None: 1 MB pages
        self.scan_segments = scan_segments
        self.concurrency = concurrency

    @property
    def counts(self) -> DynamoCallCounts:
        return self.table.counts

    async def get_many(self, user_ids: Sequence[str]) -> dict[str, list[Rating]]:
        """One strongly consistent Query per user (read-your-writes after a rating), users concurrently."""
        users = list(dict.fromkeys(user_ids))
        found = await _gather_bounded([functools.partial(self._user_ratings, user) for user in users], self.concurrency)
        return dict(zip(users, found))

    async def _user_ratings(self, user_id: str) -> list[Rating]:
        params = _limited(
            {
                "TableName": self.table.name,
                "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :book)",
                "ProjectionExpression": "#book, #rating, #at",
                "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk", "#book": "book_id", "#rating": "rating", "#at": "rated_at"},
                "ExpressionAttributeValues": {":pk": {"S": f"USER#{user_id}"}, ":book": {"S": "BOOK#"}},
                "ConsistentRead": True,
            },
            self.page_size,
        )
        return [
            Rating(user_id, int(item["book_id"]["N"]), int(item["rating"]["N"]), datetime.fromisoformat(item["rated_at"]["S"]))
            async for page in self.table.pages("Query", params)
            for item in page
        ]

    async def upsert(self, rating: Rating) -> Rating:
        """One PutItem: atomic, so the rating is either stored whole or the caller gets StoreUnavailable."""
        stored = replace(rating, rated_at=rating.rated_at.astimezone(timezone.utc))
        await self.table.call("PutItem", {"TableName": self.table.name, "Item": _rating_item(stored)})
        return stored

    async def put_many(self, ratings: Iterable[Rating]) -> int:
        keyed = (((rating.user_id, rating.book_id), _rating_item(rating)) for rating in ratings)
        return await self.table.put_all(keyed, concurrency=self.concurrency)

    async def scan_columns(self) -> RatingColumns:
        """Parallel Scan: each segment follows its own pages; only rating items, only three attributes."""
        started = time.perf_counter()
        segments = await self._parallel_scan(("user_id", "book_id", "rating"), _read_columns)
        columns = await asyncio.to_thread(_build_columns, segments)
        logger.info(
            "scanned %d ratings of %d users from DynamoDB table %s in %.2f s (%d segments)",
            len(columns), len(columns.user_ids), self.table.name, time.perf_counter() - started, self.scan_segments,
        )
        return columns

    async def user_ids(self) -> list[str]:
        """The same parallel Scan, projecting only `user_id`: for batch jobs, never the request path."""
        segments = await self._parallel_scan(("user_id",), _read_users)
        return sorted(set().union(*segments))

    async def identity(self) -> str:
        return f"dynamodb:{self.table.region}/{self.table.name}"

    async def _parallel_scan(self, attributes: Sequence[str], read: Callable[[AsyncIterator[list[Item]]], Awaitable[T]]) -> list[T]:
        """Scan the rating items, `scan_segments` segments at once, projecting `attributes`.

        `read` consumes one segment's pages (each following its own LastEvaluatedKey) and
        returns what it kept; the result lists the segments' results in segment order.
        """
        names = {f"#a{index}": attribute for index, attribute in enumerate(attributes)}
        params = _limited(
            {
                "TableName": self.table.name,
                "TotalSegments": self.scan_segments,
                "FilterExpression": "begins_with(#pk, :user)",  # drops book and catalog items
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": {"#pk": "pk", **names},
                "ExpressionAttributeValues": {":user": {"S": "USER#"}},
            },
            self.scan_page_size,
        )

        async def segment(number: int) -> T:
            return await read(self.table.pages("Scan", {**params, "Segment": number}))

        return await _gather_bounded([functools.partial(segment, number) for number in range(self.scan_segments)], self.scan_segments)

    async def ping(self) -> bool:
        return await self.table.ping()


class DynamoBookCatalog:
    """domain.ports.BookCatalog: item pk=BOOK#{id:08d}, sk=META; reads are BatchGetItem of up to 100 keys."""

    def __init__(self, table: DynamoTable, *, concurrency: int = 16) -> None:
        self.table = table
        self.concurrency = concurrency

    @property
    def counts(self) -> DynamoCallCounts:
        return self.table.counts

    async def get_many(self, book_ids: Sequence[int]) -> dict[int, Book]:
        ids = list(dict.fromkeys(book_ids))
        chunks = [ids[start : start + BATCH_GET_LIMIT] for start in range(0, len(ids), BATCH_GET_LIMIT)]
        found = await _gather_bounded([functools.partial(self._get_chunk, chunk) for chunk in chunks], self.concurrency)
        return {book.id: book for books in found for book in books}

    async def _get_chunk(self, book_ids: list[int]) -> list[Book]:
        request = {self.table.name: {"Keys": [book_key(book_id) for book_id in book_ids]}}
        responses = await self.table.send("BatchGetItem", {"RequestItems": request}, remainder="UnprocessedKeys")
        return [_book(item) for response in responses for item in response["Responses"].get(self.table.name, [])]

    async def put_many(self, books: Iterable[Book]) -> int:
        """Write the books, then merge their ratings counts into the popularity item."""
        counts: dict[int, int] = {}

        def keyed() -> Iterator[tuple[Hashable, Item]]:
            for book in books:
                counts[book.id] = book.ratings_count
                yield book.id, _book_item(book)

        written = await self.table.put_all(keyed(), concurrency=self.concurrency)
        if counts:
            await self._merge_popular(counts)
        return written

    async def popular_book_ids(self, limit: int) -> list[int]:
        """One strongly consistent GetItem of the popularity item; never a Scan."""
        if limit <= 0:
            return []
        response = await self.table.call(
            "GetItem",
            {
                "TableName": self.table.name,
                "Key": POPULAR_KEY,
                "ProjectionExpression": "#ids",
                "ExpressionAttributeNames": {"#ids": "book_ids"},
                "ConsistentRead": True,
            },
        )
        item = response.get("Item")
        return [int(value["N"]) for value in item["book_ids"]["L"][:limit]] if item else []

    async def _merge_popular(self, counts: dict[int, int]) -> None:
        """Read the popularity item, merge `counts` into it, keep the top POPULAR_KEPT, write it back.

        The write is conditional on the version read, so two imports at once never lose
        each other's books: the one that loses the race reads again and merges again.
        """
        for attempt in range(1, POPULAR_UPDATE_ATTEMPTS + 1):
            response = await self.table.call("GetItem", {"TableName": self.table.name, "Key": POPULAR_KEY, "ConsistentRead": True})
            item = response.get("Item")
            version = int(item["version"]["N"]) if item else 0
            kept = _popular_counts(item) if item else {}
            kept.update(counts)  # a re-imported book's new count replaces its old one
            top = heapq.nsmallest(POPULAR_KEPT, kept.items(), key=lambda entry: (-entry[1], entry[0]))
            condition: dict[str, Any] = (
                {"ConditionExpression": "#version = :read", "ExpressionAttributeValues": {":read": {"N": str(version)}}}
                if item
                else {"ConditionExpression": "attribute_not_exists(#version)"}
            )
            try:
                await self.table.call(
                    "PutItem",
                    {
                        "TableName": self.table.name,
                        "Item": {
                            **POPULAR_KEY,
                            "book_ids": {"L": [{"N": str(book_id)} for book_id, _ in top]},
                            "ratings_counts": {"L": [{"N": str(count)} for _, count in top]},
                            "version": {"N": str(version + 1)},
                        },
                        "ExpressionAttributeNames": {"#version": "version"},
                        **condition,
                    },
                )
                return
            except WriteConflict:
                logger.info("popularity item on table %s changed since read (another import); merging again", self.table.name)
                await self.table.retry.sleep(self.table.retry.delay(attempt))
        raise StoreUnavailable(
            f"DynamoDB table {self.table.name!r}: the popularity item kept changing under "
            f"{POPULAR_UPDATE_ATTEMPTS} attempts to merge {len(counts)} book(s) into it; the books are written, run the import again"
        )

    async def ping(self) -> bool:
        return await self.table.ping()


@contextlib.asynccontextmanager
async def dynamodb_client(*, region: str, endpoint_url: str | None, config: AioConfig = CLIENT_CONFIG) -> AsyncIterator[Any]:
    """An aiobotocore DynamoDB client for a region and, unless None, an endpoint (moto, DynamoDB Local); else AWS."""
    async with _session(region).client("dynamodb", endpoint_url=endpoint_url, config=config) as client:
        yield client


@contextlib.asynccontextmanager
async def open_dynamodb_stores(
    *,
    table: str,
    region: str,
    endpoint_url: str | None,
    retry: RetryPolicy | None = None,
    page_size: int | None = None,
    scan_page_size: int | None = SCAN_PAGE_SIZE,
    scan_segments: int = 8,
    config: AioConfig = CLIENT_CONFIG,
    scan_read_timeout: float = SCAN_READ_TIMEOUT,
) -> AsyncIterator[tuple[DynamoRatingsRepository, DynamoBookCatalog]]:
    """The ratings repository and catalog on `table`, sharing one client (and so one connection pool).

    Open it once per process: a client per call would pay TLS and credential set-up on every request.
    Scan pages go through a second client, `config` with `scan_read_timeout`.
    """
    if not table:
        raise ValueError("no DynamoDB table named (DYNAMODB_TABLE is not set)")
    scan_config = config.merge(AioConfig(read_timeout=scan_read_timeout))
    async with (
        dynamodb_client(region=region, endpoint_url=endpoint_url, config=config) as client,
        dynamodb_client(region=region, endpoint_url=endpoint_url, config=scan_config) as scan_client,
    ):
        shared = DynamoTable(client, table, region=region, scan_client=scan_client, retry=retry)
        ratings = DynamoRatingsRepository(shared, page_size=page_size, scan_page_size=scan_page_size, scan_segments=scan_segments)
        yield ratings, DynamoBookCatalog(shared)


async def create_table(*, table: str, region: str, endpoint_url: str | None) -> bool:
    """Create the table (on-demand billing) and wait until it is active; False when it already existed."""
    if not table:
        raise ValueError("no DynamoDB table named (DYNAMODB_TABLE is not set)")
    failed = f"could not create DynamoDB table {table!r}"
    async with dynamodb_client(region=region, endpoint_url=endpoint_url) as client:
        try:
            await client.create_table(
                TableName=table,
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                BillingMode="PAY_PER_REQUEST",
            )
            await client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        except ClientError as error:
            if _error_code(error) == "ResourceInUseException":
                return False
            raise StoreUnavailable(f"{failed}: {_explain(error)}") from error
        except BotoCoreError as error:  # no endpoint, no credentials, or the waiter gave up
            raise StoreUnavailable(f"{failed}: {error}") from error
        return True


@functools.cache
def _session(region: str) -> aioboto3.Session:
    """One session per region and process: it caches the service model and credentials that every client needs."""
    return aioboto3.Session(region_name=region)


def _rating_item(rating: Rating) -> Item:
    return {
        **rating_key(rating.user_id, rating.book_id),
        "user_id": {"S": rating.user_id},
        "book_id": {"N": str(rating.book_id)},
        "rating": {"N": str(rating.rating)},
        "rated_at": {"S": rating.rated_at.astimezone(timezone.utc).isoformat()},
    }


def _book_item(book: Book) -> Item:
    item: Item = {
        **book_key(book.id),
        "book_id": {"N": str(book.id)},
        "title": {"S": book.title},
        "authors": {"L": [{"S": author} for author in book.authors]},
        "ratings_count": {"N": str(book.ratings_count)},
    }
    if book.publication_year is not None:
        item["publication_year"] = {"N": str(book.publication_year)}
    if book.image_url is not None:
        item["image_url"] = {"S": book.image_url}
    if book.average_rating is not None:
        item["average_rating"] = {"N": repr(float(book.average_rating))}
    return item


def _book(item: Item) -> Book:
    return Book(
        id=int(item["book_id"]["N"]),
        title=item["title"]["S"],
        authors=tuple(author["S"] for author in item["authors"]["L"]),
        publication_year=int(item["publication_year"]["N"]) if "publication_year" in item else None,
        image_url=item["image_url"]["S"] if "image_url" in item else None,
        average_rating=float(item["average_rating"]["N"]) if "average_rating" in item else None,
        ratings_count=int(item["ratings_count"]["N"]),
    )


def _popular_counts(item: Item) -> dict[int, int]:
    """The popularity item's books and their counts: book id -> ratings_count."""
    ids = (int(value["N"]) for value in item["book_ids"]["L"])
    return dict(zip(ids, (int(value["N"]) for value in item["ratings_counts"]["L"])))


async def _read_columns(pages: AsyncIterator[list[Item]]) -> tuple[list[str], list[int], list[int]]:
    """One scan segment's ratings, as three columns."""
    users: list[str] = []
    books: list[int] = []
    stars: list[int] = []
    async for page in pages:
        for item in page:
            users.append(item["user_id"]["S"])
            books.append(int(item["book_id"]["N"]))
            stars.append(int(item["rating"]["N"]))
    return users, books, stars


async def _read_users(pages: AsyncIterator[list[Item]]) -> set[str]:
    """One scan segment's distinct user ids."""
    return {item["user_id"]["S"] async for page in pages for item in page}


def _limited(params: dict[str, Any], limit: int | None) -> dict[str, Any]:
    return params if limit is None else {**params, "Limit": limit}


def _build_columns(segments: Sequence[tuple[list[str], list[int], list[int]]]) -> RatingColumns:
    """Columns from the scanned segments; user ids become dense int codes in order of first sight."""
    codes: dict[str, int] = {}
    users = [user for segment in segments for user in segment[0]]
    user_codes = np.fromiter((codes.setdefault(user, len(codes)) for user in users), dtype=np.int32, count=len(users))
    return RatingColumns(
        user_ids=tuple(codes),
        user_codes=user_codes,
        book_ids=np.fromiter((book for segment in segments for book in segment[1]), dtype=np.int32, count=len(users)),
        ratings=np.fromiter((stars for segment in segments for stars in segment[2]), dtype=np.float32, count=len(users)),
    )


def _deduplicated_windows(keyed_items: Iterable[tuple[Hashable, Item]], size: int) -> Iterator[list[Item]]:
    window: dict[Hashable, Item] = {}
    for key, item in keyed_items:
        window[key] = item
        if len(window) >= size:
            yield list(window.values())
            window = {}
    if window:
        yield list(window.values())


async def _gather_bounded(jobs: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run the jobs at most `limit` at a time; on the first failure cancel the rest and raise it as is."""
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    tasks = [asyncio.ensure_future(run(job)) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _keep_body_raw(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """botocore `before-parse` hook: hand a successful body over as bytes and let botocore parse an empty one."""
    if response_dict["status_code"] == 200:
        customized_response_dict[_RAW_BODY] = response_dict["body"]
        response_dict["body"] = b"{}"


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _is_retryable(error: ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return _error_code(error) in _RETRYABLE_CODES or status >= 500


def _explain(error: ClientError) -> str:
    code, message = _error_code(error), error.response.get("Error", {}).get("Message", "")
    if code == "ResourceNotFoundException":
        return f"{code}: {message} (does the table exist? `bookrec create-table` creates it)"
    return f"{code}: {message}"


def _describe_pending(operation: str, params: dict[str, Any]) -> str:
    """The keys a failed request did not write or read, for the error message (first few, then a count)."""
    if "RequestItems" in params:
        (request,) = params["RequestItems"].values()
        items = request["Keys"] if isinstance(request, dict) else [write["PutRequest"]["Item"] for write in request]
    else:
        items = [params[name] for name in ("Item", "Key") if name in params]
    keys = [f"{item['pk']['S']}/{item['sk']['S']}" for item in items]
    if not keys:
        start = params.get("ExpressionAttributeValues", {}).get(":pk", {}).get("S")
        return f"{operation} of {start}" if start else f"{operation} segment {params.get('Segment', 0)}"
    shown = ", ".join(keys[:5])
    return f"{len(keys)} item(s): {shown}" + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
