"""Logging for the service and its commands: one JSON object per line, or readable lines when DEBUG=true.

stdlib logging with an orjson formatter; nothing else. Every record logged while a
request runs carries that request's id. A record's `extra` fields become JSON
fields (a hot caller sets them as one dict, `record.fields`, which skips looking
for them), and an exception's stack goes into `stack`: the server log is the only
place a stack is ever written (clients get a code and a fixed message).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

import orjson

from graphql_api.observability.requests import current_request

# Loggers whose own handlers would print a second, differently formatted line.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")

# The attributes every LogRecord has; anything else on a record came in through `extra`.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, object]:
    attributes = record.__dict__
    fields = attributes.get("fields")
    if fields is not None:
        return fields  # type: ignore[no-any-return]
    return {key: value for key, value in attributes.items() if key not in _RECORD_ATTRIBUTES}


def _request_id(record: logging.LogRecord) -> str | None:
    explicit = record.__dict__.get("request_id")
    if explicit is not None:
        return str(explicit)
    request = current_request.get()
    return None if request is None else request.request_id


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def _timestamp(self, record: logging.LogRecord) -> str:
        """ISO 8601 UTC to the millisecond; the date and time part is formatted once per second, not per line."""
        second = int(record.created)
        if second != self._second:
            self._second, self._second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self._timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (request_id := _request_id(record)) is not None:
            entry["request_id"] = request_id
        entry.update(_extras(record))
        if record.exc_info:
            entry["stack"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


class HumanFormatter(logging.Formatter):
    """For a developer's terminal: time, level, logger, message, then the extra fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _extras(record)
        if "request_id" not in fields and (request_id := _request_id(record)) is not None:
            fields = {"request_id": request_id, **fields}
        if not fields:
            return line
        head, newline, stack = line.partition("\n")
        return head + " " + " ".join(f"{key}={value}" for key, value in fields.items()) + newline + stack


class StderrHandler(logging.Handler):
    """One line per record on whatever sys.stderr is at the time (so pytest's capture is followed).

    One write of the whole line: lines from concurrent threads never interleave, and
    stderr, line-buffered, hands each line to the OS (and the log collector) at once.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            stream: TextIO = sys.stderr
            stream.write(line)
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def configure_logging(level: str, *, human: bool) -> None:
    """Send every log record through one handler on the root logger; `bookrec.*` at `level`, libraries at WARNING+.

    Idempotent (each app a test builds calls it): the handler it installed before is
    replaced, and handlers it did not install (pytest's) are left alone. Records then
    skip gathering what no line here prints (the caller's frame, thread and process
    names: the logging HOWTO's optimisations), one cost less on every request's line.
    """
    logging._srcfile = None  # type: ignore[attr-defined]  # documented in the logging HOWTO, "Optimization"
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = StderrHandler()
    handler.setFormatter(HumanFormatter() if human else JsonFormatter())
    handler.set_name("bookrec")
    root = logging.getLogger()
    for existing in [h for h in root.handlers if h.get_name() == "bookrec"]:
        root.removeHandler(existing)
    root.addHandler(handler)
    numeric = logging.getLevelName(level)
    root.setLevel(max(numeric, logging.WARNING))
    logging.getLogger("bookrec").setLevel(numeric)
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    # The bookrec.request line (with request id, operation and cache figures) replaces uvicorn's access line.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
