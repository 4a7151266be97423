r"""User-user collaborative filtering: the first recommender, kept as a baseline for `bookrec evaluate`.

The service scores with the item model (domain/item_model.py); this module is what it
replaced, and the evaluation compares the two on the same split (QUALITY.md).

Notation. ``X`` is the m x n users-by-books matrix of stars (CSR, float32; X_ui in 1..5 where
user u rated book i, structurally absent otherwise) and ``B = 1[X != 0]`` its pattern.
Columns are book ids in ascending order, so "lower column" means "lower book id".

Similarity vectors. Each user's row becomes a vector t_u:

* ``similarity="rating"``: t_u = x_u or, with ``mean_centre``, t_ui = x_ui - mu_u on the books
  u rated (mu_u is u's mean star), which makes cosine a Pearson-like correlation;
* ``similarity="binary"``: t_u = b_u (who read what: the implicit-feedback view).

Cosine. With every row scaled to unit length, T^ = diag(1 / |t_u|) T, the similarities of a
batch of users (their rows stacked as T^_b) to every snapshot user are one sparse-times-dense
product, computed as its transpose so that the sparse side is the big matrix::

    S_b^T = T^ (T^_b)^T = T^[:, I_b] (T^_b[:, I_b])^T      (m x b)

where I_b are the books someone in the batch rated: a small batch multiplies only those
columns (one user: a few per cent of T^), a large one the whole matrix row by row.

Shrinkage (lambda = ``shrinkage``) distrusts similarities that rest on few co-rated books::

    s'_uv = s_uv * c_uv / (c_uv + lambda),    C_b^T = B (B_b)^T  (c_uv = books both rated)

and with binary similarity c_uv = s_uv |b_u| |b_v|, so no second product is needed.

Neighbours. N(u) = the k = ``neighbours`` users with the largest s'_uv > 0, v != u (the user's
own snapshot row is never its own neighbour; equal similarities go to the lower row). W_b
holds s'_uv on N(u) and zero elsewhere. A user with fewer than ``min_neighbours`` usable
neighbours gets the popularity ranking instead.

Scores. A top-N score, not a predicted rating::

    E_b = diag(1 / sum_v w_uv) W_b (A diag(q^-beta))

where A is chosen by ``aggregation``: B ("binary"), X / 5 ("rating") or 1[X >= 4] ("liked"),
q_i = |{u : X_ui != 0}| / m is book i's share of readers and beta = ``popularity_discount``;
the snapshot holds A diag(q^-beta), and W_b (at most k rows per user) gathers its rows.
Before the discount e_ui in [0, 1] is the similarity-weighted share of u's neighbours who read
(rated, liked) book i; the discount keeps bestsellers that everyone's neighbours read from
crowding out what this user's neighbours read unusually often. The classic explicit
prediction sum_v w_uv x_vi / sum_{v rated i} w_uv divides per book, so a book that one
neighbour gave five stars ties with one fifty neighbours loved, and obscure books rank first.

Popularity (``popularity``). p_i = q_i ("count") or |{u : X_ui >= 4}| / m ("liked"); the
popularity ranking is p descending, then book id ascending.

Ranking. Per user: the books with e_ui > 0 by e descending (COLLABORATIVE, score e_ui), then
the rest by p descending (POPULAR, score p_i) to fill ``max_recommendations``; books the user
rated are never ranked; equal scores go to the lower book id. Top-k selections (neighbours
and books) take, per row, every value at or above the k-th largest of the row's group maxima
(a cheap bound below the k-th largest value), then sort those few candidates with a stable
lexsort. Every row is computed independently of the others, so a user's list does not
depend on who else is in the batch.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp

from domain.models import MAX_RATING, Rating, RatingColumns, Recommendation, RecommendationSource
from domain.ranking import LIKED_RATING, SCORE_DECIMALS, index_books, top_k_per_column

Similarity = Literal["rating", "binary"]
Aggregation = Literal["binary", "rating", "liked"]
Popularity = Literal["count", "liked"]

COLLABORATIVE, POPULAR = RecommendationSource.COLLABORATIVE, RecommendationSource.POPULAR
CHUNK_USERS = 64  # users per pass: past ~128 the dense b-wide operands fall out of cache (bench/)
MAX_THREADS = 2  # chunks scored at once: the machines this runs on have two cores
GATHER_SHARE = 0.4  # _times_batch: below this share of entries, multiply only the batch's columns


@dataclass(frozen=True)  # not slots: settings read the defaults as class attributes
class RecommenderParams:
    """How the recommender measures similarity and ranks books; defaults chosen by `bookrec evaluate`.

    `similarity`, `mean_centre`, `aggregation`, `popularity` and `popularity_discount` shape
    the matrices a snapshot precomputes, so they act through the snapshot's params; the
    others act per request.
    """

    # Defaults: the best nDCG@10 of `bookrec evaluate --sweep` on the shared 5% goodbooks file (QUALITY.md).
    neighbours: int = 50
    min_neighbours: int = 3
    shrinkage: float = 0.0
    mean_centre: bool = False
    max_recommendations: int = 50
    similarity: Similarity = "rating"
    aggregation: Aggregation = "rating"
    popularity: Popularity = "liked"
    popularity_discount: float = 0.3

    def __post_init__(self) -> None:
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be >= 1 (got {self.neighbours})")
        if not 1 <= self.min_neighbours <= self.neighbours:
            raise ValueError(f"min_neighbours must be in 1..neighbours={self.neighbours} (got {self.min_neighbours})")
        if self.shrinkage < 0:
            raise ValueError(f"shrinkage must be >= 0 (got {self.shrinkage})")
        if self.max_recommendations < 1:
            raise ValueError(f"max_recommendations must be >= 1 (got {self.max_recommendations})")
        if self.similarity not in ("rating", "binary"):
            raise ValueError(f"similarity must be 'rating' or 'binary' (got {self.similarity!r})")
        if self.mean_centre and self.similarity == "binary":
            raise ValueError("mean_centre needs similarity='rating': binarised ratings have no mean to remove")
        if self.aggregation not in ("binary", "rating", "liked"):
            raise ValueError(f"aggregation must be 'binary', 'rating' or 'liked' (got {self.aggregation!r})")
        if self.popularity not in ("count", "liked"):
            raise ValueError(f"popularity must be 'count' or 'liked' (got {self.popularity!r})")
        if not 0 <= self.popularity_discount <= 1:
            raise ValueError(f"popularity_discount must be in 0..1 (got {self.popularity_discount})")


@dataclass(frozen=True, eq=False)
class ModelSnapshot:
    """An immutable users x books model, built off the event loop and swapped in whole.

    The public fields describe it (`version` goes into cache envelopes); the matrices are
    what `Recommender` scores against, and nothing writes to them after `build`.
    """

    version: str
    built_at: float
    build_seconds: float
    n_users: int
    n_books: int
    n_ratings: int
    user_ids: tuple[str, ...]
    params: RecommenderParams
    book_ids: np.ndarray = field(repr=False)  # column -> book id, ascending
    ratings: sp.csr_array = field(repr=False)  # X (m x n)
    unit_vectors: sp.csr_array = field(repr=False)  # T^ (m x n)
    unit_vectors_by_book: sp.csc_array = field(repr=False)  # T^ again, by column: small batches take a few columns
    pattern: sp.csr_array = field(repr=False)  # B (m x n), for shrinkage with rating similarity
    pattern_by_book: sp.csc_array = field(repr=False)  # B again, by column
    vector_norms: np.ndarray = field(repr=False)  # |t_u|, for shrinkage with binary similarity
    evidence: sp.csr_array = field(repr=False)  # A (m x n)
    popularity: np.ndarray = field(repr=False)  # p per column, float64
    popular_order: np.ndarray = field(repr=False)  # columns by p desc, book id asc
    user_rows: Mapping[str, int] = field(repr=False)

    @classmethod
    def build(cls, columns: RatingColumns, params: RecommenderParams) -> ModelSnapshot:
        started = time.perf_counter()
        book_ids, book_columns = index_books(np.asarray(columns.book_ids))
        n_users, n_books = len(columns.user_ids), book_ids.size
        ratings = _ratings_matrix(np.asarray(columns.user_codes), book_columns, np.asarray(columns.ratings), (n_users, n_books))
        unit_vectors, vector_norms = _similarity_vectors(ratings, params)
        unit_vectors_by_book = unit_vectors.tocsc()
        ones = np.ones(ratings.nnz, np.float32)
        liked = (ratings.data >= LIKED_RATING).astype(np.float32)
        reader_share = np.bincount(ratings.indices, minlength=n_books) / max(n_users, 1)
        popularity = reader_share
        if params.popularity == "liked":
            popularity = np.bincount(ratings.indices, liked, minlength=n_books) / max(n_users, 1)
        popular_order = np.lexsort((np.arange(n_books), -popularity))
        for array in (book_ids, vector_norms, popularity, popular_order):
            array.setflags(write=False)
        return cls(
            version=_content_version(ratings, book_ids, columns.user_ids, params),
            built_at=time.time(),
            build_seconds=time.perf_counter() - started,
            n_users=n_users,
            n_books=n_books,
            n_ratings=ratings.nnz,
            user_ids=tuple(columns.user_ids),
            params=params,
            book_ids=book_ids,
            ratings=ratings,
            unit_vectors=unit_vectors,
            unit_vectors_by_book=unit_vectors_by_book,
            pattern=_with_values(ratings, ones),
            pattern_by_book=_with_values(unit_vectors_by_book, ones),
            vector_norms=vector_norms,
            evidence=_evidence_matrix(ratings, params, liked, reader_share),
            popularity=popularity,
            popular_order=popular_order,
            user_rows={user: row for row, user in enumerate(columns.user_ids)},
        )

    @classmethod
    def empty(cls, params: RecommenderParams | None = None) -> ModelSnapshot:
        """The model before any rating exists: every list is the (empty) popularity ranking."""
        nothing = RatingColumns((), np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float32))
        return cls.build(nothing, params or RecommenderParams())

    def popular_book_ids(self, limit: int) -> list[int]:
        """Book ids by popularity p (see the module docstring), most popular first."""
        return self.book_ids[self.popular_order[: max(limit, 0)]].tolist()

    def has_user(self, user_id: str) -> bool:
        return user_id in self.user_rows

    def columns_of(self, book_ids: np.ndarray) -> np.ndarray:
        """Column of each book id; -1 for a book nobody in the snapshot has rated."""
        if self.n_books == 0:
            return np.full(book_ids.shape, -1, dtype=np.int64)
        found = np.searchsorted(self.book_ids, book_ids).clip(max=self.n_books - 1)
        return np.where(self.book_ids[found] == book_ids, found, -1)


class Recommender:
    """Scores batches of users against a snapshot; holds nothing but its params."""

    def __init__(self, params: RecommenderParams) -> None:
        self.params = params

    def recommend_batch(
        self,
        snapshot: ModelSnapshot,
        user_ids: Sequence[str],
        fresh_ratings: Mapping[str, Sequence[Rating]],
    ) -> list[tuple[Recommendation, ...]]:
        """Each user's top `max_recommendations`, in the order of `user_ids`, in one vectorised pass.

        `fresh_ratings[user]`, when present, replaces the user's snapshot row, so a rating made
        after the snapshot was built counts at once (books the snapshot has never seen rated
        can be neither neighbours' evidence nor recommendations, so they are left out).
        """
        if snapshot.n_books == 0:
            return [() for _ in user_ids]
        chunks = [user_ids[start : start + CHUNK_USERS] for start in range(0, len(user_ids), CHUNK_USERS)]
        if len(chunks) == 1:
            return self._recommend_chunk(snapshot, chunks[0], fresh_ratings)
        # Chunks are independent and numpy/scipy release the GIL in the heavy steps, so a
        # second core takes every other chunk; results keep the order of `user_ids`.
        lists = _chunk_pool().map(lambda chunk: self._recommend_chunk(snapshot, chunk, fresh_ratings), chunks)
        return [items for chunk_lists in lists for items in chunk_lists]

    def _recommend_chunk(
        self, snapshot: ModelSnapshot, user_ids: Sequence[str], fresh_ratings: Mapping[str, Sequence[Rating]]
    ) -> list[tuple[Recommendation, ...]]:
        batch = _BatchRatings.of(snapshot, user_ids, fresh_ratings)
        evidence = self._evidence(snapshot, batch)  # E_b^T (n x b)
        keys = np.where(evidence > 0, evidence.astype(np.float64) + 1.0, snapshot.popularity[:, None])  # CF above every p <= 1
        keys[batch.columns, batch.rows] = -np.inf
        users, books = top_k_per_column(keys, self.params.max_recommendations, floor=-np.inf)
        collaborative = evidence[books, users] > 0
        scores = np.where(collaborative, evidence[books, users], snapshot.popularity[books]).round(SCORE_DECIMALS)
        items = [
            Recommendation(book_id, score, COLLABORATIVE if from_neighbours else POPULAR)
            for book_id, score, from_neighbours in zip(snapshot.book_ids[books].tolist(), scores.tolist(), collaborative.tolist())
        ]
        bounds = np.searchsorted(users, np.arange(len(user_ids) + 1)).tolist()
        return [tuple(items[bounds[row] : bounds[row + 1]]) for row in range(len(user_ids))]

    def _evidence(self, snapshot: ModelSnapshot, batch: _BatchRatings) -> np.ndarray:
        """E_b^T (n x b, float32); all zero for the users who fall back to popularity.

        W_b A is gathered row by row from A's CSR arrays into one bincount: each user has at
        most k neighbour rows, so this is cheaper than building sparse matrices per call.
        """
        size = len(batch.own_rows)
        if snapshot.n_users == 0:
            return np.zeros((snapshot.n_books, size), np.float32)
        similarities = self._similarities(snapshot, batch)
        users, neighbours = top_k_per_column(similarities, self.params.neighbours, floor=0.0)
        usable = np.bincount(users, minlength=size) >= self.params.min_neighbours
        keep = usable[users]
        users, neighbours = users[keep], neighbours[keep]
        weights = similarities[neighbours, users]
        evidence = snapshot.evidence
        starts = evidence.indptr[neighbours]
        lengths = evidence.indptr[neighbours + 1] - starts
        entries = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        cells = evidence.indices[entries].astype(np.int64) * size + np.repeat(users, lengths)
        summed = np.bincount(cells, evidence.data[entries] * np.repeat(weights, lengths), minlength=snapshot.n_books * size)
        total_weight = np.bincount(users, weights, minlength=size)
        return (summed.reshape(snapshot.n_books, size) / np.where(total_weight > 0, total_weight, 1)).astype(np.float32)

    def _similarities(self, snapshot: ModelSnapshot, batch: _BatchRatings) -> np.ndarray:
        """S'_b^T (m x b, float32): shrunk cosine to every snapshot user; 0 against the user's own row."""
        size = len(batch.own_rows)
        unit, norms = _unit_values(batch.rows, batch.stars, size, snapshot.params)
        vectors = np.zeros((snapshot.n_books, size), np.float32)  # T^_b^T, dense: the b-wide side of the product
        vectors[batch.columns, batch.rows] = unit
        books = np.unique(batch.columns)
        transposed = _times_batch(snapshot.unit_vectors, snapshot.unit_vectors_by_book, vectors, books)  # S_b^T (m x b)
        shrinkage = np.float32(self.params.shrinkage)
        if shrinkage > 0:
            if snapshot.params.similarity == "binary":
                common = np.rint(transposed * snapshot.vector_norms[:, None] * norms[None, :])
            else:
                pattern = np.zeros((snapshot.n_books, size), np.float32)
                pattern[batch.columns, batch.rows] = 1
                common = _times_batch(snapshot.pattern, snapshot.pattern_by_book, pattern, books)
            transposed *= common / (common + shrinkage)
        in_snapshot = np.flatnonzero(batch.own_rows >= 0)
        transposed[batch.own_rows[in_snapshot], in_snapshot] = 0
        return transposed


@functools.cache
def _chunk_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(MAX_THREADS, os.cpu_count() or 1), thread_name_prefix="recommender")


def _times_batch(by_user: sp.csr_array, by_book: sp.csc_array, batch_side: np.ndarray, books: np.ndarray) -> np.ndarray:
    """M @ D for a snapshot matrix M (m x n) and a dense, mostly-zero batch side D (n x b).

    Only the rows `books` of D (the books someone in the batch rated) hold anything. When their
    columns of M hold a small share of M's entries (one user: a few per cent), the product
    takes just those columns; otherwise the full row-wise product is faster (bench/). Both add
    each user's terms in ascending book order, so the two give identical floats.
    """
    selected = int(np.diff(by_book.indptr)[books].sum())
    if selected < GATHER_SHARE * by_book.nnz:
        return by_book[:, books] @ batch_side[books]
    return by_user @ batch_side


def _similarity_vectors(ratings: sp.csr_array, params: RecommenderParams) -> tuple[sp.csr_array, np.ndarray]:
    """T^ (rows of unit length; empty rows stay zero) and |t_u|."""
    row_of_entry = np.repeat(np.arange(ratings.shape[0]), np.diff(ratings.indptr))
    unit, norms = _unit_values(row_of_entry, ratings.data, ratings.shape[0], params)
    return _with_values(ratings, unit), norms


def _unit_values(row_of_entry: np.ndarray, stars: np.ndarray, n_rows: int, params: RecommenderParams) -> tuple[np.ndarray, np.ndarray]:
    """The entries of t_u / |t_u| and |t_u|: one definition for the snapshot and for a batch."""
    if params.similarity == "binary":
        values = np.ones(stars.size, np.float64)
    elif params.mean_centre:
        counts = np.bincount(row_of_entry, minlength=n_rows)
        sums = np.bincount(row_of_entry, stars, minlength=n_rows)
        values = stars - (sums / np.maximum(counts, 1))[row_of_entry]
    else:
        values = stars.astype(np.float64)
    norms = np.sqrt(np.bincount(row_of_entry, values * values, minlength=n_rows))
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return (values * inverse[row_of_entry]).astype(np.float32), norms.astype(np.float32)


@dataclass(frozen=True)
class _BatchRatings:
    """The batch's rows of X as entries sorted by row then column (fresh ratings replacing
    snapshot rows), and each user's snapshot row or -1."""

    rows: np.ndarray  # int64
    columns: np.ndarray  # int64
    stars: np.ndarray  # float32
    own_rows: np.ndarray  # int64

    @classmethod
    def of(cls, snapshot: ModelSnapshot, user_ids: Sequence[str], fresh_ratings: Mapping[str, Sequence[Rating]]) -> _BatchRatings:
        own_rows = np.fromiter((snapshot.user_rows.get(user, -1) for user in user_ids), dtype=np.int64, count=len(user_ids))
        columns: list[np.ndarray] = []
        stars: list[np.ndarray] = []
        ratings = snapshot.ratings
        for user, row in zip(user_ids, own_rows.tolist()):
            if user in fresh_ratings:
                latest = {rating.book_id: rating.rating for rating in fresh_ratings[user]}  # last one wins
                found = snapshot.columns_of(np.fromiter(latest, dtype=np.int64, count=len(latest)))
                known = found >= 0
                order = np.argsort(found[known])
                columns.append(found[known][order])
                stars.append(np.fromiter(latest.values(), dtype=np.float32, count=len(latest))[known][order])
            elif row >= 0:
                start, end = ratings.indptr[row], ratings.indptr[row + 1]
                columns.append(ratings.indices[start:end])
                stars.append(ratings.data[start:end])
            else:
                columns.append(np.empty(0, np.int64))
                stars.append(np.empty(0, np.float32))
        lengths = [row_columns.size for row_columns in columns]
        return cls(
            rows=np.repeat(np.arange(len(user_ids)), lengths),
            columns=np.concatenate(columns).astype(np.int64) if columns else np.empty(0, np.int64),
            stars=np.concatenate(stars).astype(np.float32) if stars else np.empty(0, np.float32),
            own_rows=own_rows,
        )


def _with_values(matrix: sp.csr_array | sp.csc_array, values: np.ndarray) -> sp.csr_array | sp.csc_array:
    """The same sparsity pattern (and format) with other values; index arrays shared, not copied."""
    return type(matrix)((values, matrix.indices, matrix.indptr), shape=matrix.shape)


def _ratings_matrix(user_codes: np.ndarray, book_columns: np.ndarray, stars: np.ndarray, shape: tuple[int, int]) -> sp.csr_array:
    """X as canonical CSR (sorted columns); a repeated (user, book) pair keeps its last rating."""
    matrix = sp.csr_array((stars.astype(np.float32), (user_codes, book_columns)), shape=shape)
    if matrix.nnz < stars.size:  # the conversion summed repeated pairs; redo keeping the last of each
        pair = user_codes.astype(np.int64) * shape[1] + book_columns
        order = np.argsort(pair, kind="stable")
        last = order[np.append(pair[order][1:] != pair[order][:-1], True)]
        matrix = sp.csr_array((stars[last].astype(np.float32), (user_codes[last], book_columns[last])), shape=shape)
    matrix.sort_indices()
    return matrix


def _evidence_matrix(ratings: sp.csr_array, params: RecommenderParams, liked: np.ndarray, reader_share: np.ndarray) -> sp.csr_array:
    """A diag(q^-beta): what one neighbour's row contributes per book (see the module docstring)."""
    if params.aggregation == "binary":
        values = np.ones(ratings.nnz, np.float32)
    elif params.aggregation == "rating":
        values = ratings.data / np.float32(MAX_RATING)
    else:
        values = liked
    if params.popularity_discount:
        values = values * (reader_share ** -params.popularity_discount).astype(np.float32)[ratings.indices]
    if params.aggregation != "liked":
        return _with_values(ratings, values)
    # eliminate_zeros works in place, so "liked" gets index arrays of its own, not X's.
    evidence = sp.csr_array((values, ratings.indices.copy(), ratings.indptr.copy()), shape=ratings.shape)
    evidence.eliminate_zeros()
    return evidence


def _content_version(ratings: sp.csr_array, book_ids: np.ndarray, user_ids: Sequence[str], params: RecommenderParams) -> str:
    """Same ratings and params give the same version, so cached lists survive a rebuild of unchanged data."""
    digest = hashlib.blake2b(digest_size=8)
    for array in (ratings.indptr, ratings.indices, ratings.data, book_ids):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("\x1f".join(user_ids).encode())
    digest.update(repr((params.similarity, params.mean_centre, params.aggregation, params.popularity, params.popularity_discount)).encode())
    return digest.hexdigest()
