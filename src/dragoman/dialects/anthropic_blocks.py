"""Anthropic content blocks, both ways: wire blocks to canonical parts (validated, naming the path
of anything malformed) and canonical parts back to wire blocks. The codec in `anthropic` builds
whole requests and responses from these."""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.canonical import Image, Opaque, Part, Reasoning, Text, ToolCall, ToolResult
from dragoman.dialects.anthropic_stream import anthropic_extra
from dragoman.errors import InvalidRequest, Unsupported

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


# ---- validation helpers -------------------------------------------------------------------------


def _bad(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _bad(f"{param} must be a string", param)
    return value


def _opt_int(value: Any, param: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(f"{param} must be an integer", param)
    return value


def _opt_float(value: Any, param: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _bad(f"{param} must be a number", param)
    return float(value)


def _dict(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{param} must be an object", param)
    return value


def _list(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(f"{param} must be an array", param)
    return value


def _rest(block: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any] | None:
    rest = {k: v for k, v in block.items() if k not in known}
    return {"anthropic": rest} if rest else None


def _with_extra(block: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    for k, v in anthropic_extra(extra).items():
        block.setdefault(k, v)
    return block


# ---- blocks: wire -> canonical ------------------------------------------------------------------


def _image(b: dict[str, Any], path: str) -> Part:
    src = _dict(b.get("source"), path + ".source")
    extra = _rest(b, ("type", "source"))
    st = src.get("type")
    if st == "base64":
        return Image(
            media_type=_str(src.get("media_type"), path + ".source.media_type"),
            data=_str(src.get("data"), path + ".source.data"),
            extra=extra,
        )
    if st == "url":
        return Image(url=_str(src.get("url"), path + ".source.url"), extra=extra)
    return Opaque("anthropic", b)  # file sources and anything newer


def _tool_result(b: dict[str, Any], path: str) -> ToolResult:
    tid = _str(b.get("tool_use_id"), path + ".tool_use_id")
    content = b.get("content")
    parts: list[Text | Image] = []
    raw: list[Any] | None = None
    if isinstance(content, str):
        parts.append(Text(content))
    elif isinstance(content, list):
        for j, item in enumerate(content):
            ipath = f"{path}.content.{j}"
            item = _dict(item, ipath)
            t = item.get("type")
            if t == "text":
                parts.append(Text(_str(item.get("text"), ipath + ".text"), extra=_rest(item, ("type", "text"))))
            elif t == "image":
                img = _image(item, ipath)
                if isinstance(img, Image):
                    parts.append(img)
                else:
                    raw = content
            elif isinstance(t, str):
                raw = content  # search_result, document, tool_reference: kept verbatim below
            else:
                raise _bad(f"{ipath}.type is required", ipath + ".type")
    elif content is not None:
        raise _bad(f"{path}.content must be a string or an array", path + ".content")
    is_error = b.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise _bad(f"{path}.is_error must be a boolean", path + ".is_error")
    rest = {k: v for k, v in b.items() if k not in ("type", "tool_use_id", "content", "is_error")}
    if raw is not None:
        rest["content"] = raw
    return ToolResult(tid, parts, bool(is_error), extra={"anthropic": rest} if rest else None)


def _block(b: Any, path: str) -> Part:
    b = _dict(b, path)
    t = b.get("type")
    if not isinstance(t, str):
        raise _bad(f"{path}.type is required", path + ".type")
    if t == "text":
        return Text(_str(b.get("text"), path + ".text"), extra=_rest(b, ("type", "text")))
    if t == "image":
        return _image(b, path)
    if t == "tool_use":
        inp = b.get("input")
        inp = {} if inp is None else _dict(inp, path + ".input")
        return ToolCall(
            _str(b.get("id"), path + ".id"),
            _str(b.get("name"), path + ".name"),
            _enc.encode(inp).decode(),
            extra=_rest(b, ("type", "id", "name", "input")),
        )
    if t == "tool_result":
        return _tool_result(b, path)
    if t == "thinking":
        sig = b.get("signature")
        return Reasoning(
            _str(b.get("thinking", ""), path + ".thinking"),
            signature=None if sig is None else _str(sig, path + ".signature"),
        )
    if t == "redacted_thinking":
        return Reasoning(redacted=_str(b.get("data"), path + ".data"))
    return Opaque("anthropic", b)


def _content(content: Any, path: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    items = _list(content, path)
    return [_block(b, f"{path}.{j}") for j, b in enumerate(items)]


def _system(value: Any) -> list[Text]:
    if value is None:
        return []
    if isinstance(value, str):
        return [Text(value)]
    out: list[Text] = []
    for j, b in enumerate(_list(value, "system")):
        path = f"system.{j}"
        b = _dict(b, path)
        if b.get("type") != "text":
            raise _bad(f"{path} must be a text block", path + ".type")
        out.append(Text(_str(b.get("text"), path + ".text"), extra=_rest(b, ("type", "text"))))
    return out


# ---- blocks: canonical -> wire ------------------------------------------------------------------


def _arguments(call: ToolCall, param: str) -> dict[str, Any]:
    if not call.arguments.strip():
        return {}
    try:
        value = _dec.decode(call.arguments)
    except msgspec.DecodeError:
        raise _bad(f"tool call {call.id!r} has arguments that are not valid JSON", param) from None
    if not isinstance(value, dict):
        raise _bad(f"tool call {call.id!r} has arguments that are not a JSON object", param)
    return value


def _image_block(img: Image) -> dict[str, Any]:
    if img.data is not None:
        source = {"type": "base64", "media_type": img.media_type or "image/png", "data": img.data}
    else:
        url = img.url or ""
        head, sep, data = url.partition(",")
        if url.startswith("data:") and sep and head.endswith(";base64"):
            source = {"type": "base64", "media_type": head[5:-7] or "image/png", "data": data}
        else:
            source = {"type": "url", "url": url}
    return _with_extra({"type": "image", "source": source}, img.extra)


def _text_block(t: Text) -> dict[str, Any]:
    return _with_extra({"type": "text", "text": t.text}, t.extra)


def _out_block(part: Part, param: str, request: bool = False) -> dict[str, Any] | None:
    if isinstance(part, Text):
        return _text_block(part)
    if isinstance(part, ToolCall):
        arg_param = f"{param}.arguments" if request else param
        block = {"type": "tool_use", "id": part.id, "name": part.name, "input": _arguments(part, arg_param)}
        return _with_extra(block, part.extra)
    if isinstance(part, Reasoning):
        if part.redacted is not None:
            return {"type": "redacted_thinking", "data": part.redacted}
        if not part.text and not part.signature:
            return None
        return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
    if isinstance(part, Image):
        return _image_block(part)
    if isinstance(part, ToolResult):
        mine = anthropic_extra(part.extra)
        res: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.tool_call_id}
        if "content" in mine:
            res["content"] = mine["content"]
        elif len(part.content) == 1 and isinstance(part.content[0], Text) and not part.content[0].extra:
            res["content"] = part.content[0].text
        elif part.content:
            res["content"] = [_text_block(c) if isinstance(c, Text) else _image_block(c) for c in part.content]
        if part.is_error:
            res["is_error"] = True
        for k, v in mine.items():
            res.setdefault(k, v)
        return res
    if part.dialect == "anthropic":
        return part.data
    if request:
        # what the client sent must arrive or be refused; only replies may drop foreign blocks
        kind = part.data.get("type", "unknown")
        raise Unsupported(f"{kind} content is not supported by Anthropic-dialect providers", param=param)
    return None


def _plain(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"} and blocks[0]["type"] == "text":
        text: str = blocks[0]["text"]
        return text
    return blocks
