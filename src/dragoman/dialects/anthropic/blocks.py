"""Anthropic content blocks, both ways: wire blocks to canonical parts (validated, naming the path
of anything malformed) and canonical parts back to wire blocks. The codec in `anthropic` builds
whole requests and responses from these."""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.canonical import Image, Opaque, Part, Reasoning, Text, ToolCall, ToolResult
from dragoman.dialects.anthropic.stream import anthropic_extra
from dragoman.errors import InvalidRequest, Unsupported

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


# ---- validation helpers -------------------------------------------------------------------------


def bad_request(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def want_str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise bad_request(f"{param} must be a string", param)
    return value


def opt_int(value: Any, param: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request(f"{param} must be an integer", param)
    return value


def opt_float(value: Any, param: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise bad_request(f"{param} must be a number", param)
    return float(value)


def want_dict(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request(f"{param} must be an object", param)
    return value


def want_list(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise bad_request(f"{param} must be an array", param)
    return value


def rest_of(block: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any] | None:
    rest = {k: v for k, v in block.items() if k not in known}
    return {"anthropic": rest} if rest else None


def with_extra(block: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    for k, v in anthropic_extra(extra).items():
        block.setdefault(k, v)
    return block


# ---- blocks: wire -> canonical ------------------------------------------------------------------


def _image(b: dict[str, Any], path: str) -> Part:
    src = want_dict(b.get("source"), path + ".source")
    extra = rest_of(b, ("type", "source"))
    st = src.get("type")
    if st == "base64":
        return Image(
            media_type=want_str(src.get("media_type"), path + ".source.media_type"),
            data=want_str(src.get("data"), path + ".source.data"),
            extra=extra,
        )
    if st == "url":
        return Image(url=want_str(src.get("url"), path + ".source.url"), extra=extra)
    return Opaque("anthropic", b)  # file sources and anything newer


def _bad_type(value: Any, path: str) -> InvalidRequest:
    if value is None:
        return bad_request(f"{path}.type is required", path + ".type")
    return bad_request(f"{path}.type must be a string, not {_json_kind(value)}", path + ".type")


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    return "a number" if isinstance(value, int | float) else type(value).__name__


def _tool_result(b: dict[str, Any], path: str) -> ToolResult:
    tid = want_str(b.get("tool_use_id"), path + ".tool_use_id")
    content = b.get("content")
    parts: list[Text | Image] = []
    raw: list[Any] | None = None
    if isinstance(content, str):
        parts.append(Text(content))
    elif isinstance(content, list):
        for j, item in enumerate(content):
            ipath = f"{path}.content.{j}"
            item = want_dict(item, ipath)
            t = item.get("type")
            if t == "text":
                parts.append(Text(want_str(item.get("text"), ipath + ".text"), extra=rest_of(item, ("type", "text"))))
            elif t == "image":
                img = _image(item, ipath)
                if isinstance(img, Image):
                    parts.append(img)
                else:
                    raw = content
            elif isinstance(t, str):
                raw = content  # search_result, document, tool_reference: kept verbatim below
            else:
                raise _bad_type(t, ipath)
    elif content is not None:
        raise bad_request(f"{path}.content must be a string or an array", path + ".content")
    is_error = b.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise bad_request(f"{path}.is_error must be a boolean", path + ".is_error")
    rest = {k: v for k, v in b.items() if k not in ("type", "tool_use_id", "content", "is_error")}
    if raw is not None:
        rest["content"] = raw
    return ToolResult(tid, parts, bool(is_error), extra={"anthropic": rest} if rest else None)


def _block(b: Any, path: str) -> Part:
    b = want_dict(b, path)
    t = b.get("type")
    if not isinstance(t, str):
        raise _bad_type(t, path)
    if t == "text":
        return Text(want_str(b.get("text"), path + ".text"), extra=rest_of(b, ("type", "text")))
    if t == "image":
        return _image(b, path)
    if t == "tool_use":
        inp = b.get("input")
        inp = {} if inp is None else want_dict(inp, path + ".input")
        return ToolCall(
            want_str(b.get("id"), path + ".id"),
            want_str(b.get("name"), path + ".name"),
            _enc.encode(inp).decode(),
            extra=rest_of(b, ("type", "id", "name", "input")),
        )
    if t == "tool_result":
        return _tool_result(b, path)
    if t == "thinking":
        sig = b.get("signature")
        return Reasoning(
            want_str(b.get("thinking", ""), path + ".thinking"),
            signature=None if sig is None else want_str(sig, path + ".signature"),
        )
    if t == "redacted_thinking":
        return Reasoning(redacted=want_str(b.get("data"), path + ".data"))
    return Opaque("anthropic", b)


def decode_content(content: Any, path: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    items = want_list(content, path)
    return [_block(b, f"{path}.{j}") for j, b in enumerate(items)]


def decode_system(value: Any) -> list[Text]:
    if value is None:
        return []
    if isinstance(value, str):
        return [Text(value)]
    out: list[Text] = []
    for j, b in enumerate(want_list(value, "system")):
        path = f"system.{j}"
        b = want_dict(b, path)
        if b.get("type") != "text":
            raise bad_request(f"{path} must be a text block", path + ".type")
        out.append(Text(want_str(b.get("text"), path + ".text"), extra=rest_of(b, ("type", "text"))))
    return out


# ---- blocks: canonical -> wire ------------------------------------------------------------------


def _arguments(call: ToolCall, param: str) -> dict[str, Any]:
    if not call.arguments.strip():
        return {}
    try:
        value = _dec.decode(call.arguments)
    except msgspec.DecodeError:
        raise bad_request(f"tool call {call.id!r} has arguments that are not valid JSON", param) from None
    if not isinstance(value, dict):
        raise bad_request(f"tool call {call.id!r} has arguments that are not a JSON object", param)
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
    return with_extra({"type": "image", "source": source}, img.extra)


def text_block(t: Text) -> dict[str, Any]:
    return with_extra({"type": "text", "text": t.text}, t.extra)


def encode_block(part: Part, param: str, request: bool = False) -> dict[str, Any] | None:
    if isinstance(part, Text):
        return text_block(part)
    if isinstance(part, ToolCall):
        arg_param = f"{param}.arguments" if request else param
        block = {"type": "tool_use", "id": part.id, "name": part.name, "input": _arguments(part, arg_param)}
        return with_extra(block, part.extra)
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
            res["content"] = [text_block(c) if isinstance(c, Text) else _image_block(c) for c in part.content]
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


def plain_content(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"} and blocks[0]["type"] == "text":
        text: str = blocks[0]["text"]
        return text
    return blocks
