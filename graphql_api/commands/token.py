"""`bookrec token`: a bearer token for development, signed with the secret the server verifies with."""

from __future__ import annotations

import argparse

from graphql_api.auth import TokenAuthority, jwt_secret
from graphql_api.cli import CommandError
from graphql_api.settings import load_settings

DEFAULT_TTL_SECONDS = 24 * 3600


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "token",
        help="print a bearer token for mutations",
        description="Print a JWT (HS256, signed with AUTH_JWT_SECRET, or the development secret when DEBUG=true "
        "and it is unset) for the header `Authorization: Bearer <token>`.",
    )
    parser.add_argument("--user", required=True, help="the user id the token acts for (its `sub`)")
    parser.add_argument("--admin", action="store_true", help="add the admin role")
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS, help="lifetime in seconds (default one day)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.ttl < 1:
        raise CommandError(f"--ttl must be at least 1 second, got {args.ttl}")
    if not args.user.strip():
        raise CommandError("--user must not be empty")
    authority = TokenAuthority(jwt_secret(load_settings()))
    print(authority.issue(args.user, admin=args.admin, ttl_seconds=args.ttl))
    return 0
