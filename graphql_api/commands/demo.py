"""`bookrec demo` (what `make serve` runs): demo data if there is none, ready tokens, then the API with GraphiQL."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from adapters.goodbooks_csv import write_books, write_ratings
from adapters.synthetic_data import generate
from graphql_api.auth import TokenAuthority, jwt_secret
from graphql_api.bootstrap import open_stores
from graphql_api.commands import serve
from graphql_api.commands.import_data import import_files
from graphql_api.settings import Settings, load_settings

# Small enough to generate and import in a few seconds, large enough for real neighbours.
DEMO_USERS, DEMO_BOOKS, DEMO_RATINGS, DEMO_SEED = 5_000, 2_000, 150_000, 42
DEMO_USER = "1"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="serve the API on demo data with GraphiQL (what `make serve` runs)",
        description="Create a synthetic demo database when the SQLite store is empty, print a user token and an "
        "admin token, then serve with DEBUG=true (GraphiQL at /graphql, the demo app at /).",
    )
    serve.add_bind_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Set in the environment, not only here: uvicorn's factory reads the settings again in the worker.
    os.environ.setdefault("DEBUG", "true")
    settings = load_settings()
    if settings.dynamodb_table:
        print(f"using DynamoDB table {settings.dynamodb_table} as it is (seed it with `bookrec import`)")
    elif not asyncio.run(has_ratings(settings)):
        seed_demo_data(settings)
    print_tokens(settings, args.host or settings.host, args.port or settings.port)
    return serve.run(argparse.Namespace(host=args.host, port=args.port, workers=None))


async def has_ratings(settings: Settings) -> bool:
    if not Path(settings.sqlite_path).exists():
        return False
    async with open_stores(settings) as stores:
        return len(await stores.ratings.scan_columns()) > 0


def seed_demo_data(settings: Settings) -> None:
    print(f"creating demo data in {settings.sqlite_path}: {DEMO_USERS:,} users, {DEMO_BOOKS:,} books, {DEMO_RATINGS:,} ratings")
    data = generate(DEMO_USERS, DEMO_BOOKS, DEMO_RATINGS, DEMO_SEED)
    with tempfile.TemporaryDirectory(prefix="bookrec-demo-") as folder:
        books, ratings = Path(folder, "books.csv"), Path(folder, "ratings.csv")
        write_books(books, data.books)
        write_ratings(ratings, data.user_ids, data.book_ids, data.ratings)
        asyncio.run(import_files(settings, books, ratings))


def print_tokens(settings: Settings, host: str, port: int) -> None:
    tokens = TokenAuthority(jwt_secret(settings))
    print(
        f"\nGraphiQL:  http://{host}:{port}/graphql\nDemo app:  http://{host}:{port}/\n"
        f"\nToken for user {DEMO_USER} (rateBook as that user):\n  {tokens.issue(DEMO_USER, admin=False, ttl_seconds=7 * 86400)}\n"
        f"Admin token (any user, invalidate, refresh):\n  {tokens.issue('admin', admin=True, ttl_seconds=7 * 86400)}\n"
        f"Send one as the header  Authorization: Bearer <token>\n",
        flush=True,
    )
