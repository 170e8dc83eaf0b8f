"""Sealed reasoning: authenticated encryption of canonical Reasoning parts, and the secret every
instance of a deployment shares (from config, or generated once in the data directory)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from dragoman.canonical import Reasoning
from dragoman.config import ConfigError, parse
from dragoman.gateway import Gateway
from dragoman.seal import PREFIX, SECRET_FILE, AesGcmSealer, make_sealer, stored_secret

KIMI = Reasoning(
    'The user wants the weather in Florence; I\'ll call the tool.\n\n\tWith a tab, "quotes" and ünïcødé ✓',
    signature="EqQBCkgIARABGAIiQL+7pZ3c/qW0y1=",
    origin="kimi",
)
REDACTED = Reasoning(redacted="EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIw", origin="anthropic")
OPENROUTER = Reasoning(
    "",
    details=[{"type": "reasoning.encrypted", "data": "gAAAAB...", "format": "openai-responses-v1", "index": 0}],
    extra={"responses": {"id": "rs_1"}},
)
LONG = Reasoning("step " * 4000, signature="sig", origin="moonshot")  # compressed on the way


@pytest.mark.parametrize("parts", [[KIMI], [REDACTED], [OPENROUTER], [LONG], [KIMI, REDACTED]])
def test_sealed_parts_open_exactly(parts: list[Reasoning]) -> None:
    sealer = AesGcmSealer(b"deployment secret")
    blob = sealer.seal(parts)
    assert blob.startswith(PREFIX) and all(c.isalnum() or c in "-_." for c in blob)
    assert sealer.open(blob) == parts
    if parts == [LONG]:
        assert len(blob) < len(LONG.text) // 4  # 20 KB of reasoning replays as a small blob


def test_the_same_parts_seal_differently_each_time() -> None:
    sealer = AesGcmSealer(b"deployment secret")
    assert sealer.seal([KIMI]) != sealer.seal([KIMI])  # a fresh nonce each time


def test_a_changed_byte_anywhere_and_other_secrets_do_not_open() -> None:
    sealer = AesGcmSealer(b"deployment secret")
    blob = sealer.seal([KIMI])
    body = blob[len(PREFIX) :]
    for at in (0, len(body) // 2, len(body) - 1):
        flipped = "A" if body[at] != "A" else "B"
        assert sealer.open(PREFIX + body[:at] + flipped + body[at + 1 :]) is None
    assert sealer.open(blob[:-4]) is None  # truncated
    assert sealer.open(PREFIX + "!!not base64!!") is None
    assert sealer.open(PREFIX) is None
    assert sealer.open("gAAAAABpPDIUph8czEXzDePCV2lJ27wm7") is None  # OpenAI's, not ours
    assert AesGcmSealer(b"another deployment").open(blob) is None
    assert AesGcmSealer(b"deployment secret").open(blob) == [KIMI]  # same secret, another instance


def test_the_key_never_shows() -> None:
    sealer = AesGcmSealer(b"hunter2-secret-value")
    assert "hunter2" not in repr(sealer) and "hunter2" not in str(sealer)


def test_a_generated_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    directory = tmp_path / "nested" / "dragoman"
    first = stored_secret(directory)
    path = directory / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 64 and stored_secret(directory) == first
    assert [p.name for p in directory.iterdir()] == [SECRET_FILE]  # no candidate files left behind


def _secret_in(directory: str, queue: multiprocessing.Queue[bytes]) -> None:
    queue.put(stored_secret(Path(directory)))


def test_instances_starting_at_once_agree_on_one_secret(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[bytes] = ctx.Queue()
    procs = [ctx.Process(target=_secret_in, args=(str(tmp_path), queue)) for _ in range(4)]
    for p in procs:
        p.start()
    secrets = {queue.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
    assert len(secrets) == 1 and secrets == {stored_secret(tmp_path)}


def test_sealers_of_one_deployment_open_each_others_blobs(data_dir: Path) -> None:
    one, two = make_sealer(None), make_sealer(None)  # both from $DRAGOMAN_DATA_DIR
    assert two.open(one.seal([KIMI])) == [KIMI]
    assert (data_dir / SECRET_FILE).is_file()
    configured = make_sealer("the same on every instance")
    assert make_sealer("the same on every instance").open(configured.seal([KIMI])) == [KIMI]
    assert one.open(configured.seal([KIMI])) is None


def test_an_unusable_data_dir_degrades_to_a_process_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DRAGOMAN_DATA_DIR", str(blocker / "sub"))
    with caplog.at_level(logging.ERROR, logger="dragoman.seal"):
        sealer = make_sealer(None)
    assert sealer.open(sealer.seal([KIMI])) == [KIMI]
    assert "server.secret" in caplog.text


def test_config_takes_a_secret_and_never_echoes_it() -> None:
    assert parse({"server": {"secret": "s3cr3t-value"}}).server.secret == "s3cr3t-value"
    assert parse({}).server.secret is None
    with pytest.raises(ConfigError, match="must not be empty"):
        parse({"server": {"secret": "  "}})
    with pytest.raises(ConfigError) as e:
        parse({"server": {"secret": 1234567890}})
    assert "1234567890" not in str(e.value) and "server.secret" in str(e.value)


def test_the_gateway_makes_its_sealer_only_when_asked(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "DRAGOMAN_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    gw = Gateway.from_config(parse({}))
    assert not (data_dir / SECRET_FILE).exists()
    blob = gw.sealer.seal([KIMI])
    assert (data_dir / SECRET_FILE).exists() and gw.sealer is gw.sealer
    other = Gateway.from_config(parse({}))
    assert other.sealer.open(blob) == [KIMI]
    configured = Gateway.from_config(parse({"server": {"secret": "configured"}}))
    assert configured.sealer.open(blob) is None
    assert os.environ["DRAGOMAN_DATA_DIR"] == str(data_dir)
