"""The directory prometheus-client's multiprocess mode keeps its files in, made ready before uvicorn starts workers.

Kept free of prometheus-client imports: the library picks its storage when it is
first imported, so the variable must be set before any worker imports it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
_METRIC_FILES = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")


@contextlib.contextmanager
def metrics_directory(workers: int) -> Iterator[str | None]:
    """For the life of a server: PROMETHEUS_MULTIPROC_DIR emptied of old metric files, or a temporary one.

    Several workers without the variable would each answer /metrics with their own
    counts only, so a temporary directory is made for them (and removed after). A
    directory the operator named is kept, but emptied of a previous run's files:
    prometheus-client must start from an empty one.
    """
    directory = os.environ.get(MULTIPROC_DIR_ENV)
    if directory:
        os.makedirs(directory, exist_ok=True)
        for pattern in _METRIC_FILES:
            for path in glob.glob(os.path.join(directory, pattern)):
                os.remove(path)
        yield directory
        return
    if workers <= 1:
        yield None
        return
    directory = tempfile.mkdtemp(prefix="bookrec-metrics-")
    os.environ[MULTIPROC_DIR_ENV] = directory
    try:
        yield directory
    finally:
        del os.environ[MULTIPROC_DIR_ENV]
        shutil.rmtree(directory, ignore_errors=True)
