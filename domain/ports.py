"""The ports: what the domain needs from storage, each a small async, batch-first Protocol.

Batch-first because every caller holds a batch (a GraphQL request's users, a
warm job's segment) and a loop of single reads is the latency this service
exists to remove.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from domain.models import Book, ModelArtifact, Rating, RatingColumns, RecommendationList


class RatingsRepository(Protocol):
    async def get_many(self, user_ids: Sequence[str]) -> dict[str, list[Rating]]:
        """Each user's current ratings; a user with none maps to an empty list."""

    async def upsert(self, rating: Rating) -> Rating:
        """Store one rating, overwriting the user's earlier rating of that book; returns it as stored."""

    async def put_many(self, ratings: Iterable[Rating]) -> int:
        """Bulk upsert (imports); returns how many were written. Last one wins per (user, book)."""

    async def scan_columns(self) -> RatingColumns:
        """Every rating, for training a model (`bookrec train`); never called by a serving process."""

    async def user_ids(self) -> list[str]:
        """Every user with at least one rating, ascending (warm and refresh-all jobs; never the request path)."""

    async def identity(self) -> str:
        """A stable name of this store's data ("sqlite:<uuid kept in the file>", "dynamodb:<region>/<table>").

        A model artifact records the identity of the store it was trained on, so that a
        serving process never scores one store's users with a model of another's books.
        """


class BookCatalog(Protocol):
    async def get_many(self, book_ids: Sequence[int]) -> dict[int, Book]:
        """The books that exist among `book_ids`; unknown ids are absent from the result."""

    async def put_many(self, books: Iterable[Book]) -> int:
        """Bulk upsert (imports); returns how many were written."""

    async def popular_book_ids(self, limit: int) -> list[int]:
        """Up to `limit` book ids by the catalogue's own ratings count, most first (ties: lower id).

        What a serving process recommends before any model has been trained; one cheap read.
        """


@dataclass(frozen=True, slots=True)
class Leases:
    """The answer to a lease request (docs/architecture.md section 4.2).

    `granted` maps a user to the token its fill must present. `held_elsewhere`
    lists users whose key another computation already holds: wait for its value.
    A requested user in neither list means the cache could not answer (it is
    down): compute, serve, and do not write.
    """

    granted: Mapping[str, str] = field(default_factory=dict)
    held_elsewhere: Sequence[str] = ()


class RecommendationCache(Protocol):
    """Cache-aside storage of RecommendationList values under `reco:{user_id}`, with leases.

    A cache never raises to its caller for its own failures: it answers "miss",
    grants no lease and skips writes, because Redis is an optimisation, not a dependency.
    """

    async def get_many(self, user_ids: Sequence[str], *, items: int | None = None) -> list[RecommendationList | None]:
        """Values in the order asked; None for absent, leased, corrupt or old-format entries.

        With `items`, a value may hold only the first `items` recommendations of the list:
        a reader that shows the top 10 need not decode all 50 (never pass it to write back).
        """

    async def lease_many(self, user_ids: Sequence[str]) -> Leases:
        """Try to take a lease on each (absent) key, so that one caller computes it."""

    async def fill_many(self, values: Sequence[RecommendationList], leases: Mapping[str, str]) -> int:
        """Store each value whose lease is still held (with the cache's TTL); returns how many were stored.

        A rating deletes the key, which voids the lease, so a value computed from
        old ratings is refused rather than cached for a whole TTL.
        """

    async def delete_many(self, user_ids: Sequence[str]) -> None:
        """Drop values and void leases (after a rating or an explicit invalidation)."""


class ModelRepository(Protocol):
    """Where trained item models are published and read: a local directory or S3 (docs/architecture.md section 5.5).

    Versions are immutable; `LATEST` names the one to serve. A reader never sees half a
    model: a version is written whole before `LATEST` may name it. Every failure to read
    a usable artifact raises `ArtifactError` with a one-line reason.
    """

    async def latest_version(self) -> str | None:
        """The version `LATEST` names, or None when nothing has been published yet."""

    async def load(self, version: str) -> ModelArtifact:
        """The version's manifest and arrays (memory-mapped where the store is on local disk), verified."""

    async def publish(self, artifact: ModelArtifact) -> str:
        """Write the version completely, then point `LATEST` at it; keep a bounded number of old versions."""

    async def versions(self) -> list[dict[str, object]]:
        """The manifests of the complete versions kept, newest first."""

    async def use(self, version: str) -> None:
        """Point `LATEST` at a kept version (a rollback); ArtifactError when it is absent or damaged."""
