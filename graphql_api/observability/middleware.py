"""Request observation: an ASGI middleware around the whole app, and the view mixin that names the operation.

Per request the middleware makes one small record, sets one context variable,
adds the X-Request-ID header, and at the end counts, times and logs the request
once. Nothing runs per field.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.types import ExecutionResult

from graphql_api.errors import INTERNAL_MESSAGE, INTERNAL_SERVER_ERROR
from graphql_api.observability.labels import INVALID_OPERATION, OPERATION_NAME
from graphql_api.observability.requests import REQUEST_ID_HEADER, RequestRecord, current_request, request_id_from
from graphql_api.observability.runtime import Observability

logger = logging.getLogger("bookrec.http")

_REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.encode()
_VALID_OPERATION_NAME = re.compile(OPERATION_NAME)
# The first operation of a document, after any comments: enough to name an unnamed request cheaply.
_FIRST_OPERATION = re.compile(r"\s*(?:#[^\n]*\n\s*)*(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)")


class RequestObservation:
    def __init__(self, app: ASGIApp, observability: Observability) -> None:
        self.app = app
        self.observability = observability

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client_id = next((value for name, value in scope["headers"] if name == _REQUEST_ID_HEADER_BYTES), None)
        record = RequestRecord(request_id_from(client_id))
        id_header = (_REQUEST_ID_HEADER_BYTES, record.request_id.encode())
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        token = current_request.set(record)
        tracing = self.observability.tracing
        span = tracing.start_request(scope) if tracing.enabled else None
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Logged here, once, with the stack and the request id; the client gets a code and a fixed message.
            logger.exception("unhandled error serving %s %s", scope["method"], scope["path"])
            record.outcome = INTERNAL_SERVER_ERROR
            if started_response:
                raise  # too late for an error response: let the server drop the connection
            status = 500
            await _internal_error(send, id_header)
        finally:
            current_request.reset(token)
            self.observability.finish_request(scope, record, status, time.perf_counter() - started, span)


async def _internal_error(send: Send, id_header: tuple[bytes, bytes]) -> None:
    body = orjson.dumps({"errors": [{"message": INTERNAL_MESSAGE, "extensions": {"code": INTERNAL_SERVER_ERROR}}]})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), id_header]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def operation_name(request_data: Any) -> str | None:
    """The operation a GraphQL request runs: its operationName, else the document's first named operation."""
    name = request_data.operation_name
    if not name and request_data.query:
        match = _FIRST_OPERATION.match(request_data.query)
        name = match.group(1) if match else None
    if not name:
        return None
    return name if _VALID_OPERATION_NAME.fullmatch(name) else INVALID_OPERATION


class OperationNameMixin:
    """Tells the request's record which operation runs; list it first in the view's bases (before APQ,
    whose refusals happen before the document is known)."""

    async def execute_single(self, *, request_data: Any, **kwargs: Any) -> ExecutionResult:
        record = current_request.get()
        if record is not None:
            record.note_operation(operation_name(request_data))
        return await super().execute_single(request_data=request_data, **kwargs)  # type: ignore[misc]


def note_error_codes(errors: list[dict[str, Any]]) -> None:
    """The request's outcome is the code of its first error (called with the formatted errors of a result)."""
    record = current_request.get()
    if record is not None:
        record.note_error_codes([error.get("extensions", {}).get("code", INTERNAL_SERVER_ERROR) for error in errors])
