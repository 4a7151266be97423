"""Quality and speed against LensKit's user-user KNN, same split, same metrics, same run (issue 9).

LensKit is a benchmark-only dependency and never a runtime one, so it lives in a throwaway
virtualenv, not the project's:

    python3 -m venv /tmp/lk && /tmp/lk/bin/pip install lenskit
    PYTHONPATH=. /tmp/lk/bin/python -m bench.bench_lenskit [--ratings PATH] [--test-users 1000] [--holdout 10] [--seed 42]

The defaults reproduce `bookrec evaluate` on the shared 5% goodbooks file: the split comes
from domain.evaluation.holdout_split with the same seed, and every ranker is scored by the
same score_rankings (top 10 over the catalogue minus the user's training books).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from adapters.goodbooks_csv import read_ratings_columns
from domain.evaluation import CUTOFF, EvaluationResult, HoldoutSplit, evaluate_popularity, evaluate_user_knn, holdout_split, score_rankings
from domain.item_model import ItemModelParams
from domain.user_knn import RecommenderParams

SHARED_RATINGS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "goodbooks-10k" / "ratings-5pct-users.csv"
CATALOGUE = 10_000  # goodbooks-10k's books.csv, as `bookrec evaluate --books` counts it
NEIGHBOURS = 50


def evaluate_lenskit(name: str, split: HoldoutSplit, feedback: str) -> EvaluationResult:
    """LensKit's UserKNNScorer in its standard top-N pipeline (unrated training items are the candidates)."""
    from lenskit import recommend, topn_pipeline
    from lenskit.data import from_interactions_df
    from lenskit.knn import UserKNNConfig, UserKNNScorer

    train = split.train
    frame = pd.DataFrame({
        "user_id": np.asarray(train.user_ids, dtype=object)[train.user_codes],
        "item_id": train.book_ids.astype(np.int64),
        "rating": train.ratings.astype(np.float32),
    })
    pipeline = topn_pipeline(UserKNNScorer(UserKNNConfig(max_nbrs=NEIGHBOURS, feedback=feedback)), n=CUTOFF)
    pipeline.train(from_interactions_df(frame, user_col="user_id", item_col="item_id", rating_col="rating"))

    def rank(users: Sequence[str]) -> list[list[int]]:
        return [[int(book) for book in recommend(pipeline, user, n=CUTOFF).ids()] for user in users]

    return score_rankings(name, split, rank, CATALOGUE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_lenskit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=Path, default=SHARED_RATINGS)
    parser.add_argument("--test-users", type=int, default=1000)
    parser.add_argument("--holdout", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    import lenskit

    split = holdout_split(read_ratings_columns(args.ratings), args.test_users, args.holdout, args.seed)
    defaults = RecommenderParams()
    results = [
        evaluate_popularity("popularity (ratings >= 4)", split, ItemModelParams(popularity="liked"), CATALOGUE),
        evaluate_user_knn("bookrec recommender (defaults)", split, defaults, CATALOGUE),
        evaluate_lenskit(f"LensKit {lenskit.__version__} UserKNN implicit, {NEIGHBOURS} neighbours", split, "implicit"),
        evaluate_lenskit(f"LensKit {lenskit.__version__} UserKNN explicit, {NEIGHBOURS} neighbours", split, "explicit"),
    ]
    print(f"{args.ratings.name}: {len(split.test_users)} test users, {args.holdout} hidden each, seed {args.seed}\n")
    print(f"| ranker | nDCG@{CUTOFF} | recall@{CUTOFF} | precision@{CUTOFF} | coverage | ms/user |")
    print("|---|---|---|---|---|---|")
    for result in results:
        print(f"| {result.name} | {result.ndcg:.4f} | {result.recall:.4f} | {result.precision:.4f} | {result.coverage:.3f} | {result.ms_per_user:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
