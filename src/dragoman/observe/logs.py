"""How `dragoman serve` logs: `server.log_level`, and `server.log_format` ("text" or "json").

In JSON every line is one object: `time` (ISO 8601, UTC), `level`, `logger`, `message`, plus the
fields a record carries in `extra={"fields": {...}}` (the access log's). The access log has its own
logger, `dragoman.access`, at INFO whatever `log_level` is: one line per request is the default.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from dragoman.config import ServerConfig

ACCESS_LOGGER = "dragoman.access"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_encode = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encode.encode(line).decode()


class TextFormatter(logging.Formatter):
    """UTC times, like the JSON lines and the ledger; the date part made once a second."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self.converter = time.gmtime
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        return f"{self._stamp},{int(record.msecs):03d}"


_forks = 0  # forks into this process's line: a flusher thread does not survive a fork


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class BufferedStderr(logging.StreamHandler):
    """stderr through a buffer of its own: lines below WARNING (the access log's) reach the file
    descriptor in batches, at most FLUSH_EVERY seconds late; a warning or worse, and everything
    pending before it, goes out at once. One write system call per request was the access log's
    largest cost."""

    FLUSH_EVERY = 0.2

    def __init__(self) -> None:
        stream = open(sys.stderr.fileno(), "w", buffering=1 << 16, closefd=False, encoding="utf-8", errors="replace")  # noqa: SIM115
        super().__init__(stream)
        self._flusher_of = -1  # the `_forks` of the process its flusher runs in

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.flush()
            elif self._flusher_of != _forks:  # none yet in this process (workers are forked)
                self._start_flusher()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def write_line(self, line: str) -> None:
        """A line already formatted as this handler would format it (the access log's fast path)."""
        self.write_text(line + "\n")

    def write_text(self, text: str) -> None:
        """Whole lines, each already formatted and ending in a newline."""
        with self.lock:  # type: ignore[union-attr]
            self.stream.write(text)
        if self._flusher_of != _forks:  # not os.getpid(): a system call per line
            self._start_flusher()

    def _start_flusher(self) -> None:
        self._flusher_of = _forks

        def flush_now_and_then() -> None:
            while True:
                time.sleep(self.FLUSH_EVERY)
                self.flush()

        threading.Thread(target=flush_now_and_then, name="dragoman-log-flush", daemon=True).start()


def direct_handler(logger: logging.Logger) -> BufferedStderr | None:
    """The handler `configure` installed, when it alone would take `logger`'s records (no handler
    or filter of anyone else on the way): lines may then be written to it directly, skipping the
    LogRecord. None otherwise (a test's capture, an operator's own logging setup)."""
    if logger.handlers or logger.filters or not logger.propagate:
        return None
    parent = logger.parent
    while parent is not None and parent.parent is not None:  # up to the root
        if parent.handlers or parent.filters or not parent.propagate:
            return None
        parent = parent.parent
    root = logging.getLogger()
    if len(root.handlers) != 1 or root.filters:
        return None
    handler = root.handlers[0]
    if not isinstance(handler, BufferedStderr) or handler.filters or handler.level > logging.INFO:
        return None
    return handler


def flush() -> None:
    """Write out what the log handlers hold (a worker's last act: forked processes skip atexit)."""
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:
            pass


def configure(server: ServerConfig) -> None:
    """The root handler on stderr in the configured format; the access log at INFO."""
    handler = BufferedStderr()
    handler.setFormatter(JsonFormatter() if server.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(server.log_level.upper())
    access = logging.getLogger(ACCESS_LOGGER)
    access.setLevel(logging.INFO if server.access_log else logging.CRITICAL + 1)
    # the trip's hot path makes no use of these, and each costs a system call or a stack walk per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
