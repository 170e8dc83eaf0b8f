"""The `dragoman` command: serve, providers, models, say."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from dragoman import __version__
from dragoman.config import DEFAULT_PORT, Config, ConfigError, load


def _config(args: argparse.Namespace) -> Config:
    cfg = load(args.config)
    if getattr(args, "host", None):
        cfg.server.host = args.host
    if getattr(args, "port", None) is not None:
        cfg.server.port = args.port
    if getattr(args, "workers", None) is not None:
        cfg.server.workers = args.workers
    return cfg


def cmd_serve(args: argparse.Namespace) -> int:
    from dragoman.gateway import Gateway
    from dragoman.server import serve

    cfg = _config(args)
    logging.basicConfig(level=cfg.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Gateway.from_config(cfg)  # validate everything before binding the port
    try:
        serve(cfg, cfg.server.host, cfg.server.port, cfg.server.workers)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if "address already in use" in str(exc):
            reason = "address already in use"
        print(f"dragoman: cannot listen on {cfg.server.host}:{cfg.server.port}: {reason}", file=sys.stderr)
        return 1
    return 0


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def cmd_providers(args: argparse.Namespace) -> int:
    from dragoman.fronts.meta import provider_rows
    from dragoman.gateway import Gateway

    gw = Gateway.from_config(_config(args))
    rows = [["id", "dialect", "base_url", "key", "models"]]
    for r in provider_rows(gw):
        key = "yes" if r["key_configured"] else ("not needed" if r["available"] else "no")
        rows.append([r["id"], r["dialect"], r["base_url"], key, ", ".join(r["models"])])
    print(_table(rows))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from dragoman.fronts.meta import model_ids
    from dragoman.gateway import Gateway

    gw = Gateway.from_config(_config(args))
    ids = model_ids(gw)
    if not ids:
        print("no models: no provider with a key declares any (see `dragoman providers`)", file=sys.stderr)
        return 1
    for mid, _ in ids:
        print(mid)
    return 0


def cmd_say(args: argparse.Namespace) -> int:
    """Stream an answer through an in-process gateway: the same HTTP path a client takes."""
    import aiohttp
    import msgspec

    from dragoman.framing import SSEParser
    from dragoman.gateway import Gateway
    from dragoman.server import install_uvloop, start

    cfg = _config(args)
    prompt = " ".join(args.prompt) if args.prompt else sys.stdin.read()
    install_uvloop()

    async def run() -> int:
        gw = Gateway.from_config(cfg)
        runner, port = await start(gw, "127.0.0.1", 0)
        body: dict[str, Any] = {
            "model": args.model,
            "stream": True,
            "messages": ([{"role": "system", "content": args.system}] if args.system else [])
            + [{"role": "user", "content": prompt}],
        }
        if args.max_tokens:
            body["max_tokens"] = args.max_tokens
        status = 0
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as resp,
            ):
                if resp.status != 200:
                    err = await resp.json(content_type=None)
                    print(f"error {resp.status}: {err.get('error', {}).get('message', err)}", file=sys.stderr)
                    return 1
                parser = SSEParser()
                thinking = False
                async for chunk in resp.content.iter_any():
                    for frame in parser.feed(chunk):
                        if frame.data == b"[DONE]":
                            continue
                        data = msgspec.json.decode(frame.data)
                        if "error" in data:
                            print(f"\nerror: {data['error'].get('message')}", file=sys.stderr)
                            status = 1
                            continue
                        for choice in data.get("choices") or []:
                            delta = choice.get("delta") or {}
                            if delta.get("reasoning_content") and args.show_thinking:
                                thinking = True
                                sys.stderr.write(f"\x1b[2m{delta['reasoning_content']}\x1b[0m")
                                sys.stderr.flush()
                            if delta.get("content"):
                                if thinking:
                                    sys.stderr.write("\n")
                                    thinking = False
                                sys.stdout.write(delta["content"])
                                sys.stdout.flush()
                            for call in delta.get("tool_calls") or []:
                                fn = call.get("function") or {}
                                if fn.get("name"):
                                    sys.stdout.write(f"\n[tool call {fn['name']}] ")
                                if fn.get("arguments"):
                                    sys.stdout.write(fn["arguments"])
                sys.stdout.write("\n")
        finally:
            await runner.cleanup()
        return status

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dragoman", description="An LLM gateway for every client and provider.")
    parser.add_argument("--version", action="version", version=f"dragoman {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="TOML config (default: $DRAGOMAN_CONFIG, ./dragoman.toml, user config dir)")

    p = sub.add_parser("serve", help="run the gateway")
    common(p)
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--workers", type=int, help="worker processes sharing the port (default 1)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("providers", help="list providers: id, dialect, base_url, key present")
    common(p)
    p.set_defaults(func=cmd_providers)

    p = sub.add_parser("models", help="list the model names clients can use")
    common(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("say", help="stream one answer to the terminal")
    common(p)
    p.add_argument("--model", "-m", required=True, help="e.g. kimi/kimi-for-coding")
    p.add_argument("--system", help="a system prompt")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--show-thinking", action="store_true", help="print reasoning to stderr, dimmed")
    p.add_argument("prompt", nargs="*", help="the prompt (default: standard input)")
    p.set_defaults(func=cmd_say)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"dragoman: bad config: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
