"""`bookrec train`: read every rating, train the item model, publish it where serving processes read it.

Run by hand, by compose's one-shot `train` service, and on AWS by a scheduled ECS task. The
version is written whole before `LATEST` names it, so a run killed half-way changes nothing
that is served.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys

from domain.model_service import EmptyStore, ModelService
from domain.models import ArtifactError, StoreUnavailable
from graphql_api.bootstrap import open_model_repository, open_stores
from graphql_api.cli import CommandError
from graphql_api.observability.logging_config import configure_logging
from graphql_api.settings import Settings, load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the item model on every rating and publish it",
        description="Read every rating (SQLite, or DynamoDB by parallel Scan), train the item model (EASE up to "
        "EASE_MAX_BOOKS books, item-kNN above) and publish a new version to MODEL_URI; serving processes pick it up "
        "within MODEL_REFRESH_SECONDS.",
    )
    parser.add_argument("--out", metavar="URI", help="where to publish: a directory or s3://bucket/prefix (default: MODEL_URI)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(**({"model_uri": args.out} if args.out else {}))
    configure_logging(settings.log_level, human=settings.debug or sys.stderr.isatty())
    return asyncio.run(train(settings))


async def train(settings: Settings) -> int:
    try:
        async with open_stores(settings) as stores, open_model_repository(settings) as repository:
            models = ModelService(repository, stores.ratings, stores.catalog, run_blocking=asyncio.to_thread, where=settings.model_uri)
            model = await models.train_and_publish(settings.item_model_params, measured=peak_memory)
    except (EmptyStore, ArtifactError, StoreUnavailable, ValueError) as error:
        raise CommandError(str(error)) from None
    manifest = model.manifest
    print(f"published model {model.version} to {settings.model_uri}: {manifest['algorithm']}, {model.n_books:,} books, "
          f"{model.weights.nnz:,} weights, {manifest['n_ratings']:,} ratings, trained in {manifest['training_seconds']:.1f} s, "
          f"peak memory {manifest['peak_memory_bytes'] / 2**20:,.0f} MiB")
    return 0


def peak_memory() -> dict[str, int]:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return {"peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
