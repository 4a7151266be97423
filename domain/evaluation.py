"""Offline evaluation of top-N recommendations: a seeded hold-out split, ranking metrics, a sweep.

Protocol (issue 9): sample test users with enough ratings, hide `holdout` of each one's
ratings, train on everything else, recommend the top k over the whole
catalogue minus each user's training books, and compare with the hidden books the user
liked (rating >= 4). Metrics use binary relevance and are averaged over the test users who
have at least one liked hidden book (a user with none has nothing to find).

Pure: the command reads files and prints; this module only computes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np
import scipy.sparse as sp

from domain.item_model import ItemModel, ItemModelParams, ItemRecommender, train
from domain.models import Rating, RatingColumns
from domain.ranking import LIKED_RATING
from domain.user_knn import ModelSnapshot, Recommender, RecommenderParams

CUTOFF = 10
MIN_TRAINING_RATINGS = 5  # a test user keeps at least this many ratings to be scored from
RANKING_BATCH = 256  # users per recommend_batch call while evaluating, as the warm job would


def ndcg_at_k(ranked: Sequence[int], relevant: frozenset[int], k: int = CUTOFF) -> float:
    """DCG of the top k over the DCG of a perfect top k (binary gains); 0 when nothing is relevant."""
    ideal = sum(1.0 / math.log2(position + 2) for position in range(min(len(relevant), k)))
    gained = sum(1.0 / math.log2(position + 2) for position, book in enumerate(ranked[:k]) if book in relevant)
    return gained / ideal if ideal else 0.0


def recall_at_k(ranked: Sequence[int], relevant: frozenset[int], k: int = CUTOFF) -> float:
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def precision_at_k(ranked: Sequence[int], relevant: frozenset[int], k: int = CUTOFF) -> float:
    return len(relevant.intersection(ranked[:k])) / k


def catalogue_coverage(rankings: Iterable[Sequence[int]], catalogue_size: int, k: int = CUTOFF) -> float:
    """Share of the catalogue that appears in at least one top k."""
    shown = {book for ranked in rankings for book in ranked[:k]}
    return len(shown) / catalogue_size if catalogue_size else 0.0


@dataclass(frozen=True)
class HoldoutSplit:
    train: RatingColumns
    test_users: tuple[str, ...]
    held_out: dict[str, dict[int, float]]  # test user -> {book_id: stars} hidden from training

    def relevant(self, user_id: str) -> frozenset[int]:
        return frozenset(book for book, stars in self.held_out[user_id].items() if stars >= LIKED_RATING)


def holdout_split(columns: RatingColumns, test_users: int, holdout: int, seed: int) -> HoldoutSplit:
    """Hide `holdout` random ratings of each of `test_users` random users with enough ratings.

    The same data and seed give the same split. Every user keeps its place in `user_ids`
    (a test user stays in the snapshot with the ratings left to it).
    """
    if holdout < 1 or test_users < 1:
        raise ValueError("the number of test users and the hold-out must be at least 1")
    rng = np.random.default_rng(seed)
    codes = np.asarray(columns.user_codes)
    counts = np.bincount(codes, minlength=len(columns.user_ids))
    eligible = np.flatnonzero(counts >= holdout + MIN_TRAINING_RATINGS)
    if eligible.size == 0:
        raise ValueError(f"no user has the {holdout + MIN_TRAINING_RATINGS} ratings a hold-out of {holdout} needs")
    chosen = np.sort(rng.choice(eligible, size=min(test_users, eligible.size), replace=False))
    rows_by_user = np.argsort(codes, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)))
    hidden = np.concatenate([rng.choice(rows_by_user[starts[user] : starts[user + 1]], holdout, replace=False) for user in chosen])
    keep = np.ones(codes.size, dtype=bool)
    keep[hidden] = False
    books, stars = np.asarray(columns.book_ids), np.asarray(columns.ratings)
    held_out: dict[str, dict[int, float]] = {columns.user_ids[user]: {} for user in chosen}
    for row in hidden.tolist():
        held_out[columns.user_ids[codes[row]]][int(books[row])] = float(stars[row])
    train = RatingColumns(columns.user_ids, codes[keep], books[keep], stars[keep])
    return HoldoutSplit(train, tuple(columns.user_ids[user] for user in chosen), held_out)


@dataclass(frozen=True)
class EvaluationResult:
    name: str
    ndcg: float
    recall: float
    precision: float
    coverage: float
    ms_per_user: float
    users: int  # test users with at least one liked hidden book
    popular_share: float  # share of recommended items labelled POPULAR (fallback and fill)
    params: ItemModelParams | RecommenderParams | None = None  # None for the popularity baseline


Ranker = Callable[[Sequence[str]], list[list[int]]]  # a batch of test users -> each one's top-k book ids


def score_rankings(name: str, split: HoldoutSplit, rank: Ranker, catalogue_size: int, k: int = CUTOFF,
                   params: ItemModelParams | RecommenderParams | None = None,
                   popular_share: Callable[[], float] = lambda: 1.0) -> EvaluationResult:
    """Time `rank` over the test users in batches and average the metrics."""
    rankings: list[list[int]] = []
    started = time.perf_counter()
    for start in range(0, len(split.test_users), RANKING_BATCH):
        rankings.extend(rank(split.test_users[start : start + RANKING_BATCH]))
    elapsed = time.perf_counter() - started
    scored = [(ranked, split.relevant(user)) for user, ranked in zip(split.test_users, rankings) if split.relevant(user)]
    count = max(len(scored), 1)
    return EvaluationResult(
        name=name,
        ndcg=sum(ndcg_at_k(ranked, relevant, k) for ranked, relevant in scored) / count,
        recall=sum(recall_at_k(ranked, relevant, k) for ranked, relevant in scored) / count,
        precision=sum(precision_at_k(ranked, relevant, k) for ranked, relevant in scored) / count,
        coverage=catalogue_coverage(rankings, catalogue_size, k),
        ms_per_user=1000 * elapsed / max(len(split.test_users), 1),
        users=len(scored),
        popular_share=popular_share(),
        params=params,
    )


def training_ratings(split: HoldoutSplit) -> dict[str, list[Rating]]:
    """The test users' training ratings, as the service reads a user's ratings on a miss."""
    columns = split.train
    wanted = {user: code for code, user in enumerate(columns.user_ids)}
    codes = np.asarray(columns.user_codes)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(columns.user_ids) + 1))
    epoch = datetime.fromtimestamp(0, timezone.utc)
    found: dict[str, list[Rating]] = {}
    for user in split.test_users:
        rows = order[bounds[wanted[user]] : bounds[wanted[user] + 1]]
        found[user] = [Rating(user, int(book), int(stars), epoch)
                       for book, stars in zip(np.asarray(columns.book_ids)[rows].tolist(), np.asarray(columns.ratings)[rows].tolist())]
    return found


def evaluate_item_model(name: str, split: HoldoutSplit, params: ItemModelParams, catalogue_size: int | None = None,
                        k: int = CUTOFF, model: ItemModel | None = None) -> EvaluationResult:
    """The service's recommender: the item model trained with `params` on the split's training ratings."""
    model = model or train(split.train, params)
    return _evaluate_model(name, split, model, ItemRecommender(k), catalogue_size, k, params)


def evaluate_popularity(name: str, split: HoldoutSplit, params: ItemModelParams, catalogue_size: int | None = None,
                        k: int = CUTOFF) -> EvaluationResult:
    """The baseline: the popularity ranking (`params.popularity`) minus each user's training books."""
    # Only the popularity is kept: item-kNN with one weight per book is the cheapest training that
    # computes it (EASE would invert a dense n x n matrix only to throw it away).
    trained = train(split.train, replace(params, algorithm="knn", weights_per_book=1))
    no_weights = sp.csr_array(trained.weights.shape, dtype=np.float32)
    model = ItemModel.build(trained.book_ids, no_weights, trained.popularity)
    result = _evaluate_model(name, split, model, ItemRecommender(k), catalogue_size, k, None)
    return result


def _evaluate_model(name: str, split: HoldoutSplit, model: ItemModel, recommender: ItemRecommender, catalogue_size: int | None,
                    k: int, params: ItemModelParams | None) -> EvaluationResult:
    ratings = training_ratings(split)
    popular: list[bool] = []

    def rank(users: Sequence[str]) -> list[list[int]]:
        lists = recommender.recommend_batch(model, users, ratings)
        popular.extend(item.source.value == "POPULAR" for items in lists for item in items)
        return [[item.book_id for item in items] for items in lists]

    return score_rankings(name, split, rank, catalogue_size or model.n_books, k, params,
                          lambda: sum(popular) / max(len(popular), 1))


def evaluate_user_knn(name: str, split: HoldoutSplit, params: RecommenderParams, catalogue_size: int | None = None,
                      k: int = CUTOFF) -> EvaluationResult:
    """The baseline the item model replaced: user-user kNN with `params` (domain/user_knn.py)."""
    top_k = replace(params, max_recommendations=k)
    snapshot = ModelSnapshot.build(split.train, top_k)
    recommender = Recommender(top_k)
    popular: list[bool] = []

    def rank(users: Sequence[str]) -> list[list[int]]:
        lists = recommender.recommend_batch(snapshot, users, {})
        popular.extend(item.source.value == "POPULAR" for items in lists for item in items)
        return [[item.book_id for item in items] for items in lists]

    return score_rankings(name, split, rank, catalogue_size or snapshot.n_books, k, params,
                          lambda: sum(popular) / max(len(popular), 1))


PLAIN_EASE_L2 = (10.0, 20.0, 50.0, 100.0, 200.0, 500.0)  # lambdas plain EASE is evaluated at: its best is the bar

# The item model's settings a sweep varies and the values it tries.
SWEEP_GRID: dict[str, tuple[object, ...]] = {
    "input": ("binary", "liked", "stars"),
    "l2": (10.0, 20.0, 50.0, 100.0, 200.0, 500.0),
    "weights_per_book": (50, 100, 200, 500, 1000, 2000),
    "popularity": ("count", "liked"),
}


def with_setting(params: ItemModelParams, setting: str, value: object) -> ItemModelParams | None:
    """`params` with one sweep setting changed; None where that combination is invalid."""
    try:
        return replace(params, **{setting: value})
    except ValueError:
        return None


def describe(params: ItemModelParams | RecommenderParams) -> str:
    if isinstance(params, RecommenderParams):
        similarity = "centred" if params.mean_centre else params.similarity
        return (f"user-user k={params.neighbours} sim={similarity} shrink={params.shrinkage:g} min={params.min_neighbours} "
                f"agg={params.aggregation} disc={params.popularity_discount:g} pop={params.popularity}")
    algorithm = params.algorithm if params.algorithm != "auto" else "item"
    return f"{algorithm} input={params.input} l2={params.l2:g} weights/book={params.weights_per_book} pop={params.popularity}"


def coordinate_sweep(split: HoldoutSplit, start: ItemModelParams, catalogue_size: int | None = None,
                     grid: dict[str, tuple[object, ...]] = SWEEP_GRID, rounds: int = 3,
                     on_result: Callable[[EvaluationResult], None] = lambda result: None,
                     known: Iterable[EvaluationResult] = ()) -> tuple[ItemModelParams, list[EvaluationResult]]:
    """Best params by nDCG@10, found one setting at a time: try every value of a setting with the
    others fixed at the best so far, keep the best, move to the next setting; repeat until a
    round changes nothing. Far cheaper than the full grid; each combination is evaluated once
    (`known` results, e.g. the defaults already measured on this split, are not trained again).
    """
    results: dict[ItemModelParams, EvaluationResult] = {
        result.params: result for result in known if isinstance(result.params, ItemModelParams)
    }

    def evaluate(params: ItemModelParams) -> EvaluationResult:
        if params not in results:
            results[params] = evaluate_item_model(describe(params), split, params, catalogue_size)
            on_result(results[params])
        return results[params]

    best = start
    for _ in range(rounds):
        before = best
        for setting, values in grid.items():
            for value in values:
                candidate = with_setting(best, setting, value)
                if candidate is not None and evaluate(candidate).ndcg > evaluate(best).ndcg:
                    best = candidate
        if best == before:
            break
    return best, list(results.values())
