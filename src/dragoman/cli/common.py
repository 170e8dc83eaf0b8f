"""What every command shares: loading the config with the command line's overrides, and tables."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from dragoman.config import Config, load


def add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML config (default: $DRAGOMAN_CONFIG, ./dragoman.toml, user config dir)")


def config_from(args: argparse.Namespace) -> Config:
    cfg = load(args.config)
    if getattr(args, "host", None):
        cfg.server.host = args.host
    if getattr(args, "port", None) is not None:
        cfg.server.port = args.port
    if getattr(args, "workers", None) is not None:
        cfg.server.workers = args.workers
    return cfg


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (0-65535)")
    return value


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def on_store(
    url: str,
    prepare: Callable[[Any], Awaitable[object]],
    work: Callable[[Any], Awaitable[int]],
    user_errors: tuple[type[Exception], ...],
) -> int:
    """Open the usage store at `url`, `prepare` it (its migrations), run `work` on it, close it.
    A store that cannot be reached exits 1, a problem with what was asked (`user_errors`) 2; each
    with one line on stderr, never a traceback."""
    from dragoman.store.db import StoreError, open_database

    async def main() -> int:
        db = await open_database(url)
        try:
            await prepare(db)
            return await work(db)
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except StoreError as exc:
        print(f"dragoman: usage store: {exc}", file=sys.stderr)
        return 1
    except user_errors as exc:
        print(f"dragoman: {exc}", file=sys.stderr)
        return 2
