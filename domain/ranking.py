"""Ranking helpers shared by the item model and the user-user baseline: book indexing and top-k selection."""

from __future__ import annotations

import numpy as np

GROUPS_PER_K = 64  # top-k bound: finer groups sort fewer candidates (see top_k_per_column)
WIDE_BATCH = 32  # top_k_per_column: from this many columns numpy's own reduction is the faster
LIKED_RATING = 4  # goodbooks' "relevant" threshold: 4 and 5 stars are a like
SCORE_DECIMALS = 6  # scores are cached as JSON; six decimals keep them short and stable


def top_k_per_column(values: np.ndarray, k: int, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Column and row of each column's k largest values above `floor` (a column is one user of
    the batch): columns ascending, then largest value first, equal values by lower row.

    Instead of sorting every value it bounds the k-th largest from below by the k-th largest
    of the column's group maxima (k groups reach it, so at least k values do), then sorts
    only the values in groups that reach the bound.
    """
    height, width = values.shape
    if height == 0 or width == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    size = max(1, height // (GROUPS_PER_K * k))
    starts = np.arange(0, height, size)
    whole = height // size
    blocks = values[: whole * size].reshape(whole, size, width)
    if width >= WIDE_BATCH:
        maxima = blocks.max(axis=1)
    else:  # numpy reduces a short middle axis of a narrow array slowly; strided maxima are ~10x faster
        maxima = blocks[:, 0].copy()
        for offset in range(1, size):
            np.maximum(maxima, blocks[:, offset], out=maxima)
    if whole < len(starts):
        maxima = np.vstack((maxima, values[whole * size :].max(axis=0, keepdims=True)))
    threshold = np.full(width, -np.inf)
    if len(starts) > k:
        threshold = np.partition(maxima, len(starts) - k, axis=0)[len(starts) - k]
    groups, columns = np.nonzero((maxima >= threshold) & (maxima > floor))
    rows = (starts[groups][:, None] + np.arange(size)).ravel()
    columns = np.repeat(columns, size)
    inside = rows < height
    rows, columns = rows[inside], columns[inside]
    found = values[rows, columns]
    reach = (found >= threshold[columns]) & (found > floor)
    rows, columns, found = rows[reach], columns[reach], found[reach]
    order = np.lexsort((rows, -found, columns))
    rows, columns = rows[order], columns[order]
    keep = np.arange(columns.size) - np.searchsorted(columns, columns) < k
    return columns[keep], rows[keep]


def index_books(book_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct book ids ascending, and each rating's column among them."""
    if book_ids.size and 0 <= book_ids.min() and book_ids.max() < 4 * book_ids.size + 1_000_000:
        present = np.zeros(int(book_ids.max()) + 1, dtype=bool)  # small ids (goodbooks: 1..10000): O(n), no sort
        present[book_ids] = True
        column_of_id = np.cumsum(present) - 1
        return np.flatnonzero(present).astype(np.int64), column_of_id[book_ids].astype(np.int32)
    distinct, columns = np.unique(book_ids, return_inverse=True)
    return distinct.astype(np.int64), columns.astype(np.int32)
