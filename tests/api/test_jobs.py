"""The refresh-job registry on its own: failure, shutdown, and its memory bound.

The service here is a stand-in whose `refresh` the test drives; the registry is the thing under test.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from graphql_api.jobs import JobStatus, RefreshJobs


class ScriptedService:
    def __init__(self, refresh: Callable[..., Any]) -> None:
        self.refresh = refresh


async def settle(jobs: RefreshJobs, job_id: str) -> None:
    for _ in range(100):
        job = jobs.get(job_id)
        assert job is not None
        if job.finished:
            return
        await asyncio.sleep(0)
    raise AssertionError("the job never finished")


async def test_a_job_whose_refresh_raises_is_failed_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def refresh(user_ids: Sequence[str] | None, *, on_progress: Callable[[int, int], None]) -> int:
        on_progress(0, 4)
        on_progress(2, 4)
        raise RuntimeError("recommender exploded")

    jobs = RefreshJobs()
    with caplog.at_level(logging.ERROR, logger="bookrec.jobs"):
        job = jobs.start(ScriptedService(refresh), None)  # type: ignore[arg-type]
        await settle(jobs, job.id)
    assert (job.status, job.processed, job.total) == (JobStatus.FAILED, 2, 4)
    assert "failed after 2 of 4 users" in caplog.text and "recommender exploded" in caplog.text
    assert jobs.start(ScriptedService(refresh), None).id != job.id  # type: ignore[arg-type]


async def test_closing_stops_a_running_job_as_failed() -> None:
    started = asyncio.Event()

    async def refresh(user_ids: Sequence[str] | None, *, on_progress: Callable[[int, int], None]) -> int:
        started.set()
        await asyncio.Event().wait()
        return 0

    jobs = RefreshJobs()
    job = jobs.start(ScriptedService(refresh), ["a"])  # type: ignore[arg-type]
    await started.wait()
    assert job.status is JobStatus.RUNNING
    await jobs.close()
    assert job.status is JobStatus.FAILED


async def test_only_the_most_recent_jobs_are_kept() -> None:
    async def refresh(user_ids: Sequence[str] | None, *, on_progress: Callable[[int, int], None]) -> int:
        return 0

    jobs = RefreshJobs(keep=2)
    ids = []
    for _ in range(3):
        job = jobs.start(ScriptedService(refresh), [])  # type: ignore[arg-type]
        await settle(jobs, job.id)
        ids.append(job.id)
    assert [jobs.get(job_id) is not None for job_id in ids] == [False, True, True]
