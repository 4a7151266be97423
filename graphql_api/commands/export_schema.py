"""`bookrec export-schema`: write the schema's SDL, the API's public contract, to schema.graphql."""

from __future__ import annotations

import argparse
from pathlib import Path

from graphql_api.cli import CommandError
from graphql_api.schema import schema_sdl


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-schema",
        help="write the GraphQL schema (SDL) to a file",
        description="Write the schema's SDL. schema.graphql at the repository root is this output; a test fails when "
        "it is stale.",
    )
    parser.add_argument("--output", type=Path, default=Path("schema.graphql"), help="where to write it (default ./schema.graphql)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        args.output.write_text(schema_sdl(), encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot write {args.output}: {error}") from None
    print(f"wrote {args.output}")
    return 0
