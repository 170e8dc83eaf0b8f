"""`dragoman say`: stream one answer to the terminal through an in-process gateway."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from typing import Any

from dragoman.cli.common import add_config, config_from

# reply headers the trip sets, and how --verbose names them
TRIP_HEADERS = (
    ("x-dragoman-provider", "provider {}"),
    ("x-dragoman-attempts", "attempts {}"),
    ("x-dragoman-latency-ms", "{} ms"),
)


def verbose_lines(headers: Mapping[str, str], usage: Mapping[str, Any] | None) -> list[str]:
    """What --verbose prints: the trip's headers that are present, and the token counts."""
    lines = []
    trip = [label.format(headers[name]) for name, label in TRIP_HEADERS if headers.get(name)]
    if trip:
        lines.append(" · ".join(trip))
    if usage:
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
        tokens = f"tokens: {prompt if prompt is not None else '?'} in"
        tokens += f" ({cached} cached)" if cached else ""
        tokens += f", {completion if completion is not None else '?'} out"
        tokens += f" ({reasoning} reasoning)" if reasoning else ""
        lines.append(tokens)
    elif usage is None:
        lines.append("tokens: not reported")
    return lines


def cmd_say(args: argparse.Namespace) -> int:
    """Stream an answer through an in-process gateway: the same HTTP path a client takes."""
    import aiohttp
    import msgspec

    from dragoman.gateway import Gateway
    from dragoman.server.app import install_uvloop, start
    from dragoman.transport.framing import SSEParser

    cfg = config_from(args)
    prompt = " ".join(args.prompt) if args.prompt else sys.stdin.read()
    if not prompt.strip():
        print("dragoman say: the prompt is empty (give it as arguments or on standard input)", file=sys.stderr)
        return 2
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
        if args.verbose:
            body["stream_options"] = {"include_usage": True}
        status = 0
        usage: dict[str, Any] | None = None
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
                        if isinstance(data.get("usage"), dict):
                            usage = data["usage"]
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
                sys.stdout.flush()
                if args.verbose:
                    for line in verbose_lines(resp.headers, usage):
                        print(line, file=sys.stderr)
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
    p.add_argument(
        "--verbose", "-v", action="store_true", help="print the provider, attempts, latency and tokens to stderr"
    )
    p.add_argument("prompt", nargs="*", help="the prompt (default: standard input)")
    p.set_defaults(func=cmd_say)
