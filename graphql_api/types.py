"""The GraphQL object types: the public contract, printed to schema.graphql.

Book and RefreshJob are declarations only: resolvers return `domain.models.Book`
and `graphql_api.jobs.RefreshJob` values as they are, because their attribute
names are the fields' Python names, so no copy is made per object. Recommendation
and Rating differ from the domain's (they carry the Book, not its id), so the
resolver that loaded the books builds them, one batch of books per field.
Fields are plain attributes wherever possible: an async resolver per scalar
would cost a coroutine per value.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from domain import models
from graphql_api import jobs
from graphql_api.context import RequestContext
from graphql_api.errors import BadUserInput
from graphql_api.loaders import Loaders

MAX_IDS = 100
MIN_LIMIT = 1
MAX_LIMIT = 50
DEFAULT_LIMIT = 10  # `recommendations`' default; graphql_api.read_plans applies it too


# Argument types with their descriptions, shared by every field that takes one.
UserId = Annotated[strawberry.ID, strawberry.argument(description="The user's id.")]
BookId = Annotated[strawberry.ID, strawberry.argument(description="The book's id.")]
Ids = Annotated[list[strawberry.ID], strawberry.argument(description="At most 100 ids.")]
Limit = Annotated[int, strawberry.argument(description="How many, from 1 to 50.")]


def check_ids(ids: Sequence[str]) -> None:
    if len(ids) > MAX_IDS:
        raise BadUserInput(f"`ids` takes at most {MAX_IDS} ids, got {len(ids)}")


def check_limit(limit: int) -> None:
    if not MIN_LIMIT <= limit <= MAX_LIMIT:
        raise BadUserInput(f"`limit` must be between {MIN_LIMIT} and {MAX_LIMIT}, got {limit}")


def parse_book_id(raw: str) -> int | None:
    """A book id as the catalog keys it, or None when `raw` cannot name a book (so it is unknown)."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


# The domain's enums serialize through these by value (they are str enums), so
# the domain stays free of GraphQL while the schema describes every value.
@strawberry.enum(name="RecommendationSource", description="Where a recommendation came from.")
class RecommendationSourceType(enum.Enum):
    COLLABORATIVE = strawberry.enum_value(
        models.RecommendationSource.COLLABORATIVE.value,
        description="Scored by the item model from the books this reader rated (readers of those books also read this one).",
    )
    POPULAR = strawberry.enum_value(
        models.RecommendationSource.POPULAR.value,
        description="A popular book: for readers with no rating the model knows, to fill a list, or before any model is trained.",
    )


@strawberry.enum(name="JobStatus", description="Where a background refresh job is in its life.")
class JobStatusType(enum.Enum):
    QUEUED = strawberry.enum_value(jobs.JobStatus.QUEUED.value, description="Accepted, not started yet.")
    RUNNING = strawberry.enum_value(jobs.JobStatus.RUNNING.value, description="Computing; `processed` grows.")
    SUCCEEDED = strawberry.enum_value(jobs.JobStatus.SUCCEEDED.value, description="Every user was refreshed.")
    FAILED = strawberry.enum_value(jobs.JobStatus.FAILED.value, description="Stopped by an error; see the server log.")


@strawberry.type(description="A book in the catalog.")
class Book:
    id: strawberry.ID = strawberry.field(description="The book's id (goodbooks-10k `book_id`).")
    title: str = strawberry.field(description="The title as published.")
    authors: list[str] = strawberry.field(description="Author names, in credit order.")
    publication_year: int | None = strawberry.field(description="Year of first publication, when known.")
    image_url: str | None = strawberry.field(description="URL of a cover image, when known.")
    average_rating: float | None = strawberry.field(description="Mean rating over all Goodreads ratings, when known.")
    ratings_count: int = strawberry.field(description="How many ratings the average is over.")


@strawberry.type(description="A user's star rating of a book.")
class Rating:
    book: models.Book = strawberry.field(graphql_type=Book, description="The rated book.")
    rating: int = strawberry.field(description="Stars, from 1 to 5.")
    rated_at: datetime = strawberry.field(description="When the rating was last set (UTC).")


@strawberry.type(description="A book recommended to a user, with how strongly.")
class Recommendation:
    book: models.Book = strawberry.field(graphql_type=Book, description="The recommended book.")
    score: float = strawberry.field(
        description="Predicted affinity; higher is stronger. Comparable within one user's list, not across users."
    )
    source: models.RecommendationSource = strawberry.field(
        graphql_type=RecommendationSourceType, description="How this recommendation was made."
    )


async def rated_books(loaders: Loaders, ratings: Sequence[models.Rating]) -> list[Rating]:
    """Ratings with their books, loaded in one batch; a rating of a book missing from the catalog is left out."""
    books = await loaders.books.load_many([rating.book_id for rating in ratings])
    return [
        Rating(book=book, rating=rating.rating, rated_at=rating.rated_at)
        for rating, book in zip(ratings, books)
        if book is not None
    ]


@strawberry.type(description="A reader. Any id is a user: one with no ratings gets POPULAR recommendations.")
class User:
    id: strawberry.ID = strawberry.field(description="The user's id.")

    @strawberry.field(description="The user's ratings, as currently stored.")
    async def ratings(self, info: Info[RequestContext, None]) -> list[Rating]:
        loaders = info.context.loaders
        return await rated_books(loaders, await loaders.ratings.load(self.id))

    @strawberry.field(
        description="Books recommended to the user, best first. Never includes a book the user has rated."
    )
    async def recommendations(self, info: Info[RequestContext, None], limit: Limit = DEFAULT_LIMIT) -> list[Recommendation]:
        check_limit(limit)
        loaders = info.context.loaders
        entries = (await loaders.recommendations.load(self.id)).items[:limit]
        books = await loaders.books.load_many([entry.book_id for entry in entries])
        return [
            Recommendation(book=book, score=entry.score, source=entry.source)
            for entry, book in zip(entries, books)
            if book is not None
        ]


@strawberry.type(description="A background job that recomputes and caches recommendations.")
class RefreshJob:
    id: strawberry.ID = strawberry.field(description="The job's id, for `refreshJob(id)`.")
    status: jobs.JobStatus = strawberry.field(graphql_type=JobStatusType, description="Where the job is.")
    total: int = strawberry.field(description="Users to refresh (0 until a refresh of all users has counted them).")
    processed: int = strawberry.field(description="Users refreshed so far.")


@strawberry.type(description="The result of `rateBook`.")
class RateBookPayload:
    rating: Rating = strawberry.field(description="The rating as stored.")
    user: User = strawberry.field(
        description="The user who rated; their recommendations already reflect the rating."
    )
