"""The access log: one line per request on the `dragoman.access` logger (INFO, shown by default).

    POST /v1/messages 200 front=anthropic model=claude-sonnet-4-6 provider=anthropic
      upstream=claude-sonnet-4-6 latency_ms=812.4 ttfb_ms=301.2 in=1200 out=300 cache_read=8000
      cache_write=0 reasoning=40 attempts=1 key=team-a id=019a3c... end=ok          (one line, logfmt)

With `server.log_format = "json"` the same fields are the keys of a JSON object. Completion
requests are logged from their Outcome (a sink); every other endpoint (models, count_tokens, usage,
refusals of unknown paths) by the server's middleware with what it knows (`plain`). `/health` and
`/metrics` are logged at DEBUG only: probes and scrapes would drown the rest.

Never a key or a body: only names and numbers, and the client's own strings (path, model, error
text) through `trip.plan.safe` (control characters escaped, length bounded, anything key-shaped
redacted). Nothing is formatted when the logger would drop the line.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from dragoman.observe.logs import ACCESS_LOGGER, BufferedStderr, JsonFormatter, direct_handler
from dragoman.trip.outcome import Outcome
from dragoman.trip.plan import safe

if TYPE_CHECKING:
    from dragoman.gateway import Gateway


QUIET_PATHS = frozenset({"/health", "/metrics"})
_encode = msgspec.json.Encoder()
_PLAIN = re.compile(r'[^\s"=\\]+')


def logfmt(value: str) -> str:
    """A logfmt value: as it is, or quoted when it holds a space, a quote, `=` or a backslash."""
    if _PLAIN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_KEYISH = ("sk-", "pk-", "rk-", "bearer", "api")  # what `errors.redact` looks for


def clean(text: str, limit: int = 200) -> str:
    """`safe(text)`, with the common case (short, printable ASCII, nothing shaped like a key) at
    the cost of a few substring tests."""
    if len(text) <= limit and text.isascii() and text.isprintable():
        low = text.lower()
        if not any(mark in low for mark in _KEYISH):
            return text
    return safe(text, limit)


_PLAIN_SAFE = re.compile(r"[!#-<>-\[\]-~]+")  # printable ASCII but space, quote, `=` and backslash


_values: dict[tuple[str, int], str] = {}  # paths, model and provider names repeat: escaped once


def value(text: str, limit: int = 200) -> str:
    """`logfmt(clean(text))`, remembered for the strings that come back request after request."""
    known = _values.get((text, limit))
    if known is not None:
        return known
    shown = text
    if not (len(text) <= limit and _PLAIN_SAFE.fullmatch(text) and not any(m in text.lower() for m in _KEYISH)):
        shown = logfmt(safe(text, limit))
    if len(_values) >= 4096:
        _values.clear()
    _values[(text, limit)] = shown
    return shown


def _where(o: Outcome) -> tuple[str | None, str | None]:
    """The provider and model that answered, or (no answer) where the trip was last tried."""
    if o.provider is None and o.attempts:
        return o.attempts[-1].provider, o.attempts[-1].model
    return o.provider, o.upstream_model


def fields_of(o: Outcome) -> dict[str, Any]:
    """The line's fields, in order; absent ones left out (the JSON format's object)."""
    fields: dict[str, Any] = {"method": o.method, "path": clean(o.path), "status": o.status}
    if o.front:
        fields["front"] = o.front
    if o.model is not None:
        fields["model"] = clean(o.model, 120)
    provider, upstream = _where(o)
    if provider:
        fields["provider"] = provider
    if upstream and upstream != o.model:
        fields["upstream"] = clean(upstream, 120)
    fields["latency_ms"] = round(o.latency_ms, 1)
    if o.ttfb_ms is not None:
        fields["ttfb_ms"] = round(o.ttfb_ms, 1)
    u = o.usage
    if u is not None:
        fields["in"] = u.input_tokens
        fields["out"] = u.output_tokens
        fields["cache_read"] = u.cache_read_tokens
        fields["cache_write"] = u.cache_write_tokens
        if u.reasoning_tokens is not None:
            fields["reasoning"] = u.reasoning_tokens
    if o.cost_usd is not None:
        fields["cost_usd"] = round(o.cost_usd, 6)
    fields["attempts"] = len(o.attempts)
    if o.key_name:
        fields["key"] = o.key_name
    fields["id"] = o.request_id
    fields["end"] = o.end
    if o.error_type:
        fields["error_type"] = o.error_type
    if o.error:
        fields["error"] = clean(o.error, 300)
    return fields


_heads: dict[tuple[str, str, int, str | None, str | None, str | None, str | None], str] = {}


def _head(o: Outcome) -> str:
    """The line up to its numbers (`POST /v1/messages 200 front=… model=… provider=… upstream=…`):
    the same few combinations come back request after request, so each is made once."""
    provider, upstream = _where(o)
    slot = (o.method, o.path, o.status, o.front, o.model, provider, upstream)
    known = _heads.get(slot)
    if known is not None:
        return known
    parts = [o.method, value(o.path), str(o.status)]
    if o.front:
        parts.append(f"front={o.front}")
    if o.model is not None:
        parts.append("model=" + value(o.model, 120))
    if provider:
        parts.append("provider=" + value(provider))
    if upstream and upstream != o.model:
        parts.append("upstream=" + value(upstream, 120))
    head = " ".join(parts)
    if len(_heads) >= 4096:
        _heads.clear()
    _heads[slot] = head
    return head


def text_line(o: Outcome) -> str:
    """The same fields as one logfmt line, built directly (one f-string of optional pieces): this
    runs once per request."""
    u = o.usage
    if u is None:
        usage = ""
    elif u.reasoning_tokens is None:
        usage = (
            f" in={u.input_tokens} out={u.output_tokens} cache_read={u.cache_read_tokens}"
            f" cache_write={u.cache_write_tokens}"
        )
    else:
        usage = (
            f" in={u.input_tokens} out={u.output_tokens} cache_read={u.cache_read_tokens}"
            f" cache_write={u.cache_write_tokens} reasoning={u.reasoning_tokens}"
        )
    return (
        f"{_head(o)} latency_ms={o.latency_ms:.1f}"
        f"{f' ttfb_ms={o.ttfb_ms:.1f}' if o.ttfb_ms is not None else ''}{usage}"
        f"{f' cost_usd={o.cost_usd:.6f}' if o.cost_usd is not None else ''}"
        f" attempts={len(o.attempts)}{' key=' + value(o.key_name) if o.key_name else ''}"
        f" id={o.request_id} end={o.end}"
        f"{f' error_type={o.error_type}' if o.error_type else ''}"
        f"{' error=' + logfmt(clean(o.error, 300)) if o.error else ''}"  # not remembered: errors vary
    )


class AccessLog:
    name = "access_log"

    def __init__(self, json: bool = False) -> None:
        self.json = json
        self.log = logging.getLogger(ACCESS_LOGGER)
        self._second = -1
        self._date = ""
        # asked again once a second, not per line: whether INFO is on, and the handler lines may
        # be written to directly (the default setup; see `logs.direct_handler`)
        self._enabled = False
        self._direct: BufferedStderr | None = None
        self._text_direct = False

    def _tick(self, second: int) -> None:
        self._second = second
        self._date = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        self._enabled = self.log.isEnabledFor(logging.INFO)
        self._direct = direct = direct_handler(self.log)
        self._text_direct = direct is not None and not self.json and not isinstance(direct.formatter, JsonFormatter)

    def record(self, outcome: Outcome) -> None:
        self.record_batch([outcome])

    def record_batch(self, outcomes: list[Outcome]) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._tick(second)
        if not self._enabled:
            return
        if self._text_direct:
            # the default: the lines as the text formatter would make them, a step's in one write
            direct = self._direct
            assert direct is not None
            head = f"{self._date},{int((now - second) * 1000):03d} INFO {ACCESS_LOGGER}: "
            direct.write_text("".join([f"{head}{text_line(outcome)}\n" for outcome in outcomes]))
        elif self.json:
            for outcome in outcomes:
                fields = fields_of(outcome)
                self._emit(logging.INFO, f"{outcome.method} {fields['path']} {outcome.status}", fields)
        else:
            for outcome in outcomes:
                self._emit(logging.INFO, text_line(outcome), None)

    def plain(self, method: str, path: str, status: int, latency_ms: float) -> None:
        """A request that is not a completion (no Outcome)."""
        level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
        if not self.log.isEnabledFor(level):
            return
        shown = clean(path)
        if self.json:
            fields = {"method": method, "path": shown, "status": status, "latency_ms": round(latency_ms, 1)}
            self._emit(level, f"{method} {shown} {status}", fields)
        else:
            self._emit(level, f"{method} {logfmt(shown)} {status} latency_ms={latency_ms:.1f}", None)

    def _emit(self, level: int, message: str, fields: dict[str, Any] | None) -> None:
        direct = direct_handler(self.log)
        if direct is not None:
            # the default setup: the line as its formatter would make it, without a LogRecord
            now = time.time()
            if isinstance(direct.formatter, JsonFormatter):
                line = _encode.encode(
                    {
                        "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
                        "level": logging.getLevelName(level).lower(),
                        "logger": self.log.name,
                        "message": message,
                        **(fields or {}),
                    }
                ).decode()
            else:
                stamp = self._stamp(now)
                line = f"{stamp} {logging.getLevelName(level)} {self.log.name}: {message}"
            direct.write_line(line)
            return
        # made and handled directly: Logger.info would walk the stack to find the caller, for nothing
        record = self.log.makeRecord(self.log.name, level, "access", 0, message, (), None)
        if fields is not None:
            record.fields = fields
        self.log.handle(record)

    def _stamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._tick(second)
        return f"{self._date},{int((now - second) * 1000):03d}"

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


def make_sink(gw: Gateway) -> AccessLog | None:
    server = gw.config.server
    if not server.access_log:
        return None
    return AccessLog(json=server.log_format == "json")


def find(gw: Gateway) -> AccessLog | None:
    return next((s for s in gw.sinks.sinks if isinstance(s, AccessLog)), None)
