"""Local HTTP helpers shared by the commands and the tests: a free port, and waiting until a server answers.

    port = free_port()
    wait_for_http(f"http://127.0.0.1:{port}/readyz", timeout_s=60, alive=lambda: proc.poll() is None)
"""

import socket
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it; fixed ports collide with other runs on the machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, *, timeout_s: float, alive: Callable[[], bool] = lambda: True, status: int | None = 200,
                  interval_s: float = 0.2) -> None:
    """Return once GET `url` answers with `status` (None: any answer at all). Raises RuntimeError when the server
    stops being alive() (its process or thread ended) or timeout_s passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if status is None or response.status_code == status:
                return
        except httpx.HTTPError:
            pass
        if not alive():
            raise RuntimeError(f"the server for {url} stopped before answering")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answered at {url} within {timeout_s:g} s")
        time.sleep(interval_s)
