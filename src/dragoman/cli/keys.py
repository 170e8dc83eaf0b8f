"""`dragoman keys create|list|revoke`: gateway keys in the usage store the config names.

    dragoman keys create alice --budget 20 --period month --rpm 60 --tpm 200000 --models 'anthropic/*,gpt-*'
    dragoman keys list [--json]
    dragoman keys revoke alice

The key is printed once, by `create`, on stdout alone (so `KEY=$(dragoman keys create bob)` works);
the store keeps only its hash. Every running gateway sees a new or revoked key within
`server.key_cache_ttl` seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from dragoman.cli.common import add_config, config_from, on_store, positive_int, table


def _run(args: argparse.Namespace, work: Callable[[Any], Awaitable[int]]) -> int:
    from dragoman.store.keys.admin import KeyProblem, prepare

    cfg = config_from(args)
    store = cfg.server.usage_store
    if store == "off":
        print(
            'dragoman: gateway keys live in the usage store, and it is off (server.usage_store = "off")',
            file=sys.stderr,
        )
        return 1
    if not cfg.server.virtual_keys:
        print(
            "dragoman: note: server.virtual_keys = false: gateways with this config ignore these keys", file=sys.stderr
        )
    return on_store(store, prepare, work, (KeyProblem,))


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def cmd_create(args: argparse.Namespace) -> int:
    from dragoman.store.keys.admin import create_key
    from dragoman.store.keys.records import parse_expiry

    try:
        expires = parse_expiry(args.expires) if args.expires else None
    except ValueError as exc:
        print(f"dragoman: --expires {exc}", file=sys.stderr)
        return 2
    models = [m for m in (args.models or "").split(",") if m.strip()] or None

    async def work(db: Any) -> int:
        key, token = await create_key(
            db,
            args.name,
            budget_usd=args.budget,
            period=args.period,
            rpm=args.rpm,
            tpm=args.tpm,
            models=models,
            expires=expires,
        )
        print(token, flush=True)
        print(
            f"made gateway key {key.name!r} (id {key.key_id}); the key above is shown this once, keep it safe",
            file=sys.stderr,
        )
        return 0

    return _run(args, work)


def cmd_list(args: argparse.Namespace) -> int:
    from dragoman.store.keys import describe_key
    from dragoman.store.keys.admin import load_keys, spend_since
    from dragoman.store.keys.records import period_bounds, when

    async def work(db: Any) -> int:
        now = time.time()
        keys = await load_keys(db)
        rows_out: list[dict[str, Any]] = []
        for key in keys:
            start = period_bounds(key.period, now)[0]
            spent = (await spend_since(db, [key.name], start)).get(key.name, 0.0)
            row = describe_key(key, None, None, now)
            row["spend_usd"] = round(spent, 6)
            if key.budget_usd is not None:
                row["remaining_usd"] = round(max(key.budget_usd - spent, 0.0), 6)
            rows_out.append(row)
        if args.json:
            import msgspec

            print(msgspec.json.format(msgspec.json.encode(rows_out), indent=2).decode())
            return 0
        if not rows_out:
            print("no gateway keys (make one with `dragoman keys create NAME`)", file=sys.stderr)
            return 0
        rows = [["name", "id", "state", "created", "expires", "budget", "spent", "period", "rpm", "tpm", "models"]]
        for r in rows_out:
            rows.append(
                [
                    r["name"],
                    r["key_id"],
                    r["state"],
                    when(r["created"]),
                    when(r["expires"]),
                    _money(r["budget_usd"]),
                    _money(r["spend_usd"]),
                    r["period"],
                    str(r["rpm"] or "-"),
                    str(r["tpm"] or "-"),
                    ",".join(r["models"] or []) or "*",
                ]
            )
        print(table(rows))
        return 0

    return _run(args, work)


def cmd_revoke(args: argparse.Namespace) -> int:
    from dragoman.store.keys.admin import revoke_key

    async def work(db: Any) -> int:
        key = await revoke_key(db, args.name)
        print(f"revoked gateway key {key.name!r} (id {key.key_id}); gateways refuse it within seconds", file=sys.stderr)
        return 0

    return _run(args, work)


def _usd(text: str) -> float:
    try:
        value = float(text.lstrip("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in USD") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="gateway keys: create, list, revoke")
    verbs = keys.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("create", help="make a key (printed once)")
    add_config(p)
    p.add_argument("name", help="what the ledger, logs and metrics call it")
    p.add_argument("--budget", type=_usd, help="USD it may spend per period")
    p.add_argument("--period", choices=("day", "week", "month"), default="month", help="budget period (UTC)")
    p.add_argument("--rpm", type=positive_int, help="requests per minute")
    p.add_argument("--tpm", type=positive_int, help="tokens per minute")
    p.add_argument("--models", help="comma-separated globs of the models it may use (e.g. 'anthropic/*,gpt-5*')")
    p.add_argument("--expires", help="a date (2026-12-31), date-time, or span from now (30d)")
    p.set_defaults(func=cmd_create)

    p = verbs.add_parser("list", help="every key, its limits and its spend this period")
    add_config(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = verbs.add_parser("revoke", help="refuse a key from now on")
    add_config(p)
    p.add_argument("name")
    p.set_defaults(func=cmd_revoke)
