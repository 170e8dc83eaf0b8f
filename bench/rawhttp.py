"""A minimal blocking HTTP/1.1 client for the harness: health polls, sample checks and TTFT.

Deliberately dumb and low-overhead (one keep-alive socket, no parsing beyond what HTTP/1.1 framing
needs) so that time-to-first-byte measures the server, not the client library.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


class HTTPError(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    ttfb_s: float  # request sent -> first body byte received
    total_s: float  # request sent -> last body byte received
    raw_head: bytes = field(default=b"", repr=False)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def text(self, limit: int = 2000) -> str:
        t = self.body.decode("utf-8", "replace")
        return t if len(t) <= limit else t[:limit] + f"... [{len(t)} chars]"


class Connection:
    """One keep-alive connection; reconnects transparently after the server closes it."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buf = b""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> socket.socket:
        if self._sock is None:
            s = socket.create_connection((self.host, self.port), timeout=self.timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = s
            self._buf = b""
        return self._sock

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        try:
            return self._request(method, path, body, headers or {})
        except (ConnectionError, HTTPError, TimeoutError, OSError):
            self.close()
            raise

    def _request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        sock = self._connect()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        t0 = time.perf_counter()
        sock.sendall(head + (body or b""))
        buf = self._buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            buf += self._recv(sock)
        raw_head = buf[:end]
        buf = buf[end + 4 :]
        status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
        try:
            status = int(status_line.split(" ", 2)[1])
        except (IndexError, ValueError) as e:
            raise HTTPError(f"bad status line {status_line!r}") from e
        resp_headers: dict[str, str] = {}
        for line in header_lines:
            k, _, v = line.partition(":")
            resp_headers[k.strip().lower()] = v.strip()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self._buf = buf
            now = time.perf_counter()
            return Response(status, resp_headers, b"", now - t0, now - t0, raw_head)
        if not buf:
            buf += self._recv(sock)
        ttfb = time.perf_counter() - t0
        if resp_headers.get("transfer-encoding", "").lower() == "chunked":
            payload, buf = self._read_chunked(sock, buf)
        elif "content-length" in resp_headers:
            n = int(resp_headers["content-length"])
            while len(buf) < n:
                buf += self._recv(sock)
            payload, buf = buf[:n], buf[n:]
        else:  # read to EOF
            parts = [buf]
            while chunk := sock.recv(65536):
                parts.append(chunk)
            payload, buf = b"".join(parts), b""
            self.close()
        total = time.perf_counter() - t0
        self._buf = buf
        if resp_headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, resp_headers, payload, ttfb, total, raw_head)

    def _recv(self, sock: socket.socket) -> bytes:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection mid-response")
        return data

    def _read_chunked(self, sock: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
        parts: list[bytes] = []
        pos = 0
        while True:
            while (nl := buf.find(b"\r\n", pos)) < 0:
                buf += self._recv(sock)
            try:
                size = int(buf[pos:nl].split(b";", 1)[0], 16)
            except ValueError as e:
                raise HTTPError(f"bad chunk size line {buf[pos:nl]!r}") from e
            start = nl + 2
            if size == 0:
                # "0\r\n", optional trailers, then a blank line
                while (end := buf.find(b"\r\n\r\n", nl)) < 0:
                    buf += self._recv(sock)
                return b"".join(parts), buf[end + 4 :]
            while len(buf) < start + size + 2:
                buf += self._recv(sock)
            parts.append(buf[start : start + size])
            pos = start + size + 2


def get(host: str, port: int, path: str, timeout: float = 2.0) -> Response:
    with Connection(host, port, timeout=timeout) as c:
        return c.request("GET", path, headers={"Connection": "close"})


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False
