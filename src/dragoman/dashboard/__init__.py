"""The web dashboard at `/ui`: an aiohttp sub-application the server mounts.

The page (`static/`, plain HTML, CSS and JavaScript modules with uPlot vendored, no build step)
polls the JSON endpoints in `api.py`, which read the usage ledger and this instance's own state.
The page and its assets hold no data and load without a key; every API call needs the key
`access.py` names.

    app.add_subapp(PREFIX, dashboard.make_app(gw))
"""

from __future__ import annotations

from aiohttp import web

from dragoman.dashboard import api
from dragoman.dashboard.assets import Assets
from dragoman.gateway import Gateway
from dragoman.server.fronts import GATEWAY, meta

PREFIX = "/ui"

# the page builds its DOM from text nodes; this keeps any markup that slips through inert
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def make_app(gw: Gateway) -> web.Application:
    # a signal, not a middleware: one middleware in any sub-application makes aiohttp run the
    # middleware chain for every request of the whole server, completions included; the signal
    # fires for this application's replies alone (errors and redirects too)
    app = web.Application()
    app.on_response_prepare.append(security_headers)
    app[GATEWAY] = gw
    assets = Assets.load()
    app.router.add_get("/", assets.index)
    app.router.add_get("/static/{name:.+}", assets.serve)
    for name, handler, public in api.ROUTES:
        app.router.add_get(f"/api/{name}", api.endpoint(handler, public=public))
    app.router.add_route("*", "/{tail:.*}", meta.not_found)
    return app


def mount(app: web.Application, gw: Gateway) -> None:
    """`/ui/...` on the gateway's app, and `/ui` itself sent on to `/ui/` (the page's URLs are relative)."""

    async def to_slash(request: web.Request) -> web.Response:
        raise web.HTTPPermanentRedirect(PREFIX + "/")

    app.router.add_get(PREFIX, to_slash)
    app.add_subapp(PREFIX, make_app(gw))
