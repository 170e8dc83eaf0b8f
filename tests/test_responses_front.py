"""The Responses front (`POST /v1/responses`) over real loopback HTTP, with the official `openai` SDK
as the client, to each upstream dialect: a Moonshot-like chat upstream, a Kimi-like Messages
upstream, Ollama, and a Responses upstream (pass-through). Each multi-turn test replays turn 1's
output items (reasoning included) on turn 2 and asserts what the upstream received then."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import openai
import pytest

from dragoman.observe.logs import ACCESS_LOGGER
from tests.conftest import FakeUpstream, GatewayFactory, Reply, RunningGateway
from tests.recorded import cassette
from tests.responses_helpers import (
    ANSWER,
    CALL_ARGS,
    EXEC_TOOL,
    NDJSON,
    REASONING,
    SIGNATURE,
    SSE,
    anthropic_text_body,
    anthropic_tool_stream,
    chat_text_body,
    chat_text_stream,
    chat_tool_body,
    chat_tool_stream,
    ollama_text_body,
    ollama_tool_stream,
)
from tests.test_ledger_usage import ledger_record, settled

FANTASY = "charmbracelet__fantasy/providertests/testdata/"
TOOL_STREAM = FANTASY + "TestOpenAIResponsesCommon/openai-gpt-5/tool_streaming.yaml"
SIMPLE = FANTASY + "TestOpenAIResponsesCommon/openai-gpt-5/simple.yaml"
THINKING_STREAM = FANTASY + "TestOpenAIResponsesWithSummaryThinking/openai-gpt-5/thinking-streaming.yaml"
ENCRYPTED = "reasoning.encrypted_content"
USER = {"role": "user", "content": [{"type": "input_text", "text": "How many files are here?"}]}
REASONING_ASK = {"effort": "medium", "summary": "auto"}


def config(upstream: FakeUpstream, **server: Any) -> dict[str, Any]:
    return {
        "server": {"retries": 0, **server},
        "providers": {
            "moonshot": {"base_url": upstream.url + "/v1", "api_key": "sk-moonshot-secret"},
            "kimi": {"base_url": upstream.url + "/coding", "api_key": "sk-kimi-secret"},
            "up-ollama": {"dialect": "ollama", "base_url": upstream.url},
            "gpt": {"dialect": "responses", "base_url": upstream.url + "/v1", "api_key": "sk-gpt-secret"},
        },
    }


class Answer:
    def __init__(self, status: int, content: bytes) -> None:
        self.status_code, self.content = status, content
        self.text = content.decode()

    def json(self) -> Any:
        return json.loads(self.content)


async def http(method: str, url: str, body: Any = None, content: bytes | None = None, **headers: str) -> Answer:
    async with aiohttp.ClientSession() as session:
        data = content if content is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"content-type": "application/json", **headers} if data is not None else headers
        async with session.request(method, url, data=data, headers=hdrs) as r:
            return Answer(r.status, await r.read())


def oai(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.openai_url, api_key="client-key", max_retries=0)


# what each upstream streams on turn 1 (a tool call after reasoning) and answers on turn 2
SCRIPTS = {
    "moonshot/kimi-k2.6": (Reply(body=chat_tool_stream(), content_type=SSE), Reply(body=chat_text_body())),
    "kimi/kimi-for-coding": (
        Reply(body=anthropic_tool_stream(), content_type=SSE),
        Reply(body=anthropic_text_body()),
    ),
    "up-ollama/qwen3": (
        Reply(body=ollama_tool_stream(), content_type=NDJSON),
        Reply(body=ollama_text_body()),
    ),
}


def replayed(turn1: Any, call_id: str) -> list[Any]:
    return [
        USER,
        *[item.model_dump(exclude_none=True) for item in turn1.output],
        {"type": "function_call_output", "call_id": call_id, "output": "a.txt\nb.txt\nc.txt"},
    ]


@pytest.mark.parametrize("model", list(SCRIPTS))
async def test_sdk_stream_then_replay_restores_each_providers_reasoning(
    model: str, upstream: FakeUpstream, gateway: GatewayFactory
) -> None:
    first, second = SCRIPTS[model]
    upstream.reply(first, second)
    gw = await gateway(config(upstream))
    async with oai(gw) as client:
        async with client.responses.stream(
            model=model,
            input=[USER],  # type: ignore[list-item]
            tools=[EXEC_TOOL],  # type: ignore[list-item]
            reasoning=REASONING_ASK,  # type: ignore[arg-type]
            include=[ENCRYPTED],
            store=False,
        ) as stream:
            kinds = [event.type async for event in stream]
            turn1 = await stream.get_final_response()
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        assert "response.function_call_arguments.delta" in kinds
        reasoning, call = turn1.output[0], turn1.output[-1]
        assert reasoning.type == "reasoning" and reasoning.summary[0].text == REASONING
        assert reasoning.encrypted_content is not None and reasoning.encrypted_content.startswith("dgm1.")
        assert call.type == "function_call" and call.name == "exec_command"
        assert json.loads(call.arguments) == json.loads(CALL_ARGS)
        assert turn1.usage is not None and turn1.usage.input_tokens == 50 and turn1.usage.output_tokens == 12
    # turn 2 on another instance of the deployment (same secret, nothing remembered): only the
    # sealed blob can bring the reasoning back
    other = await gateway(config(upstream))
    async with oai(other) as client:
        turn2 = await client.responses.create(
            model=model,
            input=replayed(turn1, call.call_id),  # type: ignore[arg-type]
            tools=[EXEC_TOOL],  # type: ignore[list-item]
            reasoning=REASONING_ASK,  # type: ignore[arg-type]
            include=[ENCRYPTED],
            store=False,
        )
    assert turn2.output_text == ANSWER and turn2.status == "completed"
    sent = upstream.last.json
    if model.startswith("moonshot/"):
        assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
        assert assistant["reasoning_content"] == REASONING  # Moonshot's rule: it must come back
        assert assistant["tool_calls"][0]["id"] == call.call_id
        assert sent["messages"][-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "a.txt\nb.txt\nc.txt"}
    elif model.startswith("kimi/"):
        assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
        assert assistant["content"][0] == {"type": "thinking", "thinking": REASONING, "signature": SIGNATURE}
        assert assistant["content"][1]["type"] == "tool_use" and assistant["content"][1]["id"] == call.call_id
    else:
        assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
        assert assistant["tool_calls"][0]["function"]["name"] == "exec_command"
        assert assistant["thinking"] == REASONING
        assert sent["messages"][-1]["role"] == "tool"


async def test_sdk_create_unary_to_a_chat_upstream(upstream: FakeUpstream, gateway: GatewayFactory) -> None:
    upstream.reply(Reply(body=chat_tool_body()), Reply(body=chat_text_stream(), content_type=SSE))
    gw = await gateway(config(upstream))
    async with oai(gw) as client:
        turn1 = await client.responses.create(
            model="moonshot/kimi-k2.6",
            instructions="Be brief.",
            input=[USER],  # type: ignore[list-item]
            tools=[EXEC_TOOL],  # type: ignore[list-item]
            reasoning=REASONING_ASK,  # type: ignore[arg-type]
            include=[ENCRYPTED],
            store=False,
        )
        call = turn1.output[-1]
        assert call.type == "function_call" and turn1.id.startswith("resp_")
        first = upstream.last.json
        assert first["messages"][0] == {"role": "system", "content": "Be brief."}
        assert first["tools"][0]["function"]["name"] == "exec_command"
        async with client.responses.stream(
            model="moonshot/kimi-k2.6",
            input=replayed(turn1, call.call_id),  # type: ignore[arg-type]
            tools=[EXEC_TOOL],  # type: ignore[list-item]
            store=False,
        ) as stream:
            final = await stream.get_final_response()
    assert final.output_text == ANSWER
    assistant = next(m for m in upstream.last.json["messages"] if m["role"] == "assistant")
    assert assistant["reasoning_content"] == REASONING


def _items(body: bytes) -> list[dict[str, Any]]:
    events = [json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: {")]
    return [e["item"] for e in events if e["type"] == "response.output_item.done"]


async def test_responses_upstream_is_passed_through_and_openais_reasoning_comes_back(
    upstream: FakeUpstream, gateway: GatewayFactory
) -> None:
    recorded = cassette(THINKING_STREAM)[0].body
    upstream.reply(Reply(body=recorded, content_type=SSE), Reply(body=cassette(SIMPLE)[0].body))
    gw = await gateway(config(upstream))
    async with oai(gw) as client:
        async with client.responses.stream(
            model="gpt/gpt-5",
            input=[USER],  # type: ignore[list-item]
            tools=[EXEC_TOOL],  # type: ignore[list-item]
            reasoning=REASONING_ASK,  # type: ignore[arg-type]
            include=[ENCRYPTED],
            store=False,
        ) as stream:
            turn1 = await stream.get_final_response()
        sent = upstream.last.json
        assert upstream.last.path == "/v1/responses" and sent["model"] == "gpt-5" and sent["input"] == [USER]
        recorded_items = _items(recorded)
        assert [i.model_dump(exclude_none=True)["id"] for i in turn1.output] == [i["id"] for i in recorded_items]
        blob = next(i.encrypted_content for i in turn1.output if i.type == "reasoning")
        assert blob is not None and blob.encode() in recorded  # OpenAI's own, as it sent it
        call = turn1.output[-1]
        await client.responses.create(
            model="gpt/gpt-5",
            input=replayed(turn1, call.call_id),  # type: ignore[arg-type]
            include=[ENCRYPTED],
            store=False,
        )
    items = upstream.last.json["input"]
    assert next(i for i in items if i.get("type") == "reasoning")["encrypted_content"] == blob  # untouched


async def test_namespace_tools_are_flattened_and_calls_come_back_under_the_clients_names(
    upstream: FakeUpstream, gateway: GatewayFactory
) -> None:
    stream = chat_tool_stream()
    flat = [c.replace(b'"exec_command"', b'"mcp__fixture__lookup_order"') for c in stream]
    upstream.reply(Reply(body=flat, content_type=SSE))
    gw = await gateway(config(upstream))
    namespace = {
        "type": "namespace",
        "name": "mcp__fixture",
        "description": "Tools from fixture.",
        "tools": [
            {
                "type": "function",
                "name": "lookup_order",
                "description": "Look up an order",
                "strict": False,
                "parameters": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
            }
        ],
    }
    r = await http(
        "POST",
        gw.openai_url + "/responses",
        {
            "model": "moonshot/kimi-k2.6",
            "input": [USER],
            "tools": [EXEC_TOOL, namespace, {"type": "web_search", "external_web_access": False}],
            "stream": True,
            "store": False,
        },
    )
    assert r.status_code == 200
    names = [t["function"]["name"] for t in upstream.last.json["tools"]]
    assert "exec_command" in names and any("lookup_order" in n for n in names) and len(names) == 2  # web_search dropped
    call = next(i for i in _items(r.content) if i["type"] == "function_call")
    assert call["name"] == "lookup_order" and call.get("namespace") == "mcp__fixture"


async def test_errors_before_the_stream_are_in_openais_envelope(
    upstream: FakeUpstream, gateway: GatewayFactory
) -> None:
    upstream.reply(Reply(status=400, body=b'{"error":{"message":"bad things","type":"invalid_request_error"}}'))
    gw = await gateway(config(upstream))
    async with oai(gw) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.responses.create(model="moonshot/kimi-k2.6", input="hi", store=False)
        assert "bad things" in info.value.message
        with pytest.raises(openai.BadRequestError) as bad:
            await client.responses.create(model="moonshot/kimi-k2.6", input=3, store=False)  # type: ignore[arg-type]
        assert bad.value.body is not None and isinstance(bad.value.body, dict)
        assert bad.value.response.json()["error"]["param"] == "input"
    r = await http("POST", gw.url + "/responses", content=b"{not json")
    assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}


async def test_an_upstream_failure_mid_stream_is_response_failed(
    upstream: FakeUpstream, gateway: GatewayFactory
) -> None:
    upstream.reply(Reply(body=chat_tool_stream()[:3], content_type=SSE, abort=True))
    gw = await gateway(config(upstream))
    r = await http(
        "POST", gw.url + "/v1/responses", {"model": "moonshot/kimi-k2.6", "input": "hi", "stream": True, "store": False}
    )
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.failed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))  # one stream, one sequence
    assert events[-1]["response"]["id"] == events[0]["response"]["id"]
    assert events[-1]["response"]["error"]["message"]
    assert not [e for e in events if e["type"] == "response.output_item.done" and e["item"]["type"] == "function_call"]


async def test_max_tokens_is_response_incomplete(upstream: FakeUpstream, gateway: GatewayFactory) -> None:
    upstream.reply(Reply(body=chat_text_stream("cut", finish="length"), content_type=SSE))
    gw = await gateway(config(upstream))
    async with (
        oai(gw) as client,
        client.responses.stream(model="moonshot/kimi-k2.6", input="hi", max_output_tokens=5, store=False) as stream,
    ):
        events = [e async for e in stream]
    # as from OpenAI: the SDK's helper has no final response for an incomplete one, the event has it
    assert events[-1].type == "response.incomplete"
    final = events[-1].response
    assert final.status == "incomplete" and final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens"
    assert upstream.last.json["max_tokens"] == 5 or upstream.last.json.get("max_completion_tokens") == 5


async def test_a_tampered_blob_is_ignored_with_a_note_not_a_500(
    upstream: FakeUpstream, gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.reply(Reply(body=chat_tool_stream(), content_type=SSE), Reply(body=chat_text_body()))
    gw = await gateway(config(upstream))
    async with oai(gw) as client:
        async with client.responses.stream(
            model="moonshot/kimi-k2.6",
            input=[USER],  # type: ignore[list-item]
            tools=[EXEC_TOOL],  # type: ignore[list-item]
            reasoning=REASONING_ASK,  # type: ignore[arg-type]
            include=[ENCRYPTED],
            store=False,
        ) as stream:
            turn1 = await stream.get_final_response()
        items = replayed(turn1, turn1.output[-1].call_id)  # type: ignore[union-attr]
        blob = items[1]["encrypted_content"]
        items[1]["encrypted_content"] = blob[:-6] + ("AAAAAA" if not blob.endswith("AAAAAA") else "BBBBBB")
        items.insert(1, {"type": "reasoning", "summary": [], "encrypted_content": "dgm1.Zm9yZWlnbg"})
        turn2 = await client.responses.create(
            model="moonshot/kimi-k2.6",
            input=items,
            tools=[EXEC_TOOL],
            store=False,  # type: ignore[arg-type, list-item]
        )
    assert turn2.output_text == ANSWER
    assert "did not open" in caplog.text
    assert SIGNATURE not in caplog.text


async def test_the_ledger_records_the_responses_front(upstream: FakeUpstream, gateway: GatewayFactory) -> None:
    upstream.reply(Reply(body=chat_text_stream(), content_type=SSE))
    gw = await gateway(config(upstream))
    async with oai(gw) as client:
        raw = await client.responses.with_raw_response.create(
            model="moonshot/kimi-k2.6", input="hi", store=False, stream=True
        )
        request_id = raw.headers["x-dragoman-request-id"]
        async for _ in await settled(raw.parse()):
            pass
    record = await ledger_record(gw, request_id)
    assert (record["front"], record["provider"], record["path"]) == ("responses", "moonshot", "/v1/responses")
    assert record["usage"]["input_tokens"] == 70 and record["usage"]["output_tokens"] == 6


async def test_a_websocket_upgrade_is_told_to_use_http_at_once(upstream: FakeUpstream, gateway: GatewayFactory) -> None:
    gw = await gateway(config(upstream))
    headers = {
        "connection": "Upgrade",
        "upgrade": "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    r = await http("GET", gw.openai_url + "/responses", **headers)
    plain = await http("GET", gw.openai_url + "/responses")
    assert r.status_code == 426 and r.json()["error"]["code"] == "upgrade_required"
    assert plain.status_code == 405
    assert not upstream.seen


async def test_a_fallback_route_metrics_and_the_access_log_apply_to_the_responses_front(
    upstream: FakeUpstream, gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A route whose first target fails before any byte falls back to a Messages upstream; the
    access line and the metrics name the front `responses`."""
    from tests.test_observe import scrape, value

    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    upstream.reply(
        Reply(status=503, body=b'{"error":{"message":"overloaded","type":"server_error"}}'),
        Reply(body=anthropic_tool_stream(), content_type=SSE),
    )
    cfg = config(upstream, metrics=True)
    cfg["routes"] = {"coder": {"targets": ["moonshot/kimi-k2.6", "kimi/kimi-for-coding"]}}
    gw = await gateway(cfg)
    async with (
        oai(gw) as client,
        client.responses.stream(
            model="coder",
            input=[USER],  # type: ignore[list-item]
            tools=[EXEC_TOOL],  # type: ignore[list-item]
            reasoning=REASONING_ASK,  # type: ignore[arg-type]
            include=[ENCRYPTED],
            store=False,
        ) as stream,
    ):
        final = await stream.get_final_response()
    assert final.output[-1].type == "function_call"
    assert [s.path for s in upstream.seen] == ["/v1/chat/completions", "/coding/v1/messages"]
    line = next(r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER)
    assert line.startswith("POST /v1/responses 200 front=responses model=coder provider=kimi"), line
    assert "attempts=2" in line
    samples = await scrape(gw)
    assert (
        value(samples, "dragoman_requests_total", front="responses", provider="kimi", model="other", status="200")
        + value(
            samples,
            "dragoman_requests_total",
            front="responses",
            provider="kimi",
            model="kimi-for-coding",
            status="200",
        )
        == 1
    )
