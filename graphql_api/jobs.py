"""Background refresh jobs: `refreshRecommendations` starts one and returns at once; `refreshJob(id)` reports it.

One job runs at a time per process (a second request gets the running job), so
two admins cannot double the recommender's load. The registry is per process:
with several workers, `refreshJob` answers only on the worker that started the
job. Finished jobs are kept, the most recent `keep` of them, for polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from domain.service import RecommendationService
from graphql_api.observability.progress import ProgressLog

logger = logging.getLogger("bookrec.jobs")


class JobStatus(str, enum.Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(eq=False)
class RefreshJob:
    id: str
    status: JobStatus = JobStatus.QUEUED
    total: int = 0
    processed: int = 0

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)

    def report_progress(self, processed: int, total: int) -> None:
        self.processed, self.total = processed, total


class RefreshJobs:
    def __init__(self, keep: int = 100) -> None:
        self._keep = keep
        self._jobs: OrderedDict[str, RefreshJob] = OrderedDict()
        self._running: RefreshJob | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, service: RecommendationService, user_ids: Sequence[str] | None) -> RefreshJob:
        """Queue a refresh of `user_ids` (every user when None), unless one is running: then return that one."""
        if self._running is not None and not self._running.finished:
            return self._running
        job = RefreshJob(id=uuid.uuid4().hex, total=len(set(user_ids)) if user_ids is not None else 0)
        self._jobs[job.id] = job
        while len(self._jobs) > self._keep:
            self._jobs.popitem(last=False)
        self._running = job
        self._task = asyncio.create_task(self._run(job, service, user_ids), name=f"refresh-job-{job.id}")
        return job

    def get(self, job_id: str) -> RefreshJob | None:
        return self._jobs.get(job_id)

    @property
    def latest(self) -> RefreshJob | None:
        """The job started last, running or finished: what the metrics report."""
        return self._running

    async def close(self) -> None:
        """Stop a running job at shutdown; it is marked FAILED."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @staticmethod
    async def _run(job: RefreshJob, service: RecommendationService, user_ids: Sequence[str] | None) -> None:
        job.status = JobStatus.RUNNING
        progress = ProgressLog(logger, f"refresh job {job.id}")

        def report(processed: int, total: int) -> None:
            job.report_progress(processed, total)
            progress(processed, total)

        try:
            await service.refresh(user_ids, on_progress=report)
        except asyncio.CancelledError:
            job.status = JobStatus.FAILED
            raise
        except Exception:
            logger.exception("refresh job %s failed after %d of %d users", job.id, job.processed, job.total)
            job.status = JobStatus.FAILED
        else:
            job.status = JobStatus.SUCCEEDED
            progress.finish(job.processed)
