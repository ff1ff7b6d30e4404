"""HTTP-level guards: security headers, HEAD as GET, an Origin check on POST, a deadline per request.

The first three are plain ASGI middleware around the app (Starlette's BaseHTTPMiddleware would
add a task and a stream to every request); the body cap is FastAPI's own `max_body_size`.
The deadline is a uvicorn protocol: uvicorn bounds only idle keep-alive connections
(`timeout_keep_alive`), not a request that arrives slowly, so a client that opens a connection
and sends nothing, or half a head, would hold it forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import h11
from starlette.datastructures import MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_BODY = 64 * 1024  # bytes of any request body (votes are well under 3 KiB)


class SecurityHeaders:
    """Add `headers` to every response that lacks them; HTML is never cached."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app, self.headers = app, headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
                if headers.get("content-type", "").startswith("text/html"):
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


class HeadAsGet:
    """Answer HEAD as GET would, headers only (FastAPI's GET routes refuse HEAD with 405)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class OriginCheck:
    """Refuse a POST that a browser sent from another site (CSRF).

    Sec-Fetch-Site, where the browser sends it, decides (same-origin, or none for a typed URL);
    else the Origin header must be this arena's own (scheme and Host) or an allowed one. Clients
    that send neither (curl, scripts) are not a browser acting for a victim and pass.
    """

    def __init__(self, app: ASGIApp, allowed: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = {o.rstrip("/").lower() for o in allowed}

    def _allowed(self, scope: Scope) -> bool:
        headers = dict(scope["headers"])
        origin = headers.get(b"origin", b"").decode("latin-1").rstrip("/").lower()
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
        if site in ("same-origin", "none"):
            return True
        if site:  # same-site or cross-site
            return origin in self.allowed
        if not origin:
            return True
        host = headers.get(b"host", b"").decode("latin-1").lower()
        return origin == f"{scope.get('scheme', 'http')}://{host}" or origin in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not self._allowed(scope):
            response = PlainTextResponse("cross-site POST refused (Origin does not match this arena)", status_code=403)
            return await response(scope, receive, send)
        await self.app(scope, receive, send)


def deadline_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request (head and body) is not complete
    within `seconds` of the connection opening or of its first byte after the previous response."""

    class DeadlineProtocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if not self.transport.is_closing() and self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
                self._arm()  # a request under way: it must complete in time
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return DeadlineProtocol
