"""`bookrec recommend`: recommendations from the command line, through the same service and cache as the API."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson

from domain.models import RecommendationList
from graphql_api.bootstrap import open_container
from graphql_api.cli import CommandError
from graphql_api.settings import load_settings

BATCH_SIZE = 1000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recommend",
        help="print a user's recommendations (or many users' from a file)",
        description="Print recommendations through the service the API uses (cache included). With --users-file, "
        "one JSON line per user, computed in vectorised batches.",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("user_id", nargs="?", help="the user to recommend for")
    target.add_argument("--users-file", type=Path, help="a file of user ids, one per line")
    parser.add_argument("--limit", type=int, default=10, help="how many recommendations per user (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def read_user_ids(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"cannot read users file {path}: {error}") from None
    return [line.strip() for line in lines if line.strip()]


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if not 1 <= args.limit <= settings.max_recommendations:
        raise CommandError(f"--limit must be between 1 and {settings.max_recommendations}")
    if args.users_file is not None:
        users = read_user_ids(args.users_file)
        if not args.json:
            raise CommandError("--users-file prints JSON lines: add --json")
        return asyncio.run(print_many(users, args.limit))
    return asyncio.run(print_one(args.user_id, args.limit, args.json))


def items_json(entry: RecommendationList, limit: int) -> list[dict[str, object]]:
    return [
        {"book_id": item.book_id, "score": item.score, "source": item.source.value}
        for item in entry.items[:limit]
    ]


async def print_many(users: list[str], limit: int) -> int:
    async with open_container(load_settings(), refresh_model=False) as container:
        out = sys.stdout.buffer
        for start in range(0, len(users), BATCH_SIZE):
            for entry in await container.service.recommendation_lists(users[start : start + BATCH_SIZE]):
                out.write(orjson.dumps({"user_id": entry.user_id, "items": items_json(entry, limit)}) + b"\n")
        out.flush()
    return 0


async def print_one(user_id: str, limit: int, as_json: bool) -> int:
    async with open_container(load_settings(), refresh_model=False) as container:
        [entry] = await container.service.recommendation_lists([user_id])
        items = items_json(entry, limit)
        books = await container.catalog.get_many([item["book_id"] for item in items])
    for item in items:
        book = books.get(item["book_id"])
        item["title"] = book.title if book else None
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(items, option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    if not items:
        print(f"no recommendations for user {user_id}")
    for rank, item in enumerate(items, 1):
        print(f"{rank:>3}. {item['title'] or item['book_id']}  (score {item['score']:.3f}, {item['source']})")
    return 0
