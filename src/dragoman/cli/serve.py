"""`dragoman serve`: run the gateway."""

from __future__ import annotations

import argparse
import contextlib
import sys

from dragoman.cli.common import add_config, config_from, port_number, positive_int
from dragoman.config import DEFAULT_PORT, Config


def cmd_serve(args: argparse.Namespace) -> int:
    from dragoman.observe import logs
    from dragoman.server.listen import metrics_dir

    cfg = config_from(args)
    logs.configure(cfg.server)
    with contextlib.ExitStack() as run:
        if cfg.server.workers > 1 and cfg.server.metrics:
            run.enter_context(metrics_dir())  # before any metric exists, so every worker writes files
        return _serve(cfg)


def _serve(cfg: Config) -> int:
    from dragoman.gateway import Gateway
    from dragoman.server.app import serve
    from dragoman.server.listen import PortTaken

    Gateway.from_config(cfg)  # validate everything before binding the port
    try:
        serve(cfg, cfg.server.host, cfg.server.port, cfg.server.workers)
    except PortTaken as exc:
        print(f"dragoman: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if "address already in use" in str(exc):
            reason = "address already in use"
        print(f"dragoman: cannot listen on {cfg.server.host}:{cfg.server.port}: {reason}", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the gateway")
    add_config(p)
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=port_number, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--workers", type=positive_int, help="worker processes sharing the port (default 1)")
    p.set_defaults(func=cmd_serve)
