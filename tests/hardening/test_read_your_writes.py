"""The soak's second invariant, forced deterministically: a read issued after a rating returned, on another
process, must not be answered with a computation that read the ratings before it.

Two services share the ratings store and the cache, as two server processes share DynamoDB and Redis.
Process B starts computing ann's list (its read of her ratings done), process A stores ann's rating of
the book at the top of that list and deletes her cache key, and only then does a second read reach B.
Single flight must not hand that read the computation already running: it began before the rating.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from adapters.memory_cache import InProcessRecommendationCache
from domain.models import Book
from domain.item_model import ItemRecommender, train
from domain.service import ModelHolder, RecommendationService
from tests.domain.test_service import LIST_LENGTH, PARAMS, make_ratings
from tests.fakes import InMemoryCatalog, InMemoryRatings


async def test_a_read_after_a_rating_on_another_process_does_not_join_a_computation_from_before_it() -> None:
    ratings = InMemoryRatings(make_ratings())
    catalog = InMemoryCatalog(Book(book_id, f"Book {book_id}", ("Someone",)) for book_id in range(1, 10))
    cache = InProcessRecommendationCache(ttl_seconds=600, lease_ms=2_000, max_entries=1_000)
    model = ModelHolder(train(await ratings.scan_columns(), PARAMS))
    scoring, release = asyncio.Event(), asyncio.Event()

    async def held_scoring(function: Callable[..., Any], *args: Any) -> Any:
        scoring.set()
        await release.wait()
        return function(*args)

    process_a = RecommendationService(ratings, catalog, cache, model, ItemRecommender(LIST_LENGTH))
    process_b = RecommendationService(ratings, catalog, cache, model, ItemRecommender(LIST_LENGTH), run_blocking=held_scoring)

    read_before = asyncio.create_task(process_b.recommendation_lists(["ann"]))
    await scoring.wait()  # B has read ann's ratings and is scoring them
    await process_a.rate_book("ann", 4, 2)  # book 4 tops ann's list (tests/domain/test_service.py)
    read_after = asyncio.create_task(process_b.recommendation_lists(["ann"]))
    await asyncio.sleep(0.01)  # the second read reaches B's single flight while the first still computes
    release.set()

    [before], [after] = await read_before, await read_after
    assert 4 in [item.book_id for item in before.items]  # issued before the rating: may be stale
    assert 4 not in [item.book_id for item in after.items]
