"""`bookrec model list` and `bookrec model use VERSION`: the published versions, and rolling back to one."""

from __future__ import annotations

import argparse
import asyncio
import datetime

import orjson

from domain.models import ArtifactError
from graphql_api.bootstrap import open_model_repository
from graphql_api.cli import CommandError
from graphql_api.settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "model", help="list the published models, or serve another one",
        description="Models published at MODEL_URI: `list` shows the versions kept (newest first, * marks LATEST); "
        "`use VERSION` points LATEST at one of them, and serving processes switch within MODEL_REFRESH_SECONDS.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the versions kept, newest first")
    listing.add_argument("--json", action="store_true", help="print the manifests as JSON")
    use = actions.add_parser("use", help="serve VERSION (a rollback)")
    use.add_argument("version")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(list_versions(args.json) if args.action == "list" else use_version(args.version))


async def list_versions(as_json: bool) -> int:
    settings = load_settings()
    try:
        async with open_model_repository(settings) as repository:
            manifests = await repository.versions()
    except ArtifactError as error:
        raise CommandError(str(error)) from None
    if as_json:
        print(orjson.dumps(manifests, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not manifests:
        print(f"no model published at {settings.model_uri}")
    for manifest in manifests:
        created = datetime.datetime.fromtimestamp(float(manifest["created_at"]), datetime.timezone.utc)  # type: ignore[arg-type]
        print(f"{'*' if manifest.get('latest') else ' '} {manifest['version']}  {created:%Y-%m-%d %H:%M:%S}Z  "
              f"{manifest.get('algorithm', '?')}  {manifest.get('n_books', 0):,} books  {manifest.get('n_ratings', 0):,} ratings")
    return 0


async def use_version(version: str) -> int:
    settings = load_settings()
    try:
        async with open_model_repository(settings) as repository:
            await repository.use(version)
    except ArtifactError as error:
        raise CommandError(str(error)) from None
    print(f"model {version} is now LATEST at {settings.model_uri}")
    return 0
