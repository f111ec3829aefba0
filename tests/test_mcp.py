"""`sqlft mcp`: each tool called by the MCP SDK's own client (ClientSession over stdio_client, and streamable HTTP
with the API key) on a server process run as an MCP client runs it, over real SQLite, DuckDB and PostgreSQL
databases. The model is serve's fake backend (`--backend fake`: a query on the schema's first table), so the
checks are about the tools, not about the model's SQL.
"""

import json
import sqlite3
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import duckdb
import httpx
import httpx2
import pytest
from fastapi.testclient import TestClient
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from serve.app import create_app
from serve.mcp import create_server
from serve.mcp_command import parse_settings
from serve.settings import Settings
from serve.state import ServerState
from sqlft.core.net import free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"list_databases", "describe_schema", "question_to_sql", "execute_sql"}
# The server's own flags in every test: no demo databases, one SQL worker process, a short execution timeout.
FLAGS = ["--backend", "fake", "--no-demo-databases", "--execute-workers", "1", "--execute-timeout", "1",
         "--log-level", "warning"]

# SQL that POST /execute refuses (status rejected) or stops (timeout): execute_sql must answer the same.
HOSTILE = [
    "DELETE FROM customer",
    "SELECT 1; DROP TABLE customer",
    "ATTACH '/tmp/sqlft-mcp-attached.db' AS other",
    "PRAGMA table_info(customer)",
    "SELECT * FROM sqlite_master",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("mcp")
    shop = folder / "shop.sqlite"
    with sqlite3.connect(shop) as con:
        con.executescript("""
            CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT);
            CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer(id), total REAL);
            INSERT INTO customer VALUES (1, 'Ada', 'Paris'), (2, 'Bo', 'Lyon'), (3, 'Cy', 'Paris'), (4, 'Di', NULL);
            INSERT INTO orders VALUES (1, 1, 10.5), (2, 1, 3.0), (3, 2, 7.25);
        """)
    con.close()
    stock = folder / "stock.duckdb"
    with duckdb.connect(str(stock)) as con:
        con.execute("CREATE TABLE item (sku VARCHAR PRIMARY KEY, qty INTEGER, price DECIMAL(8, 2))")
        con.execute("INSERT INTO item VALUES ('a-1', 5, 1.50), ('b-2', 0, 20.00)")
    return {"shop": shop, "stock": stock}


def server_params(*flags: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    """How an MCP client's config starts the server: a command and its arguments."""
    return StdioServerParameters(command=sys.executable, args=["-m", "serve.mcp_command", *FLAGS, *flags], cwd=ROOT, env=env)


def over_stdio(params: StdioServerParameters, body: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    """body(session) on a server process started and spoken to by the SDK's stdio client."""
    async def run() -> Any:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await body(session)
    return anyio.run(run)


def text(result) -> str:
    return "\n".join(block.text for block in result.content)


def test_each_tool_over_stdio(files):
    async def calls(s: ClientSession) -> dict:
        return {
            "tools": await s.list_tools(),
            "list": await s.call_tool("list_databases", {}),
            "shop": await s.call_tool("describe_schema", {"database": "shop"}),
            "stock": await s.call_tool("describe_schema", {"database": "stock"}),
            "ask": await s.call_tool("question_to_sql", {"question": "Who are the customers?", "database": "shop",
                                                         "execute": True, "max_rows": 2}),
            "vote": await s.call_tool("question_to_sql", {"question": "Who are the customers?", "database": "shop",
                                                          "vote": True, "candidates": 3, "repair": True}),
            "run": await s.call_tool("execute_sql", {"database": "shop", "sql": "SELECT name FROM customer "
                                                     "WHERE city = 'Paris' ORDER BY id"}),
            "run_duckdb": await s.call_tool("execute_sql", {"database": "stock",
                                                            "sql": "SELECT sku, price FROM item ORDER BY sku"}),
        }

    got = over_stdio(server_params(f"--database=shop={files['shop']}", f"--database=stock={files['stock']}"),
                     calls)
    assert {t.name for t in got["tools"].tools} == TOOLS
    assert all(t.annotations.read_only_hint for t in got["tools"].tools)
    for name, result in got.items():
        assert name == "tools" or not result.is_error, (name, text(result))

    assert got["list"].structured_content["result"] == [
        {"name": "shop", "engine": "sqlite", "tables": ["customer", "orders"]},
        {"name": "stock", "engine": "duckdb", "tables": ["item"]}]

    shop = got["shop"].structured_content
    assert shop["engine"] == "sqlite" and "CREATE TABLE customer" in shop["db_schema"]
    customer, orders = shop["tables"]
    assert [c["name"] for c in customer["columns"]] == ["id", "name", "city"]
    assert customer["primary_key"] == ["id"] and customer["columns"][0]["primary_key"] is True
    samples = {c["name"]: c["samples"] for c in customer["columns"]}
    assert samples == {"id": [1, 2, 3], "name": ["Ada", "Bo", "Cy"], "city": ["Paris", "Lyon"]}  # 3 distinct, no NULL
    assert orders["name"] == "orders" and {c["name"]: c["samples"] for c in orders["columns"]}["total"] == \
        [10.5, 3.0, 7.25]
    # the SQLite file's own foreign key, as the model's prompt has it
    assert orders["foreign_keys"] == [{"columns": ["customer_id"], "table": "customer", "ref_columns": ["id"]}]
    assert {c["name"]: c["references"] for c in orders["columns"]}["customer_id"] == "customer.id"
    item = got["stock"].structured_content["tables"][0]
    assert item["primary_key"] == ["sku"]
    assert {c["name"]: c["samples"] for c in item["columns"]} == {"sku": ["a-1", "b-2"], "qty": [5, 0],
                                                                    "price": [1.5, 20.0]}

    ask = got["ask"].structured_content
    assert ask["sql"] == "SELECT * FROM customer LIMIT 5" and ask["valid"] and ask["engine"] == "sqlite"
    # max_rows 2: the sandbox's row limit, as POST /sql applies it
    assert ask["result"] == {**ask["result"], "status": "ok", "columns": ["id", "name", "city"],
                             "rows": [[1, "Ada", "Paris"], [2, "Bo", "Lyon"]], "truncated": True}
    vote = got["vote"].structured_content
    assert vote["vote"]["candidates"] == 3 and vote["vote"]["ran"] == 3 and vote["result"] is None

    assert got["run"].structured_content["rows"] == [["Ada"], ["Cy"]]
    assert got["run_duckdb"].structured_content["rows"] == [["a-1", 1.5], ["b-2", 20.0]]


def test_refusals_are_tool_errors_as_post_execute_refuses(files):
    """Hostile SQL ends with POST /execute's status and reason; a bad name or bad options say what to do."""
    async def calls(s: ClientSession) -> dict:
        return {
            "hostile": [await s.call_tool("execute_sql", {"database": "shop", "sql": sql}) for sql in HOSTILE],
            "unknown": await s.call_tool("execute_sql", {"database": "shops", "sql": "SELECT 1"}),
            "unknown_describe": await s.call_tool("describe_schema", {"database": "nope"}),
            "candidates_without_vote": await s.call_tool("question_to_sql", {"question": "How many?",
                                                                             "database": "shop", "candidates": 3}),
            "too_many_rows": await s.call_tool("execute_sql", {"database": "shop", "sql": "SELECT 1",
                                                               "max_rows": 10**6}),
            "after": await s.call_tool("execute_sql", {"database": "shop", "sql": "SELECT count(*) FROM customer"}),
        }

    got = over_stdio(server_params(f"--database=shop={files['shop']}"), calls)
    settings = Settings(backend="fake", demo_databases=False, database=[f"shop={files['shop']}"], execute_workers=1,
                        execute_timeout_s=1)
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.05)
        expected = [client.post("/execute", json={"database": "shop", "sql": sql}).json() for sql in HOSTILE]

    for sql, result, http in zip(HOSTILE, got["hostile"], expected):
        body = result.structured_content
        assert result.is_error, sql
        assert body["status"] in ("rejected", "timeout") and body["status"] == http["status"], (sql, body, http)
        assert body["error"] == http["error"] and body["rows"] == [], (sql, body, http)
        assert text(result) == f"SQL {body['status']}: {body['error']}"
    assert not Path("/tmp/sqlft-mcp-attached.db").exists()

    for name in ("unknown", "unknown_describe"):
        assert got[name].is_error and "No database named" in text(got[name]) and "Registered: shop" in \
            text(got[name]), text(got[name])
    assert got["candidates_without_vote"].is_error
    assert "`candidates` above 1 is for voting: also send `vote: true`" in text(got["candidates_without_vote"])
    assert got["too_many_rows"].is_error and "max_rows" in text(got["too_many_rows"])
    assert got["after"].structured_content["rows"] == [[4]]  # the server is still answering


def test_a_missing_database_stops_the_server_before_it_serves(tmp_path):
    missing = tmp_path / "missing.sqlite"
    done = subprocess.run([sys.executable, "-m", "serve.mcp_command", *FLAGS, f"--database=gone={missing}"], cwd=ROOT,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stdout == "", done
    assert done.stderr.startswith("sqlft mcp: cannot start:") and str(missing) in done.stderr, done.stderr


def test_a_load_failure_is_a_tool_error(files):
    """What only loading finds (here the model) is each tool's error, with the reason; the process stays up."""
    def no_model(settings: Settings):
        raise OSError("runs/nowhere/merged: no model there")

    state = ServerState(Settings(backend="fake", demo_databases=False, database=[f"shop={files['shop']}"],
                                 execute_workers=1), no_model)

    async def calls() -> list:
        async with Client(create_server(state)) as client:  # the SDK's in-memory transport; the lifespan runs
            return [await client.call_tool("list_databases", {}),
                    await client.call_tool("execute_sql", {"database": "shop", "sql": "SELECT 1"})]

    for result in anyio.run(calls):
        assert result.is_error
        assert "The server failed to load: OSError: runs/nowhere/merged: no model there" in text(result), text(result)


def test_bad_flags_exit_before_serving(capsys):
    with pytest.raises(SystemExit) as exited:
        parse_settings(["--transport", "sse", "--max-rows", "0", "--database", "=x.sqlite"])
    assert exited.value.code != 0
    message = str(exited.value.code)
    assert "--transport: Input should be 'stdio' or 'http'" in message and "--max-rows" in message, message
    assert capsys.readouterr().out == ""  # nothing on stdout, the protocol's channel


def test_streamable_http_needs_the_api_key(files):
    port, key = free_port(), "s3cret-key"
    process = subprocess.Popen([sys.executable, "-m", "serve.mcp_command", *FLAGS, f"--database=shop={files['shop']}",
                                "--transport", "http", "--port", str(port), "--api-key", key, "--body-timeout", "1",
                                "--max-body-bytes", "20000"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/healthz", timeout_s=60, alive=lambda: process.poll() is None)
        # serve's guard in front of the SDK: a body that stalls is 408 within --body-timeout, a large one 413
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(f"POST /mcp HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n"
                         "Content-Length: 100\r\n\r\n{".encode())
            started = time.monotonic()
            answer = b""
            while chunk := slow.recv(4096):  # head and body may come apart; the server closes after a 408
                answer += chunk
            assert time.monotonic() - started < 5
            assert answer.startswith(b"HTTP/1.1 408") and b"body_timeout" in answer, answer
        too_large = httpx.post(f"{url}/mcp", content=b"x" * 30000, headers={"X-API-Key": key})
        assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "body_too_large"
        hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
        headers = {"Accept": "application/json, text/event-stream"}
        for sent in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
            refused = httpx.post(f"{url}/mcp", json=hello, headers={**headers, **sent})
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "unauthorized"  # serve's error body, from serve's guard

        async def session(client_headers: dict) -> tuple:
            # a short read timeout: a stalled stream fails the test in seconds, not the SDK's 300 s
            async with create_mcp_http_client(headers=client_headers, timeout=httpx2.Timeout(30)) as http, \
                    streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
                    ClientSession(read, write) as s:
                await s.initialize()
                return (await s.call_tool("list_databases", {}),
                        await s.call_tool("execute_sql", {"database": "shop", "sql": "SELECT count(*) FROM orders"}))

        for client_headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
            listed, counted = anyio.run(session, client_headers)
            assert listed.structured_content["result"][0]["name"] == "shop"
            assert counted.structured_content["rows"] == [[3]]
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode in (0, -15), process.stderr.read()


def test_postgres_keys_and_schema_qualified_tables(tmp_path):
    """PostgreSQL's catalog keeps foreign keys in the schema text: describe_schema shows them, and samples a
    table outside the search path (sales.targets) by its qualified name."""
    from tests.pg_fixtures import cluster_or_skip, write_pgpass

    with cluster_or_skip() as cluster:
        cluster.psql("CREATE DATABASE shop")
        cluster.psql("""
            CREATE SCHEMA sales;
            CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
            CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric(10,2));
            CREATE TABLE sales.targets (region text, year int, PRIMARY KEY (region, year));
            INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bob');
            INSERT INTO orders VALUES (1, 1, 9.50), (2, 2, 3.25);
            INSERT INTO sales.targets VALUES ('north', 2024);
            CREATE ROLE reader LOGIN PASSWORD 'pw-mcp';
            GRANT USAGE ON SCHEMA sales TO reader;
            GRANT SELECT ON customers, orders, sales.targets TO reader;
        """, db="shop")
        pgpass = write_pgpass(tmp_path, cluster, {"reader": "pw-mcp"})

        async def calls(s: ClientSession) -> tuple:
            return (await s.call_tool("describe_schema", {"database": "live"}),
                    await s.call_tool("execute_sql", {"database": "live", "sql": "DELETE FROM orders"}))

        described, refused = over_stdio(server_params(f"--database=live={cluster.url('shop', 'reader')}",
                                                      env={"PGPASSFILE": str(pgpass)}), calls)
        assert not described.is_error, text(described)
        schema = described.structured_content
        assert schema["engine"] == "postgres" and "password" not in json.dumps(schema)
        tables = {t["name"]: t for t in schema["tables"]}
        assert set(tables) == {"customers", "orders", "sales.targets"}
        assert tables["orders"]["foreign_keys"] == [{"columns": ["customer_id"], "table": "customers",
                                                     "ref_columns": ["id"]}]
        assert {c["name"]: c["references"] for c in tables["orders"]["columns"]}["customer_id"] == "customers.id"
        assert tables["sales.targets"]["primary_key"] == ["region", "year"]
        assert {c["name"]: c["samples"] for c in tables["sales.targets"]["columns"]} == {"region": ["north"],
                                                                                         "year": [2024]}
        assert {c["name"]: c["samples"] for c in tables["orders"]["columns"]}["total"] == [9.5, 3.25]
        assert refused.is_error and refused.structured_content["status"] == "rejected"
