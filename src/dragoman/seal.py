"""Sealed reasoning: a provider's reasoning handed to a client as an opaque blob it carries back.

A Responses client (Codex) keeps no reasoning of its own beyond what the stream gave it and replays
each reasoning item's `encrypted_content` byte for byte on the next turn. The gateway puts the
canonical `Reasoning` parts there — text, signature, redacted data, origin, details — sealed with
authenticated encryption, so that whatever instance gets the next turn restores them exactly
(Kimi's signed thinking, Moonshot's `reasoning_content`) without keeping any state.

    blob = "dgm1." + base64url(nonce[12] + AES-256-GCM(key, nonce, payload, aad=b"dgm1"))
    payload = format byte (0 JSON, 1 zlib-compressed JSON) + msgspec JSON of list[Reasoning]

The key is derived (HKDF-SHA256) from a secret: `server.secret` in the config, or one generated
once and kept in the data directory (mode 0600), which every instance of a deployment shares.
A blob sealed under another secret, or changed in any byte, does not open: `open` returns None.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import zlib
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dragoman.canonical import Reasoning

log = logging.getLogger("dragoman.seal")

PREFIX = "dgm1."  # "." is outside base64url: a sealed blob is never mistaken for another's
_AAD = b"dgm1"
_INFO = b"dragoman reasoning seal v1"
_NONCE = 12
_RAW, _ZLIB = 0, 1
_COMPRESS_FROM = 512  # payloads shorter than this gain nothing from zlib
SECRET_FILE = "seal-secret"
DATA_DIR_ENV = "DRAGOMAN_DATA_DIR"

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(list[Reasoning])


def is_sealed(blob: str) -> bool:
    """Whether a blob has this gateway's form (it may still fail to open)."""
    return blob.startswith(PREFIX)


class AesGcmSealer:
    """Implements `dragoman.dialects.base.Sealer`. Never shows its key (no repr of it)."""

    __slots__ = ("_aead",)

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the sealing secret must not be empty")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "AesGcmSealer(<key hidden>)"

    def seal(self, parts: list[Reasoning]) -> str:
        data = _enc.encode(parts)
        if len(data) >= _COMPRESS_FROM:
            packed = zlib.compress(data, 1)
            payload = bytes((_ZLIB,)) + packed if len(packed) < len(data) else bytes((_RAW,)) + data
        else:
            payload = bytes((_RAW,)) + data
        nonce = os.urandom(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, payload, _AAD)
        return PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def open(self, blob: str) -> list[Reasoning] | None:
        if not blob.startswith(PREFIX):
            return None
        body = blob[len(PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) <= _NONCE or base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != body:
            return None  # too short, or not the one spelling seal() writes (unused bits set)
        try:
            payload = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _AAD)
        except InvalidTag:
            return None
        try:
            data = zlib.decompress(payload[1:]) if payload[0] == _ZLIB else payload[1:]
            return _dec.decode(data)
        except (zlib.error, msgspec.DecodeError, IndexError):
            return None  # authentic but unreadable: sealed by a newer, incompatible gateway


def data_dir() -> Path:
    """Where the gateway keeps what it generates: `$DRAGOMAN_DATA_DIR`, else the user data dir."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("dragoman"))


def stored_secret(directory: Path) -> bytes:
    """The secret kept in `directory`, generated (256 random bits, mode 0600) on first use. Several
    processes starting at once agree on one: each writes a candidate and links it into place, and
    whoever loses the race reads the winner's."""
    path = directory / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    candidate = directory / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass
    finally:
        candidate.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    value = path.read_text().strip()
    if not value:
        raise ValueError(f"{path} is empty; delete it to have a new secret generated")
    return value.encode()


def make_sealer(secret: str | None) -> AesGcmSealer:
    """The deployment's sealer: from `server.secret`, else the data directory's secret. When the
    data directory cannot be used, an ephemeral key (said once in the log): sealed reasoning then
    opens only in this process, and a turn that lands elsewhere falls back to the reasoning memory."""
    if secret:
        return AesGcmSealer(secret.encode())
    directory = data_dir()
    try:
        return AesGcmSealer(stored_secret(directory))
    except (OSError, ValueError) as exc:
        log.error(
            "cannot keep a sealing secret in %s (%s); using a key that lives only in this process. "
            "Set server.secret (the same on every instance) or DRAGOMAN_DATA_DIR.",
            directory,
            exc.strerror if isinstance(exc, OSError) and exc.strerror else exc,
        )
        return AesGcmSealer(secrets.token_bytes(32))
