"""The item model against the maths in its module docstring, on hand-made matrices (no I/O).

Every expected weight matrix is computed here independently and densely (np.linalg.inv, dense
cosine), so a slip in the Cholesky path, the blockwise kNN or the pruning shows as a mismatch.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.item_model import (
    ARTIFACT_FORMAT,
    ItemModel,
    ItemModelParams,
    ItemRecommender,
    content_version,
    train,
)
from domain.models import ArtifactError, ModelArtifact, Rating, RatingColumns, RecommendationSource

COLLABORATIVE, POPULAR = RecommendationSource.COLLABORATIVE, RecommendationSource.POPULAR
EPOCH = datetime.fromtimestamp(0, timezone.utc)
INPUTS = ("binary", "liked", "stars")

Triple = tuple[str, int, int]  # (user, book, stars)

# Twelve readers of eight books with ratings of every star value, so "liked" and "stars" differ from "binary".
SHELVES: list[Triple] = [
    ("u1", 1, 5), ("u1", 2, 4), ("u1", 3, 2), ("u1", 7, 5),
    ("u2", 1, 4), ("u2", 2, 5), ("u2", 4, 1),
    ("u3", 2, 3), ("u3", 3, 5), ("u3", 5, 4), ("u3", 8, 2),
    ("u4", 3, 4), ("u4", 5, 5), ("u4", 6, 3),
    ("u5", 1, 2), ("u5", 4, 5), ("u5", 6, 4), ("u5", 8, 5),
    ("u6", 5, 1), ("u6", 6, 5), ("u6", 7, 4),
    ("u7", 1, 5), ("u7", 3, 3), ("u7", 7, 4), ("u7", 8, 4),
    ("u8", 2, 2), ("u8", 4, 4), ("u8", 5, 5),
    ("u9", 6, 2), ("u9", 7, 5), ("u9", 8, 3),
    ("u10", 1, 4), ("u10", 5, 4), ("u10", 8, 5),
    ("u11", 2, 5), ("u11", 6, 4),
    ("u12", 3, 1), ("u12", 4, 3), ("u12", 7, 2),
]


def columns_of(triples: list[Triple]) -> RatingColumns:
    users = sorted({user for user, _, _ in triples})
    code = {user: index for index, user in enumerate(users)}
    return RatingColumns(
        tuple(users),
        np.array([code[user] for user, _, _ in triples], np.int32),
        np.array([book for _, book, _ in triples], np.int32),
        np.array([stars for _, _, stars in triples], np.float32),
    )


def dense_input(triples: list[Triple], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """X (users x books, float64) as the docstring defines it, and the book of each column."""
    users = sorted({user for user, _, _ in triples})
    books = np.array(sorted({book for _, book, _ in triples}))
    matrix = np.zeros((len(users), books.size))
    for user, book, stars in triples:
        value = {"binary": 1.0, "liked": float(stars >= 4), "stars": stars / 5}[kind]
        matrix[users.index(user), int(np.searchsorted(books, book))] = value
    return matrix, books


def dense_ease(matrix: np.ndarray, l2: float) -> np.ndarray:
    """B = I - P diag(1/diag P), P = (X^T X + l2 I)^-1: zero diagonal, B_ij = -P_ij / P_jj."""
    inverse = np.linalg.inv(matrix.T @ matrix + l2 * np.eye(matrix.shape[1]))
    weights = np.eye(matrix.shape[1]) - inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights


def dense_cosine(matrix: np.ndarray) -> np.ndarray:
    """B_ij = x_i . x_j / (|x_i| |x_j|) over the columns of X, zero diagonal (0 for an empty column)."""
    gram = matrix.T @ matrix
    norms = np.sqrt(np.diag(gram))
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    weights = gram * inverse[:, None] * inverse[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights


def ratings(user: str, *pairs: tuple[int, int]) -> list[Rating]:
    return [Rating(user, book, stars, EPOCH) for book, stars in pairs]


def trained(triples: list[Triple] = SHELVES, **changes: object) -> ItemModel:
    return train(columns_of(triples), ItemModelParams(**changes))  # type: ignore[arg-type]


# EASE and item-kNN against their dense definitions


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("l2", [0.5, 3.0, 50.0])
def test_ease_unpruned_is_the_closed_form(kind: str, l2: float) -> None:
    matrix, books = dense_input(SHELVES, kind)

    model = trained(input=kind, algorithm="ease", l2=l2, weights_per_book=books.size)

    assert model.manifest["algorithm"] == "ease"
    assert model.book_ids.tolist() == books.tolist() and model.book_ids.dtype == np.int64
    assert model.weights.dtype == np.float32 and model.weights.shape == (books.size, books.size)
    expected = dense_ease(matrix, l2)
    np.testing.assert_allclose(model.weights.toarray(), expected, rtol=2e-6, atol=1e-7)
    assert not model.weights.diagonal().any()
    if l2 < 10:  # a strong ridge shrinks every weight towards the co-reading counts, all positive here
        assert (model.weights.toarray() < 0).any(), "a case without negative weights would not test their sign"


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("block", [1, 2, 3, 100])
def test_item_knn_in_blocks_is_the_dense_cosine(kind: str, block: int) -> None:
    matrix, books = dense_input(SHELVES, kind)

    model = trained(input=kind, algorithm="knn", block_books=block, weights_per_book=books.size)

    assert model.manifest["algorithm"] == "knn"
    np.testing.assert_allclose(model.weights.toarray(), dense_cosine(matrix), rtol=2e-6, atol=1e-7)
    assert not model.weights.diagonal().any()


def test_auto_picks_ease_up_to_ease_max_books_then_knn() -> None:
    n_books = len({book for _, book, _ in SHELVES})
    assert trained(ease_max_books=n_books).manifest["algorithm"] == "ease"
    assert trained(ease_max_books=n_books - 1).manifest["algorithm"] == "knn"


def test_a_book_nobody_liked_has_no_weights_with_liked_input() -> None:
    # Book 9 is only ever rated 1-3 stars: its column of X is empty when x = "liked it".
    triples = [*SHELVES, ("u1", 9, 3), ("u4", 9, 2)]
    for algorithm in ("ease", "knn"):
        model = trained(triples, input="liked", algorithm=algorithm, weights_per_book=9)
        column = int(np.searchsorted(model.book_ids, 9))
        dense = model.weights.toarray()
        assert not dense[column].any() and not dense[:, column].any()


# Pruning


def test_pruning_keeps_the_largest_weights_by_magnitude_with_sorted_indices() -> None:
    full = trained(algorithm="ease", l2=0.5, weights_per_book=8).weights.toarray()
    for keep in (1, 2, 3, 5):
        pruned = trained(algorithm="ease", l2=0.5, weights_per_book=keep).weights
        assert pruned.has_sorted_indices
        for row in range(full.shape[0]):
            indices = pruned.indices[pruned.indptr[row] : pruned.indptr[row + 1]]
            values = pruned.data[pruned.indptr[row] : pruned.indptr[row + 1]]
            assert len(indices) == keep
            assert indices.tolist() == sorted(indices.tolist())
            np.testing.assert_array_equal(values, full[row, indices])
            smallest_kept = np.abs(values).min()
            dropped = np.delete(np.abs(full[row]), indices)
            assert (dropped <= smallest_kept).all()
    kept_three = trained(algorithm="ease", l2=0.5, weights_per_book=3).weights
    assert (kept_three.data < 0).any(), "a negative weight of large magnitude must survive the pruning"


def test_pruning_drops_zero_weights_so_a_row_may_keep_fewer() -> None:
    # Two disjoint reading groups: cosine between the groups is 0, so no row holds a weight across.
    triples = [("a", 1, 5), ("a", 2, 5), ("b", 1, 4), ("b", 2, 4), ("b", 3, 5), ("c", 4, 5), ("c", 5, 4)]
    model = trained(triples, algorithm="knn", weights_per_book=4)
    counts = np.diff(model.weights.indptr).tolist()
    assert counts == [2, 2, 2, 1, 1]
    assert model.manifest["n_weights"] == 8 == model.weights.nnz
    assert (model.weights.data != 0).all()


# The differential test: random small rating sets, the blockwise and pruned paths against dense ones

rating_sets = st.lists(
    st.tuples(st.integers(0, 7).map(lambda user: f"u{user}"), st.integers(1, 12), st.integers(1, 5)),
    min_size=1, max_size=50, unique_by=lambda triple: (triple[0], triple[1]),
)


def row_entries(weights: sp.csr_array, row: int) -> tuple[np.ndarray, np.ndarray]:
    span = slice(weights.indptr[row], weights.indptr[row + 1])
    return weights.indices[span], weights.data[span]


def assert_top_k_of(pruned: sp.csr_array, dense: np.ndarray, keep: int, tolerance: float) -> None:
    """Each row of `pruned` holds (to `tolerance`) `keep` entries of dense's row of largest magnitude.

    Compared by value, not by index set: the random data make exact ties (and near-zero weights
    that one inverse rounds to 0.0 and the other to 1e-17), where either index is right.
    """
    for row in range(dense.shape[0]):
        indices, values = row_entries(pruned, row)
        magnitudes = np.sort(np.abs(dense[row]))[::-1]
        assert len(indices) <= keep
        assert len(indices) >= min(keep, int((magnitudes > tolerance).sum()))
        assert np.all(np.diff(indices) > 0)
        np.testing.assert_allclose(values, dense[row, indices], rtol=1e-4, atol=tolerance)
        np.testing.assert_allclose(np.sort(np.abs(values))[::-1], magnitudes[: len(indices)], rtol=1e-4, atol=tolerance)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(triples=rating_sets, kind=st.sampled_from(INPUTS), keep=st.integers(1, 13), l2=st.sampled_from([0.5, 2.0, 20.0]))
def test_blockwise_knn_and_pruned_ease_agree_with_the_dense_definitions(
    triples: list[Triple], kind: str, keep: int, l2: float
) -> None:
    columns = columns_of(triples)
    matrix, books = dense_input(triples, kind)
    n = books.size

    knn = [train(columns, ItemModelParams(input=kind, algorithm="knn", weights_per_book=keep, block_books=block))  # type: ignore[arg-type]
           for block in (1, 2, 7, n)]
    first = knn[0].weights
    for other in knn[1:]:
        for name in ("indptr", "indices", "data"):
            assert getattr(other.weights, name).tobytes() == getattr(first, name).tobytes(), name
        assert other.version == knn[0].version
    assert_top_k_of(first, dense_cosine(matrix), keep, tolerance=1e-6)

    ease = train(columns, ItemModelParams(input=kind, algorithm="ease", l2=l2, weights_per_book=keep))  # type: ignore[arg-type]
    assert_top_k_of(ease.weights, dense_ease(matrix, l2), keep, tolerance=1e-6)


# Scoring


def readers_of_pairs() -> list[Triple]:
    """Books 1 and 2 read together by five users; 3 read by everyone else (the bestseller); 4-6 now and then."""
    together = [(f"p{i}", book, 5) for i in range(5) for book in (1, 2)]
    bestseller = [(f"q{i}", 3, 5) for i in range(8)]
    others = [("q0", 4, 4), ("q1", 4, 5), ("q2", 5, 4), ("q3", 6, 2), ("p0", 6, 4)]
    return together + bestseller + others


def test_the_neighbours_favourite_comes_first_and_rated_books_never_appear() -> None:
    model = trained(readers_of_pairs(), weights_per_book=10)
    recommender = ItemRecommender(max_recommendations=4)

    [items] = recommender.recommend_batch(model, ["new"], {"new": ratings("new", (1, 5))})

    assert items[0].book_id == 2 and items[0].source is COLLABORATIVE and items[0].score > 0
    assert 1 not in [item.book_id for item in items]


def test_rated_books_never_appear_even_when_everything_else_is_exhausted() -> None:
    model = trained(readers_of_pairs(), weights_per_book=10)
    recommender = ItemRecommender(max_recommendations=10)
    everything_but_two = ratings("x", (1, 5), (2, 4), (3, 1), (4, 2))
    everything = everything_but_two + ratings("x", (5, 3), (6, 3))

    short, empty = recommender.recommend_batch(model, ["x", "y"], {"x": everything_but_two, "y": everything})

    assert sorted(item.book_id for item in short) == [5, 6]
    assert empty == ()


def test_a_user_without_known_ratings_gets_popularity_with_ties_by_lower_book_id() -> None:
    # Liked by: book 2 three users; books 5 and 4 two each (a tie: 4 first); 1 and 3 one each (1 first).
    triples = [("a", 2, 5), ("b", 2, 4), ("c", 2, 5), ("a", 5, 4), ("d", 5, 5), ("b", 4, 5), ("d", 4, 4),
               ("c", 3, 5), ("a", 1, 4), ("e", 6, 2)]
    model = trained(triples, popularity="liked")
    recommender = ItemRecommender(max_recommendations=6)

    nobody, stranger = recommender.recommend_batch(model, ["nobody", "stranger"], {"stranger": ratings("stranger", (999, 5))})

    assert [item.book_id for item in nobody] == [2, 4, 5, 1, 3, 6]
    assert {item.source for item in nobody} == {POPULAR}
    assert [item.score for item in nobody] == [round(share, 6) for share in (3 / 5, 2 / 5, 2 / 5, 1 / 5, 1 / 5, 0.0)]
    assert stranger == nobody  # a book the model does not know is ignored
    assert model.popular_book_ids(3) == [2, 4, 5]


def test_popularity_by_count_counts_every_reader_once() -> None:
    triples = [("a", 1, 1), ("b", 1, 2), ("c", 1, 3), ("a", 2, 5), ("b", 2, 5)]
    by_count, by_likes = trained(triples, popularity="count"), trained(triples, popularity="liked")
    assert by_count.popularity.tolist() == [1.0, 2 / 3]
    assert by_likes.popularity.tolist() == [0.0, 2 / 3]
    assert by_count.popular_book_ids(2) == [1, 2] and by_likes.popular_book_ids(2) == [2, 1]


def test_unknown_books_are_ignored_beside_known_ones() -> None:
    model = trained(readers_of_pairs(), weights_per_book=10)
    recommender = ItemRecommender(max_recommendations=5)

    known, mixed = recommender.recommend_batch(
        model, ["known", "mixed"], {"known": ratings("known", (1, 5)), "mixed": ratings("mixed", (777, 5), (1, 5), (778, 1))})

    assert known == mixed


def test_collaborative_items_come_before_the_popular_fill_and_the_list_is_full_length() -> None:
    model = trained(readers_of_pairs(), weights_per_book=10)
    recommender = ItemRecommender(max_recommendations=5)

    [items] = recommender.recommend_batch(model, ["u"], {"u": ratings("u", (1, 5))})

    assert len(items) == 5
    sources = [item.source for item in items]
    assert COLLABORATIVE in sources and POPULAR in sources
    assert sources == sorted(sources, key=lambda source: source is POPULAR)
    personal = [item.score for item in items if item.source is COLLABORATIVE]
    filled = [item.book_id for item in items if item.source is POPULAR]
    assert personal == sorted(personal, reverse=True) and min(personal) > 0
    assert filled == [book for book in model.popular_book_ids(6) if book in filled]  # the fill in popularity order


def test_scores_are_x_times_b_rounded_to_six_decimals() -> None:
    model = trained(SHELVES, input="stars", l2=2.0, weights_per_book=3)
    recommender = ItemRecommender(max_recommendations=8)  # the model says its input is stars
    rated = ((1, 4), (5, 2), (7, 5))

    [items] = recommender.recommend_batch(model, ["u"], {"u": ratings("u", *rated)})

    x = np.zeros(model.n_books, np.float32)
    for book, stars in rated:
        x[np.searchsorted(model.book_ids, book)] = stars / 5
    expected = x @ model.weights.toarray()
    for item in items:
        assert item.score == round(item.score, 6)
        column = int(np.searchsorted(model.book_ids, item.book_id))
        if item.source is COLLABORATIVE:
            assert item.score == pytest.approx(expected[column], abs=1e-6)
        else:
            assert expected[column] <= 0 and item.score == round(float(model.popularity[column]), 6)
    assert any(item.source is COLLABORATIVE for item in items)


def test_a_batch_gives_each_user_the_list_they_get_alone() -> None:
    model = trained(SHELVES, l2=2.0, weights_per_book=4)
    recommender = ItemRecommender(max_recommendations=5)
    users = {
        "a": ratings("a", (1, 5)),
        "b": ratings("b", (3, 4), (6, 5), (8, 1)),
        "c": [],
        "d": ratings("d", (2, 5), (4, 5), (5, 5), (7, 2)),
        "e": ratings("e", (1, 5), (2, 5), (3, 5), (4, 5), (5, 5), (6, 5), (7, 5)),
    }
    order = ["d", "a", "absent", "e", "c", "b", "a"]

    batch = recommender.recommend_batch(model, order, users)

    assert batch == [recommender.recommend_batch(model, [user], users)[0] for user in order]
    assert len(batch[3]) == 1  # e rated 7 of the 8 books


def test_a_repeated_rating_counts_as_its_last_value() -> None:
    model = trained(SHELVES, input="stars", l2=2.0)
    recommender = ItemRecommender(max_recommendations=8)  # the model says its input is stars

    twice, once = recommender.recommend_batch(
        model, ["twice", "once"], {"twice": ratings("twice", (1, 5), (3, 4), (1, 2)), "once": ratings("once", (3, 4), (1, 2))})

    assert twice == once


def test_a_repeated_rating_counts_once_in_training() -> None:
    repeated = [*SHELVES, ("u1", 1, 5)]
    assert trained(repeated, algorithm="ease").version == trained(SHELVES, algorithm="ease").version


def test_an_empty_model_or_batch_recommends_nothing() -> None:
    recommender = ItemRecommender(max_recommendations=3)
    assert recommender.recommend_batch(ItemModel.popular_only([]), ["a"], {}) == [()]
    assert recommender.recommend_batch(trained(), [], {}) == []
    with pytest.raises(ValueError):
        ItemRecommender(max_recommendations=0)


# The artifact


def test_the_artifact_round_trip_recommends_the_same_under_the_same_version() -> None:
    model = trained(SHELVES, l2=2.0, weights_per_book=3)
    recommender = ItemRecommender(max_recommendations=5)
    users = {"a": ratings("a", (1, 5), (4, 2)), "b": ratings("b", (8, 5))}

    artifact = model.to_artifact()
    restored = ItemModel.from_artifact(artifact)

    assert artifact.manifest["format"] == ARTIFACT_FORMAT and artifact.version == model.version
    assert restored.version == model.version and not restored.fallback
    assert restored.created_at == model.created_at
    assert recommender.recommend_batch(restored, ["a", "b", "c"], users) == recommender.recommend_batch(model, ["a", "b", "c"], users)


def broken(artifact: ModelArtifact, manifest: dict | None = None, **arrays: np.ndarray | None) -> ModelArtifact:
    changed = {**artifact.arrays, **arrays}
    return ModelArtifact({**artifact.manifest, **(manifest or {})}, {name: array for name, array in changed.items() if array is not None})


def artifact_damages(artifact: ModelArtifact) -> dict[str, ModelArtifact]:
    arrays = artifact.arrays
    book_ids, indices, indptr = arrays["book_ids"], arrays["weights_indices"], arrays["weights_indptr"]
    return {
        "format": broken(artifact, {"format": ARTIFACT_FORMAT + 1}),
        "no format": ModelArtifact({key: value for key, value in artifact.manifest.items() if key != "format"}, arrays),
        "missing array": broken(artifact, weights_data=None),
        "unsorted book_ids": broken(artifact, book_ids=book_ids[[1, 0, *range(2, book_ids.size)]]),
        "repeated book_ids": broken(artifact, book_ids=np.concatenate((book_ids[:1], book_ids[:-1]))),
        "index too large": broken(artifact, weights_indices=np.where(np.arange(indices.size) == 0, book_ids.size, indices).astype(indices.dtype)),
        "negative index": broken(artifact, weights_indices=np.where(np.arange(indices.size) == 0, -1, indices).astype(indices.dtype)),
        "indptr too short": broken(artifact, weights_indptr=indptr[:-1]),
        "indptr too long": broken(artifact, weights_indptr=np.append(indptr, indptr[-1])),
        "indptr beyond the weights": broken(artifact, weights_indptr=indptr + 1),
        "book_ids int32": broken(artifact, book_ids=book_ids.astype(np.int32)),
        "popularity float32": broken(artifact, popularity=arrays["popularity"].astype(np.float32)),
        "popularity too short": broken(artifact, popularity=arrays["popularity"][:-1]),
        "data float64": broken(artifact, weights_data=arrays["weights_data"].astype(np.float64)),
        "indptr int64, indices int32": broken(artifact, weights_indptr=indptr.astype(np.int64)),
        "data shorter than indices": broken(artifact, weights_data=arrays["weights_data"][:-1]),
    }


DAMAGES = ("format", "no format", "missing array", "unsorted book_ids", "repeated book_ids", "index too large",
           "negative index", "indptr too short", "indptr too long", "indptr beyond the weights", "book_ids int32",
           "popularity float32", "popularity too short", "data float64", "indptr int64, indices int32",
           "data shorter than indices")


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_artifact_is_refused_with_one_line(damage: str) -> None:
    artifact = trained(SHELVES, weights_per_book=3).to_artifact()
    assert artifact.arrays["weights_indices"].dtype == np.int32  # "indptr int64, indices int32" is a mismatch

    damaged = artifact_damages(artifact)
    assert set(damaged) == set(DAMAGES)

    with pytest.raises(ArtifactError) as refused:
        ItemModel.from_artifact(damaged[damage])

    assert "\n" not in str(refused.value) and artifact.version in str(refused.value)


def test_content_version_is_stable_and_follows_every_weight() -> None:
    model = trained(SHELVES, weights_per_book=3)
    weights = model.weights
    assert content_version(model.book_ids, weights, model.popularity) == model.version

    nudged = weights.copy()
    nudged.data = nudged.data.copy()
    nudged.data[-1] = np.nextafter(nudged.data[-1], np.float32(np.inf))
    popularity = model.popularity.copy()
    popularity[0] += 1e-12

    assert content_version(model.book_ids, nudged, model.popularity) != model.version
    assert content_version(model.book_ids, weights, popularity) != model.version
    assert content_version(model.book_ids + 1, weights, model.popularity) != model.version


def test_training_is_deterministic() -> None:
    columns = columns_of(SHELVES)
    for params in (ItemModelParams(l2=2.0, weights_per_book=3), ItemModelParams(algorithm="knn", block_books=3, weights_per_book=2)):
        first, again = train(columns, params), train(columns, params)
        assert first.version == again.version
        assert first.weights.data.tobytes() == again.weights.data.tobytes()
        assert first.manifest["params"] == again.manifest["params"]
    assert train(columns, ItemModelParams(l2=2.0)).version != train(columns, ItemModelParams(l2=3.0)).version


# The popularity fallback


def test_popular_only_ranks_in_the_given_order_and_skips_rated_books() -> None:
    model = ItemModel.popular_only([7, 3, 9, 1])
    recommender = ItemRecommender(max_recommendations=4)

    cold, reader = recommender.recommend_batch(model, ["cold", "reader"], {"reader": ratings("reader", (3, 5), (42, 5))})

    assert model.fallback and model.version.startswith("popular-") and model.weights.nnz == 0
    assert model.popular_book_ids(10) == [7, 3, 9, 1]
    assert [item.book_id for item in cold] == [7, 3, 9, 1]
    assert [item.book_id for item in reader] == [7, 9, 1]
    assert {item.source for item in cold + reader} == {POPULAR}
    scores = [item.score for item in cold]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4
    assert ItemModel.popular_only([7, 3, 9, 1]).version == model.version != ItemModel.popular_only([3, 7, 9, 1]).version


# Parameters


@pytest.mark.parametrize("changes", [
    {"input": "thumbs"}, {"l2": 0.0}, {"weights_per_book": 0}, {"algorithm": "svd"}, {"ease_max_books": 0},
    {"block_books": 0}, {"popularity": "random"},
])
def test_nonsense_params_are_refused(changes: dict) -> None:
    with pytest.raises(ValueError):
        replace(ItemModelParams(), **changes)
