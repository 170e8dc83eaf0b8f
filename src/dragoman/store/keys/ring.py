"""Every gateway key, in memory: the request path never waits for the store.

The ring reads the whole (small) table every `ttl` seconds, so a key revoked on one instance is
refused by all of them within that time, and reads it again at once (at most once a second) when a
request presents a key id it does not know, so a key made a moment ago works at once. A copy of the
last table read (hashes only) is kept in the data directory: a gateway that starts while the store is
down still knows its keys. With neither, the ring is `loaded = False` and the gateway refuses
requests (503) rather than guess that no key is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec

from dragoman.store.db import Database, describe
from dragoman.store.keys.admin import load_keys
from dragoman.store.keys.records import GatewayKey, key_id_of, matches
from dragoman.store.paths import data_dir

log = logging.getLogger("dragoman.keys")

DatabaseSource = Callable[[], Awaitable[Database]]
MISS_RELOAD = 1.0  # seconds between reloads caused by unknown key ids
START_WAIT = 5.0  # seconds start-up waits for the store before using the local copy
VERIFIED_MAX = 10_000

_encode = msgspec.json.Encoder()
_decode = msgspec.json.Decoder(list[GatewayKey])


def cache_path_for(url: str) -> Path:
    digest = hashlib.sha256(describe(url).encode()).hexdigest()[:12]
    return data_dir() / "keys" / f"{digest}.json"


class KeyRing:
    def __init__(self, ttl: float = 5.0, cache_path: Path | None = None) -> None:
        self.ttl = ttl
        self.cache_path = cache_path
        self.by_id: dict[str, GatewayKey] = {}
        self.by_name: dict[str, GatewayKey] = {}
        self.loaded = False
        self.loaded_at = 0.0  # wall clock of the last good read of the store (0: never)
        self.on_load: list[Callable[[], None]] = []  # told after every read that changed something
        self._source: DatabaseSource | None = None
        self._task: asyncio.Task[None] | None = None
        self._reloading: asyncio.Task[bool] | None = None
        self._last_miss = 0.0
        self._failing = False
        self._verified: dict[str, str] = {}  # key text -> its id, once its hash matched: one sha256 per key

    # -- what the request path asks (memory only) ------------------------------------------------

    @property
    def any(self) -> bool:
        """Whether any key was ever made (a revoked one too: revoking the last key must not open
        the gateway to everyone)."""
        return bool(self.by_id)

    def knows(self, token: str) -> bool:
        return self._verify(token) is not None

    def verified(self, token: str) -> GatewayKey | None:
        """The key this text is, when it was seen and matched before (a dict lookup)."""
        known = self._verified.get(token)
        return self.by_id.get(known) if known is not None else None

    def _verify(self, token: str) -> GatewayKey | None:
        known = self._verified.get(token)
        if known is not None:
            return self.by_id.get(known)
        key_id = key_id_of(token)
        if key_id is None:
            return None
        key = self.by_id.get(key_id)
        if key is None or not matches(key, token):
            return None
        if len(self._verified) >= VERIFIED_MAX:
            self._verified.clear()
        self._verified[token] = key_id
        return key

    async def lookup(self, token: str) -> GatewayKey | None:
        """The key this text is, whatever its state (revoked and expired ones included)."""
        key = self._verify(token)
        if key is not None:
            return key
        key_id = key_id_of(token)
        if key_id is None:
            return None
        key = self.by_id.get(key_id)
        if key is None and self._source is not None and time.monotonic() - self._last_miss >= MISS_RELOAD:
            self._last_miss = time.monotonic()
            await self.reload()
            key = self.by_id.get(key_id)
        return key if key is not None and matches(key, token) else None

    def all(self) -> list[GatewayKey]:
        return sorted(self.by_id.values(), key=lambda k: (k.created, k.name))

    # -- keeping it current ----------------------------------------------------------------------

    async def start(self, source: DatabaseSource) -> None:
        self._source = source
        try:
            await asyncio.wait_for(self.reload(), START_WAIT)
        except TimeoutError:
            pass
        if not self.loaded:
            self._read_copy()
        self._task = asyncio.get_running_loop().create_task(self._refresh(), name="dragoman-keys")

    async def close(self) -> None:
        for task in (self._task, self._reloading):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._reloading = None

    async def reload(self) -> bool:
        """Read the table now (callers at the same moment share one read); False when the store
        could not be read."""
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.get_running_loop().create_task(self._read())
        return await asyncio.shield(self._reloading)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.ttl)
            await self.reload()

    async def _read(self) -> bool:
        assert self._source is not None
        try:
            keys = await load_keys(await self._source())
        except Exception as exc:
            if not self._failing:
                log.warning("gateway keys: cannot read the store (%s); using the keys read before", exc)
            self._failing = True
            return False
        if self._failing:
            log.warning("gateway keys: the store is readable again")
        self._failing = False
        self._install(keys, from_store=True)
        return True

    def _install(self, keys: list[GatewayKey], *, from_store: bool) -> None:
        changed = not self.loaded or {k.key_id: k for k in keys} != self.by_id
        self.by_id = {k.key_id: k for k in keys}
        self.by_name = {k.name: k for k in keys}
        self.loaded = True
        if from_store:
            self.loaded_at = time.time()
            if changed:
                self._write_copy(keys)
        if changed:
            for listener in self.on_load:
                listener()

    def _write_copy(self, keys: list[GatewayKey]) -> None:
        if self.cache_path is None:
            return
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(_encode.encode(keys))
            tmp.replace(self.cache_path)
        except OSError as exc:
            log.warning("gateway keys: cannot keep a local copy in %s: %s", self.cache_path, exc)

    def _read_copy(self) -> None:
        if self.cache_path is None:
            return
        try:
            keys = _decode.decode(self.cache_path.read_bytes())
        except FileNotFoundError:
            log.error(
                "gateway keys: the store is unavailable and no copy of the keys was kept; requests are "
                "refused until it can be read (server.virtual_keys = false turns gateway keys off)"
            )
            return
        except (OSError, msgspec.DecodeError) as exc:
            log.error("gateway keys: the local copy %s is unreadable: %s", self.cache_path, exc)
            return
        log.warning("gateway keys: the store is unavailable; using the copy read before (%d keys)", len(keys))
        self._install(keys, from_store=False)
