"""The usage ledger's sink: every finished request becomes one row, without the request waiting.

    record()  -> a bounded in-memory queue (an append; nothing else on the event loop)
    writer    -> batches of rows, one multi-row INSERT ... ON CONFLICT (request_id) DO NOTHING
    store down or slow -> the queue spills to the journal (local files), replayed once it is back
    journal full -> the only place a row is dropped; every one is counted and logged

`close()` writes what is queued (to the store, or to the journal when the store cannot take it in
time). Counters (`stats()`) are there for metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from dragoman.store.db import CONNECT_TIMEOUT, Database, StoreError, describe, open_database
from dragoman.store.ledger.journal import Journal, SegmentReader
from dragoman.store.ledger.retention import prune
from dragoman.store.ledger.rows import clean, to_row
from dragoman.store.ledger.schema import COLUMNS, KEY, MIGRATIONS, TABLE
from dragoman.store.paths import data_dir
from dragoman.trip.outcome import Outcome

log = logging.getLogger("dragoman.ledger")

DAY = 86_400.0


@dataclass
class LedgerCounters:
    written: int = 0  # rows the store holds now (new or already there)
    duplicates: int = 0  # of those, rows it already had (a replay after a partial one)
    journaled: int = 0  # rows spilled to the journal
    replayed: int = 0  # rows moved from the journal to the store
    dropped: int = 0  # rows lost: journal full, or an unreadable journal line
    store_failures: int = 0
    pruned: int = 0


def journal_dir_for(url: str) -> Path:
    """One journal per store, so a journal is never replayed into a different store."""
    digest = hashlib.sha256(describe(url).encode()).hexdigest()[:12]
    return data_dir() / "journal" / digest


class Ledger:
    name = "ledger"

    def __init__(
        self,
        url: str,
        *,
        log_bodies: bool = False,
        secrets: tuple[str, ...] = (),
        retention_days: int = 90,
        journal_dir: Path | None = None,
        journal_max_bytes: int = 256 * 1024 * 1024,
        queue_max: int = 10_000,
        batch_max: int = 1000,
        linger: float = 0.25,
        insert_timeout: float = 30.0,
        retry_min: float = 0.5,
        retry_max: float = 30.0,
        close_timeout: float = 20.0,
        prune_every: float = 3600.0,
    ) -> None:
        self.url = url
        self.description = describe(url)
        self.log_bodies = log_bodies
        self.secrets = tuple(s for s in secrets if s)
        self.retention_days = retention_days
        self.queue_max = queue_max
        self.batch_max = batch_max
        self.linger = linger
        self.insert_timeout = insert_timeout
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.close_timeout = close_timeout
        self.prune_every = prune_every
        self.counters = LedgerCounters()
        self.journal = Journal(journal_dir or journal_dir_for(url), journal_max_bytes)

        self._queue: deque[Outcome] = deque()
        self._inflight: list[Outcome] = []
        self._wake = asyncio.Event()
        self._full = asyncio.Event()  # a batch is ready (or the ledger is closing): stop lingering
        self._up = asyncio.Event()
        self._db: Database | None = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dragoman-journal")
        self._spill_lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._prune_task: asyncio.Task[None] | None = None
        self._spill_task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._journal_pending = True  # whatever an earlier run left is replayed once the store is up
        self._retry = retry_min
        self._next_try = 0.0
        self._was_up = False
        self._last_drop_log = 0.0

    # --- the sink protocol ----------------------------------------------------------------------

    def record(self, outcome: Outcome) -> None:
        self.record_batch([outcome])

    def record_batch(self, outcomes: list[Outcome]) -> None:
        if self._closed:
            self._spill_now(list(outcomes))  # stragglers after close: straight to disk
            return
        queue = self._queue
        queue.extend(outcomes)
        if len(queue) >= 2 * self.queue_max:
            # a burst faster than the spill thread: write the excess to disk here rather than drop it
            self._spill_now(self._take(len(queue) - self.queue_max // 2))
            self._journal_pending = True
        if len(queue) >= self.queue_max and self._spill_task is None:
            self._spill_task = asyncio.get_running_loop().create_task(self._spill_overflow())
        if not self._wake.is_set():
            self._wake.set()
        if len(queue) >= self.batch_max and not self._full.is_set():
            self._full.set()

    async def start(self) -> None:
        if self._task is None:
            # the store is opened by the writer: a slow or absent store never delays start-up
            self._task = asyncio.get_running_loop().create_task(self._run(), name="dragoman-ledger")

    async def close(self) -> None:
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        self._full.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.close_timeout)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
        for task in (self._prune_task, self._spill_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        leftovers = self._inflight + list(self._queue)
        self._inflight, self._queue = [], deque()
        if leftovers:
            await asyncio.get_running_loop().run_in_executor(self._io, self._spill_now, leftovers)
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._io, self.journal.rotate)
        self._io.shutdown(wait=True)
        if self._db is not None:
            await self._db.close()
            self._db = None
        self._up.clear()
        if self.counters.dropped:
            log.error("usage ledger closed having dropped %d rows in all", self.counters.dropped)

    # --- what others read -----------------------------------------------------------------------

    def stats(self) -> dict[str, int | bool]:
        queued = len(self._queue) + len(self._inflight)
        return {"queued": queued, "store_up": self._up.is_set(), **asdict(self.counters)}

    async def database(self, timeout: float = 5.0) -> Database:
        """The open store, for readers (`GET /v1/usage`); StoreError while it is down."""
        if not self._up.is_set():
            try:
                await asyncio.wait_for(self._up.wait(), timeout)
            except TimeoutError:
                raise StoreError(f"the usage store {self.description} is unavailable") from None
        if self._db is None:
            raise StoreError(f"the usage store {self.description} is closed")
        return self._db

    # --- the writer -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._write_loop()
                return
            except Exception:  # a bug must not end recording for the life of the process
                log.exception("usage ledger writer failed; restarting it")
                await asyncio.sleep(1.0)

    async def _write_loop(self) -> None:
        while True:
            if not self._up.is_set():
                tried = self._was_up or self.counters.store_failures > 0
                if self._closing and tried:
                    await self._spill(self._take(len(self._queue)))  # no more waiting for the store
                    return
                now = time.monotonic()
                if now >= self._next_try or not tried:
                    await self._connect()
                    continue
                if self._queue:
                    await self._spill(self._take(len(self._queue)))  # the store is down: to disk now
                    continue
                await self._sleep(self._next_try - now)
                continue
            if not self._queue:
                if self._journal_pending:
                    await self._replay()
                    continue
                if self._closing:
                    return
                await self._sleep(None)
                continue
            if len(self._queue) < self.batch_max and not self._closing and self.linger:
                await self._gather()
            await self._write_batch()

    async def _gather(self) -> None:
        """Let a batch gather for up to `linger`: each insert and commit costs the store (and its
        thread, on this core) about as much for a few rows as for a thousand."""
        self._full.clear()
        if len(self._queue) >= self.batch_max or self._closing:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), self.linger)

    async def _sleep(self, timeout: float | None) -> None:
        self._wake.clear()
        if self._queue or self._closing:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _take(self, n: int) -> list[Outcome]:
        queue = self._queue
        if n >= len(queue):  # the usual batch: all of it, at C speed
            taken = list(queue)
            queue.clear()
            return taken
        return [queue.popleft() for _ in range(n)]

    async def _connect(self) -> None:
        try:
            if self._db is None:
                self._db = await asyncio.wait_for(open_database(self.url), 2 * CONNECT_TIMEOUT)
            applied = await asyncio.wait_for(MIGRATIONS.apply(self._db), self.insert_timeout)
        except Exception as exc:
            self._failed(exc)
            return
        if applied:
            log.info("usage store %s: applied %s", self.description, ", ".join(applied))
        if self._was_up or self.counters.store_failures:
            log.warning("usage store %s is back: replaying the journal", self.description)
        self._was_up = True
        self._retry = self.retry_min
        self._journal_pending = True
        self._up.set()
        if self._prune_task is None:
            self._prune_task = asyncio.get_running_loop().create_task(self._prune_loop())

    def _failed(self, exc: BaseException) -> None:
        self.counters.store_failures += 1
        if self._up.is_set() or self.counters.store_failures == 1:
            reason = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
            reason = reason.removeprefix(f"{self.description}: ")
            log.warning(
                "usage store %s unavailable (%s): rows go to the journal in %s until it is back",
                self.description,
                reason,
                self.journal.directory,
            )
        self._up.clear()
        self._next_try = time.monotonic() + self._retry
        self._retry = min(self._retry * 2, self.retry_max)

    async def _insert(self, outcomes: list[Outcome]) -> None:
        assert self._db is not None
        rows = [to_row(clean(o, self.log_bodies, self.secrets)) for o in outcomes]
        inserted = await asyncio.wait_for(self._db.insert_ignore(TABLE, COLUMNS, rows, KEY), self.insert_timeout)
        self.counters.written += len(rows)
        self.counters.duplicates += len(rows) - inserted

    async def _write_batch(self) -> None:
        batch = self._take(self.batch_max)
        self._inflight = batch  # cancelled mid-insert (close timed out): close() journals it
        try:
            await self._insert(batch)
        except Exception as exc:
            self._failed(exc)
            self._inflight = []
            await self._spill(batch)  # handed to the journal thread before the first suspension
            return
        self._inflight = []

    async def _replay(self) -> None:
        self._journal_pending = False
        loop = asyncio.get_running_loop()
        for path in await loop.run_in_executor(self._io, self.journal.claim):
            reader = SegmentReader(path)
            try:
                while chunk := await loop.run_in_executor(self._io, reader.next_chunk, self.batch_max):
                    await self._insert(chunk)
                    self.counters.replayed += len(chunk)
                    if len(self._queue) >= self.batch_max:
                        await self._write_batch()  # live rows keep flowing during a long replay
            except Exception as exc:
                self._failed(exc)
                self._journal_pending = True  # the claimed segment stays ours: next time, from its start
                return
            finally:
                await loop.run_in_executor(self._io, reader.close)
            if reader.bad:
                self._drop(reader.bad, f"unreadable lines in {path.name}")
            await loop.run_in_executor(self._io, self.journal.done, path)

    # --- the journal side -----------------------------------------------------------------------

    def _spill_now(self, outcomes: list[Outcome]) -> None:
        """Blocking: clean and append; what does not fit is dropped and counted. Runs on the journal
        thread, or (a burst, a straggler after close) on the caller's: hence the lock."""
        cleaned = [clean(o, self.log_bodies, self.secrets) for o in outcomes]
        with self._spill_lock:  # counters are bumped from two threads
            written = self.journal.append(cleaned)
            self.counters.journaled += written
            if written < len(cleaned):
                self._drop(len(cleaned) - written, "the journal is full")

    async def _spill(self, outcomes: list[Outcome]) -> None:
        if outcomes:
            await asyncio.get_running_loop().run_in_executor(self._io, self._spill_now, outcomes)
            self._journal_pending = True

    async def _spill_overflow(self) -> None:
        """The store is slow: move the oldest queued rows to disk until the queue is half empty."""
        try:
            while len(self._queue) > self.queue_max // 2:
                await self._spill(self._take(len(self._queue) - self.queue_max // 2))
        finally:
            self._spill_task = None

    def _drop(self, n: int, why: str) -> None:
        self.counters.dropped += n
        now = time.monotonic()
        if now - self._last_drop_log >= 10.0 or self.counters.dropped == n:
            self._last_drop_log = now
            log.error(
                "usage ledger dropped %d rows (%s); %d dropped in all (journal %s)",
                n,
                why,
                self.counters.dropped,
                self.journal.directory,
            )

    # --- retention ------------------------------------------------------------------------------

    async def _prune_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            if self._up.is_set() and self._db is not None and self.retention_days > 0:
                try:
                    removed = await prune(self._db, time.time() - self.retention_days * DAY)
                except Exception as exc:
                    log.warning("usage retention failed on %s: %s", self.description, exc)
                else:
                    self.counters.pruned += removed
                    if removed:
                        log.info("usage retention: removed %d rows older than %d days", removed, self.retention_days)
            if await loop.run_in_executor(self._io, self.journal.pending):
                self._journal_pending = True  # a worker that died left a segment behind
                self._wake.set()
            await asyncio.sleep(self.prune_every)
