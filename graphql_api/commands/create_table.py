"""`bookrec create-table`: create the DynamoDB table DYNAMODB_TABLE names (for moto, DynamoDB Local or a dev account).

Production tables come from Terraform (infra/); this is the local shortcut. It is
idempotent, so scripts can run it before every `bookrec import`.
"""

from __future__ import annotations

import argparse
import asyncio

from adapters.dynamodb_store import create_table
from domain.models import StoreUnavailable
from graphql_api.cli import CommandError
from graphql_api.settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "create-table",
        help="create the DynamoDB table (on-demand billing)",
        description="Create the table named by DYNAMODB_TABLE in AWS_REGION (at DYNAMODB_ENDPOINT_URL when set) with "
        "keys pk/sk and on-demand billing, and wait until it is active. An existing table is left as it is.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if not settings.dynamodb_table:
        raise CommandError("DYNAMODB_TABLE is not set: name the table to create")
    where = settings.dynamodb_endpoint_url or f"AWS region {settings.aws_region}"
    try:
        created = asyncio.run(
            create_table(table=settings.dynamodb_table, region=settings.aws_region, endpoint_url=settings.dynamodb_endpoint_url)
        )
    except StoreUnavailable as error:
        raise CommandError(str(error)) from None
    state = "created" if created else "already exists, left as it is"
    print(f"DynamoDB table {settings.dynamodb_table} at {where}: {state}")
    return 0
