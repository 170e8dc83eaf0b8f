"""Before `serve` forks its workers: make sure the port is ours, and give the metrics a place to meet.

Workers share the port through SO_REUSEPORT, which also lets a second `serve --workers N` on the same
port join in silently. So the parent first binds the port itself *without* SO_REUSEPORT (that fails
when anything listens there, a group of reuse-port workers included) and holds a lock file named
after the address for as long as it runs (two `serve` started at the same moment cannot both pass).
A taken port is a `PortTaken` with a message fit to print.

`metrics_dir()` is the per-run directory of prometheus_client's multiprocess mode: made and exported
(PROMETHEUS_MULTIPROC_DIR) before any metric exists, removed when the run ends.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from dragoman.observe.metrics import MULTIPROC_ENV


class PortTaken(OSError):
    """The port cannot be ours; `str()` says why."""


def _lock_path(host: str, port: int) -> Path:
    safe_host = "".join(c if c.isalnum() or c in ".-" else "_" for c in host) or "any"
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"dragoman-{uid}-{safe_host}-{port}.lock"


def _addresses(host: str, port: int) -> list[tuple[int, tuple[object, ...]]]:
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortTaken(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    seen: list[tuple[int, tuple[object, ...]]] = []
    for family, _type, _proto, _name, address in infos:
        if (family, address) not in seen:
            seen.append((family, address))
    return seen


def free_port(host: str) -> int:
    """A port nothing listens on now (for `--port 0` with several workers: all of them need the same)."""
    family, address = _addresses(host, 0)[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind(address)
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def claim_port(host: str, port: int) -> Iterator[int]:
    """Hold `host:port` for this run: the port (a free one for 0); PortTaken when it is not free."""
    if port == 0:
        port = free_port(host)
    # the lock file stays behind when the run ends: removing it would let two later runs lock two
    # different files of the same name
    lock: IO[str] = open(_lock_path(host, port), "a+")  # noqa: SIM115 - held until the run ends
    try:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise PortTaken(
                f"cannot listen on {host}:{port}: another `dragoman serve` (pid {holder}) is using it"
            ) from None
        for family, address in _addresses(host, port):
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
                if family == socket.AF_INET6:
                    with contextlib.suppress(OSError):
                        probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    probe.bind(address)
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        raise PortTaken(
                            f"cannot listen on {host}:{port}: address already in use (another process listens there)"
                        ) from None
                    raise PortTaken(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield port
    finally:
        lock.close()


@contextlib.contextmanager
def metrics_dir() -> Iterator[Path]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for this run (inside an inherited one, if any)."""
    parent = os.environ.get(MULTIPROC_ENV) or None
    path = Path(tempfile.mkdtemp(prefix="dragoman-metrics-", dir=parent))
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)
