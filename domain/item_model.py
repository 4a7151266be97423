r"""The item model: a books x books weight matrix B, trained apart from serving and scored in batches.

Notation. ``X`` is the m x n users-by-books input matrix (CSR; columns are book ids ascending):
what it holds is ``params.input``:

* ``"binary"``: x_ui = 1 where u rated i (who read what: the implicit-feedback view);
* ``"liked"``: x_ui = 1 where u rated i 4 or 5 stars, else 0;
* ``"stars"``: x_ui = r_ui / 5.

Training produces B (n x n). Two algorithms write the same artifact:

* **EASE** (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019), for
  catalogues up to ``params.ease_max_books``: the ridge regression of every column of X on the
  others with a zero diagonal, in closed form::

      G = X^T X + lambda I,   P = G^-1,   B_ij = -P_ij / P_jj  (i != j),   B_jj = 0

  G is dense (n^2 float64: 0.8 GB at 10,000 books); P comes from a Cholesky factorisation
  (LAPACK potrf/potri, in place), which halves the work of a general inverse.
* **Item-kNN** above that bound: cosine similarity of the columns of X,
  B_ij = (X^T X)_ij / (|x_i| |x_j|), B_jj = 0, computed ``params.block_books`` columns at a
  time (X^T X[:, J] is a sparse product), so peak memory is O(n x block), never n^2.

Pruning. Row i of B says how much having read book i counts for every other book. Each row
keeps its ``params.weights_per_book`` entries of largest magnitude (negative EASE weights
carry information too). On goodbooks this loses nothing and regularises a little (QUALITY.md).
The rows, sorted by weight, are also "readers of i also read" (similar books).

Scoring. For a batch of users with input rows X_b (b x n, from their own ratings, read fresh
on each miss)::

    S_b = X_b B          (one sparse product: each rated book adds its row of B)

Ranking. Per user: the books with s_uj > 0 by s descending (COLLABORATIVE, score s_uj), then
the rest by popularity p descending (POPULAR, score p_j) to fill the list; books the user rated
are never ranked; equal scores go to the lower book id. p_j is the share of training users who
rated j (``"count"``) or rated it 4 or 5 (``"liked"``). A user with no rating the model knows
gets the popularity ranking alone. Each row is independent of the others, so a user's list does
not depend on who else is in the batch.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from domain.models import MAX_RATING, ArtifactError, ModelArtifact, Rating, RatingColumns, Recommendation, RecommendationSource
from domain.ranking import LIKED_RATING, SCORE_DECIMALS, index_books, top_k_per_column

Input = Literal["binary", "liked", "stars"]
Algorithm = Literal["auto", "ease", "knn"]
Popularity = Literal["count", "liked"]

COLLABORATIVE, POPULAR = RecommendationSource.COLLABORATIVE, RecommendationSource.POPULAR
ARTIFACT_FORMAT = 1
ARRAY_NAMES = ("book_ids", "popularity", "weights_indptr", "weights_indices", "weights_data", "user_offsets", "user_bytes")
ROW_BLOCK = 1024  # rows of B formed and pruned at a time: bounds the dense scratch to ROW_BLOCK x n


@dataclass(frozen=True)
class ItemModelParams:
    """How the item model is trained; defaults chosen by `bookrec evaluate --sweep` (QUALITY.md)."""

    input: Input = "stars"
    l2: float = 20.0  # EASE's lambda
    weights_per_book: int = 50
    algorithm: Algorithm = "auto"
    ease_max_books: int = 20_000
    popularity: Popularity = "liked"
    block_books: int = 1024  # item-kNN: columns of X^T X computed at a time

    def __post_init__(self) -> None:
        if self.input not in ("binary", "liked", "stars"):
            raise ValueError(f"input must be 'binary', 'liked' or 'stars' (got {self.input!r})")
        if self.l2 <= 0:
            raise ValueError(f"l2 must be > 0 (got {self.l2})")
        if self.weights_per_book < 1:
            raise ValueError(f"weights_per_book must be >= 1 (got {self.weights_per_book})")
        if self.algorithm not in ("auto", "ease", "knn"):
            raise ValueError(f"algorithm must be 'auto', 'ease' or 'knn' (got {self.algorithm!r})")
        if self.ease_max_books < 1 or self.block_books < 1:
            raise ValueError("ease_max_books and block_books must be >= 1")
        if self.popularity not in ("count", "liked"):
            raise ValueError(f"popularity must be 'count' or 'liked' (got {self.popularity!r})")

    def algorithm_for(self, n_books: int) -> Literal["ease", "knn"]:
        if self.algorithm != "auto":
            return self.algorithm
        return "ease" if n_books <= self.ease_max_books else "knn"


@dataclass(frozen=True, eq=False)
class ItemModel:
    """A trained model, immutable once built: what every serving process scores with.

    `fallback` marks the popularity-only model a process serves before any model has been
    trained; its lists are never cached, so the first trained model shows at once.
    """

    version: str
    book_ids: np.ndarray = field(repr=False)  # column -> book id, ascending, int64
    weights: sp.csr_array = field(repr=False)  # B (n x n), float32
    popularity: np.ndarray = field(repr=False)  # p per column, float64
    popular_order: np.ndarray = field(repr=False)  # columns by p desc, book id asc
    manifest: Mapping[str, Any] = field(repr=False, default_factory=dict)
    fallback: bool = False
    # The users it was trained on, as UTF-8 bytes and offsets: whom "refresh every user" means in a
    # serving process, which never reads the whole ratings table.
    user_offsets: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(1, np.int64))
    user_bytes: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0, np.uint8))

    @property
    def n_books(self) -> int:
        return int(self.book_ids.size)

    @property
    def input(self) -> Input:
        """What a rating becomes in X, as at training: scoring must build X_b the same way."""
        return (self.manifest.get("params") or {}).get("input", "binary")  # type: ignore[no-any-return]

    @property
    def created_at(self) -> float:
        """When the model was trained (unix seconds)."""
        return float(self.manifest.get("created_at", 0.0))

    def user_ids(self) -> list[str]:
        """The users the model was trained on, in training order."""
        data, offsets = self.user_bytes.tobytes(), self.user_offsets.tolist()
        return [data[start:stop].decode() for start, stop in zip(offsets, offsets[1:])]

    @classmethod
    def build(cls, book_ids: np.ndarray, weights: sp.csr_array, popularity: np.ndarray, *,
              manifest: Mapping[str, Any] | None = None, fallback: bool = False,
              users: tuple[np.ndarray, np.ndarray] | None = None) -> ItemModel:
        popular_order = np.lexsort((np.arange(book_ids.size), -popularity))
        offsets, data = users if users is not None else (np.zeros(1, np.int64), np.empty(0, np.uint8))
        return cls(
            version=str((manifest or {}).get("version") or content_version(book_ids, weights, popularity)),
            book_ids=book_ids, weights=weights, popularity=popularity, popular_order=popular_order,
            manifest=dict(manifest or {}), fallback=fallback, user_offsets=offsets, user_bytes=data,
        )

    def with_manifest(self, manifest: Mapping[str, Any]) -> ItemModel:
        """The same model with more manifest entries (the store it was trained on, figures measured after training)."""
        return ItemModel.build(self.book_ids, self.weights, self.popularity, manifest={**self.manifest, **manifest},
                               fallback=self.fallback, users=(self.user_offsets, self.user_bytes))

    @classmethod
    def popular_only(cls, popular_book_ids: Sequence[int]) -> ItemModel:
        """The fallback: a ranking of books by the catalogue's own counts, no weights (score 1 - rank / n)."""
        order = np.asarray(popular_book_ids, dtype=np.int64)
        book_ids = np.sort(order)
        rank = np.empty(order.size, np.float64)
        rank[np.searchsorted(book_ids, order)] = np.arange(order.size)
        popularity = 1.0 - rank / max(order.size, 1)
        weights = sp.csr_array((book_ids.size, book_ids.size), dtype=np.float32)
        manifest = {"version": "popular-" + content_version(book_ids, weights, popularity), "created_at": time.time(), "n_books": order.size}
        return cls.build(book_ids, weights, popularity, manifest=manifest, fallback=True)

    def popular_book_ids(self, limit: int) -> list[int]:
        """Book ids by popularity p, most popular first."""
        return self.book_ids[self.popular_order[: max(limit, 0)]].tolist()

    def columns_of(self, book_ids: np.ndarray) -> np.ndarray:
        """Column of each book id; -1 for a book the model does not hold."""
        if self.n_books == 0:
            return np.full(book_ids.shape, -1, dtype=np.int64)
        found = np.searchsorted(self.book_ids, book_ids).clip(max=self.n_books - 1)
        return np.where(self.book_ids[found] == book_ids, found, -1)

    # The artifact

    def to_artifact(self) -> ModelArtifact:
        arrays = {
            "book_ids": self.book_ids,
            "popularity": self.popularity,
            "weights_indptr": self.weights.indptr,
            "weights_indices": self.weights.indices,
            "weights_data": self.weights.data,
            "user_offsets": self.user_offsets,
            "user_bytes": self.user_bytes,
        }
        return ModelArtifact({**self.manifest, "version": self.version, "format": ARTIFACT_FORMAT}, arrays)

    @classmethod
    def from_artifact(cls, artifact: ModelArtifact) -> ItemModel:
        """The model an artifact holds, its arrays used as they are (memory-mapped ones stay mapped).

        Checks what scoring relies on, so that a foreign or damaged artifact is refused here
        with one line rather than failing inside a request.
        """
        manifest, arrays = artifact.manifest, artifact.arrays
        where = f"model {manifest.get('version', '?')}"
        if manifest.get("format") != ARTIFACT_FORMAT:
            raise ArtifactError(f"{where} has artifact format {manifest.get('format')!r}; this version reads {ARTIFACT_FORMAT}")
        missing = [name for name in ARRAY_NAMES if name not in arrays]
        if missing:
            raise ArtifactError(f"{where} lacks the arrays {', '.join(missing)}")
        book_ids, popularity = arrays["book_ids"], arrays["popularity"]
        indptr, indices, data = arrays["weights_indptr"], arrays["weights_indices"], arrays["weights_data"]
        n = book_ids.size
        problems = [
            (book_ids.dtype != np.int64 or book_ids.ndim != 1, "book_ids is not a 1-d int64 array"),
            (n > 1 and bool(np.any(np.diff(book_ids) <= 0)), "book_ids are not strictly ascending"),
            (popularity.shape != (n,) or popularity.dtype != np.float64, "popularity does not match book_ids"),
            (indptr.shape != (n + 1,) or indptr.dtype != indices.dtype, "weights_indptr does not match book_ids"),
            (indices.shape != data.shape or data.dtype != np.float32, "weights_indices and weights_data differ"),
            (n > 0 and (indptr[0] != 0 or indptr[-1] != indices.size), "weights_indptr does not span the weights"),
            (indices.size > 0 and (int(indices.min()) < 0 or int(indices.max()) >= n), "weights_indices fall outside the catalogue"),
            (arrays["user_offsets"].dtype != np.int64 or arrays["user_bytes"].dtype != np.uint8
             or arrays["user_offsets"][-1:].tolist() != [arrays["user_bytes"].size], "user_offsets do not span user_bytes"),
        ]
        for failed, reason in problems:
            if failed:
                raise ArtifactError(f"{where} is malformed: {reason}")
        weights = sp.csr_array((data, indices, indptr), shape=(n, n), copy=False)
        weights.has_sorted_indices = True  # written canonical by training; never re-sorted (the arrays may be read-only maps)
        return cls.build(book_ids, weights, popularity, manifest=manifest, users=(arrays["user_offsets"], arrays["user_bytes"]))


class ItemRecommender:
    """Scores batches of users with an item model; holds nothing but the list length (the rest is the model's)."""

    def __init__(self, max_recommendations: int) -> None:
        if max_recommendations < 1:
            raise ValueError(f"max_recommendations must be >= 1 (got {max_recommendations})")
        self.max_recommendations = max_recommendations

    def recommend_batch(
        self, model: ItemModel, user_ids: Sequence[str], ratings: Mapping[str, Sequence[Rating]]
    ) -> list[tuple[Recommendation, ...]]:
        """Each user's top `max_recommendations`, in the order of `user_ids`, in one sparse product.

        `ratings[user]` are the user's own ratings (read fresh); books the model does not hold
        are left out; a user absent from `ratings` has none.
        """
        if model.n_books == 0 or not user_ids:
            return [() for _ in user_ids]
        size = len(user_ids)
        rows, columns, stars = _batch_entries(model, user_ids, ratings)
        # The batch's index arrays take B's index type: a mismatch makes scipy convert all of B's on every call.
        index_type = model.weights.indices.dtype
        indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=size)))).astype(index_type)
        batch = sp.csr_array((input_values(stars, model.input), columns.astype(index_type), indptr), shape=(size, model.n_books))
        scores = batch @ model.weights  # S_b (b x n), sparse
        # Ranking keys, books x users as top_k_per_column wants: s_uj where positive, else p_j - 1 (<= 0),
        # so every positive score ranks above every popular fill without mixing their scales.
        keys = np.repeat((model.popularity - 1.0).astype(np.float32)[:, None], size, axis=1)
        positive = scores.data > 0
        keys[scores.indices[positive], np.repeat(np.arange(size), np.diff(scores.indptr))[positive]] = scores.data[positive]
        keys[columns, rows] = -np.inf
        users, books = top_k_per_column(keys, self.max_recommendations, floor=-np.inf)
        picked = keys[books, users]
        collaborative = picked > 0
        values = np.where(collaborative, picked, model.popularity[books]).round(SCORE_DECIMALS)
        items = [
            Recommendation(book_id, score, COLLABORATIVE if personal else POPULAR)
            for book_id, score, personal in zip(model.book_ids[books].tolist(), values.tolist(), collaborative.tolist())
        ]
        bounds = np.searchsorted(users, np.arange(size + 1)).tolist()
        return [tuple(items[bounds[row] : bounds[row + 1]]) for row in range(size)]


def _batch_entries(model: ItemModel, user_ids: Sequence[str], ratings: Mapping[str, Sequence[Rating]]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The batch's (row, column, stars) entries: the last rating of each (user, book) the model holds."""
    rows: list[np.ndarray] = []
    columns: list[np.ndarray] = []
    stars: list[np.ndarray] = []
    for row, user in enumerate(user_ids):
        latest = {rating.book_id: rating.rating for rating in ratings.get(user, ())}  # last one wins
        found = model.columns_of(np.fromiter(latest, dtype=np.int64, count=len(latest)))
        known = found >= 0
        columns.append(found[known])
        stars.append(np.fromiter(latest.values(), dtype=np.float32, count=len(latest))[known])
        rows.append(np.full(int(known.sum()), row, np.int64))
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    return np.concatenate(rows), np.concatenate(columns), np.concatenate(stars)


def input_values(stars: np.ndarray, kind: Input) -> np.ndarray:
    """x_ui for ratings of `stars` (see the module docstring); float32."""
    if kind == "binary":
        return np.ones(stars.shape, np.float32)
    if kind == "liked":
        return (stars >= LIKED_RATING).astype(np.float32)
    return (stars / np.float32(MAX_RATING)).astype(np.float32)


# Training


def train(columns: RatingColumns, params: ItemModelParams) -> ItemModel:
    """Train B on every rating (EASE or item-kNN by catalogue size), pruned, with its manifest figures."""
    started = time.perf_counter()
    book_ids, book_columns = index_books(np.asarray(columns.book_ids))
    n_users, n_books = len(columns.user_ids), int(book_ids.size)
    stars = np.asarray(columns.ratings, np.float32)
    codes = np.asarray(columns.user_codes)
    # A repeated (user, book) pair keeps its last rating, as scoring does (_batch_entries).
    pairs = codes.astype(np.int64) * max(n_books, 1) + book_columns
    reversed_first = np.unique(pairs[::-1], return_index=True)[1]
    last = np.sort(pairs.size - 1 - reversed_first)
    codes, book_columns, stars = codes[last], book_columns[last], stars[last]
    matrix = sp.csr_array((input_values(stars, params.input).astype(np.float64), (codes, book_columns)), shape=(n_users, n_books))
    matrix.eliminate_zeros()
    algorithm = params.algorithm_for(n_books)
    if algorithm == "ease":
        weights = _ease_weights(matrix, params)
    else:
        weights = _knn_weights(matrix, params)
    popularity = _popularity(book_columns, stars, n_users, n_books, params)
    manifest: dict[str, Any] = {
        "algorithm": algorithm,
        "params": asdict(params),
        "n_books": n_books,
        "n_users": n_users,
        "n_ratings": len(columns),
        "n_weights": int(weights.nnz),
        "training_seconds": round(time.perf_counter() - started, 3),
        "created_at": time.time(),
    }
    encoded = [user.encode() for user in columns.user_ids]
    offsets = np.concatenate(([0], np.cumsum([len(user) for user in encoded], dtype=np.int64))).astype(np.int64)
    users = (offsets, np.frombuffer(b"".join(encoded), dtype=np.uint8).copy())
    return ItemModel.build(book_ids, weights, popularity, manifest={**manifest, "version": content_version(book_ids, weights, popularity)},
                           users=users)


def _popularity(book_columns: np.ndarray, stars: np.ndarray, n_users: int, n_books: int, params: ItemModelParams) -> np.ndarray:
    """p per column: the share of users who rated (or liked) each book; `train` has already kept one
    rating per (user, book), so counting entries counts users."""
    counted = stars >= LIKED_RATING if params.popularity == "liked" else np.ones(stars.shape, bool)
    return np.bincount(book_columns[counted], minlength=n_books) / max(n_users, 1)


def _ease_weights(matrix: sp.csr_array, params: ItemModelParams) -> sp.csr_array:
    """B by EASE's closed form (module docstring), pruned row by row.

    One dense n x n float64 array is the whole of training's memory beyond X: G is filled a block
    of rows at a time, then LAPACK's potrf + potri invert it in place. Given the Fortran-ordered
    view of G (G is symmetric, so that view is G itself), they neither copy it nor allocate another.
    """
    n = matrix.shape[1]
    gram = np.empty((n, n))
    for start, stop, rows in _gram_rows(matrix, ROW_BLOCK):
        gram[start:stop] = rows
    gram[np.diag_indices(n)] += params.l2
    factor, info = scipy.linalg.lapack.dpotrf(gram.T, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        raise ValueError(f"EASE: X^T X + {params.l2} I is not positive definite (LAPACK info {info})")
    _, info = scipy.linalg.lapack.dpotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise ValueError(f"EASE: inverting X^T X + {params.l2} I failed (LAPACK info {info})")
    inverse = gram  # P, written in place: its lower triangle holds P (the upper one of the Fortran view)
    _symmetrise_lower(inverse)
    scale = -1.0 / np.diag(inverse).copy()

    def rows(start: int, stop: int) -> np.ndarray:
        block = inverse[start:stop] * scale[None, :]  # B[i, j] = -P_ij / P_jj
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        return block

    return _pruned_rows(n, rows, params.weights_per_book)


def _symmetrise_lower(matrix: np.ndarray) -> None:
    """Copy the lower triangle onto the upper, in place, a block at a time (no n^2 temporary)."""
    n = matrix.shape[0]
    for start in range(0, n, ROW_BLOCK):
        stop = min(start + ROW_BLOCK, n)
        matrix[start:stop, stop:] = matrix[stop:, start:stop].T
        block = matrix[start:stop, start:stop]
        block[...] = np.tril(block) + np.tril(block, -1).T


def _gram_rows(matrix: sp.csr_array, block: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """The rows start..stop of X^T X, dense, a block at a time: (X^T X)[J, :] = X[:, J]^T X."""
    by_book = matrix.tocsc()
    transposed = by_book.T.tocsr()
    n = matrix.shape[1]
    for start in range(0, n, block):
        stop = min(start + block, n)
        yield start, stop, (transposed[start:stop] @ by_book).toarray()


def _knn_weights(matrix: sp.csr_array, params: ItemModelParams) -> sp.csr_array:
    """B by cosine item-kNN (module docstring), a block of rows at a time: never n x n in memory.

    Cosine is symmetric, so the rows J of the similarity matrix are complete rows of B for the
    books J, pruned before the next block is formed.
    """
    n = matrix.shape[1]
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    blocks = _gram_rows(matrix, params.block_books)

    def rows(start: int, stop: int) -> np.ndarray:
        first, last, block = next(blocks)
        assert (first, last) == (start, stop)  # both walk the same blocks in order
        block *= inverse[start:stop, None] * inverse[None, :]
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        return block

    return _pruned_rows(n, rows, params.weights_per_book, block=params.block_books)


def _pruned_rows(n: int, rows: Any, keep: int, block: int = ROW_BLOCK) -> sp.csr_array:
    """CSR of the n x n matrix whose rows `rows(start, stop)` yields, each row cut to its `keep`
    entries of largest magnitude (zeros dropped), with sorted column indices, float32."""
    keep = min(keep, max(n - 1, 0))
    pieces_indices: list[np.ndarray] = []
    pieces_data: list[np.ndarray] = []
    counts = np.zeros(n, np.int64)
    for start in range(0, n, block):
        stop = min(start + block, n)
        values = rows(start, stop)
        if keep < n:
            top = np.argpartition(-np.abs(values), keep - 1, axis=1)[:, :keep] if keep else np.empty((stop - start, 0), np.int64)
        else:
            top = np.broadcast_to(np.arange(n), values.shape)
        top = np.sort(top, axis=1)
        picked = np.take_along_axis(values, top, axis=1)
        nonzero = picked != 0
        counts[start:stop] = nonzero.sum(axis=1)
        pieces_indices.append(top[nonzero])
        pieces_data.append(picked[nonzero].astype(np.float32))
    indptr = np.concatenate(([0], np.cumsum(counts)))
    index_type = np.int32 if indptr[-1] < np.iinfo(np.int32).max else np.int64
    indices = np.concatenate(pieces_indices).astype(index_type) if pieces_indices else np.empty(0, index_type)
    data = np.concatenate(pieces_data) if pieces_data else np.empty(0, np.float32)
    weights = sp.csr_array((data, indices, indptr.astype(index_type)), shape=(n, n), copy=False)
    weights.has_sorted_indices = True
    return weights


def content_version(book_ids: np.ndarray, weights: sp.csr_array, popularity: np.ndarray) -> str:
    """A hash of what scoring reads: the same data and parameters publish the same version."""
    digest = hashlib.blake2b(digest_size=8)
    for array in (book_ids, weights.indptr, weights.indices, weights.data, popularity):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
