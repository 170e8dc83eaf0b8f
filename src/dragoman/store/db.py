"""A small database layer over SQLite (stdlib, one dedicated thread) and PostgreSQL (asyncpg).

Stores write SQL once with `?` placeholders and portable column types (`Column`); this module
turns them into each engine's dialect. Nothing here blocks the event loop: SQLite calls run on a
single worker thread that owns the connection, asyncpg is asynchronous.

    db = await open_database("sqlite")          # or "sqlite:///path.db", "postgresql://..."
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO t (a) VALUES (?)", [1])
    rows = await db.fetch("SELECT a FROM t WHERE a > ?", [0])

Every failure to reach or use the store is raised as `StoreError` with a message that never
carries a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast

from dragoman.store.paths import data_dir

Kind = Literal["sqlite", "postgres"]
ColumnType = Literal["text", "real", "int", "bool", "json"]
T = TypeVar("T")

# The sqlite3 module "adapts" every parameter that is not an int, float, str or bytes. For None and
# bool, with no adapter registered, that is a failed attribute lookup on a type, whose AttributeError
# message is formatted and thrown away: 40% of the ledger writer's instructions per row (103k -> 62k
# under callgrind, a dozen NULLs and two bools in a row). A registered adapter is found first. Both
# bind what sqlite3 bound without them: None stays NULL (`{}.get` maps it to None, in C), a bool
# its integer.
sqlite3.register_adapter(type(None), cast("Callable[[None], None]", {}.get))
sqlite3.register_adapter(bool, int)

CONNECT_TIMEOUT = 5.0  # seconds to reach PostgreSQL before the store counts as down
STATEMENT_TIMEOUT = 30.0
CLOSE_TIMEOUT = 2.0

_DDL: dict[Kind, dict[ColumnType, str]] = {
    "sqlite": {"text": "TEXT", "real": "REAL", "int": "INTEGER", "bool": "INTEGER", "json": "TEXT"},
    "postgres": {"text": "TEXT", "real": "DOUBLE PRECISION", "int": "BIGINT", "bool": "BOOLEAN", "json": "JSONB"},
}


class StoreError(Exception):
    """The store cannot be reached, or refused a statement."""


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    ddl_extra: str = ""  # e.g. "PRIMARY KEY", "NOT NULL"

    def ddl(self, kind: Kind) -> str:
        return f"{self.name} {_DDL[kind][self.type]} {self.ddl_extra}".strip()


class Tx(Protocol):
    """Statements inside one transaction."""

    kind: Kind

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    async def lock(self, name: str) -> None:
        """Serialize this transaction against every other one taking the same named lock."""


class Database(Protocol):
    kind: Kind
    description: str  # where it is, safe to log

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Tx]: ...

    async def insert_ignore(
        self, table: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]], key: str
    ) -> int:
        """Insert rows in as few statements as the engine allows, skipping those whose `key`
        already exists; returns how many were inserted."""

    async def close(self) -> None: ...


def column_ddl(kind: Kind, columns: Sequence[Column]) -> str:
    return ", ".join(c.ddl(kind) for c in columns)


def describe(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


async def open_database(url: str) -> Database:
    """Open the store a `server.usage_store`-style URL names ("off" is the caller's business)."""
    if url == "sqlite" or url.startswith("sqlite://"):
        path = data_dir() / "usage.db" if url == "sqlite" else Path(url[len("sqlite://") :])
        return await SqliteDatabase.open(path)
    if url.startswith(("postgresql://", "postgres://")):
        return await PostgresDatabase.open(url)
    raise StoreError(f"unsupported store {describe(url)!r} (expected sqlite, sqlite:///path or postgresql://...)")


# --- SQLite -------------------------------------------------------------------------------------


class _SqliteTx:
    kind: Kind = "sqlite"

    def __init__(self, thread: _SqliteThread) -> None:
        self._thread = thread

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._thread.call(lambda c: c.execute(sql, params).rowcount)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return await self._thread.call(lambda c: [dict(r) for r in c.execute(sql, params).fetchall()])

    async def lock(self, name: str) -> None:
        return None  # BEGIN IMMEDIATE already holds the database's single write lock


class _SqliteThread:
    """One connection owned by one thread; the lock keeps one statement or transaction at a time."""

    def __init__(self, path: Path, description: str, name: str) -> None:
        self.path = path
        self.description = description
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.lock = asyncio.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        conn.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL keeps it consistent
        conn.execute("PRAGMA busy_timeout=10000")  # several workers share one file
        return conn

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._connect()
        return fn(self._conn)

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, self._run, fn)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.description}: {exc}") from exc
        except RuntimeError as exc:  # the executor was shut down
            raise StoreError(f"{self.description}: closed") from exc

    async def close(self) -> None:
        async with self.lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                with contextlib.suppress(sqlite3.Error, RuntimeError, TimeoutError):
                    # on the connection's own thread (the last close checkpoints the WAL), unless
                    # that thread is stuck behind another process's lock: then shutdown goes on
                    await asyncio.wait_for(
                        asyncio.get_running_loop().run_in_executor(self.executor, conn.close), CLOSE_TIMEOUT
                    )
        self.executor.shutdown(wait=False)


# The row counts a batch is cut into, one INSERT each. sqlite3 keeps every distinct statement text
# prepared (an LRU of 128), and a prepared INSERT of a few hundred rows takes a megabyte or more:
# with one statement per batch size (1 to 1,000 rows, as the load goes) the cache alone grew the
# process by ~130 MiB in a soak. Five fixed sizes keep it to five statements.
_SQLITE_SIZES = (512, 128, 32, 8, 1)


def _statement_sizes(total: int, largest: int) -> Iterator[int]:
    for size in _SQLITE_SIZES:
        if size > largest and size > 1:
            continue
        while total >= size:
            yield size
            total -= size


class SqliteDatabase:
    """A writer connection and a reader connection, each on its own thread: in WAL mode a long
    report (`GET /v1/usage`) never holds up the ledger's inserts."""

    kind: Kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"sqlite://{path}"
        self._writer = _SqliteThread(path, self.description, "dragoman-sqlite")
        self._reader = _SqliteThread(path, self.description, "dragoman-sqlite-read")
        # SQLite >= 3.32 takes 32766 bound parameters per statement, older ones 999
        self._max_params = 32_000 if sqlite3.sqlite_version_info >= (3, 32) else 990

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        db = cls(path)
        try:
            await db._writer.call(lambda _c: None)
        except StoreError:
            await db.close()
            raise
        return db

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._writer.lock:
            return await self._writer.call(lambda c: c.execute(sql, params).rowcount)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self._reader.lock:
            return await self._reader.call(lambda c: [dict(r) for r in c.execute(sql, params).fetchall()])

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        writer = self._writer
        async with writer.lock:
            await writer.call(lambda c: c.execute("BEGIN IMMEDIATE"))
            try:
                yield _SqliteTx(writer)
            except BaseException:
                with contextlib.suppress(StoreError):
                    await writer.call(lambda c: c.execute("ROLLBACK"))
                raise
            await writer.call(lambda c: c.execute("COMMIT"))

    async def insert_ignore(
        self, table: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]], key: str
    ) -> int:
        if not rows:
            return 0
        names = ", ".join(c.name for c in columns)
        one = "(" + ", ".join("?" * len(columns)) + ")"
        per_statement = max(1, self._max_params // len(columns))

        def insert(conn: sqlite3.Connection) -> int:
            inserted = 0
            conn.execute("BEGIN IMMEDIATE")
            try:
                start = 0
                for size in _statement_sizes(len(rows), per_statement):
                    chunk = rows[start : start + size]
                    start += size
                    values = ", ".join([one] * size)
                    sql = f"INSERT INTO {table} ({names}) VALUES {values} ON CONFLICT ({key}) DO NOTHING"
                    inserted += conn.execute(sql, list(chain.from_iterable(chunk))).rowcount
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return inserted

        async with self._writer.lock:
            return await self._writer.call(insert)

    async def close(self) -> None:
        await self._writer.close()
        await self._reader.close()


# --- PostgreSQL ---------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\?")


def _numbered(sql: str) -> str:
    """`?` placeholders as asyncpg's `$1, $2...` (our SQL never holds a literal question mark)."""
    counter = iter(range(1, 1 << 16))
    return _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", sql)


def _affected(status: str) -> int:
    """The row count at the end of a command tag: 'INSERT 0 5', 'DELETE 3'."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _PgTx:
    kind: Kind = "postgres"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return _affected(await self._conn.execute(_numbered(sql), *params))

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._conn.fetch(_numbered(sql), *params)]

    async def lock(self, name: str) -> None:
        await self._conn.execute("SELECT pg_advisory_xact_lock($1)", zlib.crc32(name.encode()))


class PostgresDatabase:
    kind: Kind = "postgres"

    def __init__(self, pool: Any, description: str) -> None:
        self._pool = pool
        self.description = description

    @classmethod
    async def open(cls, url: str) -> PostgresDatabase:
        try:
            import asyncpg
        except ImportError:
            raise StoreError("PostgreSQL needs the asyncpg driver: pip install 'dragoman[postgres]'") from None
        description = describe(url)
        try:
            pool = await asyncpg.create_pool(
                url, min_size=0, max_size=4, timeout=CONNECT_TIMEOUT, command_timeout=STATEMENT_TIMEOUT
            )  # no floor of idle connections: asyncpg would log a traceback a second while it is down
        except Exception as exc:
            raise StoreError(f"{description}: {_reason(exc)}") from None
        try:
            await pool.execute("SELECT 1")  # reachable now, or open fails like any other store
        except Exception as exc:
            with contextlib.suppress(Exception):
                await pool.close()
            raise StoreError(f"{description}: {_reason(exc)}") from None
        return cls(pool, description)

    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:  # asyncpg's errors, OSError, timeouts: all mean the store failed us
            raise StoreError(f"{self.description}: {_reason(exc)}") from exc

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._guard():
            return _affected(await self._pool.execute(_numbered(sql), *params))

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self._guard():
            return [dict(r) for r in await self._pool.fetch(_numbered(sql), *params)]

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._guard(), self._pool.acquire() as conn, conn.transaction():
            yield _PgTx(conn)

    async def insert_ignore(
        self, table: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]], key: str
    ) -> int:
        if not rows:
            return 0
        # COPY into a session-private staging table, then one INSERT ... SELECT that skips the
        # request ids already stored: binary COPY is asyncpg's cheapest way in (parameters cost
        # ~20 us a row client-side, as unnested arrays or as large multi-row statements)
        names = [c.name for c in columns]
        listed = ", ".join(names)
        staging = f"{table}_incoming"
        async with self._guard(), self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            await conn.copy_records_to_table(staging, records=rows, columns=names)
            return _affected(
                await conn.execute(
                    f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {staging} ON CONFLICT ({key}) DO NOTHING"
                )
            )

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._pool.close(), 5.0)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
