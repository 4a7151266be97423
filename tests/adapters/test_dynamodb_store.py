"""The DynamoDB stores against moto's server over real HTTP: both port contracts, paging, call counts, retries.

moto never throttles and never returns UnprocessedKeys/UnprocessedItems, so
`LoadedClient` wraps the real client and makes chosen calls behave as DynamoDB
does under load; the server still stores and serves everything that gets through,
so "nothing lost" is checked against what the server really holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from adapters.dynamodb_store import (
    POPULAR_KEPT,
    POPULAR_UPDATE_ATTEMPTS,
    SCAN_PAGE_SIZE,
    SDK_TOTAL_MAX_ATTEMPTS,
    DynamoBookCatalog,
    DynamoRatingsRepository,
    DynamoTable,
    RetryPolicy,
    create_table,
    dynamodb_client,
    open_dynamodb_stores,
)
from domain.models import Book, Rating, StoreUnavailable
from graphql_api.settings import Settings
from tests.contract.catalog_contract import BookCatalogContract
from tests.contract.ratings_contract import RatingsRepositoryContract
from tests.moto_server import MOTO_REGION

pytestmark = pytest.mark.moto_server

AT = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
THROTTLING = ("ProvisionedThroughputExceededException", 400)


def where(settings: Settings) -> dict[str, Any]:
    """The settings' table, region and endpoint, as the adapter's factories take them."""
    return {"table": settings.dynamodb_table or "", "region": settings.aws_region, "endpoint_url": settings.dynamodb_endpoint_url}


@pytest.fixture
async def ratings_repository(dynamodb_settings: Settings) -> AsyncIterator[DynamoRatingsRepository]:
    async with open_dynamodb_stores(**where(dynamodb_settings)) as (ratings, _):
        yield ratings


@pytest.fixture
async def book_catalog(dynamodb_settings: Settings) -> AsyncIterator[DynamoBookCatalog]:
    async with open_dynamodb_stores(**where(dynamodb_settings)) as (_, catalog):
        yield catalog


class TestDynamoRatings(RatingsRepositoryContract):
    pass


class TestDynamoCatalog(BookCatalogContract):
    pass


class LoadedClient:
    """The real aiobotocore client, except that the next calls of chosen operations fail as DynamoDB does under load.

    `throttled[op]` calls raise a ClientError (`error`: code and HTTP status) without
    reaching the server. `half_processed[op]` batch calls send only the first half of
    their keys or items to the server and hand the rest back as unprocessed.
    `sent` records every call's operation and parameters.
    """

    def __init__(
        self,
        client: Any,
        *,
        throttled: Mapping[str, int] | None = None,
        half_processed: Mapping[str, int] | None = None,
        error: tuple[str, int] = THROTTLING,
    ) -> None:
        self._client = client
        self.throttled = Counter(throttled or {})
        self.half_processed = Counter(half_processed or {})
        self.error = error
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def put_item(self, **params: Any) -> dict[str, Any]:
        return await self._call("PutItem", params, self._client.put_item)

    async def query(self, **params: Any) -> dict[str, Any]:
        return await self._call("Query", params, self._client.query)

    async def scan(self, **params: Any) -> dict[str, Any]:
        return await self._call("Scan", params, self._client.scan)

    async def batch_get_item(self, **params: Any) -> dict[str, Any]:
        return await self._call("BatchGetItem", params, self._half_of_keys)

    async def batch_write_item(self, **params: Any) -> dict[str, Any]:
        return await self._call("BatchWriteItem", params, self._half_of_items)

    async def _call(self, operation: str, params: dict[str, Any], send: Any) -> dict[str, Any]:
        self.sent.append((operation, params))
        if self.throttled[operation] > 0:
            self.throttled[operation] -= 1
            code, status = self.error
            raise ClientError({"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)
        if self.half_processed[operation] > 0:
            self.half_processed[operation] -= 1
            return await send(**params)
        return await getattr(self._client, _METHOD[operation])(**params)

    async def _half_of_keys(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        done, rest = keys[: len(keys) // 2], keys[len(keys) // 2 :]
        response = await self._client.batch_get_item(RequestItems={table: {**request, "Keys": done}}) if done else {"Responses": {table: []}}
        return {**response, "UnprocessedKeys": {table: {**request, "Keys": rest}}}

    async def _half_of_items(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, writes),) = RequestItems.items()
        done, rest = writes[: len(writes) // 2], writes[len(writes) // 2 :]
        response = await self._client.batch_write_item(RequestItems={table: done}) if done else {}
        return {**response, "UnprocessedItems": {table: rest}}


_METHOD = {"PutItem": "put_item", "Query": "query", "Scan": "scan", "BatchGetItem": "batch_get_item", "BatchWriteItem": "batch_write_item"}


class PartitionWatch:
    """The real client, watching the BatchWriteItem requests in flight: which partition keys two of them wrote at once."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.writing: Counter[str] = Counter()
        self.shared: set[str] = set()
        self.requests_at_once = 0
        self.most_requests_at_once = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def batch_write_item(self, **params: Any) -> dict[str, Any]:
        ((_, writes),) = params["RequestItems"].items()
        partitions = {write["PutRequest"]["Item"]["pk"]["S"] for write in writes}
        self.shared |= {partition for partition in partitions if self.writing[partition]}
        self.writing.update(partitions)
        self.requests_at_once += 1
        self.most_requests_at_once = max(self.most_requests_at_once, self.requests_at_once)
        try:
            return await self._client.batch_write_item(**params)
        finally:
            self.writing.subtract(partitions)
            self.requests_at_once -= 1


class RecordedSleeps:
    """Stands in for asyncio.sleep: records each backoff instead of waiting it out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
async def client(dynamodb_settings: Settings) -> AsyncIterator[Any]:
    async with dynamodb_client(region=dynamodb_settings.aws_region, endpoint_url=dynamodb_settings.dynamodb_endpoint_url) as client:
        yield client


@pytest.fixture
def sleeps() -> RecordedSleeps:
    return RecordedSleeps()


@pytest.fixture
def retry(sleeps: RecordedSleeps) -> RetryPolicy:
    """Four attempts; `random` pinned to 1.0 so each backoff is its cap: 10, 20, 40 ms."""
    return RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.04, sleep=sleeps, random=lambda: 1.0)


def stores(client: Any, settings: Settings, retry: RetryPolicy | None = None, **options: Any) -> tuple[DynamoRatingsRepository, DynamoBookCatalog]:
    table = DynamoTable(client, settings.dynamodb_table or "", retry=retry)
    return DynamoRatingsRepository(table, **options), DynamoBookCatalog(table)


def ratings_of(user_id: str, count: int, stars: int = 3) -> list[Rating]:
    return [Rating(user_id, book_id, stars, AT) for book_id in range(1, count + 1)]


def book(book_id: int) -> Book:
    return Book(book_id, f"Book {book_id}", ("Someone",), 2000, None, 4.0, book_id)


# Paging and request counts


async def test_a_users_ratings_over_several_pages_come_back_whole(client: Any, dynamodb_settings: Settings) -> None:
    ratings, _ = stores(client, dynamodb_settings, page_size=4)
    await ratings.put_many(ratings_of("alice", 10) + ratings_of("bob", 3))
    ratings.counts.reset()

    found = await ratings.get_many(["alice", "bob"])

    assert found == {"alice": ratings_of("alice", 10), "bob": ratings_of("bob", 3)}
    assert ratings.counts.calls == Counter({"Query": 3 + 1})  # alice: pages of 4, 4, 2; bob: one page


async def test_request_reads_cost_one_query_per_user_and_one_batch_get_per_100_books(
    client: Any, dynamodb_settings: Settings
) -> None:
    ratings, catalog = stores(client, dynamodb_settings)
    users = [f"user-{n}" for n in range(30)]
    await ratings.put_many(rating for user in users for rating in ratings_of(user, 5))
    await catalog.put_many(book(book_id) for book_id in range(1, 251))
    ratings.counts.reset()

    found_ratings = await ratings.get_many(users)
    found_books = await catalog.get_many(list(range(1, 251)))

    assert sum(map(len, found_ratings.values())) == 150 and len(found_books) == 250
    assert ratings.counts.calls == Counter({"Query": 30, "BatchGetItem": 3})
    assert not ratings.counts.retries


async def test_put_many_writes_25_items_a_batch(client: Any, dynamodb_settings: Settings) -> None:
    loaded = LoadedClient(client)
    ratings, _ = stores(loaded, dynamodb_settings)

    assert await ratings.put_many(ratings_of("alice", 60)) == 60

    batch_sizes = sorted(len(params["RequestItems"][dynamodb_settings.dynamodb_table]) for _, params in loaded.sent)
    assert batch_sizes == [10, 25, 25]
    assert len((await ratings.get_many(["alice"]))["alice"]) == 60


async def test_concurrent_batches_never_write_the_same_partition(client: Any, dynamodb_settings: Settings) -> None:
    watch = PartitionWatch(client)
    ratings, _ = stores(watch, dynamodb_settings)
    users = [f"user-{n}" for n in range(40)]

    assert await ratings.put_many(rating for user in users for rating in ratings_of(user, 30)) == 1_200

    assert watch.shared == set() and watch.most_requests_at_once > 1
    found = await ratings.get_many(users)
    assert all(found[user] == ratings_of(user, 30) for user in users)


async def test_every_scan_segment_follows_its_own_pages(client: Any, dynamodb_settings: Settings) -> None:
    loaded = LoadedClient(client)
    ratings, catalog = stores(loaded, dynamodb_settings, scan_page_size=5, scan_segments=4)
    written = [Rating(f"user-{n}", book_id, (n + book_id) % 5 + 1, AT) for n in range(40) for book_id in (1, 2, 3)]
    await ratings.put_many(written)
    await catalog.put_many(book(book_id) for book_id in range(1, 21))
    loaded.sent.clear()

    columns = await ratings.scan_columns()

    scanned = {(columns.user_ids[code], int(b), int(s)) for code, b, s in zip(columns.user_codes, columns.book_ids, columns.ratings)}
    assert scanned == {(r.user_id, r.book_id, r.rating) for r in written}  # every rating once, no book items
    scans = [params for operation, params in loaded.sent if operation == "Scan"]
    for segment in range(4):
        pages = [params for params in scans if params["Segment"] == segment]
        assert len(pages) > 1 and sum("ExclusiveStartKey" in params for params in pages) == len(pages) - 1


# Retries: nothing lost, attempts counted, backoff bounded


async def test_unprocessed_keys_are_retried_until_every_book_is_read(
    client: Any, dynamodb_settings: Settings, retry: RetryPolicy, sleeps: RecordedSleeps
) -> None:
    await stores(client, dynamodb_settings)[1].put_many(book(book_id) for book_id in range(1, 81))
    _, catalog = stores(LoadedClient(client, half_processed={"BatchGetItem": 3}), dynamodb_settings, retry)

    found = await catalog.get_many(list(range(1, 81)))

    assert found == {book_id: book(book_id) for book_id in range(1, 81)}  # 80 -> 40 -> 20 -> 10 keys left, then all read
    assert catalog.counts.calls["BatchGetItem"] == 4 and catalog.counts.retries["BatchGetItem"] == 3
    assert sleeps.delays == [0.01, 0.02, 0.04]


async def test_unprocessed_items_are_retried_until_every_rating_is_written(
    client: Any, dynamodb_settings: Settings, retry: RetryPolicy, sleeps: RecordedSleeps
) -> None:
    ratings, _ = stores(LoadedClient(client, half_processed={"BatchWriteItem": 3}), dynamodb_settings, retry)

    assert await ratings.put_many(ratings_of("alice", 25)) == 25

    assert (await stores(client, dynamodb_settings)[0].get_many(["alice"]))["alice"] == ratings_of("alice", 25)
    assert ratings.counts.calls["BatchWriteItem"] == 4 and ratings.counts.retries["BatchWriteItem"] == 3
    assert sleeps.delays == [0.01, 0.02, 0.04]


@pytest.mark.parametrize(
    "error",
    [THROTTLING, ("ThrottlingException", 400), ("RequestLimitExceeded", 400), ("InternalServerError", 500), ("ServiceUnavailable", 503)],
)
async def test_a_throttled_or_failed_rating_is_retried_and_stored(
    client: Any, dynamodb_settings: Settings, retry: RetryPolicy, sleeps: RecordedSleeps, error: tuple[str, int]
) -> None:
    ratings, _ = stores(LoadedClient(client, throttled={"PutItem": 2}, error=error), dynamodb_settings, retry)
    given = Rating("alice", 3, 5, AT)

    assert await ratings.upsert(given) == given

    assert await ratings.get_many(["alice"]) == {"alice": [given]}
    assert ratings.counts.calls["PutItem"] == 3 and ratings.counts.retries["PutItem"] == 2
    assert sleeps.delays == [0.01, 0.02]


async def test_every_operation_retries_throttling(client: Any, dynamodb_settings: Settings, retry: RetryPolicy) -> None:
    throttled = {"Query": 1, "Scan": 1, "BatchGetItem": 1, "BatchWriteItem": 2}
    ratings, catalog = stores(LoadedClient(client, throttled=throttled), dynamodb_settings, retry, scan_segments=1)

    await ratings.put_many(ratings_of("alice", 3))
    await catalog.put_many([book(1)])

    assert (await ratings.get_many(["alice"]))["alice"] == ratings_of("alice", 3)
    assert len(await ratings.scan_columns()) == 3
    assert await catalog.get_many([1]) == {1: book(1)}
    assert ratings.counts.retries == Counter(throttled)


async def test_a_rating_still_throttled_after_the_last_attempt_is_an_error_and_changes_nothing(
    client: Any, dynamodb_settings: Settings, retry: RetryPolicy, sleeps: RecordedSleeps
) -> None:
    await stores(client, dynamodb_settings)[0].upsert(Rating("alice", 3, 2, AT))
    ratings, _ = stores(LoadedClient(client, throttled={"PutItem": 100}), dynamodb_settings, retry)

    with pytest.raises(StoreUnavailable, match=r"PutItem .* gave up after 4 attempts \(ProvisionedThroughputExceededException\).*USER#alice/BOOK#00000003"):
        await ratings.upsert(Rating("alice", 3, 5, AT))

    assert ratings.counts.calls["PutItem"] == 4
    assert sleeps.delays == [0.01, 0.02, 0.04] and sum(sleeps.delays) <= retry.max_total_delay
    assert await ratings.get_many(["alice"]) == {"alice": [Rating("alice", 3, 2, AT)]}  # the old rating, whole


async def test_a_batch_still_unprocessed_after_the_last_attempt_names_what_was_not_written(
    client: Any, dynamodb_settings: Settings, retry: RetryPolicy
) -> None:
    ratings, _ = stores(LoadedClient(client, half_processed={"BatchWriteItem": 100}), dynamodb_settings, retry)

    with pytest.raises(StoreUnavailable, match=r"BatchWriteItem .* gave up after 4 attempts \(UnprocessedItems\); not done: 1 item\(s\): USER#alice/BOOK#00000016$"):
        await ratings.put_many(ratings_of("alice", 16))  # 16 -> 8 -> 4 -> 2 -> 1 left

    assert (await ratings.get_many(["alice"]))["alice"] == ratings_of("alice", 15)


async def test_a_missing_table_is_an_error_at_once(client: Any, dynamodb_settings: Settings, retry: RetryPolicy) -> None:
    table = DynamoTable(client, "no-such-table", retry=retry)

    with pytest.raises(StoreUnavailable, match="ResourceNotFoundException.*bookrec create-table"):
        await DynamoRatingsRepository(table).get_many(["alice"])

    assert table.counts.calls == Counter({"Query": 1}) and not table.counts.retries


def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    policy = RetryPolicy(max_attempts=7, base_delay=0.1, max_delay=1.0, random=random.Random(5).random)

    caps = [policy.delay_cap(retry) for retry in range(1, 7)]
    delays = [policy.delay(retry) for retry in range(1, 7) for _ in range(200)]

    assert caps == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert policy.max_total_delay == pytest.approx(3.5)
    assert all(0 <= delay <= 1.0 for delay in delays) and len(set(delays)) == len(delays)


# Table lifecycle


async def test_create_table_leaves_an_existing_table_alone(client: Any, dynamodb_settings: Settings) -> None:
    ratings, _ = stores(client, dynamodb_settings)
    await ratings.upsert(Rating("alice", 1, 4, AT))

    assert await create_table(**where(dynamodb_settings)) is False

    description = (await client.describe_table(TableName=dynamodb_settings.dynamodb_table))["Table"]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert {(key["AttributeName"], key["KeyType"]) for key in description["KeySchema"]} == {("pk", "HASH"), ("sk", "RANGE")}
    assert await ratings.get_many(["alice"]) == {"alice": [Rating("alice", 1, 4, AT)]}
    assert await ratings.ping()


# Batch reads: user ids, identity


async def test_user_ids_scan_only_the_user_id_attribute(client: Any, dynamodb_settings: Settings) -> None:
    loaded = LoadedClient(client)
    ratings, catalog = stores(loaded, dynamodb_settings, scan_page_size=7, scan_segments=3)
    await ratings.put_many(Rating(f"user-{n:02d}", book_id, 4, AT) for n in range(30) for book_id in (1, 2))
    await catalog.put_many(book(book_id) for book_id in range(1, 11))  # book and popularity items are not users
    loaded.sent.clear()

    assert await ratings.user_ids() == [f"user-{n:02d}" for n in range(30)]

    scans = [params for operation, params in loaded.sent if operation == "Scan"]
    assert {params["Segment"] for params in scans} == {0, 1, 2} and len(scans) > 3
    assert all(
        [params["ExpressionAttributeNames"][name.strip()] for name in params["ProjectionExpression"].split(",")] == ["user_id"]
        and params["Limit"] == 7
        for params in scans
    )
    assert ratings.counts.calls["Scan"] == len(scans)  # a Scan counts once per page


async def test_scans_use_pages_of_a_thousand_items_by_default(client: Any, dynamodb_settings: Settings) -> None:
    loaded = LoadedClient(client)
    ratings, _ = stores(loaded, dynamodb_settings, scan_segments=2)
    await ratings.put_many(ratings_of("alice", 3))

    await ratings.scan_columns()

    assert SCAN_PAGE_SIZE == 1_000
    assert [params["Limit"] for operation, params in loaded.sent if operation == "Scan"] == [SCAN_PAGE_SIZE] * 2


async def test_the_identity_names_region_and_table(ratings_repository: DynamoRatingsRepository, dynamodb_settings: Settings) -> None:
    assert await ratings_repository.identity() == f"dynamodb:{MOTO_REGION}/{dynamodb_settings.dynamodb_table}"


async def test_the_identity_of_a_table_built_on_a_client_takes_the_clients_region(client: Any, dynamodb_settings: Settings) -> None:
    ratings, _ = stores(client, dynamodb_settings)

    assert await ratings.identity() == f"dynamodb:{MOTO_REGION}/{dynamodb_settings.dynamodb_table}"


# The popularity item


async def test_popular_book_ids_is_one_get_item_and_no_scan(book_catalog: DynamoBookCatalog) -> None:
    await book_catalog.put_many(book(book_id) for book_id in range(1, 31))
    book_catalog.counts.reset()

    assert await book_catalog.popular_book_ids(5) == [30, 29, 28, 27, 26]

    assert book_catalog.counts.calls == Counter({"GetItem": 1})


async def test_an_import_reads_and_writes_the_popularity_item_once(book_catalog: DynamoBookCatalog) -> None:
    book_catalog.counts.reset()

    await book_catalog.put_many(book(book_id) for book_id in range(1, 61))

    assert book_catalog.counts.calls - Counter({"BatchWriteItem": book_catalog.counts.calls["BatchWriteItem"]}) == Counter(
        {"GetItem": 1, "PutItem": 1}
    )


async def test_the_popularity_item_keeps_the_top_thousand(book_catalog: DynamoBookCatalog) -> None:
    await book_catalog.put_many(book(book_id) for book_id in range(1, POPULAR_KEPT + 201))  # ratings_count = id

    top = await book_catalog.popular_book_ids(POPULAR_KEPT + 200)

    assert top == list(range(POPULAR_KEPT + 200, 200, -1))  # the 200 least rated are not kept
    await book_catalog.put_many([Book(7, "Back from obscurity", (), ratings_count=10_000)])
    assert (await book_catalog.popular_book_ids(3)) == [7, POPULAR_KEPT + 200, POPULAR_KEPT + 199]
    assert len(await book_catalog.popular_book_ids(POPULAR_KEPT + 200)) == POPULAR_KEPT


class RacingImports:
    """The real client, except that the first `racers` reads of the popularity item wait for each other.

    So every racing import reads the same version of the item; their conditional writes
    are then sent one at a time (moto's server is not safe with two at once), and all but
    the first must fail, read again and merge again. `puts` records each write's outcome.
    """

    def __init__(self, client: Any, racers: int) -> None:
        self._client = client
        self._barrier = asyncio.Barrier(racers)
        self._waiting = racers
        self._one_write = asyncio.Lock()
        self.puts: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def get_item(self, **params: Any) -> dict[str, Any]:
        response = await self._client.get_item(**params)
        if self._waiting > 0:
            self._waiting -= 1
            await self._barrier.wait()
        return response

    async def put_item(self, **params: Any) -> dict[str, Any]:
        async with self._one_write:
            try:
                response = await self._client.put_item(**params)
            except ClientError as error:
                self.puts.append(error.response["Error"]["Code"])
                raise
            self.puts.append("written")
            return response


async def test_two_imports_at_once_both_end_up_in_the_popularity_item(
    client: Any, dynamodb_settings: Settings, retry: RetryPolicy
) -> None:
    racing = RacingImports(client, racers=2)
    _, catalog = stores(racing, dynamodb_settings, retry)
    await stores(client, dynamodb_settings)[1].put_many([Book(500, "Already there", (), ratings_count=5)])

    await asyncio.gather(
        catalog.put_many(Book(book_id, f"Odd {book_id}", (), ratings_count=book_id) for book_id in range(1, 40, 2)),
        catalog.put_many(Book(book_id, f"Even {book_id}", (), ratings_count=book_id) for book_id in range(2, 41, 2)),
    )

    assert racing.puts == ["written", "ConditionalCheckFailedException", "written"]
    assert await catalog.popular_book_ids(100) == [*range(40, 5, -1), 5, 500, 4, 3, 2, 1]  # 5 and 500 tie: lower id first


async def test_an_import_that_keeps_losing_the_race_is_an_error_naming_what_to_do(
    client: Any, dynamodb_settings: Settings, retry: RetryPolicy, sleeps: RecordedSleeps
) -> None:
    conflicting = LoadedClient(client, throttled={"PutItem": 1_000}, error=("ConditionalCheckFailedException", 400))
    _, catalog = stores(conflicting, dynamodb_settings, retry)

    with pytest.raises(StoreUnavailable, match=r"popularity item kept changing .* 1 book\(s\).* run the import again"):
        await catalog.put_many([book(1)])

    assert catalog.counts.calls["PutItem"] == catalog.counts.calls["GetItem"] == POPULAR_UPDATE_ATTEMPTS
    assert len(sleeps.delays) == POPULAR_UPDATE_ATTEMPTS and max(sleeps.delays) <= retry.max_delay
    assert await stores(client, dynamodb_settings)[1].get_many([1]) == {1: book(1)}  # the book itself is written


# Timed-out pages


class TimingOut(LoadedClient):
    """The real client, except that the next `timeouts[op]` calls raise botocore's ReadTimeoutError without reaching the server."""

    def __init__(self, client: Any, timeouts: Mapping[str, int]) -> None:
        super().__init__(client)
        self.timeouts = Counter(timeouts)

    async def _call(self, operation: str, params: dict[str, Any], send: Any) -> dict[str, Any]:
        if self.timeouts[operation] > 0:
            self.timeouts[operation] -= 1
            self.sent.append((operation, params))
            raise ReadTimeoutError(endpoint_url="http://moto.test/")
        return await super()._call(operation, params, send)


async def test_a_timed_out_scan_page_is_sent_again(client: Any, dynamodb_settings: Settings, retry: RetryPolicy) -> None:
    ratings, _ = stores(TimingOut(client, {"Scan": 2}), dynamodb_settings, retry)
    await ratings.put_many(ratings_of("alice", 4))

    assert len(await ratings.scan_columns()) == 4
    assert ratings.counts.retries["Scan"] == 2


async def test_a_timed_out_query_on_the_request_path_is_not_sent_again(client: Any, dynamodb_settings: Settings,
                                                                      retry: RetryPolicy) -> None:
    ratings, _ = stores(TimingOut(client, {"Query": 1}), dynamodb_settings, retry)
    await ratings.put_many(ratings_of("alice", 4))

    with pytest.raises(StoreUnavailable, match="Query .* failed: Read timeout"):
        await ratings.get_many(["alice"])
    assert ratings.counts.calls["Query"] == 1 and not ratings.counts.retries


async def test_a_timed_out_write_is_not_sent_again(client: Any, dynamodb_settings: Settings, retry: RetryPolicy) -> None:
    ratings, _ = stores(TimingOut(client, {"PutItem": 1}), dynamodb_settings, retry)

    with pytest.raises(StoreUnavailable, match="PutItem .* failed: Read timeout"):
        await ratings.upsert(Rating("alice", 1, 5, AT))

    assert ratings.counts.calls["PutItem"] == 1 and not ratings.counts.retries


async def test_a_page_timing_out_past_the_last_attempt_is_an_error_naming_the_segment(
    client: Any, dynamodb_settings: Settings, retry: RetryPolicy
) -> None:
    ratings, _ = stores(TimingOut(client, {"Scan": 100}), dynamodb_settings, retry, scan_segments=1)

    with pytest.raises(StoreUnavailable, match=r"Scan .* gave up after 4 attempts \(ReadTimeoutError\); not done: Scan segment 0"):
        await ratings.scan_columns()


class StallingProxy:
    """A TCP proxy in front of moto that never forwards chosen requests: the client's socket read really times out.

    Requests are read whole (headers, then Content-Length bytes of body) and forwarded;
    one that `stall(target, body)` picks is held instead until the client gives up on it
    and closes the connection. `requests` records every (X-Amz-Target, body) it read.
    """

    def __init__(self, upstream: str, stall: Callable[[str, dict[str, Any]], bool]) -> None:
        self._host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self._port = int(port)
        self._stall = stall
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.stalled: list[dict[str, Any]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(task := asyncio.current_task())  # type: ignore[arg-type]
        upstream_reader, upstream_writer = await asyncio.open_connection(self._host, self._port)
        answers = asyncio.ensure_future(self._copy(upstream_reader, writer))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = dict(
                    (name.strip().lower(), value.strip())
                    for name, _, value in (line.partition(":") for line in head.decode("latin-1").split("\r\n")[1:] if line)
                )
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                target, request = headers.get("x-amz-target", "").rpartition(".")[2], json.loads(body or b"{}")
                self.requests.append((target, request))
                if self._stall(target, request):
                    self.stalled.append(request)
                    await asyncio.wait_for(reader.read(), timeout=30)  # until the client times out and hangs up
                    return
                upstream_writer.write(head + body)
                await upstream_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            answers.cancel()
            for each in (writer, upstream_writer):
                each.close()
            self._tasks.discard(task)  # type: ignore[arg-type]

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65_536):
                writer.write(data)
                await writer.drain()


async def test_a_scan_page_whose_read_really_times_out_is_sent_again_and_the_scan_is_whole(
    dynamodb_settings: Settings, moto_server: str, sleeps: RecordedSleeps
) -> None:
    written = [Rating(f"user-{n}", book_id, (n + book_id) % 5 + 1, AT) for n in range(40) for book_id in (1, 2, 3)]
    async with open_dynamodb_stores(**where(dynamodb_settings)) as (ratings, _):
        await ratings.put_many(written)

    def second_page_of_segment_1(target: str, request: dict[str, Any]) -> bool:
        """Stall every attempt botocore makes at it, once: then it is the adapter's retry that gets the page."""
        picked = target == "Scan" and request.get("Segment") == 1 and "ExclusiveStartKey" in request
        return picked and len(proxy.stalled) < SDK_TOTAL_MAX_ATTEMPTS

    proxy = StallingProxy(moto_server, second_page_of_segment_1)
    retry = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.04, sleep=sleeps, random=lambda: 1.0)
    async with proxy as endpoint, open_dynamodb_stores(
        table=dynamodb_settings.dynamodb_table or "", region=MOTO_REGION, endpoint_url=endpoint,
        retry=retry, scan_page_size=10, scan_segments=4, scan_read_timeout=0.5,
    ) as (ratings, _):
        started = time.perf_counter()
        columns = await ratings.scan_columns()
        took = time.perf_counter() - started

    scanned = {(columns.user_ids[code], int(b), int(s)) for code, b, s in zip(columns.user_codes, columns.book_ids, columns.ratings)}
    assert scanned == {(r.user_id, r.book_id, r.rating) for r in written} and len(columns) == len(written)
    assert len(proxy.stalled) == SDK_TOTAL_MAX_ATTEMPTS and all(stalled == proxy.stalled[0] for stalled in proxy.stalled)
    segment_1 = [request for target, request in proxy.requests if target == "Scan" and request["Segment"] == 1]
    resent = segment_1.index(proxy.stalled[0]) + SDK_TOTAL_MAX_ATTEMPTS
    assert segment_1[resent] == proxy.stalled[0]  # the same page: same ExclusiveStartKey, same Limit
    assert ratings.counts.retries == Counter({"Scan": 1}) and sleeps.delays == [0.01]
    assert took < 10  # two read timeouts of 0.5 s, not botocore's 60


@pytest.mark.slow
async def test_a_full_scan_of_30_000_ratings_on_moto_gets_through(dynamodb_settings: Settings) -> None:
    """The production defaults (1,000-item pages, 8 segments, the scan client's read timeout) against moto's server.

    moto sorts the whole table for every page, so each of the ~32 pages takes seconds
    while 8 run at once: with 1 MB pages and the request client's 10 s read timeout
    this scan used to abort with ReadTimeoutError.
    """
    users = [f"user-{n:05d}" for n in range(3_000)]
    async with open_dynamodb_stores(**where(dynamodb_settings)) as (ratings, catalog):
        assert await ratings.put_many(Rating(user, book_id, (n + book_id) % 5 + 1, AT) for n, user in enumerate(users) for book_id in range(1, 11)) == 30_000
        await catalog.put_many(book(book_id) for book_id in range(1, 11))
        ratings.counts.reset()

        columns = await ratings.scan_columns()
        scan_pages = ratings.counts.calls["Scan"]
        found_users = await ratings.user_ids()

    assert len(columns) == 30_000 and sorted(columns.user_ids) == users
    assert found_users == users
    assert scan_pages >= 30_000 // SCAN_PAGE_SIZE
    print(f"\n30,000 ratings scanned in {scan_pages} pages; retries {dict(ratings.counts.retries)}")
