"""X-Request-ID on every response, and one structured log line per request."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from graphql_api.observability.logging_config import JsonFormatter, configure_logging
from graphql_api.observability.requests import MAX_REQUEST_ID_LENGTH, request_id_from
from graphql_api.settings import Settings
from tests.api.conftest import Api, api_settings
from tests.observability.conftest import RECOMMENDATIONS, request_lines

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


async def test_a_client_request_id_comes_back_and_is_logged(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    response = await api.client.post(
        "/graphql", json={"query": RECOMMENDATIONS, "variables": {"id": "alice"}}, headers={"X-Request-ID": "trace-42.a:b"}
    )
    assert response.headers["x-request-id"] == "trace-42.a:b"
    (line,) = request_lines(capsys.readouterr().err)
    assert line["request_id"] == "trace-42.a:b"
    assert line["operation"] == "Recs" and line["outcome"] == "ok" and line["status"] == 200
    assert (line["cache_hits"], line["cache_misses"]) == (0, 1)
    assert line["method"] == "POST" and line["path"] == "/graphql"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["level"] == "INFO" and line["message"] == "POST /graphql 200"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])


async def test_the_second_read_logs_a_hit(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    await api.gql("query Many { users(ids: [\"alice\", \"bob\"]) { recommendations(limit: 1) { score } } }")
    capsys.readouterr()
    await api.gql("query Many { users(ids: [\"alice\", \"bob\", \"carol\"]) { recommendations(limit: 1) { score } } }")
    (line,) = request_lines(capsys.readouterr().err)
    assert (line["cache_hits"], line["cache_misses"]) == (2, 1)


@pytest.mark.parametrize(
    "sent",
    ["x" * (MAX_REQUEST_ID_LENGTH + 1), "has space", "new\nline", "quote\"d", "", "ünïcode"],
)
async def test_an_unsafe_request_id_is_replaced(api: Api, sent: str) -> None:
    response = await api.client.get("/healthz", headers={"X-Request-ID": sent.encode("utf-8")})
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/no-such-page", "/graphql?query=%7Bnope"])
async def test_every_response_carries_a_request_id(api: Api, path: str) -> None:
    first = await api.client.get(path)
    second = await api.client.get(path)
    assert GENERATED_ID.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert first.headers.get_list("x-request-id") == [first.headers["x-request-id"]]


async def test_probes_and_scrapes_log_at_debug_only(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    for path in ("/healthz", "/readyz", "/metrics"):
        await api.client.get(path)
    assert request_lines(capsys.readouterr().err) == []


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    return api_settings(tmp_path, debug=getattr(request, "param", False))


@pytest.mark.parametrize("settings", [True], indirect=True)
async def test_debug_logs_are_readable_lines(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    await api.client.post("/graphql", json={"query": RECOMMENDATIONS, "variables": {"id": "alice"}}, headers={"X-Request-ID": "dbg-1"})
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "bookrec.request" in line]
    assert not line.startswith("{")
    assert "INFO" in line and "POST /graphql 200" in line
    assert "request_id=dbg-1" in line and "operation=Recs" in line and "cache_misses=1" in line


def test_log_level_applies_to_the_service_and_libraries_stay_at_warning() -> None:
    configure_logging("WARNING", human=False)
    assert not logging.getLogger("bookrec.request").isEnabledFor(logging.INFO)
    configure_logging("DEBUG", human=False)
    assert logging.getLogger("bookrec.request").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("botocore").isEnabledFor(logging.INFO)
    assert [h.get_name() for h in logging.getLogger().handlers].count("bookrec") == 1
    configure_logging("INFO", human=False)


def test_a_record_outside_any_request_is_still_one_json_object() -> None:
    record = logging.makeLogRecord({"name": "bookrec.x", "levelname": "WARNING", "msg": "a %s b", "args": ("\n\"",), "extra_field": 3})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "a \n\" b" and entry["extra_field"] == 3 and "request_id" not in entry


def test_request_ids_are_validated() -> None:
    assert request_id_from(b"0af7651916cd43dd8448eb211c80319c") == "0af7651916cd43dd8448eb211c80319c"
    assert request_id_from(b"a" * MAX_REQUEST_ID_LENGTH) == "a" * MAX_REQUEST_ID_LENGTH
    assert GENERATED_ID.fullmatch(request_id_from(None))
    assert GENERATED_ID.fullmatch(request_id_from(b"a b"))
