"""Several uvicorn workers (PROMETHEUS_MULTIPROC_DIR set): any worker's /metrics adds up every worker's counts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from graphql_api.observability.multiprocess_dir import MULTIPROC_DIR_ENV, metrics_directory
from tests.api.conftest import SECRET
from tests.observability.conftest import seed_sqlite
from tests.redis_servers import free_port

REQUESTS = 40
WORKERS = 2


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    database = tmp_path / "bookrec.db"
    seed_sqlite(database)
    metrics_dir = tmp_path / "prometheus"  # not created: the app makes it
    port = free_port()
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("REDIS_", "DYNAMODB_"))},
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "SQLITE_PATH": str(database),
        "AUTH_JWT_SECRET": SECRET,
        "MODEL_REFRESH_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "WEB_CONCURRENCY": str(WORKERS),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "graphql_api.app:create_app", "--factory", "--port", str(port), "--no-access-log"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        # Every worker has started its app (each trains or loads the model first), and the socket answers.
        while len(list(metrics_dir.glob("gauge_livemax_*.db"))) < WORKERS or not answers(f"{url}/healthz"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start: {process.stderr.read().decode() if process.stderr else ''}")
            time.sleep(0.1)
        yield url, metrics_dir
    finally:
        process.terminate()
        process.wait(timeout=30)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def totals(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


def requests_per_worker(metrics_dir: Path) -> list[float]:
    """bookrec_graphql_requests_total as each worker's own file holds it."""
    counts = []
    for path in sorted(metrics_dir.glob("counter_*.db")):
        entries = MmapedDict.read_all_values_from_file(str(path))
        counts.append(sum(value for key, value, _, _ in entries if '"bookrec_graphql_requests_total"' in key))
    return counts


@pytest.mark.slow
def test_counts_from_every_worker_add_up(server: tuple[str, Path]) -> None:
    url, metrics_dir = server
    query = {"query": "query Recs($id: ID!) { user(id: $id) { recommendations(limit: 2) { score } } }"}
    sent = 0
    # New connections until both workers have answered some (the kernel picks which worker accepts each).
    while sent < 400 and not (sent >= REQUESTS and all(requests_per_worker(metrics_dir))):
        response = httpx.post(
            f"{url}/graphql", json={**query, "variables": {"id": ["alice", "bob"][sent % 2]}}, headers={"Connection": "close"}
        )
        assert response.status_code == 200 and "errors" not in response.json()
        sent += 1
    per_worker = requests_per_worker(metrics_dir)
    assert len(per_worker) == WORKERS and all(per_worker), per_worker

    # Request counters are incremented in place; cache counters are mirrored every few seconds by each worker.
    deadline = time.monotonic() + 30
    while True:
        seen = totals(url)
        looked_up = seen.get("bookrec_cache_hits_total", 0) + seen.get("bookrec_cache_misses_total", 0)
        if looked_up == sent or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert seen["bookrec_graphql_requests_total"] == sent == sum(per_worker)
    assert seen["bookrec_graphql_request_duration_seconds_count"] == sent
    assert looked_up == sent
    # A worker misses each user it is asked for once: the in-process cache is per worker.
    assert 2 <= seen["bookrec_cache_misses_total"] <= 2 * WORKERS


def test_serve_gives_several_workers_a_fresh_directory_and_removes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_DIR_ENV, raising=False)
    with metrics_directory(1) as single:
        assert single is None and MULTIPROC_DIR_ENV not in os.environ
    with metrics_directory(4) as made:
        assert made is not None and os.environ[MULTIPROC_DIR_ENV] == made and os.listdir(made) == []
    assert MULTIPROC_DIR_ENV not in os.environ and not Path(made).exists()


def test_a_named_directory_is_emptied_of_a_previous_run_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    for name in ("counter_12.db", "gauge_livemax_12.db", "histogram_12.db", "notes.txt"):
        (directory / name).write_text("x")
    monkeypatch.setenv(MULTIPROC_DIR_ENV, str(directory))
    with metrics_directory(2) as named:
        assert named == str(directory)
        assert sorted(path.name for path in directory.iterdir()) == ["notes.txt"]
    assert directory.exists() and os.environ[MULTIPROC_DIR_ENV] == str(directory)
