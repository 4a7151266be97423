"""Bounded label values: a metric label must never take a value per user or per client whim.

Every series is kept for the life of the process (and, in multiprocess mode, in
its files), so a label fed from client input would grow without bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class BoundedLabels:
    """Admits the preset values and up to `cap` more that match `pattern`; everything else is `overflow`.

    Admission is first come, first kept: the set never shrinks, so a series once
    exported keeps its name.
    """

    def __init__(self, pattern: str, *, cap: int, overflow: str, preset: Iterable[str] = ()) -> None:
        self._pattern = re.compile(pattern)
        self._cap = cap
        self._overflow = overflow
        self._admitted = set(preset)
        self._extra = 0

    def __call__(self, value: str) -> str:
        if value in self._admitted:
            return value
        if self._extra < self._cap and self._pattern.fullmatch(value):
            self._admitted.add(value)
            self._extra += 1
            return value
        return self._overflow


# Operation names: the GraphQL name grammar, at most 64 characters.
OPERATION_NAME = r"[_A-Za-z][_0-9A-Za-z]{0,63}"
ANONYMOUS_OPERATION = "anonymous"  # no operationName and no named operation in the document
BATCH_OPERATION = "batch"  # several operations in one request
INVALID_OPERATION = "invalid"  # an operationName that is no GraphQL name
OTHER_OPERATION = "other"  # past the cap, or not a valid name
MAX_EXTRA_OPERATIONS = 50

# Outcomes: "ok", or an error code (`extensions.code`, HTTP_<status> for refusals before GraphQL).
OK = "ok"
ERROR_CODE = r"[A-Z][A-Z0-9_]{0,47}"
OTHER_ERROR = "OTHER_ERROR"
MAX_ERROR_CODES = 32


def operation_labels(known: Iterable[str] = ()) -> BoundedLabels:
    return BoundedLabels(
        OPERATION_NAME,
        cap=MAX_EXTRA_OPERATIONS,
        overflow=OTHER_OPERATION,
        preset=(*known, ANONYMOUS_OPERATION, BATCH_OPERATION, INVALID_OPERATION),
    )


def outcome_labels() -> BoundedLabels:
    return BoundedLabels(ERROR_CODE, cap=MAX_ERROR_CODES, overflow=OTHER_ERROR, preset=(OK,))
