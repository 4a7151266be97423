"""`bookrec import`: load goodbooks-10k CSV files into the configured stores.

Every file is parsed and checked before anything is written, so a bad path or
header changes nothing. Bad rows are reported with their line numbers and
skipped; every other row is written whole (one upsert per rating). Importing the
same files again writes the same values (ratings get the fixed
IMPORTED_RATED_AT, goodbooks having no timestamps), so it changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from adapters.goodbooks_csv import (
    IMPORTED_RATED_AT,
    GoodbooksFormatError,
    ParsedBooks,
    ParsedRatings,
    RowProblem,
    parse_books,
    parse_ratings,
)
from domain.ports import BookCatalog
from graphql_api.bootstrap import open_stores
from graphql_api.cli import CommandError
from graphql_api.settings import Settings, load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import",
        help="load goodbooks-10k CSV files (books and/or ratings)",
        description="Load goodbooks-10k CSV files into the ratings store and catalog (SQLite at SQLITE_PATH, or "
        "DYNAMODB_TABLE when set). Ratings columns may be user_id,book_id,rating in any order; a pair rated twice "
        "keeps the last row. Bad rows are reported with their line numbers and skipped. Re-importing is harmless.",
    )
    parser.add_argument("--books", type=Path, metavar="PATH", help="books.csv (goodbooks columns)")
    parser.add_argument("--ratings", type=Path, metavar="PATH", help="ratings CSV; its books must be in --books or already imported")
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class ImportSummary:
    books: int
    ratings: int
    users: int
    skipped: int
    seconds: float


def run(args: argparse.Namespace) -> int:
    if args.books is None and args.ratings is None:
        raise CommandError("nothing to import: give --books PATH and/or --ratings PATH")
    settings = load_settings()
    try:
        summary = asyncio.run(import_files(settings, args.books, args.ratings))
    except GoodbooksFormatError as error:
        raise CommandError(str(error)) from None
    target = f"DynamoDB table {settings.dynamodb_table}" if settings.dynamodb_table else settings.sqlite_path
    print(
        f"imported {summary.books:,} books and {summary.ratings:,} ratings ({summary.users:,} users) into {target}; "
        f"skipped {summary.skipped:,} bad rows; {summary.seconds:.1f} s"
    )
    return 0


async def import_files(settings: Settings, books_path: Path | None, ratings_path: Path | None) -> ImportSummary:
    started = time.perf_counter()
    books = await asyncio.to_thread(parse_books, books_path) if books_path else ParsedBooks([], ())
    ratings = await asyncio.to_thread(parse_ratings, ratings_path) if ratings_path else None
    report(books_path, books.problems)
    async with open_stores(settings) as stores:
        if books.books:
            await stores.catalog.put_many(books.books)
        written = users = skipped_ratings = 0
        if ratings is not None:
            ratings = await _with_known_books(ratings, {book.id for book in books.books}, stores.catalog)
            report(ratings_path, ratings.problems)
            skipped_ratings = len(ratings.problems)
            progress = tqdm(
                ratings.ratings_at(IMPORTED_RATED_AT), total=len(ratings), unit="rating", unit_scale=True,
                disable=not sys.stderr.isatty(), file=sys.stderr,
            )
            with progress:
                written = await stores.ratings.put_many(progress)
            users = len(np.unique(ratings.user_ids))
    return ImportSummary(len(books.books), written, users, len(books.problems) + skipped_ratings, time.perf_counter() - started)


async def _with_known_books(ratings: ParsedRatings, importing: set[int], catalog: BookCatalog) -> ParsedRatings:
    """The last rating of each pair whose book is being imported or already in the catalog."""
    others = sorted(set(ratings.book_ids.tolist()) - importing)
    known = importing | set(await catalog.get_many(others))
    return await asyncio.to_thread(lambda: ratings.only_books(known).deduplicated())


def report(path: Path | None, problems: tuple[RowProblem, ...]) -> None:
    for problem in sorted(problems, key=lambda problem: problem.line):
        print(f"{path}:{problem.line}: {problem.message}", file=sys.stderr)
