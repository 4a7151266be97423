"""Ranking metrics on hand-made cases, and the hold-out split's guarantees (no I/O)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from domain.evaluation import (
    SWEEP_GRID,
    catalogue_coverage,
    coordinate_sweep,
    evaluate_popularity,
    evaluate_recommender,
    holdout_split,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    with_setting,
)
from domain.models import RatingColumns
from domain.recommender import RecommenderParams


def test_a_perfect_ranking_has_ndcg_one() -> None:
    assert ndcg_at_k([3, 1, 2, 9], frozenset({1, 2, 3})) == pytest.approx(1.0)


def test_a_ranking_with_nothing_relevant_has_ndcg_zero() -> None:
    assert ndcg_at_k([4, 5, 6], frozenset({1, 2})) == 0.0
    assert ndcg_at_k([4, 5, 6], frozenset()) == 0.0


def test_ndcg_discounts_by_position() -> None:
    # one relevant book, found second: 1/log2(3) over the ideal 1/log2(2) = 1
    assert ndcg_at_k([7, 1, 8], frozenset({1})) == pytest.approx(1 / math.log2(3))
    # two relevant, found first and third: (1 + 1/2) / (1 + 1/log2(3))
    assert ndcg_at_k([1, 7, 2], frozenset({1, 2})) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))


def test_ndcg_is_the_same_for_any_order_among_relevant_books() -> None:
    relevant = frozenset({1, 2})
    assert ndcg_at_k([1, 2, 7], relevant) == ndcg_at_k([2, 1, 7], relevant)


def test_ndcg_only_counts_the_top_k() -> None:
    assert ndcg_at_k([5, 6, 1], frozenset({1}), k=2) == 0.0
    # more relevant books than k: the ideal is k hits, so a full top k scores 1
    assert ndcg_at_k([1, 2], frozenset({1, 2, 3, 4}), k=2) == pytest.approx(1.0)


def test_recall_and_precision() -> None:
    ranked = [1, 5, 2, 6, 7, 8, 9, 10, 11, 12]
    relevant = frozenset({1, 2, 3, 4})
    assert recall_at_k(ranked, relevant) == pytest.approx(2 / 4)
    assert precision_at_k(ranked, relevant) == pytest.approx(2 / 10)
    assert recall_at_k(ranked, frozenset()) == 0.0


def test_catalogue_coverage_counts_distinct_books_shown() -> None:
    assert catalogue_coverage([[1, 2, 3], [2, 3, 4]], catalogue_size=8, k=2) == pytest.approx(3 / 8)


def ratings_table(n_users: int = 40, n_books: int = 30, seed: int = 0) -> RatingColumns:
    rng = np.random.default_rng(seed)
    codes, books, stars = [], [], []
    for user in range(n_users):
        count = 3 if user % 10 == 0 else int(rng.integers(16, 25))  # every tenth user has too few to test on
        chosen = rng.choice(n_books, size=count, replace=False) + 1
        codes += [user] * count
        books += chosen.tolist()
        stars += rng.integers(1, 6, size=count).tolist()
    return RatingColumns(tuple(f"u{i}" for i in range(n_users)), np.array(codes, np.int32),
                         np.array(books, np.int32), np.array(stars, np.float32))


def pairs(columns: RatingColumns) -> set[tuple[str, int]]:
    return {(columns.user_ids[code], book) for code, book in zip(columns.user_codes.tolist(), columns.book_ids.tolist())}


def test_the_split_never_leaks_a_held_out_rating_into_training() -> None:
    columns = ratings_table()

    split = holdout_split(columns, test_users=20, holdout=5, seed=1)

    held = {(user, book) for user, books in split.held_out.items() for book in books}
    assert len(held) == 20 * 5
    assert not held & pairs(split.train)
    assert held | pairs(split.train) == pairs(columns)  # nothing lost either


def test_the_split_holds_out_only_from_users_with_enough_ratings() -> None:
    columns = ratings_table()

    split = holdout_split(columns, test_users=1000, holdout=5, seed=1)

    assert len(split.test_users) == 36  # the 4 users with 3 ratings cannot lose 5
    assert all(int(user[1:]) % 10 for user in split.test_users)
    assert split.train.user_ids == columns.user_ids


def test_the_same_seed_gives_the_same_split_and_numbers() -> None:
    columns = ratings_table()
    params = RecommenderParams(neighbours=5, min_neighbours=1)

    first, again, other = (holdout_split(columns, 20, 5, seed) for seed in (7, 7, 8))

    assert first.held_out == again.held_out != other.held_out
    result, repeat = (evaluate_recommender("knn", split, params) for split in (first, again))
    assert (result.ndcg, result.recall, result.precision, result.coverage) == (
        repeat.ndcg, repeat.recall, repeat.precision, repeat.coverage)


def test_the_relevant_books_are_the_liked_held_out_ones() -> None:
    columns = RatingColumns(("a",), np.zeros(16, np.int32), np.arange(1, 17, dtype=np.int32),
                            np.array([5, 4, 3, 2, 1] * 3 + [5], np.float32))

    split = holdout_split(columns, test_users=1, holdout=11, seed=0)

    assert split.relevant("a") == frozenset(book for book, stars in split.held_out["a"].items() if stars >= 4)
    assert len(split.held_out["a"]) == 11


def test_the_popularity_baseline_ranks_the_most_read_unrated_books() -> None:
    # Books 1..3 are read by everyone but the test user, who read 4..18; the held-out books are its
    # own, so the popularity baseline (which never sees them) scores 0 and recommends 1, 2, 3 first.
    readers = {f"r{i}": {1: 5, 2: 5, 3: 4} for i in range(5)}
    codes, books, stars = [], [], []
    users = ("tester", *readers)
    for code, user in enumerate(users):
        rated = {book: 5 for book in range(4, 19)} if user == "tester" else readers[user]
        codes += [code] * len(rated)
        books += list(rated)
        stars += list(rated.values())
    columns = RatingColumns(users, np.array(codes, np.int32), np.array(books, np.int32), np.array(stars, np.float32))
    split = holdout_split(columns, test_users=1, holdout=5, seed=0)

    result = evaluate_popularity("pop", split, RecommenderParams(), k=3)

    assert split.test_users == ("tester",)
    assert result.ndcg == 0.0
    assert result.coverage == pytest.approx(3 / 13)  # the 5 hidden books left the catalogue with their only reader


def test_a_setting_that_breaks_a_constraint_is_skipped() -> None:
    params = RecommenderParams(neighbours=10, min_neighbours=3)
    assert with_setting(params, "min_neighbours", 20) is None
    assert with_setting(params, "similarity", "centred") == RecommenderParams(neighbours=10, min_neighbours=3, mean_centre=True)
    assert with_setting(params, "similarity", "binary").similarity == "binary"


def test_the_sweep_keeps_the_best_value_of_each_setting() -> None:
    split = holdout_split(ratings_table(seed=3), 20, 5, seed=2)
    grid = {"neighbours": (2, 5, 10), "aggregation": ("binary", "rating")}
    start = RecommenderParams(neighbours=5, min_neighbours=1)

    best, results = coordinate_sweep(split, start, grid=grid)

    assert {result.params for result in results} >= {with_setting(start, "neighbours", k) for k in (2, 5, 10)}
    best_ndcg = max(result.ndcg for result in results)
    assert next(result for result in results if result.params == best).ndcg == best_ndcg
    assert len(results) == len({result.params for result in results})  # each combination once


def test_the_sweep_grid_only_names_real_settings() -> None:
    params = RecommenderParams()
    for setting, values in SWEEP_GRID.items():
        for value in values:
            assert with_setting(replace(params, min_neighbours=1), setting, value) is not None, (setting, value)
