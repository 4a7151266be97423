"""Ranking metrics on hand-made cases, and the hold-out split's guarantees (no I/O)."""

from __future__ import annotations

import math
from dataclasses import fields, replace

import numpy as np
import pytest

from domain.evaluation import (
    PLAIN_EASE_L2,
    SWEEP_GRID,
    EvaluationResult,
    HoldoutSplit,
    catalogue_coverage,
    coordinate_sweep,
    describe,
    evaluate_item_model,
    evaluate_popularity,
    evaluate_user_knn,
    holdout_split,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    training_ratings,
    with_setting,
)
from domain.item_model import ItemModelParams, train
from domain.models import RatingColumns
from domain.user_knn import RecommenderParams

SMALL = ItemModelParams(l2=5.0, weights_per_book=10)  # the tests' data have 30 books: a ridge to match


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

    first, again, other = (holdout_split(columns, 20, 5, seed) for seed in (7, 7, 8))

    assert first.held_out == again.held_out != other.held_out
    for evaluate in (lambda split: evaluate_item_model("item", split, SMALL),
                     lambda split: evaluate_user_knn("user-user", split, RecommenderParams(neighbours=5, min_neighbours=1))):
        result, repeat = evaluate(first), evaluate(again)
        assert (result.ndcg, result.recall, result.precision, result.coverage) == (
            repeat.ndcg, repeat.recall, repeat.precision, repeat.coverage)


def test_the_test_users_are_scored_from_their_training_ratings_only() -> None:
    columns = ratings_table()
    split = holdout_split(columns, 20, 5, seed=4)

    found = training_ratings(split)

    assert set(found) == set(split.test_users)
    training = pairs(split.train)
    for user, ratings in found.items():
        books = {rating.book_id for rating in ratings}
        assert not books & set(split.held_out[user])
        assert {(user, book) for book in books} == {(u, b) for u, b in training if u == user}


def test_the_relevant_books_are_the_liked_held_out_ones() -> None:
    columns = RatingColumns(("a",), np.zeros(16, np.int32), np.arange(1, 17, dtype=np.int32),
                            np.array([5, 4, 3, 2, 1] * 3 + [5], np.float32))

    split = holdout_split(columns, test_users=1, holdout=11, seed=0)

    assert split.relevant("a") == frozenset(book for book, stars in split.held_out["a"].items() if stars >= 4)
    assert len(split.held_out["a"]) == 11


def popularity_case() -> RatingColumns:
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
    return RatingColumns(users, np.array(codes, np.int32), np.array(books, np.int32), np.array(stars, np.float32))


def test_the_popularity_baseline_ranks_the_most_read_unrated_books() -> None:
    split = holdout_split(popularity_case(), test_users=1, holdout=5, seed=0)

    result = evaluate_popularity("pop", split, ItemModelParams(), k=3)

    assert split.test_users == ("tester",)
    assert result.ndcg == 0.0 and result.popular_share == 1.0 and result.params is None
    assert result.coverage == pytest.approx(3 / 13)  # the 5 hidden books left the catalogue with their only reader


def test_the_popularity_baseline_finds_popular_hidden_books_and_follows_its_kind() -> None:
    # 30 passers-by rated book 1 two stars, 20 others liked book 2 (one rating each: never test users);
    # 15 readers rated book 2 five stars and nine of books 3..20 four.
    rng = np.random.default_rng(5)
    shelves = [{1: 2}] * 30 + [{2: 5}] * 20 + [{2: 5, **{int(b): 4 for b in rng.choice(np.arange(3, 21), 9, replace=False)}}
                                               for _ in range(15)]
    codes = np.concatenate([[user] * len(shelf) for user, shelf in enumerate(shelves)]).astype(np.int32)
    columns = RatingColumns(tuple(f"u{i}" for i in range(len(shelves))), codes,
                            np.array([book for shelf in shelves for book in shelf], np.int32),
                            np.array([stars for shelf in shelves for stars in shelf.values()], np.float32))
    split = holdout_split(columns, test_users=15, holdout=5, seed=3)

    by_count = evaluate_popularity("count", split, ItemModelParams(popularity="count"), k=1)
    by_likes = evaluate_popularity("liked", split, ItemModelParams(popularity="liked"), k=1)

    # Top 1 by count is book 1, which no reader liked; by likes, book 2 (a hit for whoever hid it),
    # or for those who kept it the most liked of the rest (sometimes a hit too).
    hid_two = [user for user in split.test_users if 2 in split.held_out[user]]
    assert split.test_users == tuple(f"u{i}" for i in range(50, 65)) and hid_two
    assert by_count.ndcg == 0.0 and by_count.recall == 0.0 and by_count.coverage == pytest.approx(1 / 20)
    assert by_likes.recall >= sum(1 / len(split.relevant(user)) for user in hid_two) / by_likes.users > 0
    assert by_likes.ndcg > 0


def test_the_item_model_finds_what_the_taste_group_reads() -> None:
    # Two taste groups (odd and even books): the popular list mixes both, the item model does not.
    rng = np.random.default_rng(1)
    codes, books, stars = [], [], []
    for user in range(60):
        shelf = np.arange(1 + user % 2, 41, 2)
        chosen = rng.choice(shelf, size=16, replace=False)
        codes += [user] * 16
        books += chosen.tolist()
        stars += [5] * 16
    columns = RatingColumns(tuple(f"u{i}" for i in range(60)), np.array(codes, np.int32), np.array(books, np.int32),
                            np.array(stars, np.float32))
    split = holdout_split(columns, 30, 5, seed=0)

    item = evaluate_item_model("item", split, SMALL)
    knn = evaluate_item_model("knn", split, replace(SMALL, algorithm="knn"))
    popular = max(evaluate_popularity(kind, split, replace(SMALL, popularity=kind)).ndcg for kind in ("count", "liked"))

    assert item.ndcg > 1.3 * popular and knn.ndcg > 1.3 * popular
    assert item.popular_share < 0.5 and item.params == SMALL and item.users == 30


def test_a_model_given_is_scored_as_it_is() -> None:
    split = holdout_split(ratings_table(), 20, 5, seed=1)
    model = train(split.train, SMALL)

    given = evaluate_item_model("given", split, SMALL, model=model)

    assert given == replace(evaluate_item_model("trained", split, SMALL), name="given", ms_per_user=given.ms_per_user)


def test_a_setting_that_breaks_a_constraint_is_skipped() -> None:
    assert with_setting(SMALL, "l2", 0.0) is None
    assert with_setting(SMALL, "weights_per_book", 0) is None
    assert with_setting(SMALL, "input", "stars") == replace(SMALL, input="stars")


def test_describe_names_every_setting_the_sweep_varies() -> None:
    text = describe(ItemModelParams(input="liked", l2=20.0, weights_per_book=100, popularity="count"))
    assert text == "item input=liked l2=20 weights/book=100 pop=count"
    assert describe(replace(SMALL, algorithm="knn")).startswith("knn ")
    assert describe(RecommenderParams()).startswith("user-user k=50 ")


def sweep_split() -> HoldoutSplit:
    return holdout_split(ratings_table(seed=3), 30, 5, seed=2)


def test_the_sweep_keeps_the_best_value_of_each_setting() -> None:
    split = sweep_split()
    grid = {"l2": (1.0, 5.0, 50.0), "weights_per_book": (1, 3, 10), "input": ("binary", "stars")}
    start = SMALL

    best, results = coordinate_sweep(split, start, grid=grid, rounds=5)

    by_params = {result.params: result for result in results}
    assert len(by_params) == len(results)  # each combination once
    assert {with_setting(start, "l2", l2) for l2 in grid["l2"]} <= set(by_params)
    assert by_params[best].ndcg == max(result.ndcg for result in results)
    for setting, values in grid.items():  # no single change of the best improves it: each setting is at its best value
        for value in values:
            assert by_params[with_setting(best, setting, value)].ndcg <= by_params[best].ndcg, (setting, value)
    assert len({result.ndcg for result in results}) > 1, "a grid where every variant ties tests nothing"


def test_the_sweep_does_not_train_again_what_it_is_given() -> None:
    split = sweep_split()
    known = evaluate_item_model("defaults", split, SMALL)
    trained: list[EvaluationResult] = []

    best, results = coordinate_sweep(split, SMALL, grid={"l2": (1.0, 5.0)}, on_result=trained.append, known=[known])

    assert [result.params for result in trained] == [replace(SMALL, l2=1.0)]
    assert known in results


def test_the_sweep_grid_only_names_real_settings() -> None:
    names = {field.name for field in fields(ItemModelParams)}
    for setting, values in SWEEP_GRID.items():
        assert setting in names, setting
        assert len(set(values)) == len(values) > 1, setting
        for value in values:
            changed = with_setting(ItemModelParams(), setting, value)
            assert changed is not None and getattr(changed, setting) == value, (setting, value)
    assert ItemModelParams() == replace(ItemModelParams(), **{setting: getattr(ItemModelParams(), setting) for setting in SWEEP_GRID})
    for setting in SWEEP_GRID:  # the defaults are points of the grid
        assert getattr(ItemModelParams(), setting) in SWEEP_GRID[setting], setting
    assert ItemModelParams().l2 in PLAIN_EASE_L2
