"""The cache-aside service: read through the cache, compute misses in one batch, fill under leases.

The request path (docs/architecture.md sections 2 and 4): one `cache.get_many` for every user of a
request; misses take leases; the recommender scores every miss in one vectorised
call off the event loop; results are written back in one `fill_many`, which the
cache refuses where a rating voided the lease meanwhile. Concurrent misses for one
user in one process are computed once (single flight).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from domain.models import (
    MAX_RATING,
    MIN_RATING,
    InvalidRating,
    Rating,
    Recommendation,
    RecommendationList,
    UnknownBook,
)
from domain.ports import BookCatalog, RatingsRepository, RecommendationCache
from domain.item_model import ItemModel, ItemRecommender

RunBlocking = Callable[..., Awaitable[Any]]
ProgressCallback = Callable[[int, int], None]


class ServiceObserver(Protocol):
    """What the service reports as it works, so that metrics and tracing live outside the domain.

    Called on the event loop once per cache read and once per recommender batch, never
    per user or per field: an implementation must be cheap and must not raise.
    """

    def cache_read(self, hits: int, misses: int, seconds: float) -> None:
        """One `get_many` of a request's users answered: how many were hits, and how long it took."""

    def recommender_batch(self, users: int, seconds: float) -> None:
        """One vectorised recommender call finished (thread pool queueing included)."""


class NoObserver:
    """The default observer: reports go nowhere."""

    def cache_read(self, hits: int, misses: int, seconds: float) -> None:
        pass

    def recommender_batch(self, users: int, seconds: float) -> None:
        pass


@dataclass
class ServiceCounters:
    """What the service did, for tests that count and for the metrics endpoint."""

    cache_gets: int = 0
    hits: int = 0
    misses: int = 0
    single_flight_joins: int = 0
    lease_waits: int = 0
    fills: int = 0
    fills_refused: int = 0
    recommender_batches: int = 0
    users_computed: int = 0
    invalidations: int = 0


@dataclass(frozen=True, slots=True)
class LeaseWait:
    """How long a reader waits for a fill by another lease holder before computing for itself.

    Delays double from `first_delay_s`; the default sums to about 0.3 s, well under
    the lease period, so a crashed holder costs a reader a bounded wait.
    """

    attempts: int = 6
    first_delay_s: float = 0.005

    def delays(self) -> list[float]:
        return [self.first_delay_s * 2**attempt for attempt in range(self.attempts)]


class ModelHolder:
    """The item model being served; a newly published one replaces it in one assignment, so readers never wait."""

    def __init__(self, model: ItemModel) -> None:
        self._model = model

    @property
    def current(self) -> ItemModel:
        return self._model

    def swap(self, model: ItemModel) -> None:
        self._model = model


class RecommendationService:
    def __init__(
        self,
        ratings: RatingsRepository,
        catalog: BookCatalog,
        cache: RecommendationCache,
        model: ModelHolder,
        recommender: ItemRecommender,
        *,
        run_blocking: RunBlocking = asyncio.to_thread,
        lease_wait: LeaseWait = LeaseWait(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        observer: ServiceObserver | None = None,
    ) -> None:
        self._ratings = ratings
        self._catalog = catalog
        self._cache = cache
        self._model = model
        self._recommender = recommender
        self._run_blocking = run_blocking
        self._lease_wait = lease_wait
        self._sleep = sleep
        self._clock = clock
        # user -> (list, whether joiners may use it); see _resolve_misses.
        self._inflight: dict[str, asyncio.Future[tuple[RecommendationList, bool]]] = {}
        self.counters = ServiceCounters()
        # Public and assignable: the API attaches its metrics to a service the container built.
        self.observer: ServiceObserver = observer or NoObserver()

    @property
    def model(self) -> ModelHolder:
        return self._model

    # Reads

    async def recommendation_lists(self, user_ids: Sequence[str], *, items: int | None = None) -> list[RecommendationList]:
        """Each user's full cached top-N, in the order asked: one cache read, one batch for the misses.

        With `items`, a cached list may be cut to its first `items` (see RecommendationCache.get_many).
        """
        unique = list(dict.fromkeys(user_ids))
        started = time.perf_counter()
        cached = await self._cache.get_many(unique, items=items)
        read_seconds = time.perf_counter() - started
        self.counters.cache_gets += 1
        found = {user: value for user, value in zip(unique, cached) if value is not None}
        self.counters.hits += len(found)
        misses = [user for user in unique if user not in found]
        self.observer.cache_read(len(found), len(misses), read_seconds)
        if misses:
            self.counters.misses += len(misses)
            found.update(await self._resolve_misses(misses))
        return [found[user] for user in user_ids]

    async def popular_book_ids(self, limit: int) -> list[int]:
        return self._model.current.popular_book_ids(limit)

    async def ratings_of(self, user_ids: Sequence[str]) -> dict[str, list[Rating]]:
        return await self._ratings.get_many(user_ids)

    # Writes

    async def rate_book(self, user_id: str, book_id: int, rating: int) -> Rating:
        """Store a rating, then void the user's cached list and any lease on it.

        Validation happens before any write, so a rejected rating leaves the store
        and the cache exactly as they were. A write that fails after its retries may
        still have been applied (its answer lost), so the cached list is voided then too:
        a delete can cost a recomputation, never a stale list.
        """
        if not MIN_RATING <= rating <= MAX_RATING:
            raise InvalidRating(f"rating must be between {MIN_RATING} and {MAX_RATING}, got {rating}")
        if book_id not in await self._catalog.get_many([book_id]):
            raise UnknownBook(f"no book with id {book_id}")
        try:
            stored = await self._ratings.upsert(Rating(user_id, book_id, rating, datetime.now(timezone.utc)))
        finally:
            await self.invalidate(user_id)
        return stored

    async def invalidate(self, user_id: str) -> None:
        """Drop the cached list; a computation already in flight for this user is no longer joined."""
        self._inflight.pop(user_id, None)
        await self._cache.delete_many([user_id])
        self.counters.invalidations += 1

    async def refresh(
        self,
        user_ids: Sequence[str] | None = None,
        *,
        batch_size: int = 1000,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        """Recompute and cache the lists of `user_ids` (when None, every user the served model was trained on), batch by batch.

        Each batch is deleted first and then filled under fresh leases, so a reader
        or a rating racing the refresh never leaves an older list in the cache.
        Without a trained model (the popularity fallback) lists are only deleted: they
        are never cached. Returns how many users were computed.
        """
        targets = list(dict.fromkeys(self._model.current.user_ids() if user_ids is None else user_ids))
        computed = 0
        if on_progress:
            on_progress(0, len(targets))
        for start in range(0, len(targets), batch_size):
            batch = targets[start : start + batch_size]
            await self._cache.delete_many(batch)
            if self._model.current.fallback:
                mine = []
            else:
                leases = await self._cache.lease_many(batch)
                mine = [user for user in batch if user in leases.granted]
            if mine:
                lists = await self._compute(mine)
                await self._fill(lists, leases.granted)
                computed += len(mine)
            if on_progress:
                on_progress(start + len(batch), len(targets))
        return computed

    # Misses

    async def _resolve_misses(self, misses: list[str]) -> dict[str, RecommendationList]:
        joined = {user: self._inflight[user] for user in misses if user in self._inflight}
        self.counters.single_flight_joins += len(joined)
        owned = [user for user in misses if user not in joined]
        results: dict[str, RecommendationList] = {}
        if owned:
            loop = asyncio.get_running_loop()
            futures = {user: loop.create_future() for user in owned}
            self._inflight.update(futures)
            try:
                computed, unsure = await self._compute_under_leases(owned)
                results.update(computed)
            except asyncio.CancelledError:
                for future in futures.values():
                    future.cancel()
                raise
            except Exception as error:
                for future in futures.values():
                    future.set_exception(error)
                    future.exception()  # retrieved here: a future nobody joined must not log a warning
                raise
            else:
                for user, future in futures.items():
                    future.set_result((results[user], user not in unsure))
            finally:
                for user, future in futures.items():
                    if self._inflight.get(user) is future:
                        del self._inflight[user]
        recompute = []
        for user, future in joined.items():
            # shield: a joiner's cancellation must not cancel the owner's computation.
            value, usable = await asyncio.shield(future)
            if usable:
                results[user] = value
            else:
                recompute.append(user)
        if recompute:
            # The owner's list may predate a rating that another process stored (and whose DEL refused
            # the owner's fill) before this read was issued; computed afresh, it cannot.
            results.update((await self._compute_under_leases(recompute))[0])
        return results

    async def _compute_under_leases(self, users: list[str]) -> tuple[dict[str, RecommendationList], set[str]]:
        """The users' lists, and those of them whose list may predate a rating stored in another process.

        A fill the cache refused means a DEL (a rating) voided the lease while the list was
        computed; a list computed after waiting in vain for another holder has no lease to
        tell. The caller's own request may use such a list (it was issued before the
        computation began), but a request that joined the computation later may not.
        """
        if self._model.current.fallback:
            # No trained model yet: popular lists are served but never cached, so the first model shows at once.
            return await self._compute(users), set(users)
        leases = await self._cache.lease_many(users)
        held_elsewhere = set(leases.held_elsewhere)
        results: dict[str, RecommendationList] = {}
        unsure: set[str] = set()
        # Granted users are filled; users the cache could not answer for are served unwritten.
        to_compute = [user for user in users if user not in held_elsewhere]
        if to_compute:
            results.update(await self._compute(to_compute))
            if not await self._fill(results, leases.granted):
                unsure.update(user for user in to_compute if user in leases.granted)
        if held_elsewhere:
            waiting = [user for user in users if user in held_elsewhere]
            results.update(await self._wait_for_fills(waiting))
            unfilled = [user for user in waiting if user not in results]
            if unfilled:
                results.update(await self._compute(unfilled))
                unsure.update(unfilled)
        return results, unsure

    async def _wait_for_fills(self, users: list[str]) -> dict[str, RecommendationList]:
        """Poll with doubling delays for values another lease holder is computing."""
        self.counters.lease_waits += len(users)
        found: dict[str, RecommendationList] = {}
        pending = list(users)
        for delay in self._lease_wait.delays():
            await self._sleep(delay)
            values = await self._cache.get_many(pending)
            found.update({user: value for user, value in zip(pending, values) if value is not None})
            pending = [user for user in pending if user not in found]
            if not pending:
                break
        return found

    async def _compute(self, users: list[str]) -> dict[str, RecommendationList]:
        """Score `users` in one batch with the current model, from their own ratings read now.

        Ratings are read after the lease is taken: a rating stored before the lease
        is seen, and one stored after it deletes the lease, so either way no stale
        list is cached.
        """
        model = self._model.current
        fresh = await self._ratings.get_many(users)
        started = time.perf_counter()
        items = await self._run_blocking(self._recommender.recommend_batch, model, users, fresh)
        self.observer.recommender_batch(len(users), time.perf_counter() - started)
        self.counters.recommender_batches += 1
        self.counters.users_computed += len(users)
        now = self._clock()
        return {
            user: RecommendationList(user, tuple(user_items), model.version, now)
            for user, user_items in zip(users, items)
        }

    async def _fill(self, lists: Mapping[str, RecommendationList], leases: Mapping[str, str]) -> bool:
        """Write the lists whose lease is held; False when the cache refused or dropped any of them."""
        granted = [lists[user] for user in lists if user in leases]
        if not granted:
            return True
        stored = await self._cache.fill_many(granted, leases)
        self.counters.fills += stored
        self.counters.fills_refused += len(granted) - stored
        return stored == len(granted)
