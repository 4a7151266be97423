"""`bookrec warm`: compute and cache every user's recommendations, or one segment of them.

Progress shows as a bar on a terminal and as periodic log lines otherwise (a
scheduled task's log), and the run ends with its throughput in users/second.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import zlib

from tqdm import tqdm

from graphql_api.bootstrap import open_container
from graphql_api.cli import CommandError
from graphql_api.observability.logging_config import configure_logging
from graphql_api.observability.progress import ProgressLog
from graphql_api.settings import Settings, load_settings

logger = logging.getLogger("bookrec.warm")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "warm",
        help="compute and cache recommendations for every user",
        description="Compute and cache recommendations for every user with a rating, in vectorised "
        "batches. --segment/--segments split the users by a stable hash so N scheduled tasks share the work.",
    )
    parser.add_argument("--segment", type=int, default=0, help="which segment this task computes (0-based)")
    parser.add_argument("--segments", type=int, default=1, help="how many segments the users are split into")
    parser.add_argument("--batch-size", type=int, default=1000, help="users per recommender call")
    parser.set_defaults(handler=run)


WARM_LEASE_MS = 120_000


def in_segment(user_id: str, segment: int, segments: int) -> bool:
    """A stable split: the same user lands in the same segment in every process and on every run."""
    return zlib.crc32(user_id.encode()) % segments == segment


def run(args: argparse.Namespace) -> int:
    if args.segments < 1 or not 0 <= args.segment < args.segments:
        raise CommandError(f"--segment must be in 0..{args.segments - 1} and --segments at least 1")
    if args.batch_size < 1:
        raise CommandError("--batch-size must be at least 1")
    settings = load_settings()
    # A batch's leases must outlive its computation, or its fills are refused and nothing is cached;
    # a reader meeting one of these leases waits briefly, then computes for itself.
    settings = settings.model_copy(update={"cache_lease_ms": max(settings.cache_lease_ms, WARM_LEASE_MS)})
    configure_logging(settings.log_level, human=settings.debug or sys.stderr.isatty())
    return asyncio.run(warm(settings, args.segment, args.segments, args.batch_size))


async def warm(settings: Settings, segment: int, segments: int, batch_size: int) -> int:
    async with open_container(settings, refresh_model=False) as container:
        users = [user for user in await container.ratings.user_ids() if in_segment(user, segment, segments)]
        started = time.perf_counter()
        on_terminal = sys.stderr.isatty()
        log_progress = ProgressLog(logger, f"warm segment {segment}/{segments}")
        with tqdm(total=len(users), unit="user", disable=not on_terminal, file=sys.stderr) as bar:

            def progress(done: int, total: int) -> None:
                if on_terminal:
                    bar.update(done - bar.n)
                else:
                    log_progress(done, total)

            computed = await container.service.refresh(users, batch_size=batch_size, on_progress=progress)
        elapsed = time.perf_counter() - started
        if not on_terminal:
            log_progress.finish(computed)
    rate = computed / elapsed if elapsed > 0 else 0.0
    print(f"warmed {computed} of {len(users)} users (segment {segment}/{segments}) in {elapsed:.1f} s: {rate:,.0f} users/s")
    return 0
