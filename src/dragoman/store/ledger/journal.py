"""The spill file: outcomes the store could not take yet, kept on local disk until it can.

A journal is a directory of segments, one JSON outcome per line. Each process appends to its own
segment (`seg-<pid>-<n>.jsonl`), so workers never interleave lines. To replay, a process claims
segments by renaming them (`....replay-<pid>`; rename is atomic, so one claimant wins): its own
closed segments, those of processes that are gone, and claims left by a replayer that died.
Inserts are idempotent on the request id, so a segment replayed twice after a crash is harmless.

Every method blocks (file I/O): the ledger runs them on its own journal thread (and, for a burst,
on the event loop's), so they hold a lock. The directory's size is bounded; rows that do not fit
are refused, and the caller counts them as dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import IO

import msgspec

from dragoman.trip.outcome import Outcome

log = logging.getLogger("dragoman.ledger")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Outcome)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _pid_of(name: str, marker: str) -> int | None:
    """The pid after `marker` in a segment name (`seg-<pid>-...` or `...replay-<pid>`)."""
    _, found, rest = name.rpartition(marker)
    digits = rest.split("-", 1)[0].split(".", 1)[0]
    return int(digits) if found and digits.isdigit() else None


class Journal:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._bytes: int | None = None  # the directory's size as last measured, plus what we added
        self._serial = 0
        self._lock = threading.RLock()

    def _size(self) -> int:
        if self._bytes is None:
            total = 0
            with contextlib.suppress(OSError):
                for p in self.directory.iterdir():
                    with contextlib.suppress(OSError):
                        total += p.stat().st_size
            self._bytes = total
        return self._bytes

    def append(self, outcomes: list[Outcome]) -> int:
        """Append what fits under the size bound; returns how many were written (in order)."""
        if not outcomes:
            return 0
        with self._lock:
            return self._append(outcomes)

    def _append(self, outcomes: list[Outcome]) -> int:
        lines = [_encoder.encode(o) + b"\n" for o in outcomes]
        room = self.max_bytes - self._size()
        fitting = 0
        used = 0
        for line in lines:
            if used + len(line) > room:
                break
            used += len(line)
            fitting += 1
        if not fitting:
            return 0
        try:
            if self._file is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._serial += 1
                self._path = self.directory / f"seg-{os.getpid()}-{time.time_ns()}-{self._serial}.jsonl"
                self._file = self._path.open("ab")
            self._file.write(b"".join(lines[:fitting]))
            self._file.flush()  # in the OS's hands: survives this process dying, not the machine
        except OSError as exc:
            log.error("usage journal %s: cannot write: %s", self.directory, exc)
            self._rotate()
            return 0
        self._bytes = self._size() + used
        return fitting

    def rotate(self) -> None:
        """Close the current segment, so it can be claimed; the next append starts another."""
        with self._lock:
            self._rotate()

    def _rotate(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = None
        self._path = None

    def claim(self) -> list[Path]:
        """Take every segment this process may replay."""
        with self._lock:
            return self._claim()

    def _claim(self) -> list[Path]:
        self._rotate()
        me = os.getpid()
        claimed: list[Path] = []
        try:
            names = sorted(p.name for p in self.directory.iterdir())
        except OSError:
            return []
        for name in names:
            if ".replay-" in name:
                owner = _pid_of(name, ".replay-")
                if owner is not None and owner != me and _alive(owner):
                    continue  # another live process is replaying it
                base = name.split(".replay-", 1)[0]
            elif name.startswith("seg-") and name.endswith(".jsonl"):
                writer = _pid_of(name, "seg-")
                if writer is not None and writer != me and _alive(writer):
                    continue  # a live process still appends to it, and will replay it
                base = name
            else:
                continue
            target = self.directory / f"{base}.replay-{me}"
            if name != target.name:
                try:
                    os.rename(self.directory / name, target)
                except OSError:
                    continue  # someone else claimed it first
            claimed.append(target)
        self._bytes = None
        return claimed

    def done(self, path: Path) -> None:
        with self._lock, contextlib.suppress(OSError):
            path.unlink()
            self._bytes = None

    def pending(self) -> bool:
        """Whether any segment waits for replay (this process's or an orphan)."""
        try:
            return any(p.name.startswith("seg-") for p in self.directory.iterdir())
        except OSError:
            return False


class SegmentReader:
    """Reads a claimed segment in chunks; a line that does not decode (a torn last write) is
    counted in `bad` and skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bad = 0
        self._file: IO[bytes] | None = None

    def next_chunk(self, size: int) -> list[Outcome]:
        if self._file is None:
            try:
                self._file = self.path.open("rb")
            except OSError:
                return []
        out: list[Outcome] = []
        while len(out) < size:
            line = self._file.readline()
            if not line:
                break
            if not line.strip():
                continue
            try:
                out.append(_decoder.decode(line))
            except msgspec.DecodeError:
                self.bad += 1
        return out

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
