"""The request guard: what every request passes before FastAPI reads, parses or routes it (pure ASGI).

In this order, so that a request costs the server nothing until it has earned it:
1. HEAD is answered as GET without the body (every GET route, /docs included).
2. With an API key set, every path but /healthz needs it: 401 before any other answer.
3. POST /sql, /execute and /databases/NAME/reload take a concurrency slot or get 429 at once.
4. The body is read here, at most --max-body-bytes (413 while reading: a chunked body has no Content-Length
   to check first) and within --body-timeout seconds (408), then handed to the app. Only POST bodies are read:
   a GET (/healthz included) is answered without reading what a client sends with it.
Any answer given while a body the client announced is still unread says `Connection: close`, and the server
closes the connection: otherwise it would wait on it for bytes it will never use (300 such connections stayed
open for minutes, and 300 /healthz bodies held 275 MB).
The slot is released when the request is done and the work it started has stopped (serve/state.py).
"""

import asyncio
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.errors import error_response
from serve.state import ServerState

OPEN_PATHS = ("/healthz",)
SLOT_PATHS = ("/sql", "/execute")


def takes_slot(method: str, path: str) -> bool:
    return method == "POST" and (path in SLOT_PATHS or (path.startswith("/databases/") and path.endswith("/reload")))


class BodyTooLarge(Exception):
    pass


class RequestGuard:
    def __init__(self, app: ASGIApp, state: ServerState):
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        settings = self.state.settings
        if scope["method"] == "HEAD":
            scope, send = {**scope, "method": "GET"}, _without_body(send)

        announced, plain_send = _announces_body(scope), send
        if announced:  # until the body is read, an answer ends the connection
            send = _closing(send)

        def answer(status: int, code: str, message: str, **kw):
            return error_response(status, code, message, **kw)(scope, receive, send)

        if settings.api_key and scope["path"] not in OPEN_PATHS and not _key_ok(scope, settings.api_key):
            return await answer(401, "unauthorized", "Missing or wrong API key: send it as the X-API-Key header "
                                "or as Authorization: Bearer <key>.", headers={"WWW-Authenticate": "Bearer"})
        if scope["method"] != "POST":  # no route but POST takes a body: never read one
            return await self.app(scope, _no_body(receive), send)
        slot = None
        if takes_slot(scope["method"], scope["path"]):
            # Answer at once rather than queue without bound: a client can back off and retry; a queue only grows.
            slot = self.state.slots.acquire()
            if slot is None:
                return await answer(429, "busy", f"The server is answering {self.state.slots.in_flight} requests, "
                                    "its limit; retry shortly.", headers={"Retry-After": "1"})
        try:
            limit = settings.max_body_bytes
            length = _header(scope, b"content-length")
            if length.isdigit() and int(length) > limit:
                return await answer(413, "body_too_large", _too_large(f"{int(length):,} bytes", limit))
            try:
                body = await asyncio.wait_for(_read_body(receive, limit), settings.body_timeout_s)
            except BodyTooLarge:
                return await answer(413, "body_too_large", _too_large(f"over {limit:,} bytes", limit))
            except TimeoutError:
                return await answer(408, "body_timeout", f"The request body did not arrive within "
                                    f"{settings.body_timeout_s:g} s.", headers={"Connection": "close"})
            if body is None:  # the client went away
                return
            scope.setdefault("state", {})["slot"] = slot
            send = plain_send  # the body is read: the connection may be kept
            await self.app(scope, _replay(body, receive), send)
        finally:
            if slot is not None:
                slot.release()


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: a disconnect, when it comes

    return replay


def _announces_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    return (length.isdigit() and int(length) > 0) or bool(_header(scope, b"transfer-encoding"))


def _closing(send: Send) -> Send:
    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
            message = {**message, "headers": headers + [(b"connection", b"close")]}
        await send(message)

    return send_closing


def _no_body(receive: Receive) -> Receive:
    """An empty body for the route, once; after it only the client's disconnect (a streaming GET listens for it),
    anything the client sends meanwhile dropped, never kept."""
    given = False

    async def empty() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return message
    return empty


def _without_body(send: Send) -> Send:
    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_head


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1").strip()
    return ""


def _key_ok(scope: Scope, api_key: str) -> bool:
    given = _header(scope, b"x-api-key")
    auth = _header(scope, b"authorization")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return secrets.compare_digest(given.encode(), api_key.encode())


def _too_large(size: str, limit: int) -> str:
    return (f"The request body is {size}; this server takes at most {limit:,}. Send a smaller schema or "
            "fewer rows.")
