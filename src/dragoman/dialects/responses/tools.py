"""Responses tools ⇄ canonical `ToolSpec`s, and the names they go by upstream.

* `function` tools map one to one (`strict` kept; written explicitly upstream, where Responses
  would otherwise default it to true and reject schemas that are not strict-compatible).
* A `namespace` groups functions: each becomes a plain function named `ns__name` (or `ns` + `name`
  when the namespace already ends in `_`), made safe for every provider (`[A-Za-z0-9_-]`, at most
  64 characters, a short hash when cut or when two would collide). `ToolNames` maps both ways, and
  is rebuilt from the client's own body wherever a reply is encoded, so calls come back under the
  names the client used with no state kept.
* A `custom` (freeform) tool becomes a function taking one string, `input`, whose description says
  the format (text, or the grammar); its calls come back as `custom_tool_call` items.
* Hosted tools (`web_search`, `file_search`, `code_interpreter`, `image_generation`, `mcp`,
  `computer_use_preview`, `local_shell`, `shell`, `apply_patch`, `tool_search`...) have no
  faithful form for another provider: dropped with a logged note, kept in `extra` for a
  Responses upstream.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from dragoman.canonical import ToolChoice, ToolSpec
from dragoman.dialects.openai.messages import type_error
from dragoman.dialects.responses.wire import note_dropped, own, want_dict, want_list, want_str, wrap
from dragoman.errors import InvalidRequest

log = logging.getLogger("dragoman.dialects.responses")

MAX_NAME = 64
CUSTOM_KIND, FUNCTION_KIND = "custom", "function"
HOSTED = "_hosted_tools"  # extra key: the client's tools no other provider can run, verbatim
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_FUNCTION_KNOWN = ("type", "name", "description", "parameters", "strict")


def _hash(namespace: str, name: str) -> str:
    return hashlib.sha1(f"{namespace}\0{name}".encode()).hexdigest()[:8]


def flat_name(namespace: str, name: str) -> str:
    """The plain function name a namespaced function goes by upstream (a pure function of both)."""
    joined = namespace + name if namespace.endswith("_") else f"{namespace}__{name}"
    safe = _UNSAFE.sub("_", joined)
    if len(safe) > MAX_NAME or safe != joined:
        safe = safe[: MAX_NAME - 9] + "_" + _hash(namespace, name)
    return safe


def custom_schema(fmt: Any) -> dict[str, Any]:
    """The one-string parameters a freeform tool becomes, its format said in the description."""
    described = "The tool's input, as free text."
    if isinstance(fmt, dict) and fmt.get("type") == "grammar":
        syntax = fmt.get("syntax") or "grammar"
        described = f"The tool's input. It must follow this {syntax} grammar:\n{fmt.get('definition', '')}"
    return {
        "type": "object",
        "properties": {"input": {"type": "string", "description": described}},
        "required": ["input"],
        "additionalProperties": False,
    }


class ToolNames:
    """The names a client's tools go by upstream, and back: namespaced functions flattened,
    freeform tools marked. Built from the client's `tools` array alone."""

    __slots__ = ("_back", "_flat")

    def __init__(self, tools: Any = None) -> None:
        self._flat: dict[tuple[str | None, str], str] = {}
        self._back: dict[str, tuple[str | None, str, str]] = {}
        if not isinstance(tools, list):
            return
        for tool in tools:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                continue
            kind = tool.get("type")
            if kind == "namespace":
                for inner in tool.get("tools") or ():
                    if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                        self._add(tool["name"], inner["name"], inner.get("type"))
            elif kind in (FUNCTION_KIND, CUSTOM_KIND):
                self._add(None, tool["name"], kind)

    def _add(self, namespace: str | None, name: str, kind: Any) -> None:
        kind = CUSTOM_KIND if kind == CUSTOM_KIND else FUNCTION_KIND
        flat = name if namespace is None else flat_name(namespace, name)
        if flat in self._back and self._back[flat][:2] != (namespace, name):
            flat = flat[: MAX_NAME - 9] + "_" + _hash(namespace or "", name)
        self._flat[(namespace, name)] = flat
        self._back[flat] = (namespace, name, kind)

    def flat(self, namespace: str | None, name: str) -> str:
        found = self._flat.get((namespace, name))
        if found is not None:
            return found
        return name if namespace is None else flat_name(namespace, name)

    def original(self, flat: str) -> tuple[str | None, str, str]:
        """(namespace or None, name, "function" | "custom") of an upstream tool name."""
        return self._back.get(flat) or (None, flat, FUNCTION_KIND)


# ---- decode -------------------------------------------------------------------------------------


def _function(tool: dict[str, Any], p: str, name: str, namespace: str | None) -> ToolSpec:
    params = tool.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise type_error(f"{p}.parameters", "an object", params)
    desc = tool.get("description")
    if desc is not None and not isinstance(desc, str):
        raise type_error(f"{p}.description", "a string", desc)
    strict = tool.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise type_error(f"{p}.strict", "a boolean", strict)
    rest = {k: v for k, v in tool.items() if k not in _FUNCTION_KNOWN}
    if namespace is not None:
        rest["_namespace"], rest["_name"] = namespace, tool["name"]
    spec = ToolSpec(name=name, description=desc, strict=strict, extra=wrap(rest))
    if params is not None:
        spec.parameters = params
    return spec


def _custom(tool: dict[str, Any], p: str, name: str, namespace: str | None) -> ToolSpec:
    desc = tool.get("description")
    if desc is not None and not isinstance(desc, str):
        raise type_error(f"{p}.description", "a string", desc)
    rest: dict[str, Any] = {"_custom": {k: v for k, v in tool.items() if k not in ("type", "name")}}
    if namespace is not None:
        rest["_namespace"], rest["_name"] = namespace, tool["name"]
    return ToolSpec(name=name, description=desc, parameters=custom_schema(tool.get("format")), extra=wrap(rest))


def decode_tools(raw: Any, names: ToolNames, extra: dict[str, Any]) -> list[ToolSpec]:
    out: list[ToolSpec] = []
    hosted: list[Any] = []
    for i, tool in enumerate(want_list(raw, "tools")):
        p = f"tools.{i}"
        tool = want_dict(tool, p)
        kind = tool.get("type")
        if kind in (FUNCTION_KIND, CUSTOM_KIND):
            name = want_str(tool.get("name"), f"{p}.name")
            make = _function if kind == FUNCTION_KIND else _custom
            out.append(make(tool, p, names.flat(None, name), None))
        elif kind == "namespace":
            namespace = want_str(tool.get("name"), f"{p}.name")
            for j, inner in enumerate(want_list(tool.get("tools"), f"{p}.tools")):
                q = f"{p}.tools.{j}"
                inner = want_dict(inner, q)
                name = want_str(inner.get("name"), f"{q}.name")
                make = _custom if inner.get("type") == CUSTOM_KIND else _function
                spec = make(inner, q, names.flat(namespace, name), namespace)
                if isinstance(tool.get("description"), str):
                    own(spec.extra)["_namespace_description"] = tool["description"]
                out.append(spec)
        elif isinstance(kind, str):
            hosted.append(tool)
            note_dropped(f"'{kind}' tools", "no provider but OpenAI's Responses API runs them", log)
        else:
            raise type_error(f"{p}.type", "a string", kind)
    if hosted:
        extra[HOSTED] = hosted
    return out


def decode_tool_choice(raw: Any, names: ToolNames) -> tuple[ToolChoice, list[str] | None]:
    """The choice, and for `allowed_tools` the flat names the client allowed (the rest are cut)."""
    if raw in ("auto", "none", "required"):
        return ToolChoice(mode=raw), None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise InvalidRequest(
            "Invalid value for 'tool_choice': expected 'auto', 'none', 'required' or an object with a 'type'.",
            param="tool_choice",
        )
    kind = raw["type"]
    if kind in (FUNCTION_KIND, CUSTOM_KIND):
        name = want_str(raw.get("name"), "tool_choice.name")
        namespace = raw.get("namespace")
        return ToolChoice(mode="tool", name=names.flat(namespace if isinstance(namespace, str) else None, name)), None
    if kind == "allowed_tools":
        choice = ToolChoice(mode="required") if raw.get("mode") == "required" else ToolChoice(mode="auto")
        allowed: list[str] = []
        for t in raw.get("tools") or ():
            if isinstance(t, dict) and isinstance(t.get("name"), str):
                namespace = t.get("namespace")
                allowed.append(names.flat(namespace if isinstance(namespace, str) else None, t["name"]))
        return choice, allowed
    note_dropped(f"tool_choice '{kind}'", "a hosted tool only OpenAI runs; 'auto' is used", log)
    return ToolChoice(mode="auto"), None


# ---- encode -------------------------------------------------------------------------------------


def encode_tools(tools: list[ToolSpec], hosted: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    spaces: dict[str, dict[str, Any]] = {}
    for spec in tools:
        mine = own(spec.extra)
        custom = mine.get("_custom")
        name = mine.get("_name", spec.name)
        if isinstance(custom, dict):
            d: dict[str, Any] = {"type": CUSTOM_KIND, "name": name, **custom}
        else:
            d = {"type": FUNCTION_KIND, "name": name}
            if spec.description is not None:
                d["description"] = spec.description
            d["parameters"] = spec.parameters
            d["strict"] = bool(spec.strict)
            for k, v in mine.items():
                if not k.startswith("_"):
                    d.setdefault(k, v)
        namespace = mine.get("_namespace")
        if isinstance(namespace, str):
            space = spaces.get(namespace)
            if space is None:
                desc = mine.get("_namespace_description", "")
                space = spaces[namespace] = {"type": "namespace", "name": namespace, "description": desc, "tools": []}
                out.append(space)
            space["tools"].append(d)
        else:
            out.append(d)
    if isinstance(hosted, list):
        out.extend(hosted)
    return out


def encode_tool_choice(choice: ToolChoice, tools: list[ToolSpec] | None) -> Any:
    if choice.mode != "tool":
        return choice.mode
    spec = next((t for t in tools or () if t.name == choice.name), None)
    mine = own(spec.extra) if spec is not None else {}
    kind = CUSTOM_KIND if isinstance(mine.get("_custom"), dict) else FUNCTION_KIND
    out: dict[str, Any] = {"type": kind, "name": mine.get("_name", choice.name or "")}
    if isinstance(mine.get("_namespace"), str):
        out["namespace"] = mine["_namespace"]
    return out
