"""The HTTP API: question -> SQL (POST /sql), SQL -> rows (POST /execute), databases, health and readiness.

    app = create_app(Settings())                                   # what `sqlft serve` runs under uvicorn
    app = create_app(Settings(), load_backend=lambda s: FakeBackend())   # tests: no model

The model and databases load in a background thread started by the lifespan, so /healthz answers at once and
/readyz says 503 until they are loaded. Every failure has the body {"error": {"code", "message", "detail"}}.
"""

import asyncio
import datetime
import decimal
import logging
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from eval.sandbox import ExecutionResult
from eval.sql import extract_sql, parse_sql
from serve.batching import Backend, BatcherClosed, MicroBatcher, PromptTooLong
from serve.pruning import prune_schema
from serve.registry import Database, close_databases, open_databases
from serve.schemas import (DatabaseInfo, ErrorBody, ExecuteRequest, ExecuteResponse, SQLRequest, SQLResponse,
                           Timings)
from serve.settings import Settings
from sqlft.config import GenerationConfig

log = logging.getLogger("sqlft.serve")


def load_backend(settings: Settings) -> Backend:
    """The model behind the API: loaded in this process, or a remote OpenAI-compatible server (vLLM)."""
    if settings.backend == "local":
        from sqlft.generate import InferenceModel
        model = InferenceModel.load(settings.model, template=settings.template)
        if settings.torch_threads:  # after load(), which sets one thread per core
            import torch
            torch.set_num_threads(settings.torch_threads)
        return model
    if settings.backend == "openai":
        from sqlft.remote import OpenAIBackend
        return OpenAIBackend(settings.openai_url, settings.model_name, api_key=settings.openai_api_key,
                             timeout_s=settings.request_timeout_s, template=settings.template,
                             model_dir=settings.model or None)
    if settings.backend == "fake":
        from serve.testing import FakeBackend
        return FakeBackend()
    raise ValueError(f"unknown backend {settings.backend!r}: choose local, openai or fake")


class ApiError(Exception):
    """An expected failure, turned into the one error body by the handler below."""

    def __init__(self, status: int, code: str, message: str, detail: Any = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.detail, self.headers = status, code, message, detail, headers


class State:
    """What the lifespan loads, and the count of requests in flight (one event loop: a plain int is safe)."""

    def __init__(self, settings: Settings, load: Callable[[Settings], Backend]):
        self.settings, self._load = settings, load
        self.backend: Backend | None = None
        self.batcher: MicroBatcher | None = None
        self.databases: dict[str, Database] = {}
        self.ready = False
        self.load_error = ""
        self.in_flight = 0
        self._lock = threading.Lock()  # load() runs in its own thread; close() may come while it runs
        self._closed = False

    def load(self) -> None:
        settings = self.settings
        try:
            started = time.perf_counter()
            databases = open_databases(settings.databases, timeout_s=settings.execute_timeout_s,
                                       max_rows=settings.max_rows)
            with self._lock:
                self.databases = databases
            backend = self._load(settings)
            batch, wait = (settings.max_batch, settings.max_wait_ms / 1000) if settings.batching else (1, 0.0)
            with self._lock:
                if self._closed:
                    close_databases(databases)
                    return
                self.backend = backend
                self.batcher = MicroBatcher(backend, max_batch=batch, max_wait_s=wait)
                self.ready = True
            log.info("ready in %.1f s: backend %s (%s, template %s), databases %s", time.perf_counter() - started,
                     settings.backend, settings.model, backend.template, ", ".join(databases) or "none")
        except Exception as e:  # noqa: BLE001 - reported by /readyz; the log has the traceback
            self.load_error = f"{type(e).__name__}: {e}"
            log.exception("loading failed; /readyz answers 503 until the server is restarted with a fix")

    def close(self) -> None:
        with self._lock:
            self._closed, self.ready = True, False
            if self.batcher is not None:
                self.batcher.close(timeout_s=self.settings.request_timeout_s)  # finishes queued prompts
            close_databases(self.databases)


def create_app(settings: Settings | None = None, load_backend: Callable[[Settings], Backend] = load_backend) -> FastAPI:
    settings = settings or Settings()
    state = State(settings, load_backend)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # A daemon thread, not asyncio.to_thread: a shutdown during a long model load must not wait for it.
        threading.Thread(target=state.load, name="sqlft-load", daemon=True).start()
        yield
        # uvicorn has stopped accepting connections and let in-flight requests finish (graceful shutdown).
        await asyncio.to_thread(state.close)
        log.info("stopped: %d prompt(s) in %d generate call(s)", state.batcher.prompts if state.batcher else 0,
                 state.batcher.batches if state.batcher else 0)

    app = FastAPI(title="sqlft", version="0.1.0", lifespan=lifespan,
                  description="Text-to-SQL with a fine-tuned model: POST /sql, POST /execute, GET /databases.",
                  responses={code: {"model": ErrorBody} for code in (401, 404, 413, 422, 429, 503, 504)})
    app.state.sqlft = state
    install_error_handlers(app)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > settings.max_body_bytes:
            return error_response(413, "body_too_large", f"The request body is {int(length):,} bytes; this server "
                                  f"takes at most {settings.max_body_bytes:,}. Send a smaller schema or fewer rows.")
        return await call_next(request)

    # ------------------------------------------------------------------ dependencies

    def require_api_key(request: Request) -> None:
        if not settings.api_key:
            return
        given = request.headers.get("x-api-key", "")
        auth = request.headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not secrets.compare_digest(given.encode(), settings.api_key.encode()):
            raise ApiError(401, "unauthorized", "Missing or wrong API key: send it as the X-API-Key header or as "
                           "Authorization: Bearer <key>.", headers={"WWW-Authenticate": "Bearer"})

    def require_ready() -> State:
        if not state.ready:
            if state.load_error:
                raise ApiError(503, "load_failed", f"The server failed to load: {state.load_error}")
            raise ApiError(503, "not_ready", "The model and databases are still loading; retry in a few seconds.",
                           headers={"Retry-After": "5"})
        return state

    async def concurrency_slot():
        # Answer at once rather than queue without bound: a client can back off and retry; a queue only grows.
        if state.in_flight >= settings.max_concurrency:
            raise ApiError(429, "busy", f"The server is answering {state.in_flight} requests, its limit; retry "
                           "shortly.", headers={"Retry-After": "1"})
        state.in_flight += 1
        try:
            yield
        finally:
            state.in_flight -= 1

    protected = APIRouter(dependencies=[Depends(require_api_key)])

    # ------------------------------------------------------------------ routes

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        """Liveness: the process answers (the model may still be loading)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": ErrorBody}})
    def readyz() -> dict:
        """Readiness: 200 once the model and databases are loaded, 503 before (or if loading failed)."""
        require_ready()
        return {"status": "ready", "backend": settings.backend, "model": settings.model,
                "template": state.backend.template, "max_context": state.batcher.max_context,
                "databases": list(state.databases), "batching": settings.batching,
                "generate_calls": state.batcher.batches, "prompts": state.batcher.prompts}

    @protected.get("/databases", tags=["databases"])
    def databases(state: State = Depends(require_ready)) -> list[DatabaseInfo]:
        """Registered databases with their schema (the CREATE TABLE text the model is given)."""
        return [DatabaseInfo(name=d.name, tables=d.tables, db_schema=d.ddl) for d in state.databases.values()]

    @protected.post("/sql", tags=["sql"], dependencies=[Depends(concurrency_slot)])
    async def sql(body: SQLRequest, state: State = Depends(require_ready)) -> SQLResponse:
        """Question + schema (DDL text or a registered database) -> SQL; with `execute`, also the rows."""
        return await within_timeout(answer(body, state), settings.request_timeout_s)

    @protected.post("/execute", tags=["sql"], dependencies=[Depends(concurrency_slot)])
    async def execute(body: ExecuteRequest, state: State = Depends(require_ready)) -> ExecuteResponse:
        """Run one SELECT on a registered database in the sandbox (e.g. SQL edited on the page).

        SQL that fails or may not run is a 200 answer with status error | timeout | rejected and the reason."""
        database = find_database(state, body.database)
        max_rows = check_max_rows(body.max_rows, settings)
        result = await within_timeout(asyncio.to_thread(database.sandbox.execute, body.sql, max_rows=max_rows),
                                      settings.request_timeout_s)
        return execute_response(result)

    app.include_router(protected)
    return app


async def answer(body: SQLRequest, state: State) -> SQLResponse:
    settings = state.settings
    start = time.perf_counter()
    database = find_database(state, body.database) if body.database else None
    max_rows = check_max_rows(body.max_rows, settings)
    max_new_tokens = body.max_new_tokens or settings.max_new_tokens
    if max_new_tokens > settings.max_new_tokens:
        raise ApiError(422, "invalid_request", f"max_new_tokens {max_new_tokens} is over this server's limit of "
                       f"{settings.max_new_tokens}.")
    db_schema = database.ddl if database else body.db_schema
    kept = None
    if body.prune_schema:  # sqlglot parsing of a big schema takes a while: off the event loop
        db_schema, kept = await asyncio.to_thread(prune_schema, db_schema, body.question)
    prompt = state.backend.sql_prompt(db_schema, body.question)
    try:
        done = await state.batcher.generate(prompt, GenerationConfig(max_new_tokens=max_new_tokens, batch_size=1))
    except PromptTooLong as e:
        raise context_too_long(e, kept) from None
    except BatcherClosed:
        raise ApiError(503, "shutting_down", "The server is shutting down; retry on another instance.") from None
    except Exception as e:
        log.exception("generation failed")
        raise ApiError(502, "backend_error", f"The model backend failed: {type(e).__name__}: {e}") from None
    generated = time.perf_counter()

    raw = done.generation.text
    sql = extract_sql(raw)
    parsed = parse_sql(sql) if sql else None
    result = None
    if body.execute:
        if sql:
            result = execute_response(await asyncio.to_thread(database.sandbox.execute, sql, max_rows=max_rows))
        else:
            result = ExecuteResponse(status="error", error="The model wrote no SQL to run.")
    end = time.perf_counter()
    return SQLResponse(
        sql=sql, valid=bool(parsed and parsed.ok),
        parse_error=parsed.error if parsed else "the model wrote no SQL",
        raw=raw, prompt_tokens=done.generation.prompt_tokens, new_tokens=done.generation.new_tokens,
        batch_size=done.batch_size, kept_tables=kept,
        timings=Timings(generate_s=round(generated - start, 4), execute_s=round(end - generated, 4) if body.execute
                        else 0.0, total_s=round(end - start, 4)),
        result=result)


def context_too_long(e: PromptTooLong, kept: list[str] | None) -> ApiError:
    over = e.prompt_tokens + e.max_new_tokens - e.max_context
    pruned = f" even with the schema pruned to {len(kept)} table(s)" if kept is not None else ""
    advice = ("send fewer tables or lower max_new_tokens" if kept is not None else
              "set prune_schema: true to send only the tables the question needs, send fewer tables, "
              "or lower max_new_tokens")
    return ApiError(
        413, "context_too_long",
        f"The prompt is {e.prompt_tokens} tokens{pruned}; with max_new_tokens {e.max_new_tokens} that is "
        f"{e.prompt_tokens + e.max_new_tokens}, over the model's context of {e.max_context} by {over}. "
        f"To fit: {advice}.",
        detail={"prompt_tokens": e.prompt_tokens, "max_new_tokens": e.max_new_tokens,
                "max_context": e.max_context, "over_by": over, "kept_tables": kept})


def find_database(state: State, name: str) -> Database:
    if name not in state.databases:
        known = ", ".join(state.databases) or "none"
        raise ApiError(404, "unknown_database", f"No database named {name!r}. Registered: {known} "
                       "(GET /databases lists them with their schemas).", detail={"databases": list(state.databases)})
    return state.databases[name]


def check_max_rows(max_rows: int | None, settings: Settings) -> int:
    if max_rows is None:
        return settings.max_rows
    if max_rows > settings.max_rows:
        raise ApiError(422, "invalid_request", f"max_rows {max_rows} is over this server's limit of "
                       f"{settings.max_rows}.")
    return max_rows


async def within_timeout(work, timeout_s: float):
    try:
        return await asyncio.wait_for(work, timeout_s)
    except TimeoutError:
        raise ApiError(504, "timeout", f"No answer within {timeout_s:g} s (the server's request timeout). "
                       "The server may be busy: retry, or ask with a smaller max_new_tokens.") from None


def execute_response(result: ExecutionResult) -> ExecuteResponse:
    return ExecuteResponse(status=result.status, columns=result.columns,
                           rows=[[json_value(v) for v in row] for row in result.rows],
                           truncated=result.truncated, error=result.error, elapsed_s=round(result.elapsed_s, 4))


def json_value(value: Any) -> Any:
    """A DuckDB value as JSON: numbers stay numbers; dates, decimals, UUIDs, bytes become text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN or Infinity
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, (datetime.date, datetime.time, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


# ---------------------------------------------------------------------- the one error body

STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
                422: "invalid_request", 429: "busy", 500: "internal_error", 503: "not_ready", 504: "timeout"}


def error_response(status: int, code: str, message: str, detail: Any = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "detail": detail}}, status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.code, e.message, e.detail, e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        message = {404: f"No route {request.url.path}; see /docs for the API.",
                   405: f"{request.method} is not allowed on {request.url.path}; see /docs."}.get(e.status_code, str(e.detail))
        return error_response(e.status_code, STATUS_CODES.get(e.status_code, "http_error"), message,
                              headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        # Not the offending input itself: it may be a 200 kB schema, echoed back for nothing.
        problems = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
                    for err in e.errors()]
        if any(p["type"] == "json_invalid" for p in problems):
            return error_response(422, "invalid_json", "The request body is not valid JSON.", problems)
        summary = "; ".join(f"{'.'.join(str(p) for p in pr['loc'][1:]) or 'body'}: {pr['msg']}" for pr in problems)
        return error_response(422, "invalid_request", f"Invalid request: {summary}", problems)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"Unexpected server error ({type(e).__name__}); the server "
                              "log has the details.")
