"""What protects ``qslm serve`` below the routes: the API key, a body limit enforced on the
bytes actually read (chunked bodies included), a body read timeout, a header read timeout, and
request counting for ``/metrics``.

Why an ASGI middleware of our own: Starlette reads a body whole before the route sees it, and
``Content-Length`` is absent from chunked requests, so only a layer that reads the body itself
can stop at the limit. Why a uvicorn protocol subclass: uvicorn times out idle keep-alive
connections (``timeout_keep_alive``) but has no deadline for a request's headers, so a
slowloris client that sends one header byte at a time holds its socket forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

PROTECTED_PREFIX = "/v1/"  # /health stays open for load balancers' probes; /metrics is guarded
OPENAI_PATHS = ("/v1/models", "/v1/chat/completions", "/v1/completions")
COUNTED = ("/v1/generate", "/metrics", "/health", *OPENAI_PATHS)


def authorized(headers: dict[str, str], key: str) -> bool:
    """Whether the request carries ``key`` as ``Authorization: Bearer`` or ``X-API-Key``."""
    supplied = headers.get("x-api-key")
    if supplied is None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        supplied = token.strip() if scheme.lower() == "bearer" else None
    if supplied is None:
        return False
    return hmac.compare_digest(supplied.encode(), key.encode())


class Guard:
    """ASGI middleware: key check, body limit and read timeout, and request counting.

    ``render(path, status, message, code)`` builds the error response in the path's format
    (OpenAI's error object on the OpenAI routes).
    """

    def __init__(
        self,
        app: Any,
        *,
        api_key: str | None,
        max_body: int,
        body_timeout_s: float,
        render: Callable[[str, int, str, str], Response],
        count: Callable[[str, int], None],
    ) -> None:
        self.app, self.api_key, self.max_body = app, api_key, max_body
        self.body_timeout_s, self.render, self.count = body_timeout_s, render, count

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        label = path if path in COUNTED else "other"
        status: list[int] = []

        async def counted_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            early = self._refusal(scope, path)
            if early is None:
                early, receive = await self._read_body(scope, path, receive)
            if early is not None:
                await early(scope, receive, counted_send)
            else:
                await self.app(scope, receive, counted_send)
        except Exception:
            self.count(label, 500)
            raise
        self.count(label, status[0] if status else 499)  # 499: the client left first

    def _refusal(self, scope: Any, path: str) -> Response | None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        guarded = path.startswith(PROTECTED_PREFIX) or path == "/metrics"
        if self.api_key and guarded and not authorized(headers, self.api_key):
            response = self.render(
                path,
                401,
                "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                "invalid_api_key",
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            return self._too_large(path)
        return None

    def _too_large(self, path: str) -> Response:
        return self.render(
            path, 413, f"request body over {self.max_body} bytes", "request_too_large"
        )

    async def _read_body(self, scope: Any, path: str, receive: Any) -> tuple[Response | None, Any]:
        """Read the whole body (stopping at the limit) within the timeout; on success, a
        ``receive`` that replays it, then passes on the client's later messages (disconnect)."""
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return None, receive
        chunks, size = [], 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                msg = f"the request body did not arrive within {self.body_timeout_s:g} s"
                return self.render(path, 408, msg, "request_timeout"), receive
            if message["type"] == "http.disconnect":
                return Response(status_code=499), receive
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return self._too_large(path), receive
            if not message.get("more_body", False):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed() -> dict[str, Any]:
            return replay.pop() if replay else await receive()

        return None, replayed


def header_timeout_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol, closing a connection whose next request's headers have not
    all arrived ``seconds`` after it opened (or after its previous response)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._header_timer.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()
            self._armed_cycle = self.cycle
            self._header_timer = self.loop.call_later(seconds, self._headers_late)

        def _headers_late(self) -> None:
            if self.cycle is self._armed_cycle and not self.transport.is_closing():
                with contextlib.suppress(h11.LocalProtocolError):
                    self.conn.send(h11.ConnectionClosed())
                self.transport.close()

    return HeaderTimeoutProtocol
