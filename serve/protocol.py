"""uvicorn's h11 protocol with a header read timeout and the API's error body for bad framing.

uvicorn times out idle keep-alive connections but not a client that sends its request line and headers a
byte at a time (slowloris): such a connection stays open for as long as the client likes. Here a request's
headers must be complete within --header-timeout seconds of its first byte (or of the connection), else the
connection is closed. The body's own timeout is the request guard's (serve/guard.py).

    uvicorn.Config(app, http=guarded_protocol(header_timeout_s=10))
"""

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from serve.errors import error_body


class GuardedH11Protocol(H11Protocol):
    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:  # bytes of a new request: its headers are now on the clock
            self._arm_header_timer()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request line and headers are in
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """Bad framing (h11 cannot parse the request): the one error body instead of plain text."""
        body = error_body("bad_request", "The HTTP request is malformed (request line, headers or body framing).")
        headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                   (b"content-length", str(len(body)).encode())]
        try:
            for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                          h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
        except h11.LocalProtocolError:  # a response had already started: nothing more can be said
            pass
        self.transport.close()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.info("closing a connection that sent no complete request headers in %g s",
                             self.header_timeout_s)
            self.transport.close()


def guarded_protocol(header_timeout_s: float) -> type[GuardedH11Protocol]:
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout_s": header_timeout_s})
