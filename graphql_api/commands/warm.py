"""`bookrec warm`: compute and cache every user's recommendations, or one segment of them."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import zlib

from tqdm import tqdm

from graphql_api.bootstrap import open_container
from graphql_api.cli import CommandError
from graphql_api.settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "warm",
        help="compute and cache recommendations for every user",
        description="Compute and cache recommendations for every user in the model snapshot, in vectorised "
        "batches. --segment/--segments split the users by a stable hash so N scheduled tasks share the work.",
    )
    parser.add_argument("--segment", type=int, default=0, help="which segment this task computes (0-based)")
    parser.add_argument("--segments", type=int, default=1, help="how many segments the users are split into")
    parser.add_argument("--batch-size", type=int, default=1000, help="users per recommender call")
    parser.set_defaults(handler=run)


def in_segment(user_id: str, segment: int, segments: int) -> bool:
    """A stable split: the same user lands in the same segment in every process and on every run."""
    return zlib.crc32(user_id.encode()) % segments == segment


def run(args: argparse.Namespace) -> int:
    if args.segments < 1 or not 0 <= args.segment < args.segments:
        raise CommandError(f"--segment must be in 0..{args.segments - 1} and --segments at least 1")
    if args.batch_size < 1:
        raise CommandError("--batch-size must be at least 1")
    return asyncio.run(warm(args.segment, args.segments, args.batch_size))


async def warm(segment: int, segments: int, batch_size: int) -> int:
    async with open_container(load_settings(), refresh_model=False) as container:
        users = [user for user in container.model.current.user_ids if in_segment(user, segment, segments)]
        started = time.perf_counter()
        with tqdm(total=len(users), unit="user", disable=not sys.stderr.isatty(), file=sys.stderr) as bar:

            def progress(done: int, total: int) -> None:
                bar.update(done - bar.n)

            computed = await container.service.refresh(users, batch_size=batch_size, on_progress=progress)
        elapsed = time.perf_counter() - started
    rate = computed / elapsed if elapsed > 0 else 0.0
    print(f"warmed {computed} of {len(users)} users (segment {segment}/{segments}) in {elapsed:.1f} s: {rate:,.0f} users/s")
    return 0
