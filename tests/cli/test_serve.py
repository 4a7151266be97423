"""`bookrec serve`: refuses without a secret outside DEBUG; otherwise serves with uvloop and httptools."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from graphql_api.cli import main


def test_outside_debug_without_a_secret_it_refuses_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DEBUG", "false")
    monkeypatch.delenv("AUTH_JWT_SECRET", raising=False)
    monkeypatch.setattr("graphql_api.commands.serve.uvicorn.run", lambda *args, **kwargs: pytest.fail("uvicorn started"))
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err == "bookrec serve: error: AUTH_JWT_SECRET must be set unless DEBUG=true (mutations need it to verify tokens)\n"


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_JWT_SECRET", "serve-tests-secret-that-is-32-bytes-long")
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    calls = []
    monkeypatch.setattr("graphql_api.commands.serve.uvicorn.run", lambda app, **options: calls.append((app, options)))
    assert main(["serve", "--host", "0.0.0.0", "--workers", "2"]) == 0
    [(app, options)] = calls
    assert app == "graphql_api.app:create_app"
    assert options["factory"] is True
    assert (options["loop"], options["http"]) == ("uvloop", "httptools")
    assert (options["host"], options["port"], options["workers"]) == ("0.0.0.0", 9001, 2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_serves_the_api_for_real(tmp_path: Path) -> None:
    port = free_port()
    environment = {
        **os.environ,
        "DEBUG": "true",
        "AUTH_JWT_SECRET": "serve-tests-secret-that-is-32-bytes-long",
        "SQLITE_PATH": str(tmp_path / "bookrec.db"),
        "MODEL_REFRESH_SECONDS": "0",
    }
    for name in ("REDIS_URL", "DYNAMODB_TABLE"):
        environment.pop(name, None)
    server = subprocess.Popen(
        [sys.executable, "-m", "graphql_api.cli", "serve", "--port", str(port)],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else "server exited"
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.1)
        assert response.status_code == 200
        answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": '{ user(id: "x") { id } }'}, timeout=5)
        assert answer.json() == {"data": {"user": {"id": "x"}}}
        assert answer.headers["content-type"] == "application/json"
    finally:
        server.terminate()
        server.wait(timeout=10)
