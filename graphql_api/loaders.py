"""Per-request DataLoaders: every user and book a query asks for is fetched in one batch per kind.

A fresh set is made for each request (in the view's `get_context`). A loader
shared across requests would serve one user's data to another and outlive its
event loop; the cache that spans requests is the recommendation cache.
"""

from __future__ import annotations

import contextlib

from strawberry.dataloader import DataLoader

from domain.models import Book, Rating, RecommendationList
from domain.ports import BookCatalog
from domain.service import RecommendationService

# DynamoDB's BatchGetItem takes at most 100 keys, so one catalog read per 100 distinct books.
CATALOG_BATCH = 100


class RecommendationLoader(DataLoader[str, RecommendationList]):
    """user id -> the user's full cached list; fields slice it by `limit`, so every limit shares one load."""

    def __init__(self, service: RecommendationService) -> None:
        super().__init__(load_fn=service.recommendation_lists)


class BookLoader(DataLoader[int, Book | None]):
    """book id -> Book, or None for an id the catalog does not hold."""

    def __init__(self, catalog: BookCatalog) -> None:
        async def load(book_ids: list[int]) -> list[Book | None]:
            found = await catalog.get_many(book_ids)
            return [found.get(book_id) for book_id in book_ids]

        super().__init__(load_fn=load, max_batch_size=CATALOG_BATCH)


class RatingsLoader(DataLoader[str, list[Rating]]):
    """user id -> the user's current ratings."""

    def __init__(self, service: RecommendationService) -> None:
        async def load(user_ids: list[str]) -> list[list[Rating]]:
            found = await service.ratings_of(user_ids)
            return [found.get(user_id, []) for user_id in user_ids]

        super().__init__(load_fn=load)


class Loaders:
    __slots__ = ("books", "ratings", "recommendations")

    def __init__(self, service: RecommendationService, catalog: BookCatalog) -> None:
        self.recommendations = RecommendationLoader(service)
        self.books = BookLoader(catalog)
        self.ratings = RatingsLoader(service)

    def forget_user(self, user_id: str) -> None:
        """Drop what this request loaded for a user it just changed, so later fields read the change."""
        for loader in (self.recommendations, self.ratings):
            with contextlib.suppress(KeyError):  # Strawberry's `clear` raises for a key never loaded
                loader.clear(user_id)
