"""`sqlft ui`: the Streamlit page (ui/app.py) over a running API, or over one it starts itself.

    sqlft ui                                      page on http://127.0.0.1:8501, API at $SQLFT_API_URL or :8000
    sqlft ui --with-server runs/demo/merged       start `sqlft serve` too: one command for both
    sqlft ui --with-server embedded:smollm2-135m-instruct -- --max-new-tokens 64    (after --: serve options)
"""

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from sqlft.core.net import wait_for_http

APP = Path(__file__).with_name("app.py")


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    serve_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(prog="sqlft ui", description=__doc__.split("\n")[0])
    p.add_argument("--api-url", default=os.environ.get("SQLFT_API_URL", "http://127.0.0.1:8000"),
                   help="the sqlft API (default: env SQLFT_API_URL, else %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address the page listens on (default %(default)s)")
    p.add_argument("--port", type=int, default=8501, help="port of the page (default %(default)s)")
    p.add_argument("--with-server", metavar="MODEL",
                   help="also start `sqlft serve MODEL` on --api-url's port (stopped with the page)")
    return p.parse_args(argv), serve_args


def serve_command(model: str, api_url: str, serve_args: list[str]) -> list[str]:
    url = httpx.URL(api_url)
    return [sys.executable, "-m", "serve.main", model, "--host", url.host, "--port", str(url.port or 80), *serve_args]


def streamlit_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal"]


def wait_for(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    """Until `url` answers at all (the API's /healthz: it is up even while the model still loads)."""
    try:
        wait_for_http(url, timeout_s=timeout_s, alive=lambda: process.poll() is None, status=None)
    except RuntimeError as err:
        code = f" (exit status {process.returncode})" if process.poll() is not None else ""
        sys.exit(f"sqlft ui: {err}{code}")


def main(argv: list[str] | None = None) -> None:
    args, serve_args = parse_args(argv)
    children: list[subprocess.Popen] = []
    # SIGTERM ends this process the way Ctrl-C does, so the finally below stops the children too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if args.with_server:
            server = subprocess.Popen(serve_command(args.with_server, args.api_url, serve_args))
            children.append(server)
            wait_for(args.api_url.rstrip("/") + "/healthz", server, timeout_s=120)
        env = os.environ | {"SQLFT_API_URL": args.api_url}
        print(f"sqlft ui: page on http://{args.host}:{args.port} (API {args.api_url})", flush=True)
        page = subprocess.Popen(streamlit_command(args.host, args.port), env=env)
        children.append(page)
        page.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for child in reversed(children):  # page first, then the server (it drains its requests on SIGTERM)
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    main()
