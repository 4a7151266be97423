"""Fixtures shared by every test module, and the rule that CI never skips a real-server test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_SERVER_MARKERS = ("redis_server", "moto_server", "browser")


def _servers_required() -> bool:
    """On CI (CI=true) or when asked, a test that needs a real server may not be skipped."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("BOOKREC_REQUIRE_SERVERS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _servers_required() and any(item.get_closest_marker(m) for m in REAL_SERVER_MARKERS):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid}: a test that needs a real server was skipped on CI: {report.longrepr}"


@pytest.fixture(autouse=True)
def model_uri(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test publishes and reads models in a directory of its own, never the checkout's ./data/model."""
    path = str(tmp_path_factory.mktemp("model"))
    monkeypatch.setenv("MODEL_URI", path)
    return path


def shared_dataset_dir() -> Path | None:
    """../shared/datasets/goodbooks-10k beside the repo (or BOOKREC_SHARED_DATA), when it exists."""
    override = os.environ.get("BOOKREC_SHARED_DATA")
    path = Path(override) if override else Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "goodbooks-10k"
    return path if (path / "books.csv").is_file() else None


@pytest.fixture(scope="session")
def goodbooks_dir() -> Path:
    """The real goodbooks-10k files; tests that use them are skipped cleanly where ../shared is absent."""
    path = shared_dataset_dir()
    if path is None:
        pytest.skip("../shared/datasets/goodbooks-10k is not present")
    return path


# moto's DynamoDB server (session) and a fresh table per test, for every test package.
from tests.moto_server import dynamodb_settings, moto_server  # noqa: E402,F401

# Real redis-server processes (a private server, a 3-node cluster) and the shared server's URL.
from tests.redis_servers import redis_cluster, redis_server, shared_redis_url  # noqa: E402,F401
