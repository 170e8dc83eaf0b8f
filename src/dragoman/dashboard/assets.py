"""The page's static files, read once from the package: only the files that are there are served
(no path is ever joined from a request), each with its ETag."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

from dragoman.errors import NotFound
from dragoman.server.fronts import error_response

TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".txt": "text/plain",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


@dataclass
class Assets:
    files: dict[str, Asset] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Assets:
        assets = cls()
        root = resources.files("dragoman.dashboard") / "static"
        assets._walk(root, "")
        return assets

    def _walk(self, folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            name = prefix + entry.name
            if entry.is_dir():
                self._walk(entry, name + "/")
                continue
            suffix = "." + entry.name.rpartition(".")[2]
            if suffix in TYPES:
                body = entry.read_bytes()
                self.files[name] = Asset(body, TYPES[suffix], '"' + hashlib.sha256(body).hexdigest()[:20] + '"')

    def _send(self, request: web.Request, asset: Asset) -> web.Response:
        headers = {"etag": asset.etag, "cache-control": "no-cache"}  # revalidated: an upgrade shows at once
        if request.headers.get("if-none-match") == asset.etag:
            return web.Response(status=304, headers=headers)
        charset = "utf-8" if asset.content_type.startswith("text/") else None
        return web.Response(body=asset.body, content_type=asset.content_type, charset=charset, headers=headers)

    async def index(self, request: web.Request) -> web.Response:
        return self._send(request, self.files["index.html"])

    async def serve(self, request: web.Request) -> web.Response:
        asset = self.files.get(request.match_info["name"])
        if asset is None:
            return error_response(NotFound(f"no dashboard file {request.path}"), "openai")
        return self._send(request, asset)
