"""Deterministic synthetic ratings with the shape of real ones, for benchmarks beyond the real data's scale.

The model, chosen so that collaborative filtering has something to find:
- book popularity follows a power law (book 1 the most popular, as in goodbooks);
- users' activity is log-normal (many light readers, a few heavy ones, at least a few ratings each);
- every user and book has a latent taste vector; a user picks books without
  replacement with probability proportional to popularity x exp(taste . book),
  so users with similar tastes read similar books;
- the rating is a noisy score (user bias + book bias + taste . book), cut into
  1..5 stars at the quantiles that reproduce goodbooks' star shares (mean ~3.9).

Sampling without replacement uses the Gumbel-top-k trick over a batch of users
at a time: add Gumbel noise to each user's log-weights over all books and keep
the c largest. Vectorised, exact, and bounded in memory by the batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from domain.models import Book

# Star shares of ratings-5pct-users.csv (goodbooks-10k): 2.2% ones ... 32.7% fives, mean 3.90.
GOODBOOKS_STAR_SHARES = (0.0218, 0.0622, 0.2329, 0.3559, 0.3272)

TASTE_DIMS = 8
# Calibrated on goodbooks: the most-read 10% of books get ~55% of ratings (real: 53%), and
# user-user CF's hit rate on a held-out rating is ~1.8x popularity's (taste 1.0 gave only 1.1x).
POPULARITY_EXPONENT = 1.0  # Zipf: weight of the book at popularity rank r is 1 / r
SELECTION_TASTE = 2.0  # how strongly taste (vs popularity) decides what a user reads
ACTIVITY_SIGMA = 0.8  # log-normal spread of ratings per user
MIN_RATINGS_PER_USER = 5
USER_BIAS_SD, BOOK_BIAS_SD, TASTE_WEIGHT, NOISE_SD = 0.5, 0.4, 1.0, 0.6  # the rating score's parts
USERS_PER_BATCH = 1024  # fixed, because the random streams (and so the output) depend on it
MAX_THREADS = 4  # each thread holds ~200 MB of batch temporaries at 10k books
PUBLICATION_YEARS = (1900, 2018)


@dataclass(frozen=True, slots=True)
class SyntheticData:
    """Ratings sorted by user then book; ids are 1-based like goodbooks'."""

    user_ids: np.ndarray  # int32
    book_ids: np.ndarray  # int32
    ratings: np.ndarray  # int8, 1..5
    books: list[Book]


def check_shape(users: int, books: int, ratings: int) -> None:
    """Raise ValueError (worded for the command line) when no data set has this shape."""
    if users < 1 or books < 1:
        raise ValueError("--users and --books must be at least 1")
    least = min(MIN_RATINGS_PER_USER, books) * users
    if not least <= ratings <= users * books:
        raise ValueError(f"--ratings must be between {least:,} ({min(MIN_RATINGS_PER_USER, books)} per user) and {users * books:,} (every user rates every book)")


def generate(
    users: int, books: int, ratings: int, seed: int, *, on_progress: Callable[[int], None] | None = None
) -> SyntheticData:
    """Exactly `ratings` distinct (user, book) ratings; the same arguments give the same data.

    `on_progress(n)` is called after each batch with the number of users just done.
    """
    check_shape(users, books, ratings)
    rng = np.random.default_rng(seed)
    counts = _ratings_per_user(rng, users, books, ratings)
    user_taste = rng.standard_normal((users, TASTE_DIMS), dtype=np.float32) / np.float32(np.sqrt(TASTE_DIMS))
    book_taste = rng.standard_normal((books, TASTE_DIMS), dtype=np.float32)
    log_popularity = -POPULARITY_EXPONENT * np.log(np.arange(1, books + 1, dtype=np.float32))

    user_ids = np.repeat(np.arange(1, users + 1, dtype=np.int32), counts)
    book_ids = np.empty(ratings, dtype=np.int32)
    affinity = np.empty(ratings, dtype=np.float32)
    starts = np.concatenate(([0], np.cumsum(counts)))[:-1]  # where each user's ratings begin
    by_activity = np.argsort(counts, kind="stable")  # batches of like-active users keep the top-k work small

    def pick_books(first: int, batch_rng: np.random.Generator) -> int:
        """Sample the books of one batch of users; each batch writes only its users' slices of the columns."""
        batch = by_activity[first : first + USERS_PER_BATCH]
        batch_affinity = user_taste[batch] @ book_taste.T
        keys = batch_rng.standard_exponential(batch_affinity.shape, dtype=np.float32)
        np.log(np.maximum(keys, np.finfo(np.float32).tiny, out=keys), out=keys)  # float32 can draw 0
        keys *= -1  # Gumbel noise
        keys += np.float32(SELECTION_TASTE) * batch_affinity
        keys += log_popularity
        rows, columns = _top_per_row(keys, counts[batch])
        row_starts = np.concatenate(([0], np.cumsum(counts[batch])))[:-1]
        positions = np.arange(len(rows)) + np.repeat(starts[batch] - row_starts, counts[batch])
        book_ids[positions] = columns + 1
        affinity[positions] = batch_affinity[rows, columns]
        return len(batch)

    # Each batch has its own generator, so threads (numpy releases the GIL) cannot change the output.
    firsts = range(0, users, USERS_PER_BATCH)
    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, MAX_THREADS)) as pool:
        for done in pool.map(pick_books, firsts, rng.spawn(len(firsts))):
            if on_progress:
                on_progress(done)

    score = (
        rng.normal(0, USER_BIAS_SD, users).astype(np.float32)[user_ids - 1]
        + rng.normal(0, BOOK_BIAS_SD, books).astype(np.float32)[book_ids - 1]
        + np.float32(TASTE_WEIGHT) * affinity
        + rng.normal(0, NOISE_SD, ratings).astype(np.float32)
    )
    cuts = np.quantile(score, np.cumsum(GOODBOOKS_STAR_SHARES)[:-1])
    stars = (np.searchsorted(cuts, score) + 1).astype(np.int8)
    return SyntheticData(user_ids, book_ids, stars, _books(rng, books, book_ids, stars))


def _ratings_per_user(rng: np.random.Generator, users: int, books: int, ratings: int) -> np.ndarray:
    """Log-normal activity clipped to [a few, every book], scaled to sum to exactly `ratings`."""
    low, high = min(MIN_RATINGS_PER_USER, books), books
    activity = rng.lognormal(0.0, ACTIVITY_SIGMA, users)

    def counts_at(scale: float) -> np.ndarray:
        return np.clip(np.floor(activity * scale), low, high).astype(np.int64)

    # The largest scale whose counts do not exceed `ratings` (the sum grows with the scale) ...
    below, above = 0.0, high / activity.min() + 1.0
    for _ in range(100):
        middle = (below + above) / 2
        below, above = (middle, above) if counts_at(middle).sum() <= ratings else (below, middle)
    counts = counts_at(below)
    # ... then one more rating each for the users closest to their next one, until the sum is exact.
    remainder = activity * below - np.floor(activity * below)
    while (missing := ratings - int(counts.sum())) > 0:
        room = np.flatnonzero(counts < high)
        counts[room[np.argsort(-remainder[room], kind="stable")[:missing]]] += 1
    return counts


def _top_per_row(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of the counts[i] largest keys of each row i, rows in order and columns ascending."""
    books = keys.shape[1]
    widest = int(counts.max())
    top = np.argpartition(keys, books - widest, axis=1)[:, books - widest :]
    rank = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, rank, axis=1)  # each row's best first
    chosen = np.arange(widest) < counts[:, None]
    top = np.sort(np.where(chosen, top, books), axis=1)  # unchosen sort last as `books`
    return np.repeat(np.arange(len(counts)), counts), top[chosen]


def _books(rng: np.random.Generator, books: int, book_ids: np.ndarray, stars: np.ndarray) -> list[Book]:
    """Titles and authors by number; counts and averages from the generated ratings themselves."""
    rated = np.bincount(book_ids, minlength=books + 1)[1:]
    star_sums = np.bincount(book_ids, weights=stars, minlength=books + 1)[1:]
    authors = max(1, books // 3)
    first_author = rng.integers(1, authors + 1, books)
    second_author = np.where(rng.random(books) < 0.1, rng.integers(1, authors + 1, books), 0)
    years = rng.integers(*PUBLICATION_YEARS, books)
    return [
        Book(
            id=index + 1,
            title=f"Synthetic Book {index + 1}",
            authors=(f"Author {first_author[index]}",) + ((f"Author {second_author[index]}",) if second_author[index] else ()),
            publication_year=int(years[index]),
            average_rating=round(float(star_sums[index] / rated[index]), 2) if rated[index] else None,
            ratings_count=int(rated[index]),
        )
        for index in range(books)
    ]
