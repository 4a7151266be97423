"""What every response must look like, whatever was sent: the checks fuzzing, faults and limits share.

A check returns the problems it found (empty when the response is fine), so a
long run can collect them all and print the request that caused each.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn

from graphql_api import errors
from graphql_api.persisted_queries import PERSISTED_QUERY_NOT_FOUND
from tests.redis_servers import free_port

# Every code a client may see. INTERNAL_SERVER_ERROR is not here: with healthy stores it means a bug was masked.
CLIENT_CODES = frozenset(
    {
        errors.BAD_USER_INPUT,
        errors.UNAUTHENTICATED,
        errors.FORBIDDEN,
        errors.NOT_FOUND,
        errors.GRAPHQL_PARSE_FAILED,
        errors.GRAPHQL_VALIDATION_FAILED,
        errors.BAD_REQUEST,
        errors.RATE_LIMITED,
        errors.PAYLOAD_TOO_LARGE,
        PERSISTED_QUERY_NOT_FOUND,
    }
)
# What leaks of internals look like: stack traces, source paths, Python exception and object reprs.
_INTERNALS = re.compile(
    r"Traceback|File \"|site-packages|/work/|\.py\b|<class |object at 0x|\b[A-Z]\w*(?:Error|Exception)\b"
)


def response_problems(response: httpx.Response, sent: str = "", *, codes: frozenset[str] = CLIENT_CODES) -> list[str]:
    """What is wrong with a /graphql response: a 5xx, a body that is not a GraphQL JSON answer,
    an error without an allowed `extensions.code`, or a message that shows internals.

    A suspicious word that the request itself contained (a fuzzed id echoed in
    "no book with id ...") is not a leak, so `sent` is the request's text.
    """
    problems: list[str] = []
    if response.status_code >= 500:
        problems.append(f"HTTP {response.status_code}")
    if not response.headers.get("content-type", "").startswith("application/json"):
        return [*problems, f"content-type {response.headers.get('content-type')!r}"]
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return [*problems, "a body that is not JSON"]
    if not isinstance(body, dict) or not ("data" in body or "errors" in body):
        return [*problems, "a JSON body that is not a GraphQL response"]
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code not in codes:
            problems.append(f"error code {code!r}: {error.get('message')!r}")
        for leak in _INTERNALS.findall(str(error.get("message", ""))) or []:
            if leak not in sent:
                problems.append(f"internals in {error.get('message')!r}")
    return problems


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class ServeProcess:
    """`bookrec serve` in a child process on a free loopback port, with the environment given."""

    def __init__(self, environment: Mapping[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._environment = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), **environment}
        for name in ("REDIS_URL", "DYNAMODB_TABLE"):
            if name not in environment:
                self._environment.pop(name, None)
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 60) -> ServeProcess:
        log = self._log_path.open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "graphql_api.cli", "serve"], env=self._environment, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if not self.alive:
                raise RuntimeError(f"bookrec serve exited at start-up:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"bookrec serve did not answer within {timeout_s} s:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._process = None

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()


def examples(default: int) -> int:
    """How many generated examples a bounded test runs: `default`, times BOOKREC_HARDENING_SCALE (e.g. 10 for a long run)."""
    return max(1, int(default * float(os.environ.get("BOOKREC_HARDENING_SCALE", "1"))))


@contextlib.asynccontextmanager
async def serving_over_http(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app (whose lifespan the caller runs) with uvicorn on a loopback port in this event loop."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await task
