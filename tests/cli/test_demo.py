"""`bookrec demo`, what `make serve` runs: demo data on an empty store, working tokens, a live API."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.test_serve import free_port

TOKEN = re.compile(r"^\s+(eyJ[\w-]+\.[\w-]+\.[\w-]+)$", re.MULTILINE)
READ = {"query": '{ user(id: "1") { recommendations(limit: 5) { source book { id } } } }'}


class DemoRun:
    def __init__(self, url: str) -> None:
        self.graphql = f"{url}/graphql"
        self.output = ""


@contextlib.contextmanager
def demo(environment: dict[str, str]) -> Iterator[DemoRun]:
    """`bookrec demo` on a free port until it is ready; its whole output is on the run once it stops."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "graphql_api.cli", "demo", "--port", str(port)],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    run = DemoRun(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            assert server.poll() is None, "the demo exited before it was ready"
            assert time.monotonic() < deadline, "the demo server did not come up"
            time.sleep(0.2)
        yield run
    finally:
        server.terminate()
        run.output, _ = server.communicate(timeout=15)


def recommended_ids(run: DemoRun) -> list[str]:
    items = httpx.post(run.graphql, json=READ, timeout=10).json()["data"]["user"]["recommendations"]
    assert len(items) == 5 and items[0]["source"] == "COLLABORATIVE"
    return [item["book"]["id"] for item in items]


@pytest.mark.slow
def test_demo_seeds_an_empty_store_prints_working_tokens_and_serves(tmp_path: Path) -> None:
    environment = {**os.environ, "SQLITE_PATH": str(tmp_path / "demo.db"), "MODEL_REFRESH_SECONDS": "0"}
    for name in ("REDIS_URL", "DYNAMODB_TABLE", "DEBUG", "AUTH_JWT_SECRET"):
        environment.pop(name, None)

    with demo(environment) as first:
        assert "graphiql" in httpx.get(first.graphql, headers={"accept": "text/html"}, timeout=5).text.lower()
        rated = recommended_ids(first)[0]
    assert "creating demo data" in first.output
    user_token, admin_token = TOKEN.findall(first.output)

    # Started again on the seeded store, it verifies the tokens it printed before.
    with demo(environment) as second:
        mutation = {"query": f'mutation {{ rateBook(userId: "1", bookId: "{rated}", rating: 4) {{ rating {{ rating }} }} }}'}
        for token in (user_token, admin_token):
            answer = httpx.post(second.graphql, json=mutation, headers={"authorization": f"Bearer {token}"}, timeout=10)
            assert answer.json() == {"data": {"rateBook": {"rating": {"rating": 4}}}}
        assert rated not in recommended_ids(second)
    assert "creating demo data" not in second.output
