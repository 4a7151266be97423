"""An unexpected error: the client gets a code and a fixed message, the log gets the stack and the request id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from graphql_api.bootstrap import Stores
from graphql_api.observability.middleware import RequestObservation
from graphql_api.observability.runtime import Observability
from graphql_api.observability.tracing import NO_TRACING
from tests.api.conftest import Api, Failing
from tests.observability.conftest import log_lines


@pytest.fixture
def wrap_stores() -> Callable[[Any], Any]:
    """The catalog fails with a bug (not an outage): the request's error must be masked, and logged with its stack."""
    return lambda stores: Stores(stores.ratings, Failing(stores.catalog, ZeroDivisionError("catalog bug"), "get_many"))


async def test_an_unexpected_error_has_its_stack_in_the_log_only(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    response = await api.client.post(
        "/graphql", json={"query": "query One { book(id: \"1\") { title } }"}, headers={"X-Request-ID": "req-bug"}
    )
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "ZeroDivisionError" not in response.text and "Traceback" not in response.text
    lines = log_lines(capsys.readouterr().err)
    (error,) = [line for line in lines if line["level"] == "ERROR"]
    assert error["request_id"] == "req-bug"
    assert "ZeroDivisionError: catalog bug" in error["stack"] and "Traceback" in error["stack"]
    (request,) = [line for line in lines if line["logger"] == "bookrec.request"]
    assert request["outcome"] == "INTERNAL_SERVER_ERROR" and request["operation"] == "One"


async def test_an_error_escaping_the_app_becomes_a_coded_500_with_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    async def broken_app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("escaped")

    observability = Observability(NO_TRACING)
    transport = httpx.ASGITransport(app=RequestObservation(broken_app, observability))
    async with httpx.AsyncClient(transport=transport, base_url="http://bookrec.test") as client:
        capsys.readouterr()
        response = await client.post("/graphql", headers={"X-Request-ID": "esc-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "esc-1"
    assert response.json() == {"errors": [{"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}
    lines = log_lines(capsys.readouterr().err)
    (error,) = [line for line in lines if line["level"] == "ERROR"]
    assert error["request_id"] == "esc-1" and "RuntimeError: escaped" in error["stack"]
    (request,) = [line for line in lines if line["logger"] == "bookrec.request"]
    assert (request["status"], request["outcome"]) == (500, "INTERNAL_SERVER_ERROR")
