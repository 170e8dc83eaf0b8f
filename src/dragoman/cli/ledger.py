"""`dragoman logs` and `dragoman usage`: read the usage ledger the config names."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from dragoman.cli.common import add_config, config_from, on_store, table


def parse_since(text: str) -> float:
    from dragoman.store.ledger.query import QueryError
    from dragoman.store.ledger.query import parse_since as parse

    try:
        return parse(text)
    except QueryError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run(args: argparse.Namespace, work: Callable[[Any], Awaitable[int]]) -> int:
    from dragoman.store.ledger.query import QueryError
    from dragoman.store.ledger.schema import MIGRATIONS

    cfg = config_from(args)
    store = cfg.server.usage_store
    if store == "off":
        print('dragoman: the usage ledger is off (server.usage_store = "off")', file=sys.stderr)
        return 1

    # a store no gateway has written to yet reads as empty
    return on_store(store, MIGRATIONS.apply, work, (QueryError,))


def _json(value: Any) -> str:
    import msgspec

    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S") if epoch else "-"


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}".rstrip("0").rstrip(".")


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def cmd_logs(args: argparse.Namespace) -> int:
    from dragoman.store.ledger import query

    async def work(db: Any) -> int:
        records = await query.recent(
            db, model=args.model, provider=args.provider, status=args.status, since=args.since, limit=args.limit
        )
        if args.json:
            print(_json(records))
            return 0
        rows = [["time (UTC)", "status", "model", "in", "cache r/w", "out", "cost", "ms", "request id"]]
        for r in records:
            u = r["usage"] or {}
            target = f"{r['provider']}/{r['upstream_model']}" if r["provider"] and r["upstream_model"] else r["model"]
            status = str(r["status"]) + ("" if r["end"] in (None, "ok", "error") else f" {r['end']}")
            rows.append(
                [
                    _when(r["time"]),
                    status,
                    target or "-",
                    _n(u.get("input_tokens")),
                    f"{_n(u.get('cache_read_tokens'))}/{_n(u.get('cache_write_tokens'))}" if u else "-",
                    _n(u.get("output_tokens")),
                    _cost(r["cost_usd"]),
                    f"{r['latency_ms']:.0f}" if r["latency_ms"] is not None else "-",
                    r["request_id"],
                ]
            )
        if len(rows) == 1:
            print("no requests recorded" + (" matching those filters" if _filtered(args) else ""), file=sys.stderr)
            return 0
        print(table(rows))
        return 0

    return _run(args, work)


def _filtered(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) for name in ("model", "provider", "status", "since"))


def cmd_usage(args: argparse.Namespace) -> int:
    from dragoman.store.ledger import query

    async def work(db: Any) -> int:
        summary = await query.summary(db, by=args.by, since=args.since)
        if args.json:
            print(_json(summary))
            return 0
        head = [args.by, "requests", "errors", "input", "cache read", "cache write", "output", "reasoning", "cost"]
        rows = [head]
        for g in [*summary["groups"], {"key": "total", **summary["totals"]}]:
            cost = _cost(g["cost_usd"])
            if g["unpriced"]:
                cost += f" (+{g['unpriced']} unpriced)"
            rows.append(
                [
                    str(g["key"]) if g["key"] is not None else "-",
                    _n(g["requests"]),
                    _n(g["errors"]),
                    _n(g["input_tokens"]),
                    _n(g["cache_read_tokens"]),
                    _n(g["cache_write_tokens"]),
                    _n(g["output_tokens"]),
                    _n(g["reasoning_tokens"]),
                    cost,
                ]
            )
        print(table(rows))
        return 0

    return _run(args, work)


def register(sub: argparse._SubParsersAction) -> None:
    from dragoman.store.ledger.query import GROUPS

    since_help = "only requests since then: 30m, 2h, 7d, or a date/time (UTC)"
    p = sub.add_parser("logs", help="the last requests the usage ledger recorded")
    add_config(p)
    p.add_argument("--model", help="as the client named it, or provider/model as billed")
    p.add_argument("--provider")
    p.add_argument("--status", help="ok, error, a code (429) or a class (5xx)")
    p.add_argument("--since", type=parse_since, help=since_help)
    p.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    p.add_argument("--json", action="store_true", help="a JSON array of records (the Outcome's field names)")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("usage", help="totals of requests, errors, tokens and cost")
    add_config(p)
    p.add_argument("--by", choices=GROUPS, default="provider", help="group by (default provider)")
    p.add_argument("--since", type=parse_since, help=since_help)
    p.add_argument("--json", action="store_true", help="the summary as JSON (as GET /v1/usage returns it)")
    p.set_defaults(func=cmd_usage)
