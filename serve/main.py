"""`sqlft serve`: the HTTP API (FastAPI under uvicorn). Docs at http://HOST:PORT/docs once it runs.

    sqlft serve                                   embedded SmolLM2 + the defog-data demo databases, on 127.0.0.1:8000
    sqlft serve runs/demo/merged --port 8080 --database shop=data/shop.duckdb --api-key SECRET
    sqlft serve --backend openai --openai-url http://127.0.0.1:8000/v1 --model-name sqlft --template chatml --port 8001

Every flag is a field of serve.settings.Settings (also settable as SQLFT_<FIELD> in the environment);
`sqlft serve --help` lists them. SIGTERM / Ctrl-C: stop accepting, let requests in flight finish, drain the
batcher, exit.
"""

import logging
import sys

from pydantic import ValidationError

from serve.settings import Settings


def parse_settings(argv: list[str] | None = None) -> Settings:
    """Settings from flags and environment; every problem is listed at once, then the program exits."""
    try:
        settings = Settings.from_cli(argv)
        settings.sources()  # a bad --databases file or --database flag is found now, not after startup
    except ValidationError as e:
        problems = [f"--{'.'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}" for err in e.errors()]
        sys.exit("sqlft serve: " + "\n  ".join(["problems with the options:"] + problems))
    except (OSError, ValueError) as e:
        sys.exit(f"sqlft serve: {e}")
    return settings


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from serve.app import create_app
    from serve.protocol import guarded_protocol

    settings = parse_settings(argv)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("sqlft.serve")
    if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key and settings.backend != "fake":
        log.warning("listening on %s without an API key: anyone who can reach it can use it "
                    "(set SQLFT_API_KEY or --api-key)", settings.host)
    log.info("loading %s (%s backend) in the background; /readyz says when it is ready; docs: http://%s:%d/docs",
             settings.model or settings.openai_url, settings.backend, settings.host, settings.port)
    # timeout_graceful_shutdown: on SIGTERM, requests in flight get up to one request timeout to finish.
    # The h11 protocol closes connections whose headers are not in within --header-timeout (slowloris).
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                http=guarded_protocol(settings.header_timeout_s), timeout_keep_alive=5,
                timeout_graceful_shutdown=int(settings.request_timeout_s) + 5)


if __name__ == "__main__":
    main()
