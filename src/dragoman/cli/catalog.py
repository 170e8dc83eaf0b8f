"""`dragoman providers` and `dragoman models`: what the gateway can reach."""

from __future__ import annotations

import argparse
import sys

from dragoman.cli.common import add_config, config_from, table


def cmd_providers(args: argparse.Namespace) -> int:
    from dragoman.gateway import Gateway
    from dragoman.server.fronts.meta import provider_rows

    gw = Gateway.from_config(config_from(args))
    rows = [["id", "dialect", "base_url", "key", "models"]]
    for r in provider_rows(gw):
        key = "yes" if r["key_configured"] else ("not needed" if r["available"] else "no")
        rows.append([r["id"], r["dialect"], r["base_url"], key, ", ".join(r["models"])])
    print(table(rows))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """The same listing as GET /v1/models: declared models, a local Ollama's, aliases, routes."""
    import asyncio

    from dragoman.discovery import Listed
    from dragoman.gateway import Gateway

    gw = Gateway.from_config(config_from(args))

    async def listing() -> list[Listed]:
        try:
            return await gw.models.listed(gw)
        finally:
            await gw.upstream.close()

    listed = asyncio.run(listing())
    if not listed:
        print("no models: no provider with a key declares any (see `dragoman providers`)", file=sys.stderr)
        return 1
    for model in listed:
        print(model.id)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("providers", help="list providers: id, dialect, base_url, key present")
    add_config(p)
    p.set_defaults(func=cmd_providers)

    p = sub.add_parser("models", help="list the model names clients can use")
    add_config(p)
    p.set_defaults(func=cmd_models)
