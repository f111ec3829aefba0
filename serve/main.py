"""`sqlft serve`: the HTTP API (FastAPI under uvicorn). Docs at http://HOST:PORT/docs once it runs.

    sqlft serve                                   embedded SmolLM2 + the defog-data demo databases, on 127.0.0.1:8000
    sqlft serve runs/smollm2-135m-lora-demo/merged --port 8080 --database shop=data/shop.duckdb --api-key SECRET
    sqlft serve --backend openai --openai-url http://127.0.0.1:8000/v1 --model-name sqlft --template chatml --port 8001

Every flag is a field of serve.settings.Settings (also settable as SQLFT_<FIELD> in the environment);
`sqlft serve --help` lists them. SIGTERM / Ctrl-C: stop accepting, let requests in flight finish, drain the
batcher, exit.
"""

import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from serve.settings import Settings


def parse_settings(argv: list[str] | None = None, kind: type[Settings] = Settings, prog: str = "sqlft serve"
                   ) -> Settings:
    """Settings (or a subclass: `sqlft mcp`'s) from flags and environment; every problem is listed at once, then the
    program exits."""
    try:
        settings = kind.from_cli(argv)
        settings.sources()  # a bad --databases file or --database flag is found now, not after startup
    except ValidationError as e:
        problems = [f"--{'.'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}" for err in e.errors()]
        sys.exit(f"{prog}: " + "\n  ".join(["problems with the options:"] + problems))
    except (OSError, ValueError) as e:
        sys.exit(f"{prog}: {e}")
    return settings


def preflight(settings: Settings) -> None:
    """Every problem that can be found before the model loads (model folder, template, database files and URLs,
    a password in a URL), all at once; the program exits non-zero with them."""
    from sqlft.config.preflight import database_problems, model_problems

    problems = database_problems(settings.sources())
    if settings.backend == "local":
        problems = model_problems(settings.model, settings.template) + problems
    elif settings.backend == "openai":
        if not settings.openai_url.startswith(("http://", "https://")):
            problems.append(f"--openai-url {settings.openai_url!r}: expected http(s)://HOST:PORT/v1")
        if settings.model:  # the merged folder that gives the tokenizer and template
            problems = model_problems(settings.model, settings.template) + problems
    if Path(settings.data_dir).exists() and not Path(settings.data_dir).is_dir():
        problems.append(f"--data-dir {settings.data_dir}: a file is there; give a folder (history, feedback)")
    if problems:
        sys.exit("sqlft serve: cannot start:\n  " + "\n  ".join(problems))


def main(argv: list[str] | None = None) -> None:
    import threading
    import time

    settings = parse_settings(argv)
    settings.apply_wait_policy()  # before serve.app imports torch

    import uvicorn

    from serve.app import create_app
    from serve.protocol import guarded_protocol

    preflight(settings)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("sqlft.serve")
    if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key and settings.backend != "fake":
        log.warning("listening on %s without an API key: anyone who can reach it can use it "
                    "(set SQLFT_API_KEY or --api-key)", settings.host)
    log.info("loading %s (%s backend) in the background; /readyz says when it is ready; docs: http://%s:%d/docs",
             settings.model or settings.openai_url, settings.backend, settings.host, settings.port)
    # timeout_graceful_shutdown: on SIGTERM, requests in flight get up to one request timeout to finish.
    # The h11 protocol closes connections whose headers are not in within --header-timeout (slowloris).
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level,
        http=guarded_protocol(settings.header_timeout_s), timeout_keep_alive=5,
        timeout_graceful_shutdown=int(settings.request_timeout_s) + 5))
    state = app.state.sqlft

    def stop_if_load_fails() -> None:
        # A server whose model or databases failed to load cannot answer: it stops (exit status 1) rather than
        # stay up answering 503 to a supervisor that believes it started.
        while not (state.ready or state.load_error or server.should_exit):
            time.sleep(0.1)
        if state.load_error:
            server.should_exit = True
    threading.Thread(target=stop_if_load_fails, name="sqlft-load-watch", daemon=True).start()
    server.run()
    if state.load_error:
        sys.exit(f"sqlft serve: cannot start: {state.load_error}")


if __name__ == "__main__":
    main()
