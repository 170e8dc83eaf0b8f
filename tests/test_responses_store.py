"""Stored responses: `store: true`, `previous_response_id`, `GET /v1/responses/{id}`, its
`input_items` and `DELETE`, on SQLite and PostgreSQL, with the official `openai` SDK over loopback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import pytest

from dragoman.store.db import Database, open_database
from dragoman.store.responses import ResponseStore, Stored
from tests.conftest import FakeUpstream, GatewayFactory, Reply, RunningGateway
from tests.responses_helpers import (
    ANSWER,
    EXEC_TOOL,
    REASONING,
    SSE,
    chat_text_stream,
    chat_tool_body,
)

USER = {"role": "user", "content": [{"type": "input_text", "text": "How many files are here?"}]}


def config(upstream: FakeUpstream, store: str, **server: Any) -> dict[str, Any]:
    return {
        "server": {"retries": 0, "usage_store": store, **server},
        "providers": {"moonshot": {"base_url": upstream.url + "/v1", "api_key": "sk-moonshot-secret"}},
    }


def oai(gw: RunningGateway, key: str = "client-key") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.openai_url, api_key=key, max_retries=0)


async def test_stored_responses_on_sqlite(upstream: FakeUpstream, gateway: GatewayFactory) -> None:
    await store_previous_get_input_items_delete("sqlite", upstream, gateway)


async def test_stored_responses_on_postgresql(pg_url: str, upstream: FakeUpstream, gateway: GatewayFactory) -> None:
    await store_previous_get_input_items_delete(pg_url, upstream, gateway)


async def store_previous_get_input_items_delete(
    store_url: str, upstream: FakeUpstream, gateway: GatewayFactory
) -> None:
    upstream.reply(Reply(body=chat_tool_body()), Reply(body=chat_text_stream(), content_type=SSE))
    gw = await gateway(config(upstream, store_url))
    async with oai(gw) as client:
        turn1 = await client.responses.create(
            model="moonshot/kimi-k2.6",
            instructions="Be brief.",
            input=[USER],  # type: ignore[list-item]
            tools=[EXEC_TOOL],  # type: ignore[list-item]
            reasoning={"effort": "medium", "summary": "auto"},
            store=True,
        )
        call = turn1.output[-1]
        assert call.type == "function_call"
        got = await client.responses.retrieve(turn1.id)
        assert got.id == turn1.id and [o.id for o in got.output] == [o.id for o in turn1.output]
        items = await client.responses.input_items.list(turn1.id)
        assert [i.type for i in items.data] == ["message"] and items.data[0].id
        async with client.responses.stream(
            model="moonshot/kimi-k2.6",
            previous_response_id=turn1.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "a b c"}],
            tools=[EXEC_TOOL],  # type: ignore[list-item]
            store=True,
        ) as stream:
            turn2 = await stream.get_final_response()
        assert turn2.output_text == ANSWER and turn2.previous_response_id == turn1.id
        sent = upstream.last.json
        assert "previous_response_id" not in sent
        roles = [m["role"] for m in sent["messages"]]
        assert roles == ["user", "assistant", "tool"]  # instructions are not carried over, as at OpenAI
        assert sent["messages"][1]["reasoning_content"] == REASONING  # sealed in the stored output
        assert sent["messages"][1]["tool_calls"][0]["id"] == call.call_id
        chain = await client.responses.input_items.list(turn2.id, order="asc")
        assert [i.type for i in chain.data] == ["message", "reasoning", "function_call", "function_call_output"]
        page = await client.responses.input_items.list(turn2.id, limit=2)
        assert [i.type for i in page.data] == ["function_call_output", "function_call"] and page.has_more
        deleted = await client.responses.delete(turn1.id)
        assert deleted is None or getattr(deleted, "deleted", True)
        with pytest.raises(openai.NotFoundError) as gone:
            await client.responses.retrieve(turn1.id)
        assert gone.value.response.json()["error"]["type"] == "not_found_error"
        with pytest.raises(openai.NotFoundError) as chained:
            await client.responses.create(model="moonshot/kimi-k2.6", previous_response_id=turn1.id, input="next")
        assert chained.value.response.json()["error"]["param"] == "previous_response_id"
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve("resp_unknown")
        assert (await client.responses.retrieve(turn2.id)).id == turn2.id
    assert len(upstream.seen) == 2  # a refused previous_response_id never reaches the upstream


async def test_a_key_reads_only_its_own_stored_responses(upstream: FakeUpstream, gateway: GatewayFactory) -> None:
    upstream.reply(Reply(body=chat_tool_body()))
    gw = await gateway(
        config(upstream, "sqlite", api_keys=["sk-gw-alice-1234", "sk-gw-bob-5678"], admin_key="sk-gw-admin-9999")
    )
    async with oai(gw, "sk-gw-alice-1234") as alice, oai(gw, "sk-gw-bob-5678") as bob, oai(gw, "nope") as nobody:
        mine = await alice.responses.create(model="moonshot/kimi-k2.6", input="hi")
        assert (await alice.responses.retrieve(mine.id)).id == mine.id
        with pytest.raises(openai.NotFoundError):
            await bob.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.create(model="moonshot/kimi-k2.6", previous_response_id=mine.id, input="x")
        with pytest.raises(openai.AuthenticationError):
            await nobody.responses.retrieve(mine.id)


async def test_without_a_usage_store_store_and_previous_response_id_are_refused_clearly(
    upstream: FakeUpstream, gateway: GatewayFactory
) -> None:
    upstream.reply(Reply(body=chat_tool_body()))
    gw = await gateway(config(upstream, "off"))
    async with oai(gw) as client:
        plain = await client.responses.create(model="moonshot/kimi-k2.6", input="hi")  # store unsaid: not kept
        assert plain.output[-1].type == "function_call"
        with pytest.raises(openai.BadRequestError) as stored:
            await client.responses.create(model="moonshot/kimi-k2.6", input="hi", store=True)
        assert "usage_store" in stored.value.message
        with pytest.raises(openai.BadRequestError) as chained:
            await client.responses.create(model="moonshot/kimi-k2.6", input="hi", previous_response_id=plain.id)
        assert chained.value.response.json()["error"]["param"] == "previous_response_id"
        with pytest.raises(openai.BadRequestError):
            await client.responses.retrieve(plain.id)
    assert len(upstream.seen) == 1


async def test_stored_responses_past_the_retention_are_deleted_by_a_later_write(tmp_path: Path) -> None:
    db = await open_database(f"sqlite://{tmp_path / 'usage.db'}")
    try:

        async def database() -> Database:
            return db

        store = ResponseStore(database, retention_days=30)
        assert await store.get("resp_none") is None  # creates the table
        old = time.time() - 31 * 86400
        await db.execute(
            "INSERT INTO stored_responses (id, created, key_name, input, response) VALUES (?, ?, ?, ?, ?)",
            ["resp_old", old, None, "[]", '{"id": "resp_old"}'],
        )
        store.save(lambda: Stored("resp_new", None, [USER], {"id": "resp_new", "object": "response", "output": []}))
        await store.close()
        assert await store.get("resp_old") is None
        kept = await store.get("resp_new")
        assert kept is not None and kept.input == [USER] and kept.response["id"] == "resp_new"
        assert await store.delete("resp_new") and await store.get("resp_new") is None
    finally:
        await db.close()
