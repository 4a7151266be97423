"""What a cache adapter did, as plain counters the metrics endpoint exports.

Lease waits are not here: waiting is the service's decision (it counts them in
`ServiceCounters.lease_waits`); the adapter only reports a key as held elsewhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    leases_granted: int = 0
    leases_held_elsewhere: int = 0
    fills: int = 0
    fills_refused: int = 0  # lease lost (a rating deleted the key, or it expired) before the fill
    errors: int = 0  # calls that failed and were answered fail-open
    delete_failures: int = 0  # keys a delete could not reach after its retries; they live until their TTL
    skipped_by_breaker: int = 0  # calls answered without touching the server while the breaker was open
    read_pipelines: int = 0  # Redis standalone: pipelines that carried several concurrent reads' MGETs together

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
