"""`bookrec generate`: a deterministic synthetic data set in goodbooks format, for benchmarks at scale."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from adapters.goodbooks_csv import write_books, write_ratings
from adapters.synthetic_data import check_shape, generate
from graphql_api.cli import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write a synthetic goodbooks-format data set",
        description="Write DIR/books.csv and DIR/ratings.csv: power-law book popularity, log-normal user activity "
        "and latent tastes (so collaborative filtering has signal), star shares as in goodbooks. The same "
        "arguments always write the same bytes. Defaults are goodbooks-10k's full scale.",
    )
    parser.add_argument("--users", type=int, default=53_424, help="number of users (default 53424)")
    parser.add_argument("--books", type=int, default=10_000, help="number of books (default 10000)")
    parser.add_argument("--ratings", type=int, default=6_000_000, help="exact number of ratings (default 6000000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write the two files to")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        check_shape(args.users, args.books, args.ratings)
    except ValueError as error:
        raise CommandError(str(error)) from None
    if args.seed < 0:
        raise CommandError("--seed must be a non-negative integer")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CommandError(f"cannot create {args.out}: {error.strerror or error}") from None

    started = time.perf_counter()
    with tqdm(total=args.users, unit="user", disable=not sys.stderr.isatty(), file=sys.stderr) as bar:
        data = generate(args.users, args.books, args.ratings, args.seed, on_progress=bar.update)
    try:
        write_books(args.out / "books.csv", data.books)
        write_ratings(args.out / "ratings.csv", data.user_ids, data.book_ids, data.ratings)
    except OSError as error:
        raise CommandError(f"cannot write to {args.out}: {error.strerror or error}") from None
    print(
        f"wrote {len(data.books):,} books and {len(data.ratings):,} ratings of {args.users:,} users "
        f"to {args.out}/books.csv and ratings.csv in {time.perf_counter() - started:.1f} s"
    )
    return 0
