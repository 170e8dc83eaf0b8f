"""The `dragoman` command. Each sub-command lives in its own module with a `register(sub)`."""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from dragoman import __version__
from dragoman.config import ConfigError

COMMANDS = ("serve", "say", "catalog", "ledger")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dragoman", description="An LLM gateway for every client and provider.")
    parser.add_argument("--version", action="version", version=f"dragoman {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        import_module(f"dragoman.cli.{name}").register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"dragoman: bad config: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
