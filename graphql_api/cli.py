"""`bookrec`: one entry point, one module per command under `graphql_api.commands`.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`handler` to a function taking the parsed arguments and returning an exit code.
A `CommandError` becomes a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from graphql_api.settings import SettingsError

# Order is the order `bookrec --help` lists them in.
COMMANDS = (
    "demo",
    "serve",
    "token",
    "train",
    "model",
    "warm",
    "recommend",
    "evaluate",
    "import_data",
    "generate",
    "export_schema",
    "create_table",
    "stats",
)


class CommandError(Exception):
    """A bad file or argument: reported as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bookrec", description="Book recommendations over GraphQL.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"graphql_api.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (CommandError, SettingsError) as error:
        print(f"bookrec {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # Run the imported module's main: under `python -m` this file is also `__main__`, and the
    # commands catch-and-raise the CommandError class of `graphql_api.cli`, not of `__main__`.
    from graphql_api.cli import main as imported_main

    sys.exit(imported_main())
