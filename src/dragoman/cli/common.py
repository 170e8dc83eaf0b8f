"""What every command shares: loading the config with the command line's overrides, and tables."""

from __future__ import annotations

import argparse

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


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)
