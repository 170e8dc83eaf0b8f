"""exchange: one attempt against one target — send, read the head, and bring the answer back in the
client's dialect. The one place that sees the status, the first byte, the usage and the end of a
reply, on all four paths:

    unary   same dialect:  bytes untouched (a partial decode reads usage)   | different: codecs
    stream  same dialect:  bytes untouched, line by line (a tap reads usage) | different: codecs

Until the first byte goes to the client an attempt can fail cleanly (the policy may retry or fall
back); after it, a failure is a proper error event in the client's dialect and the trip is over.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import msgspec

from dragoman import dialects
from dragoman.accumulate import Accumulator
from dragoman.canonical import MessageDelta, MessageStart, PartStart, Reasoning, Response, StreamError, ToolCall, Usage
from dragoman.dialects.base import Codec, Tally
from dragoman.errors import GatewayError, Overloaded, UpstreamError, for_anthropic_type, redact
from dragoman.trip.plan import Shaped, Trip
from dragoman.trip.reply import ClientGone, Reply

if TYPE_CHECKING:
    from dragoman.gateway import Gateway

log = logging.getLogger("dragoman.exchange")

_decode = msgspec.json.Decoder()
_encode = msgspec.json.Encoder()

# Upstream reply headers worth handing to the client.
PASS_HEADERS = ("retry-after", "retry-after-ms", "x-request-id", "request-id", "x-should-retry")
PASS_PREFIXES = ("anthropic-ratelimit-", "x-ratelimit-")
JSON = "application/json"
SHUTTING_DOWN = "the gateway is shutting down"
MAX_PENDING = 1024 * 1024  # bytes of a partial line a pass-through stream holds back
ANSWER_KEYS = ("choices", "content", "message", "output")  # where each dialect's answer sits


class Result(msgspec.Struct):
    """How one attempt went, for the policy."""

    ok: bool
    committed: bool = False  # bytes reached the client: no retry, no fallback
    error: GatewayError | None = None
    status: int | None = None  # the upstream's HTTP status; None when no answer came
    retry_after: float | None = None  # seconds, from retry-after-ms / retry-after
    should_retry: bool | None = None  # the upstream's x-should-retry
    latency_ms: float = 0.0


# the header names of an answer, in order -> those passed on: a provider answers with the same
# names every time (20 or so, a few passed), so each answer costs one lookup, not a test per name
_PASSED: dict[tuple[str, ...], tuple[str, ...]] = {}
PASSED_MAX = 1024


def reply_headers(upstream: dict[str, str]) -> dict[str, str]:
    """The upstream headers worth passing on (the transport's names are lower-case already)."""
    names = tuple(upstream)
    keep = _PASSED.get(names)
    if keep is None:
        keep = tuple(name for name in names if name in PASS_HEADERS or name.startswith(PASS_PREFIXES))
        if len(_PASSED) >= PASSED_MAX:
            _PASSED.clear()
        _PASSED[names] = keep
    if not keep:
        return {}
    get = dict.__getitem__  # (the transport's `Headers` would lower-case each name again)
    return {name: get(upstream, name) for name in keep}


def retry_hints(headers: Any) -> tuple[float | None, bool | None]:
    """(retry-after seconds, x-should-retry) as the official SDKs read them."""
    after: float | None = None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            after = float(ms) / 1000
        except ValueError:
            after = None
    if after is None:
        value = headers.get("retry-after")
        if value:
            try:
                after = float(value)
            except ValueError:
                after = _http_date(value)
    flag = headers.get("x-should-retry")
    should = None if flag is None else flag.strip().lower() == "true"
    return (after if after is None or after >= 0 else None), should


def _http_date(value: str) -> float | None:
    """Seconds until an HTTP date; None for anything else (an upstream's odd header is no reason to
    fail the request: the policy's own backoff applies)."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322, not this machine's local time
        when = when.replace(tzinfo=datetime.UTC)
    return max(when.timestamp() - time.time(), 0.0)


def upstream_error(shaped: Shaped, status: int, headers: Any, body: bytes, secrets: tuple[str, ...]) -> GatewayError:
    provider = shaped.target.provider
    error = dialects.get(shaped.dialect).decode_error(status, body)
    error = provider.hooks.map_error(provider, status, error)
    error.message = redact(error.message, secrets)
    kept = reply_headers(headers)
    if kept:
        error.headers = {**kept, **error.headers}
    return error


@functools.lru_cache(maxsize=256)
def _secret_bytes(secrets: tuple[str, ...]) -> tuple[bytes, ...]:
    """The keys a pass-through stream is searched for, as bytes."""
    return tuple(s.encode() for s in secrets if len(s) >= 4)


def stream_error(event: StreamError) -> GatewayError:
    return for_anthropic_type(event.error_type)(event.message, status=event.status)


async def remember(gw: Gateway, origin: str, response: Response) -> None:
    """Key each reasoning run by the tool calls that follow it."""
    pending: list[Reasoning] = []
    for part in response.content:
        if isinstance(part, Reasoning):
            if part.origin is None:
                part.origin = origin
            pending.append(part)
        elif isinstance(part, ToolCall) and pending:
            ids = [p.id for p in response.content if isinstance(p, ToolCall)]
            await gw.reasoning.remember(ids, pending)
            return


class Exchange:
    """One attempt. `run` never raises a GatewayError: failures come back in the `Result`."""

    __slots__ = (
        "_secrets",
        "attempt",
        "codec",
        "context",
        "encoder",
        "gw",
        "head_ms",
        "head_status",
        "key",
        "provider",
        "reply",
        "sent_at",
        "shaped",
        "trip",
    )

    def __init__(self, gw: Gateway, trip: Trip, shaped: Shaped, key: int, reply: Reply, attempt: int) -> None:
        self.gw = gw
        self.trip = trip
        self.shaped = shaped
        self.key = key
        self.reply = reply
        self.attempt = attempt  # 1-based, over the whole trip
        self.provider = shaped.target.provider
        self.codec: Codec = shaped.codec
        self._secrets: tuple[str, ...] | None = None
        self.sent_at = 0.0
        self.head_status: int | None = None  # the upstream's status, once its head came
        self.head_ms = 0.0
        context = trip.context
        if context.sealer is not None:  # reasoning sealed for the client is stamped with where it came from
            context = replace(context, origin=self.provider.id)
        self.context = context
        self.encoder: Any = None  # a translated stream's encoder: a failure ends the same stream

    @property
    def secrets(self) -> tuple[str, ...]:
        """What is redacted from what the upstream says (asked for only when it is read; not a
        functools.cached_property, whose lock costs more than the call)."""
        found = self._secrets
        if found is None:
            found = self._secrets = self.provider.secrets(self.trip.caller.client_key)
        return found

    # -- the attempt ----------------------------------------------------------------------------

    async def run(self) -> Result:
        shaped, provider = self.shaped, self.provider
        headers = {**shaped.headers, **provider.auth_headers(self.trip.caller.client_key, self.key)}
        self.sent_at = time.perf_counter()
        try:
            up = await self.gw.upstream.send(
                "POST",
                shaped.url,
                headers,
                shaped.payload,
                connect_timeout=provider.connect_timeout,
                first_byte_timeout=provider.first_byte_timeout,
                read_timeout=provider.timeout,
            )
        except GatewayError as exc:
            return self._failed(self._named(exc))
        self.head_status, self.head_ms = up.status, (time.perf_counter() - self.sent_at) * 1000
        try:
            if up.status >= 400:
                try:
                    body = await up.read()
                except GatewayError as exc:
                    return self._failed(self._named(exc), up.status)
                error = upstream_error(shaped, up.status, up.headers, body, self.secrets)
                after, should = retry_hints(up.headers)
                return self._failed(error, up.status, after, should)
            result = await (self._stream(up) if self.trip.stream else self._unary(up))
            if result.committed:
                result.latency_ms = self.head_ms  # an answer came: its latency is until its head
            return result
        finally:
            up.close()

    def _named(self, exc: GatewayError) -> GatewayError:
        """Transport errors say what failed; the provider's name says where."""
        exc.message = f"{self.provider.id}: {exc.message}"
        return exc

    def _failed(
        self,
        error: GatewayError,
        status: int | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ) -> Result:
        return Result(
            ok=False,
            error=error,
            status=status,
            retry_after=retry_after,
            should_retry=should_retry,
            latency_ms=(time.perf_counter() - self.sent_at) * 1000,
        )

    def _head(self, upstream_headers: Any) -> dict[str, str]:
        """The reply's headers: the upstream's worth passing on, and what the gateway did."""
        out = reply_headers(upstream_headers)
        out["x-dragoman-provider"] = self.provider.id
        out["x-dragoman-attempts"] = str(self.attempt)
        out["x-dragoman-latency-ms"] = str(int((time.perf_counter() - self.trip.started) * 1000 + 0.5))
        if self.trip.rule:
            out["x-dragoman-rule"] = self.trip.rule
        return out

    def _answered(self, status: int, tally: Tally | None) -> None:
        """The outcome of the attempt that answered."""
        out = self.trip.outcome  # (the policy named the provider, model and dialect before the attempt)
        out.status = status
        out.ttfb_ms = (time.perf_counter() - self.trip.started) * 1000
        if tally is not None:
            self._count(tally)

    def _count(self, tally: Tally) -> None:
        out = self.trip.outcome
        if tally.usage is not None:
            out.usage = tally.usage
        if tally.stop_reason is not None:
            out.stop_reason = tally.stop_reason
        out.tool_calls = tally.tool_calls

    # -- unary ----------------------------------------------------------------------------------

    async def _unary(self, up: Any) -> Result:
        raw = up.ready()  # (a small answer has usually all arrived with its head)
        if raw is None:
            try:
                raw = await up.read()
            except GatewayError as exc:
                return self._failed(self._named(exc), up.status)
        shaped = self.shaped
        headers = self._head(up.headers)
        if shaped.same_dialect and not shaped.remember:
            try:
                tally = self.codec.summarize(raw, usage=self.gw.sinks.active)
            except msgspec.DecodeError:
                return self._failed(UpstreamError(f"{self.provider.id} returned a reply that is not JSON"), up.status)
            if tally.error is not None:
                return self._failed(upstream_error(shaped, 502, up.headers, raw, self.secrets), up.status)
            self._answered(up.status, tally)
            await self.reply.send(up.status, headers, raw, JSON)
            return Result(ok=True, committed=True, status=up.status)
        try:
            body = _decode.decode(raw)
        except msgspec.DecodeError:
            return self._failed(UpstreamError(f"{self.provider.id} returned a reply that is not JSON"), up.status)
        if not isinstance(body, dict):
            return self._failed(
                UpstreamError(f"{self.provider.id} returned a reply that is not a JSON object"), up.status
            )
        if body.get("error") is not None and not any(key in body for key in ANSWER_KEYS):
            # an error envelope on a 2xx (some OpenAI-compatible servers do this); a Responses body
            # always carries `"error": null`
            return self._failed(upstream_error(shaped, 502, up.headers, raw, self.secrets), up.status)
        try:
            response = self.codec.decode_response(body)
        except GatewayError as exc:
            return self._failed(self._named(exc), up.status)
        if shaped.remember:
            await remember(self.gw, self.provider.id, response)
        tools = sum(1 for p in response.content if isinstance(p, ToolCall))
        self._answered(up.status, Tally(usage=response.usage, stop_reason=response.stop_reason, tool_calls=tools))
        if shaped.same_dialect:
            await self.reply.send(up.status, headers, raw, JSON)
        else:
            client = dialects.get(self.trip.front)
            out = client.encode_response(response, self.context)
            await self.reply.send(200, headers, _encode.encode(out), JSON)
        return Result(ok=True, committed=True, status=up.status)

    # -- streams --------------------------------------------------------------------------------

    async def _stream(self, up: Any) -> Result:
        chunks = up.chunks()
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            return self._failed(UpstreamError(f"{self.provider.id} sent an empty stream"), up.status)
        except GatewayError as exc:
            return self._failed(self._named(exc), up.status)  # nothing reached the client: retryable
        client = dialects.get(self.trip.front)
        self._answered(200, None)
        writer = _Writer(self.reply, client.framing)
        try:
            await self.reply.start(200, self._head(up.headers), client.stream_content_type)
            if self.shaped.passthrough:
                failure = await self._pass(first, up, writer)
            else:
                failure = await self._translate(first, up, writer)
            if failure is not None:
                self.trip.outcome.end = "broken"
                await self._fail_stream(writer, failure)
        except ClientGone:
            self.trip.outcome.end = "client_gone"
            return Result(ok=True, committed=True, status=200)
        except asyncio.CancelledError:
            if self.trip.aborted is None:
                self.trip.outcome.end = "client_gone"  # the server cancels a handler whose client left
                raise
            self.trip.outcome.end = "shutdown"
            try:
                await self._fail_stream(writer, Overloaded(SHUTTING_DOWN, status=503))
            except ClientGone:
                pass
            return Result(ok=True, committed=True, status=200)
        if failure is not None:
            return Result(ok=False, committed=True, error=failure, status=200)
        return Result(ok=True, committed=True, status=200)

    async def _next(self, chunks: Any) -> bytes:
        try:
            chunk: bytes = await anext(chunks)
        except GatewayError as exc:
            raise self._named(exc) from None
        return chunk

    async def _fail_stream(self, writer: _Writer, error: GatewayError) -> None:
        error.message = redact(error.message, self.secrets)
        self.trip.outcome.error_type = error.anthropic_type
        self.trip.outcome.error = error.message
        encoder = self.encoder or dialects.get(self.trip.front).stream_encoder(context=self.context)
        await writer.close_line()
        await writer.raw(encoder.encode_error(error))
        await self.reply.end()

    async def _pass(self, first: bytes, up: Any, writer: _Writer) -> GatewayError | None:
        """Bytes as they arrive, whole events at a time (so a cut never leaves half an event before
        the error event, and a key never hides across two writes); a tap reads usage on the way.
        The last chunk goes out with the end of the reply; on success the reply is ended here."""
        shaped = self.shaped
        # with no sink, nobody reads the usage: the tap only tells whether the stream was whole
        tap = self.codec.stream_tap(usage=self.gw.sinks.active)
        decoder = self.codec.stream_decoder() if shaped.remember else None
        acc = Accumulator() if decoder is not None else None
        writer.secrets = (
            _secret_bytes(self.secrets)  # the configured keys: the same on every request
            if not self.provider.client_auth
            else tuple(s.encode() for s in self.secrets if len(s) >= 4)  # a client's key is not kept
        )
        if shaped.strip_usage:
            writer.strip = self.codec.strip_stream_usage
        failure: GatewayError | None = None
        chunk = first
        last = b""  # the last chunk, not written yet
        try:
            while True:
                tap.feed(chunk)
                if decoder is not None and acc is not None:
                    for event in decoder.feed(chunk):
                        acc.feed(event)
                if up.exhausted:
                    last = chunk
                    break
                await writer.lines(chunk)
                chunk = await self._next(up)
        except StopAsyncIteration:
            pass
        except GatewayError as exc:
            failure = exc
        except (ClientGone, asyncio.CancelledError):
            self._count(tap.finish())  # the client left, or the gateway is ending it: what was seen counts
            raise
        told: Usage | None = None
        if decoder is not None and acc is not None:
            for event in decoder.close():
                acc.feed(event)
            response = acc.finish()
            await remember(self.gw, self.provider.id, response)  # before the end: the next turn may follow it at once
            told = response.usage
        if failure is None and not tap.ended():
            failure = UpstreamError(f"{self.provider.id} ended the stream before it was complete")
        try:
            if failure is None:
                await writer.end(last)
            elif last:
                await writer.lines(last)
        except BaseException:
            self._count(tap.finish())
            raise
        # what the ledger reads (usage, finish, an error event) once the client has its end
        tally = tap.finish()
        if tally.usage is None:  # the tap reads what is billed; the decoder what the client is told
            tally.usage = told
        self._count(tally)
        if failure is None and tally.error is not None:
            self.trip.outcome.end = "broken"  # the upstream's own error event went through, redacted
            self.trip.outcome.error_type = "api_error"
            self.trip.outcome.error = redact(tally.error, self.secrets)
        return failure

    async def _translate(self, first: bytes, up: Any, writer: _Writer) -> GatewayError | None:
        """Decoded, translated and encoded event by event; on success the reply is ended here, the
        last events with it."""
        decoder = self.codec.stream_decoder()
        encoder = self.encoder = dialects.get(self.trip.front).stream_encoder(context=self.context)
        acc = Accumulator() if self.shaped.remember else None
        outcome = self.trip.outcome
        tools = 0

        def translate(events: list[Any]) -> bytes:
            nonlocal tools
            out = []
            for event in events:
                if isinstance(event, StreamError):
                    raise stream_error(event)
                if isinstance(event, MessageDelta):
                    if event.usage is not None:
                        outcome.usage = event.usage
                    if event.stop_reason is not None:
                        outcome.stop_reason = event.stop_reason
                elif isinstance(event, MessageStart) and event.usage is not None and outcome.usage is None:
                    outcome.usage = event.usage  # what was seen, should the stream end before its report
                elif isinstance(event, PartStart) and isinstance(event.part, ToolCall):
                    tools += 1
                if acc is not None:
                    acc.feed(event)
                out.append(encoder.encode(event))
            return b"".join(out)

        failure: GatewayError | None = None
        chunk = first
        data = b""
        try:
            while True:
                data = translate(decoder.feed(chunk))
                if up.exhausted:
                    break
                if data or not writer.wrote:  # an empty write sends the head on its own
                    await writer.raw(data)
                data = b""
                chunk = await self._next(up)
        except StopAsyncIteration:
            pass
        except GatewayError as exc:
            failure = exc  # the upstream's own error event, or the transport's (named)
        finally:
            outcome.tool_calls = tools  # also when the client left
        if failure is None:
            try:
                data += translate(decoder.close())
            except GatewayError as exc:
                failure = exc
            outcome.tool_calls = tools
        if acc is not None:
            await remember(self.gw, self.provider.id, acc.finish())
        if failure is None:
            await writer.end(data, raw=True)
        elif data:
            await writer.raw(data)
        return failure


class _Writer:
    """Writes a stream to the client; for pass-through, whole events (NDJSON: lines) at a time."""

    __slots__ = ("_pending", "_sep", "_tail", "reply", "secrets", "strip", "wrote")

    def __init__(self, reply: Reply, framing: str) -> None:
        self.reply = reply
        self._sep = b"\n\n" if framing == "sse" else b"\n"  # what ends an event
        self._pending = b""
        self._tail = self._sep  # the last write (its end): the stream starts at an event boundary
        self.secrets: tuple[bytes, ...] = ()
        self.strip: Callable[[bytes], bytes] | None = None  # takes out usage the client did not ask for
        self.wrote = False  # anything (the head, at least) went to the client

    async def raw(self, data: bytes) -> None:
        self.wrote = True
        await self.reply.write(data)
        self._note(data)

    def _note(self, data: bytes) -> None:
        # (what ends the last write, kept whole: only its last two bytes are ever read)
        if len(data) >= 2:
            self._tail = data
        elif data:
            self._tail = (self._tail[-1:] + data)[-2:]

    def _boundary(self, buf: bytes) -> int:
        """Where the last whole event ends in `buf` (0: none yet). An SSE event is held back until
        its blank line: a cut between its `event:` and `data:` lines would otherwise leave a named
        event without data, which the SDKs try to parse as JSON."""
        if self._sep == b"\n":
            return buf.rfind(b"\n") + 1
        at = buf.rfind(b"\n\n")
        end = at + 2 if at >= 0 else 0
        at = buf.rfind(b"\n\r\n", max(end - 3, 0))  # CRLF framing
        return at + 3 if at >= 0 and at + 3 > end else end

    def _events(self, chunk: bytes) -> bytes:
        """The whole events that `chunk` completes, redacted (and stripped); the rest is held back."""
        if not self._pending and chunk.endswith(self._sep):
            buf = chunk  # the usual chunk: whole events, nothing held back
        else:
            buf = self._pending + chunk if self._pending else chunk
            cut = self._boundary(buf)
            if cut == 0 and len(buf) <= MAX_PENDING:
                self._pending = buf
                return b""
            if cut == 0:
                cut = len(buf)  # a line this long is not an event: pass it on rather than hold it
            if cut < len(buf):
                self._pending = buf[cut:]
                buf = buf[:cut]
            else:
                self._pending = b""
        for secret in self.secrets:
            if secret in buf:
                buf = buf.replace(secret, b"[redacted]")
        if self.strip is not None:
            buf = self.strip(buf)
        return buf

    async def lines(self, chunk: bytes) -> None:
        buf = self._events(chunk)
        if buf or not self.wrote:  # an empty write sends the head on its own
            await self.raw(buf)

    async def end(self, last: bytes, raw: bool = False) -> None:
        """The last bytes (whole events of them, or `raw` as they are), a last line without a
        newline, and the end of the reply, in one write."""
        data = last if raw else self._events(last) if last else b""
        if self._pending:
            rest, self._pending = self._pending, b""
            for secret in self.secrets:
                rest = rest.replace(secret, b"[redacted]")
            data += rest
        self.wrote = True
        await self.reply.end(data)
        self._note(data)

    async def close_line(self) -> None:
        """Before an error event: drop a partial event, end one an over-long line left open."""
        self._pending = b""
        if self._tail.endswith(b"\n\n") or (self._sep == b"\n" and self._tail.endswith(b"\n")):
            return
        await self.raw(b"\n" if self._tail.endswith(b"\n") else self._sep)
