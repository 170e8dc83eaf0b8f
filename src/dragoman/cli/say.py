"""`dragoman say`: stream one answer to the terminal through an in-process gateway."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from dragoman.cli.common import add_config, config_from


def cmd_say(args: argparse.Namespace) -> int:
    """Stream an answer through an in-process gateway: the same HTTP path a client takes."""
    import aiohttp
    import msgspec

    from dragoman.gateway import Gateway
    from dragoman.server.app import install_uvloop, start
    from dragoman.transport.framing import SSEParser

    cfg = config_from(args)
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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("say", help="stream one answer to the terminal")
    add_config(p)
    p.add_argument("--model", "-m", required=True, help="e.g. kimi/kimi-for-coding")
    p.add_argument("--system", help="a system prompt")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--show-thinking", action="store_true", help="print reasoning to stderr, dimmed")
    p.add_argument("prompt", nargs="*", help="the prompt (default: standard input)")
    p.set_defaults(func=cmd_say)
