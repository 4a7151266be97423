"""A circuit breaker, so that while Redis is down requests stop paying a timeout each.

Closed: calls go through. After `failure_threshold` consecutive failures it opens:
calls are refused without touching the network for `cooldown_seconds`. Then it is
half-open: one probe goes through; its success closes the breaker, its failure
opens it for another cool-down.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 3,
        cooldown_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self._failure_threshold = failure_threshold
        self._cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._probe_started_at: float | None = None
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow(self) -> bool:
        """May a call go to the server now? In half-open state only one probe at a time may."""
        now = self._clock()
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if now - self._opened_at < self._cooldown_seconds:
                return False
            self._state = BreakerState.HALF_OPEN
        # A probe whose caller was cancelled never reports back; after a cool-down another may go.
        if self._probe_started_at is not None and now - self._probe_started_at < self._cooldown_seconds:
            return False
        self._probe_started_at = now
        return True

    def record_success(self) -> None:
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._probe_started_at = None

    def record_failure(self) -> None:
        self._consecutive_failures += 1
        self._probe_started_at = None
        if self._state is not BreakerState.CLOSED or self._consecutive_failures >= self._failure_threshold:
            if self._state is not BreakerState.OPEN:
                self.times_opened += 1
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
