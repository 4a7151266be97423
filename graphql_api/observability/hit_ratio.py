"""The cache hit ratio over the last minutes, from samples of the service's cumulative counters.

The request path pays nothing for it: every few seconds the metrics sync appends
(time, hits, misses) to a bounded ring; a window's ratio is the growth between its
oldest sample and the live counters. Per process: each uvicorn worker answers for
its own requests (the Prometheus metrics add the workers up).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_WINDOW_SECONDS = 15 * 60


@dataclass(frozen=True, slots=True)
class HitRatio:
    hits: int
    misses: int
    seconds: float  # how much time the figures actually cover (less than asked in a young process)

    @property
    def ratio(self) -> float | None:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None


class HitRatioWindow:
    def __init__(self, *, sample_every_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._samples: deque[tuple[float, int, int]] = deque(maxlen=int(MAX_WINDOW_SECONDS / sample_every_seconds) + 2)

    def sample(self, hits: int, misses: int) -> None:
        self._samples.append((self._clock(), hits, misses))

    def over(self, seconds: float, hits: int, misses: int) -> HitRatio:
        """The ratio of the lookups since the oldest sample within the last `seconds`, up to the live counts."""
        now = self._clock()
        start = next((sample for sample in self._samples if sample[0] >= now - seconds), None)
        if start is None:
            return HitRatio(0, 0, 0.0)
        started_at, hits_then, misses_then = start
        return HitRatio(max(0, hits - hits_then), max(0, misses - misses_then), now - started_at)
