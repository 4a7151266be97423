"""The benchmarks' pieces work on tiny data (the suites themselves are `make bench` and bench/*.py, not part of the tests)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapters import cache_codec
from bench import http_bench
from domain.models import Recommendation, RecommendationList, RecommendationSource
from tests.redis_servers import RedisServerProcess


@pytest.mark.redis_server
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk (Debian's package) is not installed")
def test_wrk_drives_the_seed_baseline_through_the_lua_script(redis_server: RedisServerProcess, tmp_path: Path) -> None:
    items = tuple(Recommendation(book_id, 1.0 / book_id, RecommendationSource.COLLABORATIVE) for book_id in range(1, 21))
    with redis_server.client() as client:
        client.set("reco:7", cache_codec.encode(RecommendationList("7", items, "m", 0.0)))
    seed = http_bench.seed_server(redis_server.url)
    seed.start(tmp_path)
    try:
        with http_bench.urllib.request.urlopen(f"{seed.url}/recommendations/7", timeout=10) as response:
            assert json.loads(response.read()) == {"user_id": "7", "book_ids": list(range(1, 11))}
        ids = tmp_path / "ids.txt"
        ids.write_text("7\n")
        run = http_bench.wrk(seed, "seed", ids, 1, connections=2)
    finally:
        seed.stop()
    assert run.requests > 0
    assert run.errors == 0
    assert 0 < run.p50_ms <= run.p99_ms
    assert run.server_cpu > 0


def test_the_section_replaces_only_itself_in_benchmarks_md(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Recommender\n\nkept\n")
    section = f"{http_bench.SECTION_START}\nfirst\n{http_bench.SECTION_END}"
    http_bench.write_section(section, path)
    path.write_text(path.read_text() + "\n## DynamoDB\n\nalso kept\n")
    http_bench.write_section(section.replace("first", "second"), path)
    text = path.read_text()
    assert "kept" in text and "also kept" in text and "second" in text and "first" not in text
    assert text.count(http_bench.SECTION_START) == 1


def test_the_apollo_baseline_is_pinned_by_its_lock_file() -> None:
    package = json.loads((http_bench.APOLLO / "package.json").read_text())
    lock = json.loads((http_bench.APOLLO / "package-lock.json").read_text())
    assert set(package["dependencies"]) == {"@apollo/server", "dataloader", "graphql", "ioredis"}
    assert lock["packages"]["node_modules/@apollo/server"]["version"].startswith("5.")
    if shutil.which("node"):
        subprocess.run(["node", "--check", str(http_bench.APOLLO / "server.mjs")], check=True)


def test_the_lua_script_names_every_mode_the_harness_uses() -> None:
    script = http_bench.LUA.read_text()
    for mode in ("user", "users50", "seed", "typename", "mixed", "static"):
        assert f'mode == "{mode}"' in script


def test_the_item_model_bench_runs_every_command_at_a_small_size(tmp_path: Path) -> None:
    """bench/bench_item_model.py end to end on tiny data: the counts it reports, never its times."""
    out = tmp_path / "out.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.bench_item_model", "all", "--users", "1500", "--books", "300", "--ratings", "15000",
         "--knn-users", "1500", "--knn-books", "1200", "--knn-ratings", "15000", "--runs", "1", "--batches", "2",
         "--singles", "3", "--data-dir", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "### Scoring" in run.stdout and "### Training" in run.stdout and "### Serving" in run.stdout
    figures = json.loads(out.read_text())

    (scoring,) = figures["scoring"]
    assert scoring["lists"] == 2 * 100 + 3 and scoring["full_lists"] == scoring["lists"]  # every list holds 50 books
    assert {name: len(times["cpu"]) for name, times in scoring["times"].items()} == {
        "item_batch": 2, "knn_batch": 2, "item_single": 3, "knn_single": 3}
    assert 0 < scoring["collaborative_share"] <= 1

    ease, knn = figures["training"]
    assert [run["algorithm"] for run in ease["runs"] + knn["runs"]] == ["ease", "knn"]
    assert ease["runs"][0]["n_ratings"] == knn["runs"][0]["n_ratings"] == 15_000
    assert 0 < ease["runs"][0]["n_weights"] <= 200 * ease["runs"][0]["n_books"]
    assert all(run["peak_mb"] >= run["columns_mb"] > 0 for run in ease["runs"] + knn["runs"])
    (sqlite,) = figures["training_sqlite"]
    assert sqlite["n_ratings"] == 15_000

    (serving,) = figures["serving"]
    assert [start["mapped"] for start in serving["starts"]] == ["memmap"]
    assert serving["starts"][0]["n_ratings"] == serving["old"]["n_ratings"] == 15_000
    alone, first, second = figures["sharing"]
    assert (alone["alive"], first["alive"], second["alive"]) == (1, 2, 2)
    # Both workers map the same model pages: each is charged about half of them once the second one runs.
    assert alone["model_rss"] > 0 and alone["model_pss"] > 0.9 * alone["model_rss"]
    for worker in (first, second):
        assert worker["model_rss"] == pytest.approx(alone["model_rss"], rel=0.1)
        assert worker["model_pss"] < 0.6 * worker["model_rss"]
