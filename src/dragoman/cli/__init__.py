"""The `dragoman` command. Each sub-command lives in its own module with a `register(sub)`."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module

from dragoman import __version__
from dragoman.config import ConfigError

COMMANDS = ("serve", "say", "catalog", "agents", "ledger", "keys")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dragoman", description="An LLM gateway for every client and provider.")
    parser.add_argument("--version", action="version", version=f"dragoman {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    argv = sys.argv[1:] if argv is None else argv
    passthrough: list[str] = []
    for name in COMMANDS:
        module = import_module(f"dragoman.cli.{name}")
        module.register(sub)
        # a command that hands its arguments to another program parses only its own options
        if argv and argv[0] in getattr(module, "PASSTHROUGH", ()):
            argv, passthrough = module.split_argv(argv)
    args = parser.parse_args(argv)
    if passthrough:
        args.passthrough = passthrough
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader that went away shows here, inside the handler below
        return code
    except BrokenPipeError:
        # `dragoman providers | head -1`: the reader has what it wanted; stop like any Unix filter
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # as if killed by SIGPIPE
    except ConfigError as exc:
        print(f"dragoman: bad config: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
