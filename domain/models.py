"""The service's vocabulary: immutable values that every layer shares."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

MIN_RATING = 1
MAX_RATING = 5


class RecommendationSource(str, enum.Enum):
    """Where a recommendation came from, so clients can label cold-start lists."""

    COLLABORATIVE = "COLLABORATIVE"
    POPULAR = "POPULAR"


@dataclass(frozen=True, slots=True)
class Book:
    id: int
    title: str
    authors: tuple[str, ...]
    publication_year: int | None = None
    image_url: str | None = None
    average_rating: float | None = None
    ratings_count: int = 0


@dataclass(frozen=True, slots=True)
class Rating:
    """One user's explicit 1-5 star rating of one book; `rated_at` is timezone-aware UTC."""

    user_id: str
    book_id: int
    rating: int
    rated_at: datetime


class Recommendation(NamedTuple):
    """One recommended book. A NamedTuple rather than a frozen dataclass like the others: every cache
    hit builds one per item shown, and a NamedTuple is built in about half the time (0.3 µs vs 0.6 µs)."""

    book_id: int
    score: float
    source: RecommendationSource


@dataclass(frozen=True, slots=True)
class RecommendationList:
    """A user's top MAX_RECOMMENDATIONS as cached; every `limit` is a slice of it.

    `model_version` names the snapshot it was scored against and `computed_at`
    (unix seconds) says when, so an operator can tell a stale entry from a fresh one.
    """

    user_id: str
    items: tuple[Recommendation, ...]
    model_version: str
    computed_at: float


@dataclass(frozen=True, slots=True)
class RatingColumns:
    """Every rating as parallel columns: the bulk form a model snapshot is built from.

    Columnar because a snapshot reads millions of ratings and one Python object per
    rating would cost seconds and gigabytes. `user_codes[i]` indexes `user_ids`.
    """

    user_ids: tuple[str, ...]
    user_codes: np.ndarray  # int32, one per rating
    book_ids: np.ndarray  # int32, one per rating
    ratings: np.ndarray  # float32, one per rating

    def __len__(self) -> int:
        return int(self.ratings.shape[0])


@dataclass(frozen=True, slots=True)
class ModelArtifact:
    """A trained model as stored: named arrays and a JSON-able manifest.

    `manifest["version"]` is a content hash, so the same training data and parameters
    publish the same version. A store adds a `files` entry (size and sha256 per array)
    when it writes the manifest, and checks it when it reads one back.
    """

    manifest: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray]

    @property
    def version(self) -> str:
        return str(self.manifest["version"])


class ArtifactError(RuntimeError):
    """A model artifact that cannot be served: missing, partial, corrupt, or trained on another store.

    The message is one line, written for the operator's log.
    """


class InvalidRating(ValueError):
    """A rating outside MIN_RATING..MAX_RATING."""


class UnknownBook(LookupError):
    """A rating for a book the catalog does not hold."""


class StoreUnavailable(RuntimeError):
    """A store still failed after its retries; the caller's write did not happen."""
