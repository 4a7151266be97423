"""Progress of long jobs where no bar can be seen: periodic log lines, then users/second."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from graphql_api.cli import main
from graphql_api.observability.progress import ProgressLog
from tests.api.conftest import TASTES, Api
from tests.observability.conftest import log_lines, seed_sqlite


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_per_tenth_of_the_work_or_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    progress = ProgressLog(logging.getLogger("bookrec.test"), "job", every_seconds=5, clock=clock)
    with caplog.at_level(logging.INFO, logger="bookrec.test"):
        progress(0, 1000)
        for done in range(10, 1000, 10):  # 1% steps, 0.1 s apart: a line per 10%
            clock.now += 0.1
            progress(done, 1000)
        logged_steps = [record.done for record in caplog.records]
        assert logged_steps == [100, 200, 300, 400, 500, 600, 700, 800, 900]
        caplog.clear()
        clock.now += 6  # a slow stretch: the interval brings a line before the next tenth
        progress(905, 1000)
        assert [record.done for record in caplog.records] == [905]
        caplog.clear()
        clock.now = 110.0
        assert progress.finish(1000) == 100.0
    (last,) = caplog.records
    assert last.getMessage() == "job: finished 1000 users in 10.0 s, 100 users/s"
    assert last.users_per_second == 100.0


def test_warm_without_a_terminal_logs_progress_and_its_throughput(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "bookrec.db"
    seed_sqlite(database)
    monkeypatch.setenv("SQLITE_PATH", str(database))
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DYNAMODB_TABLE", raising=False)
    assert main(["warm", "--batch-size", "1"]) == 0
    captured = capsys.readouterr()
    assert "users/s" in captured.out and f"warmed {len(TASTES)} of {len(TASTES)} users" in captured.out
    warm_lines = [line for line in log_lines(captured.err) if line["logger"] == "bookrec.warm"]
    # One line per user of eight (a tenth rounds up to one user), then the finish with the throughput.
    assert [line["done"] for line in warm_lines[:-1]] == list(range(1, len(TASTES)))
    assert warm_lines[-1]["done"] == len(TASTES) and warm_lines[-1]["users_per_second"] > 0


async def test_the_refresh_job_logs_its_throughput(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    started = await api.gql("mutation { refreshRecommendations { id } }", token=api.token("root", admin=True))
    job_id = started["data"]["refreshRecommendations"]["id"]
    for _ in range(500):
        await asyncio.sleep(0.01)
        if (finished := [line for line in log_lines(capsys.readouterr().err) if "finished" in line["message"]]):
            break
    else:
        raise AssertionError("no finish line was logged")
    (line,) = finished
    assert line["logger"] == "bookrec.jobs" and job_id in line["message"]
    assert line["done"] == len(TASTES) and line["users_per_second"] > 0
