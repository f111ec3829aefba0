"""The HTTP API: every route and status, the one error shape, the request guard, micro-batching, shutdown.

Tests use TestClient with dependency overrides (the model is a FakeBackend behind the micro-batcher, swapped in
through serve.deps.get_batcher); live servers only where the process or the socket is the point (shutdown,
SIGTERM, header timeouts). Databases are real: the defog-data `restaurants` database and a SQLite file made
here. Hostile input has its own table: tests/test_hostile.py.
"""

import asyncio
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

import serve.routes.sql as sql_routes
from serve.app import create_app
from serve.batching import BatcherClosed, MicroBatcher, PromptTooLong
from serve.deps import get_batcher
from serve.execution import json_value
from serve.main import parse_settings
from serve.pruning import prune_schema, split_statements
from serve.settings import Settings
from serve.testing import FakeBackend, free_port
from sqlft.config import GenerationConfig
from sqlft.model.protocol import Generation

ROOT = Path(__file__).resolve().parents[1]
COUNT_SQL = "SELECT COUNT(*) AS n FROM restaurant"


def settings(**kw) -> Settings:
    return Settings(**{"backend": "fake", "demo_databases": False, "database": ["restaurants"], **kw})


def wait_ready(client: TestClient, timeout_s: float = 30, headers: dict | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while client.get("/readyz", headers=headers).status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz", headers=headers).json()
        time.sleep(0.02)


@contextmanager
def serving(backend: FakeBackend | None = None, **kw) -> Iterator[TestClient]:
    """A TestClient on an app whose model is `backend` (dependency override), over real databases."""
    s = settings(**kw)
    app = create_app(s)
    batcher = MicroBatcher(backend or FakeBackend(COUNT_SQL), max_batch=s.max_batch if s.batching else 1,
                           max_wait_s=s.max_wait_ms / 1000 if s.batching else 0.0)
    app.dependency_overrides[get_batcher] = lambda: batcher
    try:
        with TestClient(app) as client:
            wait_ready(client, headers={"X-API-Key": s.api_key} if s.api_key else None)
            yield client
    finally:
        batcher.close()


@pytest.fixture
def client():
    with serving() as c:
        yield c


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "detail"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


def post_many(client: TestClient, bodies: list[dict], path: str = "/sql") -> list[httpx.Response]:
    """Concurrent requests: TestClient runs the app on one event loop; each thread waits for its answer."""
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: client.post(path, json=b), bodies))


# ------------------------------------------------------------------------------------------ routes


def test_health_ready_and_databases(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["template"] == "chatml"
    assert "databases" not in ready and "model" not in ready  # readiness says nothing about what is served
    [db] = client.get("/databases").json()
    assert db["name"] == "restaurants" and "restaurant" in db["tables"]
    assert "CREATE TABLE restaurant" in db["db_schema"]
    assert client.get("/docs").status_code == 200
    assert "/sql" in client.get("/openapi.json").json()["paths"]
    for path in ("/healthz", "/readyz", "/databases", "/docs"):  # HEAD works wherever GET does
        head = client.head(path)
        assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0


def test_sql_with_pasted_schema(client):
    r = client.post("/sql", json={"question": "How many heads?", "db_schema": "CREATE TABLE head (age INT)"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sql"] == COUNT_SQL and body["valid"] and body["parse_error"] == ""
    assert body["raw"] == COUNT_SQL and body["prompt_tokens"] > 0 and body["new_tokens"] > 0
    assert body["result"] is None and body["batch_size"] == 1
    assert body["timings"]["total_s"] >= body["timings"]["generate_s"] >= 0


def test_sql_on_database_executes(client):
    r = client.post("/sql", json={"question": "How many restaurants?", "database": "restaurants", "execute": True})
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result["status"] == "ok" and result["columns"] == ["n"] and result["rows"][0][0] > 0


def test_sql_model_writes_bad_or_no_sql():
    for text, valid in (("SELEC name FRM restaurant", False), ("I cannot help with that.", False)):
        with serving(FakeBackend(text)) as c:
            body = c.post("/sql", json={"question": "q?", "database": "restaurants", "execute": True}).json()
        assert body["valid"] is valid and body["parse_error"] and body["raw"] == text
        assert body["result"]["status"] == "error" and body["result"]["error"]


def test_sql_rows_bounded_and_values_are_json(client):
    r = client.post("/execute", json={"database": "restaurants", "sql": "SELECT * FROM restaurant", "max_rows": 2})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok" and len(body["rows"]) == 2 and body["truncated"]
    r = client.post("/execute", json={"database": "restaurants", "sql":
                    "SELECT DATE '2024-01-02' AS d, 1.5::DECIMAL(4,2) AS x, 'nan'::DOUBLE AS f, '\\xAB'::BLOB AS b"})
    assert r.json()["rows"] == [["2024-01-02", 1.5, "nan", "ab"]]
    assert json_value(float("inf")) == "inf"


def test_sqlite_database_from_flags(tmp_path, monkeypatch):
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        con.executemany("INSERT INTO item VALUES (?, ?, ?)", [(1, "pen", 1.5), (2, "ink", 3.0)])
    (tmp_path / "dbs.yaml").write_text("databases:\n  shop: shop.sqlite\n")
    monkeypatch.setenv("SQLFT_MAX_ROWS", "7")  # the environment fills any field the flags do not
    s = parse_settings(["--backend", "fake", "--no-demo-databases", "--databases", str(tmp_path / "dbs.yaml"),
                        "--database", "r=restaurants", "--request-timeout", "9", "--threads", "1", "--no-batching"])
    assert s.sources() == {"shop": str(path), "r": "restaurants"} and s.backend == "fake"
    assert (s.request_timeout_s, s.torch_threads, s.batching, s.max_rows) == (9.0, 1, False, 7)
    app = create_app(s)
    batcher = MicroBatcher(FakeBackend("SELECT name FROM item ORDER BY price"))
    app.dependency_overrides[get_batcher] = lambda: batcher
    with TestClient(app) as c:
        wait_ready(c)
        body = c.post("/sql", json={"question": "Items by price?", "database": "shop", "execute": True}).json()
        assert body["result"]["rows"] == [["pen"], ["ink"]]
        assert {d["name"] for d in c.get("/databases").json()} == {"shop", "r"}
    batcher.close()


def test_cli_option_problems_exit(tmp_path):
    with pytest.raises(SystemExit, match="--max-rows: Input should be greater than or equal to 1"):
        parse_settings(["--max-rows", "0"])
    with pytest.raises(SystemExit, match="expected NAME=SOURCE"):
        parse_settings(["--database", "=x"])
    with pytest.raises(SystemExit, match="No such file"):
        parse_settings(["--databases", str(tmp_path / "missing.yaml")])


# ------------------------------------------------------------------------------------------ failures


@pytest.mark.parametrize("body, fragment", [
    ({"question": "q"}, "exactly one of"),
    ({"question": "q", "db_schema": "CREATE TABLE t (a INT)", "database": "restaurants"}, "exactly one of"),
    ({"question": "q", "db_schema": "CREATE TABLE t (a INT)", "execute": True}, "needs `database`"),
    ({"question": "", "database": "restaurants"}, "question"),
    ({"question": "q" * 2001, "database": "restaurants"}, "at most 2000"),
    ({"question": "q", "database": "restaurants", "max_row": 5}, "max_row"),
    ({"question": "q", "database": "restaurants", "max_rows": 0}, "max_rows"),
    ({"question": "q", "database": "restaurants", "max_rows": 10_001}, "max_rows"),
    ({"question": "q", "database": "restaurants", "max_rows": 5000}, "over this server's limit"),
    ({"question": "q", "database": "restaurants", "max_new_tokens": 500}, "over this server's limit"),
    ({"question": ["q"], "database": "restaurants"}, "question"),
    # Strict types: a wrong JSON type is the client's error, not something to guess at.
    ({"question": "q", "database": "restaurants", "max_rows": True}, "max_rows"),
    ({"question": "q", "database": "restaurants", "max_rows": "5"}, "max_rows"),
    ({"question": "q", "database": "restaurants", "max_rows": 5.0}, "max_rows"),
    ({"question": "q", "database": "restaurants", "execute": "yes"}, "execute"),
    ({"question": "q", "database": "restaurants", "execute": 1}, "execute"),
    ({"question": "q", "database": "restaurants", "prune_schema": "true"}, "prune_schema"),
    ({"question": 5, "database": "restaurants"}, "question"),
])
def test_validation_errors_have_the_error_shape(client, body, fragment):
    error = assert_error(client.post("/sql", json=body), 422, "invalid_request")
    assert fragment in error["message"]


def test_not_json_unknown_routes_and_databases(client):
    for content in (b"{oops", b'{"question": "\xff\xfe", "database": "restaurants"}', b"\xc3\x28"):
        assert_error(client.post("/sql", content=content, headers={"content-type": "application/json"}),
                     422, "invalid_json")
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.delete("/sql"), 405, "method_not_allowed")
    assert_error(client.get("/sql"), 405, "method_not_allowed")
    error = assert_error(client.post("/sql", json={"question": "q", "database": "nope"}), 404, "unknown_database")
    assert "restaurants" in error["message"]
    assert_error(client.post("/execute", json={"database": "nope", "sql": "SELECT 1"}), 404, "unknown_database")


def test_api_key_comes_before_any_other_answer():
    with serving(api_key="s3cret") as c:
        assert c.get("/healthz").status_code == 200 and c.head("/healthz").status_code == 200
        body = {"question": "q", "database": "restaurants"}
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            assert_error(c.post("/sql", json=body, headers=headers), 401, "unauthorized")
        for path in ("/readyz", "/databases", "/docs", "/openapi.json", "/nope"):
            assert_error(c.get(path), 401, "unauthorized")
        assert_error(c.post("/execute", json={"database": "restaurants", "sql": "SELECT 1"}), 401, "unauthorized")
        # Neither the body's validity nor its size is looked at before the key.
        assert_error(c.post("/sql", content=b"{oops", headers={"content-type": "application/json"}), 401,
                     "unauthorized")
        assert_error(c.post("/sql", content=b"x" * 2_000_000), 401, "unauthorized")
        assert c.post("/sql", json=body, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/databases", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/readyz", headers={"X-API-Key": "s3cret"}).status_code == 200


def test_context_too_long_then_pruned():
    big = "\n".join(f"CREATE TABLE audit_{i} (entry_{i} INTEGER, note_{i} VARCHAR, stamp_{i} VARCHAR);"
                    for i in range(60))
    ddl = big + "\nCREATE TABLE singer (singer_id INTEGER, name VARCHAR, age INTEGER);"
    with serving(FakeBackend("SELECT COUNT(*) FROM singer", max_context=512), max_new_tokens=64) as c:
        error = assert_error(c.post("/sql", json={"question": "How many singers?", "db_schema": ddl}),
                             413, "context_too_long")
        assert "prune_schema" in error["message"] and error["detail"]["over_by"] > 0
        assert error["detail"]["prompt_tokens"] + 64 > 512
        body = c.post("/sql", json={"question": "How many singers?", "db_schema": ddl, "prune_schema": True}).json()
        assert body["kept_tables"] == ["singer"] and body["sql"] == "SELECT COUNT(*) FROM singer"
        # A smaller answer budget is the other way out; a question matching every table is not.
        assert c.post("/sql", json={"question": "q", "db_schema": big[:1500], "max_new_tokens": 8}).status_code == 200
        error = assert_error(c.post("/sql", json={"question": "Which entry notes?", "db_schema": ddl,
                                                  "prune_schema": True}), 413, "context_too_long")
        assert "even with the schema pruned" in error["message"]


def test_body_too_large_with_or_without_content_length():
    def chunked(total: int) -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for _ in range(total // 1000):
            yield b"x" * 1000

    with serving(max_body_bytes=1000) as c:
        assert_error(c.post("/sql", json={"question": "q", "db_schema": "x" * 2000}), 413, "body_too_large")
        assert_error(c.post("/sql", content=chunked(50_000)), 413, "body_too_large")
        assert c.post("/sql", json={"question": "q", "database": "restaurants"}).status_code == 200


def test_not_ready_then_ready_and_load_failure():
    release = threading.Event()

    def slow_load(_):
        release.wait(10)
        return FakeBackend(COUNT_SQL)

    with TestClient(create_app(settings(), load_backend=slow_load)) as c:
        assert c.get("/healthz").status_code == 200
        assert_error(c.get("/readyz"), 503, "not_ready")
        assert_error(c.post("/sql", json={"question": "q", "database": "restaurants"}), 503, "not_ready")
        assert_error(c.get("/databases"), 503, "not_ready")
        assert_error(c.post("/execute", json={"database": "restaurants", "sql": "SELECT 1"}), 503, "not_ready")
        release.set()
        wait_ready(c)
        assert c.post("/sql", json={"question": "q", "database": "restaurants"}).status_code == 200

    def broken(_):
        raise FileNotFoundError("no model at runs/x/merged")

    with TestClient(create_app(settings(), load_backend=broken)) as c:
        deadline = time.monotonic() + 10
        while c.get("/readyz").json()["error"]["code"] == "not_ready" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "no model at runs/x/merged" in assert_error(c.get("/readyz"), 503, "load_failed")["message"]

    with TestClient(create_app(settings(database=["x=no/such/file.duckdb"]))) as c:
        deadline = time.monotonic() + 10
        while c.get("/readyz").json()["error"]["code"] == "not_ready" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "no/such/file.duckdb" in assert_error(c.get("/readyz"), 503, "load_failed")["message"]


def test_backend_failure_is_502():
    class Broken(FakeBackend):
        def generate(self, prompts, gen=None):
            raise RuntimeError("CUDA out of memory")

    with serving(Broken()) as c:
        error = assert_error(c.post("/sql", json={"question": "q", "database": "restaurants"}), 502, "backend_error")
        assert "out of memory" in error["message"]
        assert c.get("/readyz").status_code == 200  # the worker survives a failed batch


# ------------------------------------------------------------------------------------------ concurrency


class Gate(FakeBackend):
    """A model that answers only once the test opens the gate: requests in flight stay in flight."""

    def __init__(self, sql: str = COUNT_SQL):
        super().__init__(sql)
        self.open, self.entered = threading.Event(), threading.Event()

    def generate(self, prompts, gen=None):
        self.entered.set()
        assert self.open.wait(30)
        return super().generate(prompts, gen)


def test_busy_server_answers_429_at_once():
    gate = Gate()
    with serving(gate, max_concurrency=2, batching=False) as c, ThreadPoolExecutor(2) as pool:
        body = {"question": "q", "database": "restaurants"}
        held = [pool.submit(c.post, "/sql", json=body) for _ in range(2)]
        deadline = time.monotonic() + 10
        while c.app.state.sqlft.slots.in_flight < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for _ in range(4):  # answered while both requests wait for the model: nothing queued behind them
            busy = c.post("/sql", json=body)
            assert_error(busy, 429, "busy")
            assert busy.headers["retry-after"] == "1"
        gate.open.set()
        assert [f.result().status_code for f in held] == [200, 200]
        assert c.post("/sql", json=body).status_code == 200


def test_timeout_is_504_and_server_goes_on():
    gate = Gate()
    with serving(gate, request_timeout_s=0.3) as c:
        r = c.post("/sql", json={"question": "q", "database": "restaurants"})
        assert "request timeout" in assert_error(r, 504, "timeout")["message"]
        gate.open.set()
        assert c.get("/healthz").status_code == 200


def test_a_timed_out_query_keeps_its_slot_until_it_has_stopped(monkeypatch):
    """A 504 does not free the slot while the SQL still runs: the next request gets 429, not a second query."""
    stop, started = threading.Event(), threading.Event()
    real_run_sql = sql_routes.run_sql

    def stuck(database, sql, **kw):
        if sql == "SELECT 'stuck'":
            started.set()
            assert stop.wait(30)
        return real_run_sql(database, sql, **kw)

    monkeypatch.setattr(sql_routes, "run_sql", stuck)
    with serving(max_concurrency=1, request_timeout_s=0.5) as c:
        assert_error(c.post("/execute", json={"database": "restaurants", "sql": "SELECT 'stuck'"}), 504, "timeout")
        assert started.is_set()
        assert_error(c.post("/execute", json={"database": "restaurants", "sql": "SELECT 1"}), 429, "busy")
        stop.set()
        deadline = time.monotonic() + 10
        while c.app.state.sqlft.slots.in_flight:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert c.post("/execute", json={"database": "restaurants", "sql": "SELECT 1"}).json()["rows"] == [[1]]


def test_slow_pruning_does_not_starve_execution(monkeypatch):
    """Prunings have a pool of their own: with every pruning worker stuck, SQL still runs at once."""
    stop = threading.Event()
    real_prune = sql_routes.prune_schema

    def stuck_prune(ddl, question):
        assert stop.wait(30)
        return real_prune(ddl, question)

    monkeypatch.setattr(sql_routes, "prune_schema", stuck_prune)
    with serving(prune_workers=2, execute_workers=1) as c, ThreadPoolExecutor(6) as pool:
        ddl = "CREATE TABLE a (x INT); CREATE TABLE b (y INT);"
        pruning = [pool.submit(c.post, "/sql", json={"question": "q", "db_schema": ddl, "prune_schema": True})
                   for _ in range(6)]
        deadline = time.monotonic() + 10
        while c.app.state.sqlft.slots.in_flight < 6:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for _ in range(3):
            assert c.post("/execute", json={"database": "restaurants", "sql": "SELECT 1"}).json()["rows"] == [[1]]
        assert not any(f.done() for f in pruning)
        stop.set()
        assert all(f.result().status_code == 200 for f in pruning)


def test_micro_batching_groups_and_routes_answers():
    def echo(prompt: str) -> str:  # answer each question with its own number: answers must not be swapped
        n = re.search(r"question (\d+)", prompt).group(1)
        return f"SELECT {n} AS n"

    for batching, expect_batches in ((True, True), (False, False)):
        backend = FakeBackend(echo, delay_s=0.3)
        with serving(backend, batching=batching, max_batch=8, max_wait_ms=50) as c:
            bodies = [{"question": f"question {i}?", "database": "restaurants", "execute": True} for i in range(8)]
            responses = post_many(c, bodies)
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        for i, r in enumerate(responses):
            assert r.json()["result"]["rows"] == [[i]]
        assert sum(backend.calls) == 8
        if expect_batches:
            assert max(backend.calls) > 1 and len(backend.calls) < 8, backend.calls
            assert max(r.json()["batch_size"] for r in responses) > 1
        else:
            assert backend.calls == [1] * 8


# ------------------------------------------------------------------------------------------ live server (the process is the point)


def test_graceful_shutdown_finishes_requests_in_flight():
    gate = Gate()
    port = free_port()
    app = create_app(settings(), load_backend=lambda s: gate)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(httpx.post, url + "/sql", json={"question": "q", "database": "restaurants"},
                               timeout=30) for _ in range(3)]
        while app.state.sqlft.slots.in_flight < 3:  # all three are in flight, waiting for the model
            assert time.monotonic() < deadline + 30
            time.sleep(0.01)
        server.should_exit = True  # what uvicorn's SIGTERM handler does
        gate.open.set()
        assert [f.result().status_code for f in futures] == [200, 200, 200]
    thread.join(10)
    assert not thread.is_alive()
    assert app.state.sqlft.batcher.prompts == 3


def test_sigterm_stops_the_cli_server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "serve.main", "--backend", "fake", "--no-demo-databases",
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.1)
        body = {"question": "q", "db_schema": "CREATE TABLE t (a INT)"}
        assert httpx.post(f"http://127.0.0.1:{port}/sql", json=body).json()["sql"] == "SELECT * FROM t LIMIT 5"
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down cleanly, then re-raises the signal: the exit status says "stopped by SIGTERM".
        assert proc.wait(20) in (0, -signal.SIGTERM)
        log = proc.stdout.read()
        assert "Application shutdown complete" in log and "stopped: 1 prompt(s)" in log, log
    finally:
        if proc.poll() is None:
            proc.kill()


def test_batcher_groups_checks_budget_and_drains():
    backend = FakeBackend("SELECT 1", delay_s=0.2, max_context=100)
    batcher = MicroBatcher(backend, max_batch=4, max_wait_s=0.05)

    async def burst():
        short, long_ = GenerationConfig(max_new_tokens=8), GenerationConfig(max_new_tokens=16)
        jobs = [batcher.generate("p" * 40, short) for _ in range(3)] + [batcher.generate("p" * 40, long_)]
        jobs.append(batcher.generate("p" * 400, short))  # ~100 tokens + 8 > 100
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = asyncio.run(burst())
    assert [r.batch_size for r in results[:4]] == [3, 3, 3, 1]  # different settings: separate calls
    assert isinstance(results[4], PromptTooLong) and results[4].max_context == 100
    assert sorted(backend.calls) == [1, 3]

    async def close_while_queued():
        eight = GenerationConfig(max_new_tokens=8)
        pending = [asyncio.ensure_future(batcher.generate("p", eight)) for _ in range(6)]
        await asyncio.sleep(0.01)
        await asyncio.to_thread(batcher.close)  # finishes what is queued, then stops
        done = await asyncio.gather(*pending)
        try:
            await batcher.generate("late", eight)
        except BatcherClosed:
            return done, True
        return done, False

    done, refused = asyncio.run(close_while_queued())
    assert len(done) == 6 and refused and not batcher._thread.is_alive()


# ------------------------------------------------------------------------------------------ hostile SQL

HOSTILE = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/*')",
    "ATTACH 'evil.duckdb' AS evil",
    "COPY (SELECT * FROM restaurant) TO 'out.csv'",
    "COPY restaurant TO 'out.parquet' (FORMAT parquet)",
    "EXPORT DATABASE 'dump'",
    "CREATE TABLE stolen AS SELECT * FROM restaurant",
    "DROP TABLE restaurant",
    "INSERT INTO restaurant VALUES (1, 'a', 'b', 'c', 1.0)",
    "UPDATE restaurant SET rating = 0",
    "DELETE FROM restaurant",
    "SELECT 1; DROP TABLE restaurant",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "PRAGMA database_list",
    "SELECT * FROM duckdb_settings()",
    "CALL pragma_version()",
    "SELECT * FROM other_db.main.restaurant",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
]


def test_hostile_sql_is_rejected_or_stopped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.rglob("*"))

    def hostile(prompt: str) -> str:
        return HOSTILE[int(re.search(r"case (\d+)", prompt).group(1))]

    with serving(FakeBackend(hostile), execute_timeout_s=1.0) as c:
        for i, sql in enumerate(HOSTILE):
            direct = c.post("/execute", json={"database": "restaurants", "sql": sql})
            assert direct.status_code == 200, direct.text
            assert direct.json()["status"] in ("rejected", "timeout", "error"), (sql, direct.json())
            assert "root:" not in direct.text
            via_model = c.post("/sql", json={"question": f"case {i}", "database": "restaurants", "execute": True})
            assert via_model.status_code == 200, via_model.text
            body = via_model.json()
            # extract_sql keeps the first statement only: "SELECT 1; DROP ..." runs as "SELECT 1".
            assert body["result"]["status"] in ("rejected", "timeout", "error") or body["sql"] == "SELECT 1", body
            assert "root:" not in via_model.text
        assert c.post("/execute", json={"database": "restaurants", "sql": COUNT_SQL}).json()["rows"][0][0] > 0
    assert set(tmp_path.rglob("*")) == before  # no file written, attached or exported


# ------------------------------------------------------------------------------------------ schema pruning


def test_prune_schema_rules():
    ddl = ("CREATE TABLE author (aid INT, name TEXT, PRIMARY KEY (aid));\n"
           "CREATE TABLE writes (aid INT, pid INT);\n"
           "CREATE TABLE publication (pid INT, title TEXT, year INT, PRIMARY KEY (pid));\n"
           "CREATE TABLE weather (id INT PRIMARY KEY, city TEXT, temperature REAL);\n"
           "CREATE TABLE station (id INT PRIMARY KEY, city_id INT REFERENCES city(id), name TEXT);\n"
           "CREATE TABLE city (id INT PRIMARY KEY, name TEXT);")
    pruned, kept = prune_schema(ddl, "Which authors wrote the most publications?")
    assert kept == ["author", "writes", "publication"]
    assert pruned.splitlines() == ddl.splitlines()[:3]  # original text, original order
    # A declared foreign key brings the referenced table along; "name" is in most tables and points nowhere.
    assert prune_schema(ddl, "List the stations")[1] == ["station", "city"]
    assert prune_schema(ddl, "What is the answer?")[0] == ddl  # nothing to go on: all kept
    assert split_statements("CREATE TABLE \"a;b\" (x INT); -- c;\nCREATE TABLE c (y INT)") == [
        'CREATE TABLE "a;b" (x INT);', "-- c;\nCREATE TABLE c (y INT)"]


# ------------------------------------------------------------------------------------------ the real model


@pytest.mark.slow
def test_real_embedded_model_answers_on_a_defog_database():
    with TestClient(create_app(settings(backend="local", max_new_tokens=24))) as c:
        wait_ready(c, timeout_s=120)
        assert c.get("/readyz").json()["template"]
        # The base (not fine-tuned) model answers "How many ...?" in prose; asked for a query, it writes SQL.
        r = c.post("/sql", json={"question": "Write a SQL query that counts the restaurants.",
                                 "database": "restaurants", "execute": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["raw"] and body["new_tokens"] > 0 and body["prompt_tokens"] > 50
    assert body["sql"], body  # the 135M base model writes SQL here; whether it is right is eval's business
    assert body["result"]["status"] in ("ok", "error", "rejected")


# ------------------------------------------------------------------------------------------ raw sockets


def _raw(url: str, data: bytes, *, read_timeout_s: float = 10) -> bytes:
    """Send bytes on a fresh connection; everything the server answers until it closes the connection."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=read_timeout_s) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_slow_headers_are_cut_off_and_bad_framing_gets_the_error_body():
    from serve.testing import running_server

    app = create_app(settings(header_timeout_s=0.5, body_timeout_s=0.5))
    with running_server(app) as url:
        # Slowloris: incomplete headers. The server closes the connection (recv gets b"") long before the
        # client's own 10 s read timeout would raise.
        assert _raw(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ") == b""
        # A body announced but never sent: 408 in the one error shape.
        answer = _raw(url, b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert answer.startswith(b"HTTP/1.1 408") and b'"code":"body_timeout"' in answer, answer
        # Framing h11 cannot parse: JSON, not uvicorn's plain text.
        for garbage in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n"):
            answer = _raw(url, garbage)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head, answer
            assert json_loads(body)["error"]["code"] == "bad_request"


def json_loads(data: bytes) -> dict:
    import json
    return json.loads(data)


class VotingBackend(FakeBackend):
    """Greedy calls write `greedy`; sampling calls write the `samples` in turn."""

    def __init__(self, greedy: str, samples: list[str]):
        super().__init__(greedy)
        self.samples, self.sampled = samples, 0

    def generate(self, prompts, gen=None):
        if gen is None or not gen.do_sample:
            return super().generate(prompts, gen)
        texts = []
        for _ in prompts:
            texts.append(self.samples[self.sampled % len(self.samples)])
            self.sampled += 1
        return [Generation(t, 10, 5, 0.0) for t in texts]


def test_sql_vote_answers_with_the_majority_result():
    wrong = "SELECT COUNT(*) AS n FROM restaurant WHERE 1 = 0"
    samples = [COUNT_SQL, "SELECT 1", "SELECT count(*) FROM restaurant AS r"]  # 1st and 3rd: the same rows
    with serving(VotingBackend(wrong, samples)) as c:
        body = c.post("/sql", json={"question": "How many restaurants?", "database": "restaurants",
                                    "execute": True, "candidates": 4, "vote": True}).json()
        assert body["vote"] == {"candidates": 4, "ran": 4, "votes": 2, "changed": True, "greedy_sql": wrong, "empty": 0}
        assert body["sql"] == COUNT_SQL and body["result"]["rows"][0][0] > 0
        plain = c.post("/sql", json={"question": "How many restaurants?", "database": "restaurants"}).json()
        assert plain["vote"] is None and plain["sql"] == wrong
    with serving(VotingBackend(wrong, [COUNT_SQL])) as c:  # one against one: the greedy answer stays
        tie = c.post("/sql", json={"question": "q?", "database": "restaurants", "candidates": 2, "vote": True}).json()
    assert tie["sql"] == wrong and tie["vote"]["changed"] is False and tie["vote"]["votes"] == 1
    with serving() as c:
        assert_error(c.post("/sql", json={"question": "q?", "db_schema": "CREATE TABLE t (a INT)", "candidates": 3,
                                          "vote": True}), 422, "invalid_request")
        assert_error(c.post("/sql", json={"question": "q?", "database": "restaurants", "candidates": 3}),
                     422, "invalid_request")
        assert_error(c.post("/sql", json={"question": "q?", "database": "restaurants", "candidates": 99,
                                          "vote": True}), 422, "invalid_request")


def test_sql_repair_rewrites_an_answer_that_does_not_run_to_the_schemas_names():
    misspelt = "SELECT COUNT(*) AS n FROM restaurants"  # the table is restaurant
    with serving(FakeBackend(misspelt)) as c:
        body = c.post("/sql", json={"question": "How many restaurants?", "database": "restaurants",
                                    "execute": True, "repair": True}).json()
        assert body["repaired_from"] == misspelt and body["sql"] == "SELECT COUNT(*) AS n FROM restaurant"
        assert body["result"]["status"] == "ok" and body["result"]["rows"][0][0] > 0
        plain = c.post("/sql", json={"question": "How many restaurants?", "database": "restaurants",
                                     "execute": True}).json()
        assert plain["repaired_from"] is None and plain["sql"] == misspelt and plain["result"]["status"] != "ok"
        assert_error(c.post("/sql", json={"question": "q?", "db_schema": "CREATE TABLE t (a INT)", "repair": True}),
                     422, "invalid_request")
    with serving(FakeBackend(COUNT_SQL)) as c:  # an answer that runs is never touched
        body = c.post("/sql", json={"question": "q?", "database": "restaurants", "repair": True}).json()
        assert body["sql"] == COUNT_SQL and body["repaired_from"] is None
