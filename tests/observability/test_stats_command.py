"""`bookrec stats`: cache and published model figures from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graphql_api.cli import main
from tests.api.conftest import TASTES
from tests.observability.conftest import seed_sqlite
from tests.redis_servers import RedisServerProcess


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bookrec.db"
    seed_sqlite(path)
    monkeypatch.setenv("SQLITE_PATH", str(path))
    for name in ("REDIS_URL", "DYNAMODB_TABLE", "REDIS_CLUSTER"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_without_redis_it_prints_the_published_model_and_points_at_cache_stats(database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats"]) == 0
    assert "model: none published at MODEL_URI" in capsys.readouterr().out

    assert main(["train"]) == 0
    capsys.readouterr()
    assert main(["stats"]) == 0
    out = capsys.readouterr().out
    assert "in-process" in out and "cacheStats" in out
    assert f"{sum(map(len, TASTES.values()))} ratings of {len(TASTES)} users" in out


@pytest.mark.redis_server
def test_with_redis_it_counts_keys_samples_ttls_and_reads_the_server_hit_ratio(
    database: Path, redis_server: RedisServerProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("CACHE_TTL_SECONDS", "600")
    assert main(["warm"]) == 0
    with redis_server.client() as client:
        client.set("apq:other", "x")
        client.get("reco:alice")  # a server hit
        client.get("reco:nobody")  # a server miss
    capsys.readouterr()

    assert main(["stats", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    cache = figures["cache"]
    assert cache["backend"] == "redis" and cache["url"] == redis_server.url
    assert (cache["keys_cached"], cache["keys_cached_exact"]) == (len(TASTES), True)
    assert cache["ttl_seconds"]["sampled"] == len(TASTES) and 590 <= cache["ttl_seconds"]["min"] <= cache["ttl_seconds"]["max"] <= 600
    assert cache["sampled_model_versions"] == {figures["model"]["version"]: len(TASTES)}
    assert cache["sampled_on_current_model"] == len(TASTES)
    server = cache["server"]
    assert server["keyspace_hits"] >= 1 and server["keyspace_misses"] >= 1
    assert server["hit_ratio"] == round(server["keyspace_hits"] / (server["keyspace_hits"] + server["keyspace_misses"]), 4)

    assert main(["stats", "--no-model"]) == 0
    text = capsys.readouterr().out
    assert f"recommendation lists cached (reco:*): {len(TASTES)}" in text
    assert "hit ratio" in text and "model" not in text.replace("model versions", "")


@pytest.mark.redis_server
def test_an_unreachable_redis_is_one_line_and_exit_code_2(
    database: Path, redis_server: RedisServerProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    redis_server.stop()
    assert main(["stats", "--no-model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bookrec stats: error: cannot read Redis at redis://127.0.0.1:")
