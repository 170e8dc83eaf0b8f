"""Between `Outcome` records and the ledger's rows, both ways.

Writing: `clean` keeps secrets and (unless the operator opted in) bodies out of anything the
ledger keeps, journal included; `to_row` flattens one outcome into the `COLUMNS` order. Reading:
`to_record` gives back a dict with exactly the Outcome's field names (`usage` nested), every field
present, so `dragoman logs --json` is the Outcome contract.
"""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.canonical import Usage
from dragoman.errors import redact
from dragoman.store.ledger.schema import COLUMNS
from dragoman.trip.outcome import Attempt, Outcome

_attempts_encoder = msgspec.json.Encoder()
_attempts_decoder = msgspec.json.Decoder(list[Attempt])
_OUTCOME_FIELDS = tuple(f.name for f in msgspec.structs.fields(Outcome))
_ATTEMPT_FIELDS = tuple(f.name for f in msgspec.structs.fields(Attempt))
_USAGE_FIELDS = tuple(f.name for f in msgspec.structs.fields(Usage))


def clean(outcome: Outcome, log_bodies: bool, secrets: tuple[str, ...]) -> Outcome:
    """The outcome as the ledger may keep it: bodies only when opted in, and redacted."""
    if outcome.error is None and outcome.request_body is None and outcome.response_body is None:
        for attempt in outcome.attempts:
            if attempt.error:
                break
        else:
            return outcome  # the usual success: nothing to take out or redact
    request_body = response_body = None
    if log_bodies:
        request_body = redact(outcome.request_body, secrets) if outcome.request_body else outcome.request_body
        response_body = redact(outcome.response_body, secrets) if outcome.response_body else outcome.response_body
    error = redact(outcome.error, secrets) if outcome.error else outcome.error
    attempts = outcome.attempts
    for attempt in attempts:  # (a loop, not any() over a generator: one attempt is the usual)
        if attempt.error:
            attempts = [msgspec.structs.replace(a, error=redact(a.error, secrets)) if a.error else a for a in attempts]
            break
    if (
        request_body is outcome.request_body
        and response_body is outcome.response_body
        and error is outcome.error
        and attempts is outcome.attempts
    ):
        return outcome  # the common case: nothing to change, nothing copied
    return msgspec.structs.replace(
        outcome, request_body=request_body, response_body=response_body, error=error, attempts=attempts
    )


def _layout() -> tuple[int, int]:
    """Where `attempts` and `usage` sit among the Outcome's fields, checked against the columns:
    `to_row` slices the Outcome's own tuple, so the two orders must agree (they do by design: the
    columns are the fields, `usage` spread into its counts)."""
    fields = list(_OUTCOME_FIELDS)
    at, use = fields.index("attempts"), fields.index("usage")
    spread = [*fields[:use], *_USAGE_FIELDS, *fields[use + 1 :]]
    names = ["end" if c.name == "end_reason" else c.name for c in COLUMNS]
    if spread != names:
        raise RuntimeError("ledger columns and Outcome fields disagree; to_row must be updated")
    return at, use


_AT, _USE = _layout()
_NO_USAGE = (None,) * len(_USAGE_FIELDS)


def to_row(o: Outcome) -> tuple[Any, ...]:
    """One outcome in `schema.COLUMNS` order: its own fields in order, `attempts` as JSON and
    `usage` spread into its counts (sliced out of one C-level tuple, not read field by field)."""
    t = msgspec.structs.astuple(o)
    u = o.usage
    attempts = _attempts_encoder.encode(o.attempts).decode() if o.attempts else None
    usage = msgspec.structs.astuple(u) if u is not None else _NO_USAGE
    return (*t[:_AT], attempts, *t[_AT + 1 : _USE], *usage, *t[_USE + 1 :])


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)  # SQLite keeps booleans as 0/1


def to_record(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as a dict keyed by the Outcome's field names."""
    record = {name: row.get(name) for name in _OUTCOME_FIELDS}
    record["end"] = row.get("end_reason")
    record["passthrough"] = _bool(row.get("passthrough"))
    record["stream"] = bool(row.get("stream"))
    record["tool_calls"] = row.get("tool_calls") or 0
    raw = row.get("attempts")
    attempts = _attempts_decoder.decode(raw) if raw else []
    record["attempts"] = [{name: getattr(a, name) for name in _ATTEMPT_FIELDS} for a in attempts]
    if row.get("input_tokens") is None:
        record["usage"] = None
    else:
        usage = {name: row.get(name) for name in _USAGE_FIELDS}
        for name in _USAGE_FIELDS:
            if name != "reasoning_tokens" and usage[name] is None:
                usage[name] = 0
        record["usage"] = usage
    return record
