"""The DynamoDB stores against moto's server over real HTTP: both port contracts, paging, call counts, retries.

moto never throttles and never returns UnprocessedKeys/UnprocessedItems, so
`LoadedClient` wraps the real client and makes chosen calls behave as DynamoDB
does under load; the server still stores and serves everything that gets through,
so "nothing lost" is checked against what the server really holds.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timezone
from typing import Any

import pytest
from botocore.exceptions import ClientError

from adapters.dynamodb_store import (
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
