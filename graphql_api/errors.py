"""Every error a client sees carries `extensions.code`; anything unexpected is masked and logged here.

Codes follow Apollo Server's, which most GraphQL clients already branch on:
resolvers raise an `ApiError` subclass for a client's mistake; a store that is
still failing after its retries becomes SERVICE_UNAVAILABLE; parse, validation
and variable-coercion failures keep graphql-core's message under Apollo's code;
everything else is a bug or an outage the client cannot act on, so it gets a
fixed message (no stack, no internals) and the server log gets the stack.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from graphql import GraphQLError, GraphQLSyntaxError

from domain.models import StoreUnavailable

logger = logging.getLogger("bookrec.graphql")

BAD_USER_INPUT = "BAD_USER_INPUT"
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_REQUEST = "BAD_REQUEST"
RATE_LIMITED = "RATE_LIMITED"  # HTTP 429 with Retry-After (graphql_api.limits)
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"  # HTTP 413

INTERNAL_MESSAGE = "Internal server error"
UNAVAILABLE_MESSAGE = "A data store is unavailable; try again shortly"


class ApiError(Exception):
    """A failure the client caused and can fix; its message is shown as written."""

    code: ClassVar[str]


class BadUserInput(ApiError):
    code = BAD_USER_INPUT


class Unauthenticated(ApiError):
    code = UNAUTHENTICATED


class Forbidden(ApiError):
    code = FORBIDDEN


class NotFound(ApiError):
    code = NOT_FOUND


class RateLimited(ApiError):
    """The caller's mutation bucket is empty; `retry_after` is the whole seconds until it has a token again."""

    code = RATE_LIMITED

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many mutations from this client; retry after {retry_after} s")
        self.retry_after = retry_after


def tag_validation_errors(errors: list[GraphQLError]) -> None:
    """Mark validation failures, which are otherwise indistinguishable from coercion failures once formatted."""
    for error in errors:
        error.extensions = {**(error.extensions or {}), "code": GRAPHQL_VALIDATION_FAILED}


def format_error(error: GraphQLError) -> dict[str, Any]:
    """The JSON a client receives for one error, with a code; unexpected errors are masked and logged."""
    original = error.original_error
    formatted = error.formatted
    if isinstance(original, ApiError):
        code = original.code
    elif isinstance(original, StoreUnavailable):
        logger.warning("store unavailable at %s: %s", _where(error), original)
        code, formatted["message"] = SERVICE_UNAVAILABLE, UNAVAILABLE_MESSAGE
    elif isinstance(error, GraphQLSyntaxError):
        code = GRAPHQL_PARSE_FAILED
    elif error.extensions and "code" in error.extensions:
        code = error.extensions["code"]
    elif error.path is None and (original is None or isinstance(original, (GraphQLError, ValueError, TypeError))):
        # A request-level error that is neither a parse nor a (tagged) validation
        # failure: graphql-core could not coerce the variables to their types.
        code = BAD_USER_INPUT
    else:
        logger.error(
            "unexpected error at %s",
            _where(error),
            exc_info=(type(original), original, original.__traceback__) if original else None,
        )
        code, formatted["message"] = INTERNAL_SERVER_ERROR, INTERNAL_MESSAGE
    formatted["extensions"] = {"code": code}
    return formatted


def _where(error: GraphQLError) -> str:
    return ".".join(map(str, error.path)) if error.path else "request"
