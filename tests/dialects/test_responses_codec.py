"""The Responses codec: Codex-shaped requests, tools and their names, parameters, usage, and
non-streaming `response` objects (recorded OpenAI replies in, the official SDK reading ours)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import msgspec
import openai
import pytest

from dragoman import dialects
from dragoman.canonical import (
    Image,
    Message,
    Opaque,
    Reasoning,
    Request,
    Response,
    ResponseFormat,
    Text,
    Thinking,
    ToolCall,
    ToolResult,
    ToolSpec,
    Usage,
)
from dragoman.dialects.responses.tools import MAX_NAME, ToolNames, flat_name
from dragoman.dialects.responses.wire import usage_from_wire, usage_to_wire
from dragoman.errors import GatewayError, InvalidRequest, Unsupported
from tests.conftest import FakeUpstream, Reply
from tests.dialects import codex
from tests.recorded import cassette, raw

CODEC = dialects.get("responses")
FANTASY = "charmbracelet__fantasy/providertests/testdata/"
VERCEL = "vercel__ai/packages/openai/src/responses/__fixtures__/"
RESP_TOOL = FANTASY + "TestOpenAIResponsesCommon/openai-gpt-5/tool.yaml"
RESP_MULTI = FANTASY + "TestOpenAIResponsesCommon/openai-gpt-5/multi_tool.yaml"
RESP_SIMPLE = FANTASY + "TestOpenAIResponsesCommon/openai-gpt-5/simple.yaml"
RESP_THINKING = FANTASY + "TestOpenAIResponsesWithSummaryThinking/openai-gpt-5/thinking.yaml"
CHAT_TOOL = FANTASY + "TestOpenAICommon/openai-gpt-5/tool.yaml"
ANT_THINKING = FANTASY + "TestAnthropicThinking/claude-sonnet-4/thinking.yaml"
_json = msgspec.json.Decoder()


# ---- Codex's requests ---------------------------------------------------------------------------


def test_codex_turn_one_decodes_into_canonical(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="dragoman.dialects.responses"):
        req = CODEC.decode_request(codex.turn1())
    assert [t.text for t in req.system] == [codex.BASE_PROMPT, codex.PERMISSIONS]
    assert [(t.extra or {})["responses"]["role"] for t in req.system] == ["developer", "developer"]
    assert [(m.role, [p.text for p in m.content if isinstance(p, Text)]) for m in req.messages] == [
        ("user", [codex.ENVIRONMENT]),
        ("user", [codex.PROMPT]),
    ]
    assert req.tools is not None
    assert [(t.name, t.strict) for t in req.tools] == [
        ("exec_command", False),
        ("write_stdin", False),
        ("mcp__fixture__lookup_order", False),
    ]
    assert req.tools[0].parameters == codex.EXEC_COMMAND["parameters"]
    assert req.tool_choice is not None and req.tool_choice.mode == "auto"
    assert req.parallel_tool_calls is True and req.stream is True and req.thinking is None
    kept = (req.extra or {})["responses"]
    for key in ("store", "include", "prompt_cache_key", "client_metadata"):
        assert kept[key] == codex.turn1()[key]
    assert "dropped 'web_search' tools" in caplog.text  # a logged note, not a 400


@pytest.mark.parametrize("upstream", ["openai", "anthropic", "ollama"])
def test_codex_turn_one_encodes_for_every_other_upstream(upstream: str) -> None:
    req = CODEC.decode_request(codex.turn1())
    body = dialects.get(upstream).encode_request(req)
    text = json.dumps(body)
    assert codex.PROMPT in text and "mcp__fixture__lookup_order" in text and "web_search" not in text
    if upstream == "anthropic":
        assert [b["text"] for b in body["system"]] == [codex.BASE_PROMPT, codex.PERMISSIONS]
        assert [t["name"] for t in body["tools"]] == ["exec_command", "write_stdin", "mcp__fixture__lookup_order"]
    if upstream == "openai":
        # the two developer messages become one leading system message, in order
        assert [m["role"] for m in body["messages"]] == ["system", "user", "user"]
        system = body["messages"][0]["content"]
        text = system if isinstance(system, str) else "".join(p["text"] for p in system)
        assert text.index(codex.BASE_PROMPT) < text.index(codex.PERMISSIONS)


def test_items_of_turn_two_form_one_assistant_turn_then_the_results() -> None:
    output = [
        {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Listing."}]},
        {
            "id": "msg_9",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "I'll look.", "annotations": []}],
        },
        {
            "id": "fc_1",
            "type": "function_call",
            "call_id": "call_a",
            "name": "exec_command",
            "arguments": '{"cmd":"ls"}',
            "status": "completed",
        },
        {
            "id": "fc_2",
            "type": "function_call",
            "call_id": "functions.lookup_order:1",
            "name": "lookup_order",
            "namespace": "mcp__fixture",
            "arguments": '{"id":"7"}',
            "status": "completed",
        },
    ]
    body = codex.turn2(codex.turn1(), output)
    body["input"].append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "thanks"}]})
    req = CODEC.decode_request(body)
    assistant, results = req.messages[2], req.messages[3]
    assert assistant.role == "assistant"
    assert [type(p).__name__ for p in assistant.content] == ["Reasoning", "Text", "ToolCall", "ToolCall"]
    r, t, c1, c2 = assistant.content
    assert isinstance(r, Reasoning) and r.text == "Listing." and r.signature is None
    assert isinstance(t, Text) and t.text == "I'll look."
    assert isinstance(c1, ToolCall) and (c1.id, c1.name, c1.arguments) == ("call_a", "exec_command", '{"cmd":"ls"}')
    assert isinstance(c2, ToolCall) and (c2.id, c2.name) == ("functions.lookup_order:1", "mcp__fixture__lookup_order")
    assert results.role == "user"
    assert [(p.tool_call_id, p.content) for p in results.content if isinstance(p, ToolResult)] == [
        ("call_a", [Text("a.txt\nb.txt\n")]),
        ("functions.lookup_order:1", [Text("a.txt\nb.txt\n")]),
    ]
    assert results.content[-1] == Text("thanks")  # the user message joins the results
    chat = dialects.get("openai").encode_request(req)
    (turn,) = [m for m in chat["messages"] if m["role"] == "assistant"]
    assert [c["function"]["name"] for c in turn["tool_calls"]] == ["exec_command", "mcp__fixture__lookup_order"]
    assert turn["reasoning_content"] == "Listing."


def test_input_as_a_string_and_bare_role_messages() -> None:
    req = CODEC.decode_request({"model": "m", "input": "hello", "instructions": "be brief"})
    assert req.system == [Text("be brief", extra={"responses": {"_instructions": True}})]
    assert req.messages == [Message("user", [Text("hello")])]
    req = CODEC.decode_request(
        {
            "model": "m",
            "input": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "developer", "content": "later instruction"},
            ],
        }
    )
    assert [t.text for t in req.system] == ["sys"]
    assert [m.role for m in req.messages] == ["user", "assistant", "system"]


def test_images_files_and_refusals_in_messages() -> None:
    body = {
        "model": "m",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"},
                    {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "auto"},
                    {"type": "input_file", "file_id": "file-123"},
                ],
            },
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}]},
        ],
    }
    req = CODEC.decode_request(body)
    user, assistant = req.messages
    assert assistant.content == [Text("I can't help with that.", extra={"openai": {"type": "refusal"}})]
    assert user.content[1] == Image(media_type="image/png", data="iVBORw0KGgo=", detail="high")
    assert user.content[2] == Image(url="https://example.com/cat.jpg")
    assert user.content[3] == Opaque("responses", {"type": "input_file", "file_id": "file-123"})
    with pytest.raises(Unsupported, match="input_file"):
        dialects.get("openai").encode_request(req)
    req.messages[0].content.pop()
    chat = dialects.get("openai").encode_request(req)
    assert chat["messages"][1]["refusal"] == "I can't help with that."
    assert chat["messages"][0]["content"][1]["image_url"]["url"] == "data:image/png;base64,iVBORw0KGgo="


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "input": {"role": "user"}}, "input"),
        ({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input.0.call_id"),
        (
            {"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
            "input.0.arguments",
        ),
        ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "input.0.role"),
        ({"model": "m", "input": [{"content": "no role or type"}]}, "input.0.type"),
        ({"model": "m", "input": [], "tools": [{"type": "function"}]}, "tools.0.name"),
        ({"model": "m", "input": [], "max_output_tokens": "many"}, "max_output_tokens"),
        ({"model": 5, "input": []}, "model"),
    ],
)
def test_malformed_bodies_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        CODEC.decode_request(body)
    assert e.value.param == param and e.value.status == 400


def test_items_only_openai_can_replay_are_dropped_not_refused(caplog: pytest.LogCaptureFixture) -> None:
    body = {
        "model": "m",
        "input": [
            {"role": "user", "content": "search"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}},
            {"type": "item_reference", "id": "msg_old"},
            {"type": "reasoning", "id": "rs_x", "summary": [], "encrypted_content": "somebody-else's-blob"},
        ],
    }
    with caplog.at_level(logging.DEBUG, logger="dragoman.dialects.responses"):
        req = CODEC.decode_request(body)
    assert [m.role for m in req.messages] == ["user", "assistant"]
    assert req.messages[1].content == [Reasoning(extra={"responses": {"id": "rs_x"}})]
    assert "web_search_call" in caplog.text and "item_reference" in caplog.text and "foreign" in caplog.text


# ---- tools and their names ----------------------------------------------------------------------


def test_flat_names_are_safe_for_every_provider_and_distinct() -> None:
    pairs = [
        ("mcp__fixture", "lookup_order"),
        ("mcp__fixture__", "lookup_order"),
        ("crm", "get.customer"),
        ("a" * 60, "b" * 30),
        ("a" * 60, "b" * 31),
        ("ns with spaces", "ü-tool"),
    ]
    names = [flat_name(ns, n) for ns, n in pairs]
    assert names[0] == "mcp__fixture__lookup_order" and names[1] == "mcp__fixture__lookup_order"
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name) and len(name) <= MAX_NAME
    assert len(set(names[2:])) == 4
    tools = [
        {"type": "function", "name": "mcp__fixture__lookup_order"},
        {"type": "namespace", "name": "mcp__fixture", "tools": [{"type": "function", "name": "lookup_order"}]},
    ]
    table = ToolNames(tools)
    clash = table.flat("mcp__fixture", "lookup_order")
    assert clash != "mcp__fixture__lookup_order"  # a plain function already has that name
    assert table.original(clash) == ("mcp__fixture", "lookup_order", "function")
    assert table.original("mcp__fixture__lookup_order") == (None, "mcp__fixture__lookup_order", "function")


def test_namespaced_calls_come_back_under_the_clients_names() -> None:
    body = codex.turn1()
    req = CODEC.decode_request(body)
    assert req.tools is not None
    flat = req.tools[2].name
    reply = Response(
        id="msg_up",
        model="kimi-k2.6",
        content=[ToolCall("call_1", flat, '{"id":"7"}'), ToolCall("call_2", "exec_command", '{"cmd":"ls"}')],
        stop_reason="tool_use",
    )
    out = CODEC.encode_response(reply, CODEC.reply_context(body))["output"]
    assert [(i["type"], i["name"], i.get("namespace"), i["call_id"]) for i in out] == [
        ("function_call", "lookup_order", "mcp__fixture", "call_1"),
        ("function_call", "exec_command", None, "call_2"),
    ]
    again = CODEC.decode_request(codex.turn2(body, out))
    calls = [p for p in again.messages[2].content if isinstance(p, ToolCall)]
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_1", flat, '{"id":"7"}'),
        ("call_2", "exec_command", '{"cmd":"ls"}'),
    ]


def test_freeform_tools_travel_as_one_string_and_come_back_custom() -> None:
    grammar = {"type": "grammar", "syntax": "lark", "definition": 'start: "SELECT" /.+/'}
    body = {
        "model": "m",
        "input": "write a query",
        "tools": [{"type": "custom", "name": "write_sql", "description": "Write SQL.", "format": grammar}],
        "tool_choice": {"type": "custom", "name": "write_sql"},
    }
    req = CODEC.decode_request(body)
    assert req.tools is not None and req.tools[0].name == "write_sql"
    schema = req.tools[0].parameters
    assert schema["required"] == ["input"] and 'start: "SELECT"' in schema["properties"]["input"]["description"]
    assert req.tool_choice is not None and (req.tool_choice.mode, req.tool_choice.name) == ("tool", "write_sql")
    query = 'SELECT * FROM users WHERE name = "O\'Brien"\n'
    reply = Response(id="x", model="m", content=[ToolCall("call_s", "write_sql", json.dumps({"input": query}))])
    item = CODEC.encode_response(reply, CODEC.reply_context(body))["output"][0]
    assert (item["type"], item["name"], item["input"], item["call_id"]) == (
        "custom_tool_call",
        "write_sql",
        query,
        "call_s",
    )
    turn2 = {**body, "input": [item, {"type": "custom_tool_call_output", "call_id": "call_s", "output": "3 rows"}]}
    again = CODEC.decode_request(turn2)
    call, result = again.messages[0].content[0], again.messages[1].content[0]
    assert isinstance(call, ToolCall) and json.loads(call.arguments) == {"input": query}
    assert isinstance(result, ToolResult) and result.content == [Text("3 rows")]
    encoded = CODEC.encode_request(again)
    assert encoded["input"][0] == {"type": "custom_tool_call", "call_id": "call_s", "name": "write_sql", "input": query}
    assert encoded["input"][1]["type"] == "custom_tool_call_output"
    assert encoded["tools"][0]["type"] == "custom" and encoded["tools"][0]["format"] == grammar


def test_allowed_tools_choice_keeps_only_the_allowed() -> None:
    body = {
        "model": "m",
        "input": "x",
        "tools": [codex.EXEC_COMMAND, codex.WRITE_STDIN, codex.NAMESPACE],
        "tool_choice": {
            "type": "allowed_tools",
            "mode": "required",
            "tools": [
                {"type": "function", "name": "write_stdin"},
                {"type": "function", "name": "lookup_order", "namespace": "mcp__fixture"},
            ],
        },
    }
    req = CODEC.decode_request(body)
    assert req.tools is not None and [t.name for t in req.tools] == ["write_stdin", "mcp__fixture__lookup_order"]
    assert req.tool_choice is not None and req.tool_choice.mode == "required"


def test_only_hosted_tools_leave_no_tools_and_no_choice() -> None:
    req = CODEC.decode_request({"model": "m", "input": "x", "tools": [codex.WEB_SEARCH], "tool_choice": "required"})
    assert req.tools is None and req.tool_choice is None
    assert "tools" not in dialects.get("openai").encode_request(req)


# ---- parameters ---------------------------------------------------------------------------------


def test_parameters_map_to_canonical_and_back() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    body = {
        "model": "gpt-5.3-codex",
        "input": "weather?",
        "max_output_tokens": 512,
        "temperature": 0.2,
        "top_p": 0.9,
        "reasoning": {"effort": "high", "summary": "detailed"},
        "text": {
            "format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True, "description": "d"},
            "verbosity": "low",
        },
        "safety_identifier": "user-42",
        "metadata": {"k": "v"},
        "store": True,
        "previous_response_id": "resp_prev",
        "service_tier": "flex",
    }
    req = CODEC.decode_request(body)
    assert (req.max_tokens, req.temperature, req.top_p, req.user) == (512, 0.2, 0.9, "user-42")
    assert req.thinking == Thinking(enabled=True, effort="high")
    assert req.response_format == ResponseFormat(type="json_schema", schema=schema, name="city", strict=True)
    back = CODEC.encode_request(req)
    for key in (
        "max_output_tokens",
        "temperature",
        "top_p",
        "reasoning",
        "text",
        "safety_identifier",
        "metadata",
        "store",
        "previous_response_id",
        "service_tier",
    ):
        assert back[key] == body[key], key
    assert CODEC.thinking_of(body) == Thinking(enabled=True, effort="high")
    assert CODEC.thinking_of({"reasoning": {"effort": "none"}}) == Thinking(enabled=False, effort="none")
    assert CODEC.thinking_of({"reasoning": {"summary": "auto"}}) is None
    anthropic = dialects.get("anthropic").encode_request(req)
    assert (
        anthropic["thinking"]["type"] == "enabled" and anthropic["max_tokens"] > anthropic["thinking"]["budget_tokens"]
    )


def test_a_chat_request_goes_upstream_as_a_real_responses_client_sends_it() -> None:
    """Fantasy recorded the same conversation against Chat Completions and Responses: the chat
    request translated says what the recorded Responses request says."""
    chat = dialects.get("openai").decode_request(cassette(CHAT_TOOL)[1].request or {})
    ours = CODEC.encode_request(chat)
    assert ours["store"] is False and "include" not in ours and ours["max_output_tokens"] == 4000
    assert ours["tools"][0]["strict"] is False
    theirs = cassette(RESP_TOOL)[1].request or {}

    def shape(req: Request) -> list[Any]:
        out: list[Any] = [[t.text for t in req.system]]
        for m in req.messages:
            for p in m.content:
                if isinstance(p, ToolCall):
                    out.append(("call", p.name, json.loads(p.arguments)))
                elif isinstance(p, ToolResult):
                    out.append(("result", [c.text for c in p.content if isinstance(c, Text)]))
                elif isinstance(p, Text):
                    out.append((m.role, p.text))
        return out

    assert shape(CODEC.decode_request(ours)) == shape(CODEC.decode_request(theirs))
    assert [(t.name, t.parameters, t.strict) for t in CODEC.decode_request(ours).tools or []] == [
        (t.name, t.parameters, t.strict) for t in CODEC.decode_request(theirs).tools or []
    ]


def test_an_anthropic_thinking_request_asks_for_reasoning_and_drops_claudes_own() -> None:
    ant = dialects.get("anthropic").decode_request(cassette(ANT_THINKING)[1].request or {})
    body = CODEC.encode_request(ant)
    assert body["reasoning"]["summary"] == "auto" and body["reasoning"]["effort"] in ("low", "medium", "high", "xhigh")
    assert body["include"] == ["reasoning.encrypted_content"] and body["store"] is False
    kinds = [i["type"] for i in body["input"]]
    assert "reasoning" not in kinds  # Claude's signed thinking means nothing to OpenAI
    assert kinds.count("function_call") == kinds.count("function_call_output") >= 1
    oai_reasoning = Reasoning("summary", signature="gAAAAABpPDIUph8czEXz")
    ant.messages[1].content.insert(0, oai_reasoning)
    body = CODEC.encode_request(ant)
    assert body["input"][1] == {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "summary"}],
        "encrypted_content": "gAAAAABpPDIUph8czEXz",
    }


def test_what_responses_cannot_say() -> None:
    req = Request(model="m", messages=[Message("user", [Text("x")])], n=2)
    with pytest.raises(Unsupported, match="n > 1"):
        CODEC.encode_request(req)
    req = Request(model="m", messages=[Message("user", [Text("x")])], stop=["\n"], seed=3, top_k=5)
    body = CODEC.encode_request(req)
    assert not {"stop", "seed", "top_k"} & body.keys()
    req.tools = [ToolSpec(name="f")]
    assert CODEC.encode_request(req)["tools"] == [
        {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}
    ]


# ---- usage --------------------------------------------------------------------------------------


def test_usage_counts_cached_input_inside_input_tokens() -> None:
    canonical = Usage(input_tokens=100, output_tokens=50, cache_read_tokens=900, reasoning_tokens=20)
    wire = usage_to_wire(canonical)
    assert wire == {
        "input_tokens": 1000,
        "input_tokens_details": {"cached_tokens": 900},
        "output_tokens": 50,
        "output_tokens_details": {"reasoning_tokens": 20},
        "total_tokens": 1050,
    }
    assert usage_from_wire(wire) == canonical
    written = Usage(input_tokens=10, output_tokens=1, cache_read_tokens=5, cache_write_tokens=7)
    assert usage_from_wire(usage_to_wire(written)) == Usage(10, 1, 5, 7, 0)
    assert usage_to_wire(None)["total_tokens"] == 0


def test_recorded_usage_with_cache_hits() -> None:
    body = _json.decode(raw(VERCEL + "openai-reasoning-encrypted-content.1.json"))
    u = body["usage"]
    got = CODEC.decode_response(body).usage
    assert got.prompt_tokens == u["input_tokens"] and got.output_tokens == u["output_tokens"]
    assert got.cache_read_tokens == u["input_tokens_details"]["cached_tokens"]
    assert got.input_tokens == u["input_tokens"] - u["input_tokens_details"]["cached_tokens"]
    assert got.reasoning_tokens == u["output_tokens_details"]["reasoning_tokens"]
    assert got.total_tokens == u["total_tokens"]


# ---- non-streaming replies ----------------------------------------------------------------------


@pytest.mark.parametrize("path", [RESP_SIMPLE, RESP_TOOL, RESP_MULTI, RESP_THINKING])
def test_recorded_responses_decode(path: str) -> None:
    for it in cassette(path):
        body = _json.decode(it.body)
        got = CODEC.decode_response(body)
        assert got.id == body["id"] and got.model == body["model"]
        items = body["output"]
        calls = [i for i in items if i["type"] == "function_call"]
        assert [(c.id, c.name, c.arguments) for c in got.content if isinstance(c, ToolCall)] == [
            (c["call_id"], c["name"], c["arguments"]) for c in calls
        ]
        texts = [c["text"] for i in items if i["type"] == "message" for c in i["content"]]
        assert [t.text for t in got.content if isinstance(t, Text)] == texts
        blobs = [i.get("encrypted_content") for i in items if i["type"] == "reasoning"]
        assert [r.signature for r in got.content if isinstance(r, Reasoning)] == blobs
        assert got.stop_reason == ("tool_use" if calls else "end_turn")
        tally = CODEC.summarize(it.body)
        assert (tally.usage, tally.stop_reason, tally.tool_calls) == (got.usage, got.stop_reason, len(calls))


def test_recorded_error_bodies() -> None:
    data = raw(VERCEL + "openai-error.1.json")
    err = CODEC.decode_error(429, data)
    assert err.status == 429 and "exceeded your current quota" in err.message
    failed = {"id": "resp_1", "status": "failed", "output": [], "error": {"code": "server_error", "message": "boom"}}
    with pytest.raises(GatewayError, match="boom") as e:
        CODEC.decode_response(failed)
    assert e.value.status == 502
    assert CODEC.summarize(json.dumps(failed).encode()).error == "boom"


async def test_the_sdk_reads_an_encoded_response(upstream: FakeUpstream) -> None:
    body = codex.turn1()
    body["stream"] = False
    reply = Response(
        id="msg_01",
        model="kimi-k2.6",
        content=[
            Reasoning("thinking it over", signature="sig-1"),
            Text("There are "),
            Text("two files.", extra={"openai": {"type": "refusal"}}),
            ToolCall("call_x", "mcp__fixture__lookup_order", ""),
        ],
        stop_reason="tool_use",
        usage=Usage(input_tokens=3, output_tokens=9, cache_read_tokens=40, reasoning_tokens=4),
    )
    encoded = CODEC.encode_response(reply, CODEC.reply_context(body))
    upstream.reply(Reply(body=json.dumps(encoded).encode()))
    async with openai.AsyncOpenAI(base_url=upstream.url + "/v1", api_key="sk-test", max_retries=0) as client:
        got = await client.responses.create(model="kimi-k2.6", input="x")
    assert got.id.startswith("resp_") and got.status == "completed"
    assert [o.type for o in got.output] == ["reasoning", "message", "function_call"]
    reasoning, message, call = got.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "thinking it over"
    assert reasoning.encrypted_content is None  # no sealer given
    assert message.type == "message" and [c.type for c in message.content] == ["output_text", "refusal"]
    assert got.output_text == "There are "
    assert call.type == "function_call" and (call.name, call.namespace, call.arguments) == (
        "lookup_order",
        "mcp__fixture",
        "{}",
    )
    assert got.usage is not None and (got.usage.input_tokens, got.usage.total_tokens) == (43, 52)
    assert got.usage.input_tokens_details.cached_tokens == 40
    assert [t.type for t in got.tools] == ["function", "function", "namespace", "web_search"]  # echoed
    incomplete = CODEC.encode_response(Response(id="r", model="m", stop_reason="max_tokens"), None)
    assert incomplete["status"] == "incomplete" and incomplete["incomplete_details"] == {"reason": "max_output_tokens"}
