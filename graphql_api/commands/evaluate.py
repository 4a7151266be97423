"""`bookrec evaluate`: offline quality of the item model against plain EASE, item-kNN, user-user kNN and popularity."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import orjson
from tqdm import tqdm

from adapters.goodbooks_csv import GoodbooksFormatError, read_books, read_ratings_columns
from domain.evaluation import (
    CUTOFF,
    PLAIN_EASE_L2,
    EvaluationResult,
    coordinate_sweep,
    describe,
    evaluate_item_model,
    evaluate_popularity,
    evaluate_user_knn,
    holdout_split,
)
from domain.item_model import ItemModelParams
from domain.models import RatingColumns
from domain.user_knn import RecommenderParams
from graphql_api.cli import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure recommendation quality offline (nDCG, recall, precision, coverage)",
        description=f"Hide --holdout ratings of --test-users users, train on the rest and score each user's top {CUTOFF} "
        "against the hidden books they rated 4 or 5: the popularity baselines, the user-user kNN the service used "
        "before, item-kNN and the item model with its default settings; with --sweep, plain EASE at each lambda "
        "and a search over the item model's settings.",
    )
    parser.add_argument("--ratings", type=Path, required=True, help="goodbooks-format ratings CSV")
    parser.add_argument("--books", type=Path, help="goodbooks books.csv: the catalogue (default: the books in --ratings)")
    parser.add_argument("--test-users", type=int, default=1000, help="users whose ratings are partly hidden (default 1000)")
    parser.add_argument("--holdout", type=int, default=10, help="ratings hidden per test user (default 10)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the split (default 42)")
    parser.add_argument("--sweep", action="store_true", help="also plain EASE at each lambda, and search the item model's settings")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.test_users < 1 or args.holdout < 1:
        raise CommandError("--test-users and --holdout must be at least 1")
    columns, catalogue_size = load(args.ratings, args.books)
    try:
        split = holdout_split(columns, args.test_users, args.holdout, args.seed)
    except ValueError as error:
        raise CommandError(str(error)) from None
    defaults = ItemModelParams()
    results = [
        evaluate_popularity("popularity (rating count)", split, replace(defaults, popularity="count"), catalogue_size),
        evaluate_popularity("popularity (ratings >= 4)", split, replace(defaults, popularity="liked"), catalogue_size),
        evaluate_user_knn(f"baseline {describe(RecommenderParams())}", split, RecommenderParams(), catalogue_size),
        evaluate_item_model(f"item-kNN: {describe(replace(defaults, algorithm='knn'))}", split, replace(defaults, algorithm="knn"),
                            catalogue_size),
    ]
    default_result = evaluate_item_model(f"item model defaults: {describe(defaults)}", split, defaults, catalogue_size)
    results.append(default_result)
    if args.sweep:
        with tqdm(unit="variant", desc="sweep", disable=not sys.stderr.isatty(), file=sys.stderr) as bar:
            for l2 in PLAIN_EASE_L2:  # Steck's EASE as published: binary input, every weight kept; its best lambda is the bar
                plain = replace(defaults, input="binary", algorithm="ease", l2=l2, weights_per_book=catalogue_size)
                results.append(evaluate_item_model(f"plain EASE (binary, no pruning) l2={l2:g}", split, plain, catalogue_size))
                bar.update()
            unpruned = replace(defaults, weights_per_book=catalogue_size)  # what pruning to weights_per_book costs or gains
            if not (defaults.input == "binary" and defaults.algorithm_for(catalogue_size) == "ease" and defaults.l2 in PLAIN_EASE_L2):
                results.append(evaluate_item_model(f"item model defaults, no pruning: {describe(unpruned)}", split, unpruned,
                                                   catalogue_size))
                bar.update()
            best, swept = coordinate_sweep(split, defaults, catalogue_size, on_result=lambda _: bar.update(),
                                           known=[default_result])
        results += [result for result in swept if result.params not in (defaults, best)]
        results.append(replace(next(result for result in swept if result.params == best), name=f"best of sweep: {describe(best)}"))
    header = (f"{len(columns):,} ratings, {len(columns.user_ids):,} users, catalogue {catalogue_size:,} books; "
              f"{len(split.test_users):,} test users, {args.holdout} hidden each, seed {args.seed}")
    print(as_json(header, results) if args.json else as_table(header, results))
    return 0


def load(ratings_path: Path, books_path: Path | None) -> tuple[RatingColumns, int]:
    """The ratings (restricted to the catalogue when --books is given) and the catalogue's size."""
    try:
        columns = read_ratings_columns(ratings_path)
        book_ids = None if books_path is None else np.array([book.id for book in read_books(books_path)], dtype=np.int64)
    except GoodbooksFormatError as error:
        raise CommandError(str(error)) from None
    if not len(columns):
        raise CommandError(f"ratings file {ratings_path} has no valid rating")
    if book_ids is None:
        return columns, int(np.unique(columns.book_ids).size)
    known = np.isin(columns.book_ids, book_ids)
    restricted = RatingColumns(columns.user_ids, columns.user_codes[known], columns.book_ids[known], columns.ratings[known])
    return restricted, int(book_ids.size)


def as_table(header: str, results: list[EvaluationResult]) -> str:
    baseline = max(result.ndcg for result in results if result.params is None)
    width = max(len(result.name) for result in results)
    lines = [
        header,
        "",
        f"{'variant':<{width}}  nDCG@{CUTOFF}  x pop  recall@{CUTOFF}  prec@{CUTOFF}  coverage  ms/user  popular",
    ]
    for result in results:
        lines.append(
            f"{result.name:<{width}}  {result.ndcg:7.4f}  {result.ndcg / baseline if baseline else 0:5.2f}  "
            f"{result.recall:9.4f}  {result.precision:7.4f}  {result.coverage:8.3f}  {result.ms_per_user:7.2f}  {result.popular_share:7.3f}"
        )
    lines.append(f"(x pop: nDCG over the better popularity baseline; {results[0].users:,} test users had a liked hidden book)")
    return "\n".join(lines)


def as_json(header: str, results: list[EvaluationResult]) -> str:
    rows = [{**asdict(result), "params": asdict(result.params) if result.params else None,
             "model": type(result.params).__name__ if result.params else "popularity"} for result in results]
    return orjson.dumps({"data": header, "results": rows}, option=orjson.OPT_INDENT_2).decode()
