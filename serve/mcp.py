"""`sqlft mcp`: the registered databases as MCP tools for agent clients (Claude Desktop, IDEs, agent SDKs).

    sqlft mcp --database shop=data/shop.sqlite                          stdio: the client starts this process
    sqlft mcp runs/demo/merged --transport http --port 8001 --api-key SECRET   streamable HTTP on /mcp
    python -m serve.mcp --backend fake --no-demo-databases --database shop=shop.sqlite         tests, no model

Tools: list_databases, describe_schema, question_to_sql, execute_sql. A sibling of the HTTP app over the same
serve state (serve/state.py): the same flags (serve.settings.Settings, plus --transport), databases, sandboxes,
limits and concurrency slots; question_to_sql and execute_sql call the route functions of POST /sql and
POST /execute themselves, so an answer or a refusal is the one the HTTP API gives. Over HTTP, the API key is
serve's (--api-key, sent as X-API-Key or Bearer).
"""

import asyncio
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import sqlglot
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError
from sqlglot import exp

from serve.app import load_backend
from serve.errors import ApiError
from serve.execution import json_value, run_sql
from serve.registry import Database
from serve.routes import sql as routes
from serve.routes import tables
from serve.schemas import MAX_CANDIDATES, ExecuteRequest, ExecuteResponse, SQLRequest, SQLResponse
from serve.settings import MCPSettings
from serve.state import ServerState, Slot

log = logging.getLogger("sqlft.mcp")

SAMPLE_ROWS = 5  # rows read per table for describe_schema's sample values
SAMPLE_VALUES = 3  # distinct values shown per column
SAMPLE_CHARS = 60  # a longer text value is cut: samples show what values look like, not whole documents


# ------------------------------------------------------------------------------------------ tool results

class DatabaseSummary(BaseModel):
    name: str
    engine: str = Field(description="where its SQL runs: sqlite | duckdb | postgres")
    tables: list[str]


class SampledColumn(tables.ColumnInfo):
    samples: list[Any] = Field(description=f"up to {SAMPLE_VALUES} distinct non-null values from the first "
                               f"{SAMPLE_ROWS} rows")


class SampledTable(tables.TableInfo):
    columns: list[SampledColumn]
    sample_error: str = Field("", description="why no sample values could be read, if so")


class SchemaInfo(BaseModel):
    name: str
    engine: str
    tables: list[SampledTable]
    db_schema: str = Field(description="the CREATE TABLE text question_to_sql gives the model")


# ------------------------------------------------------------------------------------------ the server

def create_server(state: ServerState) -> MCPServer:
    """The MCP server over `state`; its lifespan loads the model and databases (in a thread, as serve does) and
    closes them at the end. Tool calls made while loading wait for it, up to the request timeout."""
    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[None]:
        # A daemon thread: a client that disconnects during a long model load must not wait for it.
        threading.Thread(target=state.load, name="sqlft-load", daemon=True).start()
        try:
            yield
        finally:
            await asyncio.to_thread(state.close)

    server = MCPServer("sqlft", version="0.1.0", lifespan=lifespan, log_level=state.settings.log_level.upper(),
                       instructions="Text-to-SQL over registered databases. Call list_databases, then "
                       "describe_schema for one; question_to_sql writes SQL with the fine-tuned model (execute: "
                       "true also returns rows); execute_sql runs one read-only SELECT.")
    tools = Tools(state)
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
    for tool in (tools.list_databases, tools.describe_schema, tools.question_to_sql, tools.execute_sql):
        server.add_tool(tool, annotations=read_only)  # name and description: the method's name and docstring
    return server


class Tools:
    """The tools, over one server state. Each waits for the state to load, and checks the database name first."""

    def __init__(self, state: ServerState):
        self.state, self.settings = state, state.settings

    async def list_databases(self) -> list[DatabaseSummary]:
        """The databases this server answers questions about: name, engine and tables."""
        await self.ready()
        return [DatabaseSummary(name=d.name, engine=d.engine, tables=d.tables) for d in self.state.databases.values()]

    async def describe_schema(self, database: str) -> SchemaInfo:
        """One database's tables: columns with types and a few sample values, primary and foreign keys, and the
        CREATE TABLE text the model is given."""
        await self.ready()
        db = self.database_named(database)
        tables = await self.with_slot(lambda slot: routes.run_on(self.state.execute_pool, slot, describe_tables, db,
                                                                 timeout_s=self.settings.execute_timeout_s))
        return SchemaInfo(name=db.name, engine=db.engine, tables=tables, db_schema=db.ddl)

    async def question_to_sql(
        self, question: str, database: str,
        execute: bool = Field(False, description="also run the SQL and return the rows (read-only sandbox)"),
        repair: bool = Field(False, description="an answer that does not run is rewritten to the table and column "
                             "names the schema has"),
        vote: bool = Field(False, description="sample `candidates` answers, run each, answer with the SQL whose "
                           "result most of them give"),
        candidates: int = Field(1, ge=1, le=MAX_CANDIDATES, description="answers voted on (with vote: 2 or more)"),
        prune_schema: bool = Field(False, description="show the model only the tables the question seems to need "
                                   "(for schemas too big for its context)"),
        max_rows: int | None = Field(None, ge=1, description="rows returned with execute (default: the server's)"),
    ) -> SQLResponse:
        """A question in English -> SQL written by the fine-tuned model for `database` (POST /sql of `sqlft serve`).
        `sql` is the answer; with execute, `result` has the columns and rows or why there are none."""
        await self.ready()
        self.database_named(database)
        body = request(SQLRequest, question=question, database=database, execute=execute, repair=repair,
                       vote=vote, candidates=candidates, prune_schema=prune_schema, max_rows=max_rows)
        state = self.state
        return await self.with_slot(lambda slot: routes.sql(body, state, state.batcher, state.databases,
                                                            self.settings, slot))

    async def execute_sql(
        self, database: str, sql: str,
        max_rows: int | None = Field(None, ge=1, description="rows returned (default and upper bound: the "
                                     "server's)"),
    ) -> ExecuteResponse:
        """Run one read-only SELECT on `database` in the server's sandbox (time, memory and row limits) and return
        the columns and rows. SQL that fails, times out or may not run is a tool error saying why."""
        await self.ready()
        self.database_named(database)
        body = request(ExecuteRequest, database=database, sql=sql, max_rows=max_rows)
        state = self.state
        response = await self.with_slot(lambda slot: routes.execute_sql(body, state, state.databases, self.settings,
                                                                        slot))
        if response.status != "ok":  # the same body POST /execute answers with, marked as an error for the agent
            return CallToolResult(content=[TextContent(type="text", text=f"SQL {response.status}: {response.error}")],
                                  structured_content=response.model_dump(mode="json"), is_error=True)
        return response

    async def ready(self) -> None:
        """Once the state has loaded; a ToolError if it failed, or still loads after the request timeout."""
        deadline = time.monotonic() + self.settings.request_timeout_s
        while not self.state.ready:
            if self.state.load_error:
                raise ToolError(f"The server failed to load: {self.state.load_error}. Fix that option and restart "
                                "the MCP server.")
            if time.monotonic() > deadline:
                raise ToolError("The model and databases are still loading; retry in a few seconds.")
            await asyncio.sleep(0.05)

    def database_named(self, name: str) -> Database:
        databases = self.state.databases
        if name not in databases:
            raise ToolError(f"No database named {name!r}. Registered: {', '.join(databases) or 'none'} "
                            "(list_databases lists them; sqlft mcp --database NAME=PATH registers one).")
        return databases[name]

    async def with_slot(self, work: Callable[[Slot], Awaitable[Any]]) -> Any:
        """work(slot) in one of --max-concurrency places, shared with the HTTP API's guard; API errors (timeouts,
        busy PostgreSQL pools, prompts over the context) become tool errors with the same message."""
        slots = self.state.slots
        slot = slots.acquire()
        if slot is None:
            raise ToolError(f"The server is answering {slots.in_flight} requests, its limit; retry shortly.")
        try:
            return await work(slot)
        except ApiError as e:
            raise ToolError(e.message) from None
        finally:
            slot.release()


def request(model: type[BaseModel], **fields: Any) -> Any:
    """The HTTP API's request body from tool arguments: the same checks (sizes, which options go together)."""
    try:
        return model(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        # a rule over several arguments has no field name; pydantic prefixes its text with "Value error, "
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}".removeprefix(": ")
                             .replace("Value error, ", "") for err in e.errors())
        raise ToolError(f"Invalid arguments: {problems}") from None


def describe_tables(database: Database, *, timeout_s: float) -> list[SampledTable]:
    """The schema browser's tables (serve.routes.tables: columns, types and keys from the DDL the model sees) with
    sample values from each table's first rows, read through the database's sandbox as any query is. Runs on the
    execution pool."""
    deadline = time.monotonic() + timeout_s
    # The DDL reader names `sales.targets` as `targets`: give it the database's (qualified) name, which queries need
    qualified = {n.lower().rsplit(".", 1)[-1]: n for n in database.tables} | {n.lower(): n for n in database.tables}
    described = []
    for table in tables.describe_tables(database.ddl, database.engine, database.tables):
        table.name = qualified.get(table.name.lower(), table.name)
        query = exp.select("*").from_(table_expression(table.name)).limit(SAMPLE_ROWS).sql(database.engine)
        result = run_sql(database, query, max_rows=SAMPLE_ROWS, timeout_s=max(0.1, deadline - time.monotonic()))
        ok = result.status == "ok"
        samples = {c.lower(): sample_values(result.rows, i) for i, c in enumerate(result.columns)} if ok else {}
        columns = [SampledColumn(**c.model_dump(), samples=samples.get(c.name.lower(), [])) for c in table.columns]
        if not columns and ok:  # a table sqlglot could not read: its columns as the database names them
            columns = [SampledColumn(name=c, type="", primary_key=False, samples=samples[c.lower()])
                       for c in result.columns]
        described.append(SampledTable(**{**table.model_dump(), "columns": columns},
                                      sample_error="" if ok else f"{result.status}: {result.error}"))
    return described


def table_expression(name: str) -> exp.Table:
    """A quoted table reference; 'schema.table' (PostgreSQL tables outside the search path) in two parts."""
    schema, _, table = name.rpartition(".")
    return exp.table_(sqlglot.to_identifier(table, quoted=True),
                      db=sqlglot.to_identifier(schema, quoted=True) if schema else None)


def sample_values(rows: list[tuple], column: int) -> list[Any]:
    values: list[Any] = []
    for row in rows:
        value = json_value(row[column])
        if isinstance(value, str) and len(value) > SAMPLE_CHARS:
            value = value[:SAMPLE_CHARS] + "…"
        if value is not None and value not in values:
            values.append(value)
    return values[:SAMPLE_VALUES]


# ------------------------------------------------------------------------------------------ the command

def http_app(server: MCPServer, state: ServerState) -> Callable:
    """The streamable HTTP app on /mcp behind serve's RequestGuard, so a client meets the same rules as on `sqlft
    serve`: with --api-key every path but /healthz needs it (X-API-Key or Authorization: Bearer, else 401 with
    serve's error body); a POST body is read within --body-timeout (408) and up to --max-body-bytes (413) before
    the SDK sees it; a GET (the SSE stream) is never read from, only watched for the client's disconnect."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from serve.guard import RequestGuard

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    settings = state.settings
    app = server.streamable_http_app(host=settings.host, max_request_body_size=settings.max_body_bytes)
    return RequestGuard(app, state)


def run(settings: MCPSettings) -> None:
    """Serve the tools until the client goes (stdio) or the process is stopped (http); settings checked."""
    # stderr: on stdio, stdout is the protocol's channel (the SDK also diverts stray writes while it serves)
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state = ServerState(settings, load_backend)
    server = create_server(state)
    log.info("loading %s (%s backend) in the background; tools wait for it", settings.model or settings.openai_url,
             settings.backend)
    if settings.transport == "stdio":
        server.run("stdio")
        return

    import uvicorn

    from serve.protocol import guarded_protocol

    if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key and settings.backend != "fake":
        log.warning("listening on %s without an API key: anyone who can reach it can use it "
                    "(set SQLFT_API_KEY or --api-key)", settings.host)
    log.info("MCP over streamable HTTP on http://%s:%d/mcp", settings.host, settings.port)
    uvicorn.run(http_app(server, state), host=settings.host, port=settings.port, log_level=settings.log_level,
                http=guarded_protocol(settings.header_timeout_s), timeout_graceful_shutdown=5)

