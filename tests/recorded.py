"""Loads the real recorded provider traffic under tests/fixtures (see its README for provenance
and licenses): raw SSE/NDJSON stubs, go-vcr cassettes (fantasy) and vcrpy cassettes (pydantic-ai)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Interaction:
    url: str
    request: dict[str, Any] | None  # the JSON body the client sent
    status: int
    body: bytes  # the raw response body as recorded


def raw(relpath: str) -> bytes:
    """A raw recorded body (SSE, NDJSON or JSON), e.g. 'olimorris__codecompanion.nvim/.../x.txt'."""
    return (FIXTURES / relpath).read_bytes()


def cassette(relpath: str) -> list[Interaction]:
    doc = yaml.safe_load((FIXTURES / relpath).read_text())
    out: list[Interaction] = []
    for it in doc["interactions"]:
        req, resp = it["request"], it["response"]
        if "parsed_body" in req:
            body: Any = req["parsed_body"]
        else:
            b = req.get("body")
            if isinstance(b, dict):
                b = b.get("string")
            body = json.loads(b) if b else None
        url = req.get("url") or req.get("uri") or ""
        status = resp.get("status")
        code = status.get("code") if isinstance(status, dict) else (resp.get("code") or status or 200)
        rbody = resp.get("body")
        if isinstance(rbody, dict):
            rbody = rbody["string"] if "string" in rbody else json.dumps(resp.get("parsed_body", rbody))
        if rbody is None and "parsed_body" in resp:
            rbody = json.dumps(resp["parsed_body"])
        data = rbody.encode() if isinstance(rbody, str) else (rbody or b"")
        out.append(Interaction(url=url, request=body, status=int(code), body=data))
    return out
