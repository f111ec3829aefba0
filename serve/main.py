"""`sqlft serve`: the HTTP API (FastAPI under uvicorn). Docs at http://HOST:PORT/docs once it runs.

    sqlft serve                                   embedded SmolLM2 + the defog-data demo databases, on 127.0.0.1:8000
    sqlft serve runs/demo/merged --port 8080 --database shop=data/shop.duckdb --api-key SECRET
    sqlft serve --backend openai --openai-url http://127.0.0.1:8000/v1 --model-name sqlft --template chatml --port 8001

SIGTERM / Ctrl-C: stop accepting, let requests in flight finish, drain the batcher, exit.
"""

import argparse
import logging
import os
import sys

from serve.registry import parse_database_flag, read_databases_file
from serve.settings import DEMO_DATABASES, Settings
from sqlft.config import EMBEDDED_MODEL


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sqlft serve", description=__doc__.split("\n")[0])
    p.add_argument("model", nargs="?", default=None,
                   help=f"merged folder, training run or base model (local backend; default {EMBEDDED_MODEL}); "
                        "for --backend openai: an optional local folder giving the tokenizer and template")
    p.add_argument("--template", help="prompt template (default: the one the model was trained with)")
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to listen on every interface (default %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="(default %(default)s)")
    p.add_argument("--api-key", default=None,
                   help="key clients must send (X-API-Key or Bearer); default: env SQLFT_API_KEY, else none")
    p.add_argument("--backend", choices=("local", "openai", "fake"), default="local",
                   help="local (default): the model in this process; openai: a vLLM/OpenAI-compatible server; "
                        "fake: canned SQL, no model (tests, load tests, UI work)")
    p.add_argument("--openai-url", default="http://127.0.0.1:8000/v1", help="openai backend: base URL with /v1 (default %(default)s)")
    p.add_argument("--model-name", default="sqlft", help="openai backend: the served model name (default %(default)s)")
    p.add_argument("--databases", metavar="FILE.yaml", help="YAML with a `databases: {name: source}` mapping")
    p.add_argument("--database", action="append", default=[], metavar="NAME=SOURCE",
                   help="register a database (DuckDB/SQLite file, PostgreSQL dump, defog name); repeatable")
    p.add_argument("--no-demo-databases", action="store_true",
                   help=f"do not register the defog-data demo databases ({', '.join(DEMO_DATABASES)})")
    d = Settings()
    p.add_argument("--max-concurrency", type=int, default=d.max_concurrency,
                   help="/sql + /execute requests in flight; more get 429 at once (default %(default)s)")
    p.add_argument("--request-timeout", type=float, default=d.request_timeout_s, help="seconds per request, else 504 (default %(default)s)")
    p.add_argument("--execute-timeout", type=float, default=d.execute_timeout_s, help="seconds per SQL execution (default %(default)s)")
    p.add_argument("--max-rows", type=int, default=d.max_rows, help="most rows a request may get (default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help="answer budget in tokens, upper bound for requests (default %(default)s)")
    p.add_argument("--max-batch", type=int, default=d.max_batch, help="prompts per generate call (default %(default)s)")
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms, help="how long the first prompt of a batch waits for others (default %(default)s)")
    p.add_argument("--no-batching", action="store_true", help="one prompt per generate call")
    p.add_argument("--threads", type=int, default=0,
                   help="local backend: torch CPU threads (0: one per core); on a CPU shared with other "
                        "work, 1 avoids threads spinning against each other")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p.parse_args(argv)


def build_settings(args: argparse.Namespace) -> Settings:
    problems = []
    databases = {} if args.no_demo_databases else {name: name for name in DEMO_DATABASES}
    if args.databases:
        try:
            databases.update(read_databases_file(args.databases))
        except (OSError, ValueError) as e:
            problems.append(f"--databases: {e}")
    for flag in args.database:
        name, source = parse_database_flag(flag)
        if not name or not source:
            problems.append(f"--database {flag!r}: expected NAME=SOURCE")
        databases[name] = source
    for flag, value in (("--max-concurrency", args.max_concurrency), ("--max-rows", args.max_rows),
                        ("--max-new-tokens", args.max_new_tokens), ("--max-batch", args.max_batch)):
        if value < 1:
            problems.append(f"{flag} must be >= 1, got {value}")
    if args.threads < 0:
        problems.append(f"--threads must be >= 0, got {args.threads}")
    if args.request_timeout <= 0 or args.execute_timeout <= 0:
        problems.append("--request-timeout and --execute-timeout must be > 0")
    if problems:
        sys.exit("sqlft serve: " + "\n  ".join(["problems with the options:"] + problems))
    model = args.model or ("" if args.backend == "openai" else EMBEDDED_MODEL)
    return Settings(model=model, template=args.template, backend=args.backend, openai_url=args.openai_url,
                    model_name=args.model_name, openai_api_key=os.environ.get("SQLFT_OPENAI_API_KEY"),
                    api_key=args.api_key or os.environ.get("SQLFT_API_KEY") or None, databases=databases, max_concurrency=args.max_concurrency,
                    request_timeout_s=args.request_timeout, execute_timeout_s=args.execute_timeout,
                    max_rows=args.max_rows, max_new_tokens=args.max_new_tokens, max_batch=args.max_batch,
                    max_wait_ms=args.max_wait_ms, batching=not args.no_batching, torch_threads=args.threads)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from serve.app import create_app

    args = parse_args(argv)
    settings = build_settings(args)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("sqlft.serve")
    if args.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key and settings.backend != "fake":
        log.warning("listening on %s without an API key: anyone who can reach it can use it "
                    "(set SQLFT_API_KEY or --api-key)", args.host)
    log.info("loading %s (%s backend) in the background; /readyz says when it is ready; docs: http://%s:%d/docs",
             settings.model or settings.openai_url, settings.backend, args.host, args.port)
    # timeout_graceful_shutdown: on SIGTERM, requests in flight get up to one request timeout to finish.
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=int(settings.request_timeout_s) + 5)


if __name__ == "__main__":
    main()
