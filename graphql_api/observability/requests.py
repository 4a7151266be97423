"""What one HTTP request did, gathered as it runs: its id, GraphQL operation, outcome and cache figures.

A `RequestRecord` is made by the observation middleware and reached through a
context variable, so the service's observer and the GraphQL view can add to it
without being handed it. Tasks the request starts (DataLoader batches) copy the
context, so they add to the same record.
"""

from __future__ import annotations

import itertools
import os
import re
from contextvars import ContextVar

from graphql_api.observability.labels import ANONYMOUS_OPERATION, BATCH_OPERATION

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 64
# What a proxy or client usually sends (UUIDs, trace ids, ULIDs): anything else is replaced,
# because the id goes into every log line and back out in a header.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,%d}" % MAX_REQUEST_ID_LENGTH)
# Generated ids: 32 hex digits, a random per-process prefix and a counter. Unique across
# workers and restarts without a system call per request (ids need not be unguessable).
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


class RequestRecord:
    __slots__ = ("request_id", "operation", "outcome", "cache_hits", "cache_misses")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.operation: str | None = None  # set by the GraphQL view; the metric label is bounded later
        self.outcome: str | None = None  # "ok" unless an error code was noted
        self.cache_hits = 0
        self.cache_misses = 0

    def note_operation(self, name: str | None) -> None:
        """A batch of operations in one request is named as such, not by its first operation."""
        self.operation = (name or ANONYMOUS_OPERATION) if self.operation is None else BATCH_OPERATION

    def note_error_codes(self, codes: list[str]) -> None:
        if self.outcome is None and codes:
            self.outcome = codes[0]


current_request: ContextVar[RequestRecord | None] = ContextVar("bookrec_request", default=None)


def request_id_from(header: bytes | None) -> str:
    """The client's X-Request-ID when it is a sane token, else a fresh one."""
    if header is not None:
        candidate = header.decode("latin-1")
        if _REQUEST_ID.fullmatch(candidate):
            return candidate
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"
