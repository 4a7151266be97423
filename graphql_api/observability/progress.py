"""Progress of a long batch job as log lines, for where no progress bar can be seen (a server, a scheduled task).

A line every `every_seconds` or each time another `every_fraction` of the work is
done, whichever comes first, and a last line with the throughput in users/second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class ProgressLog:
    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        every_seconds: float = 5.0,
        every_fraction: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._what = what
        self._every_seconds = every_seconds
        self._every_fraction = every_fraction
        self._clock = clock
        self._started = clock()
        self._last_logged_at = self._started
        self._last_logged_done = 0

    def __call__(self, done: int, total: int) -> None:
        """A `ProgressCallback`: log if enough time or enough of the work has passed since the last line."""
        now = self._clock()
        step = max(1, int(total * self._every_fraction))
        if done == 0 or done >= total:
            return  # the start says nothing; the end is `finish`'s line
        if now - self._last_logged_at < self._every_seconds and done - self._last_logged_done < step:
            return
        self._last_logged_at, self._last_logged_done = now, done
        elapsed = now - self._started
        self._logger.info(
            "%s: %d of %d users (%.0f%%), %.0f users/s",
            self._what, done, total, 100 * done / total, done / elapsed if elapsed > 0 else 0.0,
            extra={"done": done, "total": total},
        )

    def finish(self, done: int) -> float:
        """Log the last line; returns the throughput in users/second."""
        elapsed = self._clock() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        self._logger.info(
            "%s: finished %d users in %.1f s, %.0f users/s", self._what, done, elapsed, rate,
            extra={"done": done, "seconds": round(elapsed, 3), "users_per_second": round(rate, 1)},
        )
        return rate
