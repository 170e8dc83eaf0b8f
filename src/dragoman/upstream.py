"""The one seam between the gateway and the network: send a request to a provider, get a status,
headers and an async byte stream back. One pooled keep-alive session per provider.

Network failures become gateway errors here (refused → 502, timeout → 504) so that nothing above
this module ever sees an aiohttp exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp

from dragoman.errors import GatewayError, UpstreamError, UpstreamTimeout
from dragoman.providers.base import Provider


class UpstreamResponse:
    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except Exception as exc:
            raise _network_error(exc, "reading the reply") from None
        finally:
            self._resp.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, chunk by chunk."""
        content = self._resp.content
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    return
                yield chunk
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise _network_error(exc, "streaming the reply") from None

    def close(self) -> None:
        """Drop the connection unless the body was read to the end (then it goes back to the pool)."""
        if self._resp.content.at_eof():
            self._resp.release()
        else:
            self._resp.close()


class Upstream:
    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def _session(self, provider: Provider) -> aiohttp.ClientSession:
        session = self._sessions.get(provider.id)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None, connect=provider.connect_timeout, sock_read=provider.timeout),
                auto_decompress=True,
            )
            self._sessions[provider.id] = session
        return session

    async def send(
        self, provider: Provider, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> UpstreamResponse:
        session = self._session(provider)
        try:
            resp = await session.request(method, url, data=body, headers=headers, allow_redirects=False)
        except Exception as exc:
            raise _network_error(exc, f"connecting to {provider.id}") from None
        return UpstreamResponse(resp)

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


def _network_error(exc: BaseException, doing: str) -> GatewayError:
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"upstream timed out {doing}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(f"upstream unreachable {doing}: {exc.os_error.strerror or 'connection failed'}")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError | ConnectionError):
        return UpstreamError(f"upstream connection lost {doing}")
    if isinstance(exc, aiohttp.InvalidURL):
        return UpstreamError(f"invalid upstream URL {doing}")
    if isinstance(exc, aiohttp.ClientError):
        return UpstreamError(f"upstream error {doing}: {type(exc).__name__}")
    if isinstance(exc, GatewayError):
        return exc
    raise exc
