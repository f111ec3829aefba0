"""Issue 24, D4-D8: the server's edges under hostile clients and failing sources, each over real HTTP.

D4 any value type compares (a multirange vote is no 500); D5 any schema text gives a 4xx or a result; D6 an
answer given before the body is read closes the connection, and no GET reads a body; D7 an outage is a 503 with
a retry hint and no URL, one source down leaves the others serving and comes back by itself; D8 reload takes a
concurrency slot, the time limit holds on every engine within limit + 1 s, an empty API key and a fake backend on
a network are refused.
"""

import socket
import sqlite3
import threading
import time
from contextlib import contextmanager

import httpx
import psycopg
import pytest

from sqlft.sql.compare import compare_results
from sqlft.sql.sandbox import ExecutionResult
from serve.app import create_app
from serve.guard import takes_slot
from serve.settings import Settings
from serve.testing import FakeBackend, running_server
from tests.pg_fixtures import cluster_or_skip, write_pgpass


def sqlite_file(tmp_path):
    path = tmp_path / "concert.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT)")
        con.executemany("INSERT INTO singer VALUES (?, ?)", [(1, "Ann"), (2, "Bob")])
    return path


@contextmanager
def server(tmp_path, backend=None, **settings):
    """The real app under uvicorn (fake model), once /readyz answers (with the key, when one is set)."""
    key = settings.pop("api_key", None)
    app = create_app(Settings(backend="fake", demo_databases=False, **settings),
                     load_backend=lambda s: backend or FakeBackend("SELECT 1"))
    with running_server(app) as url:  # /readyz needs no key until the key is set below
        app.state.sqlft.settings.api_key = key
        yield url


def raw_request(url: str, head: str, body: bytes = b"", wait_s: float = 3.0) -> tuple[bytes, bool]:
    """(what the server sent, whether it closed the connection) for a request written byte by byte."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as sock:
        sock.sendall(head.encode() + body)
        received, closed, deadline = b"", False, time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                closed = True
                break
            received += chunk
    return received, closed


# ---------------------------------------------------------------------------------------------- D6


def test_an_answer_before_the_body_closes_the_connection(tmp_path):
    with server(tmp_path, api_key="k3y", database=[f"concert={sqlite_file(tmp_path)}"]) as url:
        # Content-Length 11, ten bytes sent: the 401 comes at once and the server hangs up (it used to wait forever).
        head = "POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
        started = time.monotonic()
        received, closed = raw_request(url, head, b'{"sql": "S')
        assert received.startswith(b"HTTP/1.1 401") and b"connection: close" in received.lower()
        assert closed and time.monotonic() - started < 2.5
        # A GET with a body announced: answered without reading it, and closed.
        head = "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n"
        received, closed = raw_request(url, head, b"x" * 1000)
        assert received.startswith(b"HTTP/1.1 200") and closed
        # With the key and the whole body, the connection is kept for the next request.
        with httpx.Client(base_url=url, headers={"X-API-Key": "k3y"}) as client:
            for _ in range(2):
                r = client.post("/execute", json={"sql": "SELECT count(*) FROM singer", "database": "concert"})
                assert r.status_code == 200 and r.json()["rows"] == [[2]]
                assert r.headers.get("connection", "").lower() != "close"


def test_reload_takes_a_concurrency_slot():
    assert takes_slot("POST", "/databases/shop/reload") and takes_slot("POST", "/sql")
    assert not takes_slot("GET", "/databases") and not takes_slot("POST", "/feedback")


# ---------------------------------------------------------------------------------------------- D8 settings


def test_an_empty_api_key_and_a_fake_model_on_a_network_are_refused():
    with pytest.raises(ValueError, match="empty"):
        Settings(api_key="")
    with pytest.raises(ValueError, match="allow-fake-on-network"):
        Settings(backend="fake", host="0.0.0.0")
    assert Settings(backend="fake", host="0.0.0.0", allow_fake_on_network=True).host == "0.0.0.0"
    assert Settings(backend="fake", host="::1").host == "::1"


def test_the_cli_refuses_an_empty_key_before_loading():
    from serve.main import main
    with pytest.raises(SystemExit) as exited:
        main(["--backend", "fake", "--api-key", ""])
    assert "--api-key is empty" in str(exited.value.code)  # sys.exit(message): status 1, the message on stderr


# ---------------------------------------------------------------------------------------------- D4 D5


def test_any_value_type_compares():
    from psycopg.types.multirange import Multirange
    from psycopg.types.range import Range

    def result(value):
        return ExecutionResult("ok", ["x"], [(value,)])
    assert compare_results(result(Multirange([Range(1, 2)])), result(Multirange([Range(1, 2)])), order_matters=False)
    assert not compare_results(result(Multirange([Range(1, 2)])), result(Multirange([Range(1, 3)])),
                               order_matters=False)
    assert compare_results(result({"a": [1, {"b": [2]}]}), result({"a": [1, {"b": [2]}]}), order_matters=False)
    assert compare_results(result(bytearray(b"ab")), result(bytearray(b"ab")), order_matters=True)


def test_any_schema_text_gives_a_4xx_or_a_result(tmp_path):
    deep = "CREATE TABLE a (x INT DEFAULT " + "(" * 600 + "1" + ")" * 600 + "); CREATE TABLE b (y INT);"
    schemas = [deep, "CREATE TABLE " * 2000, "(" * 5000, "CREATE TABLE t (" + "a INT, " * 3000 + "b INT)", "\x00;;"]
    with server(tmp_path) as url, httpx.Client(base_url=url, timeout=60) as client:
        for schema in schemas:
            for prune in (True, False):
                r = client.post("/sql", json={"question": "how many b?", "db_schema": schema, "prune_schema": prune})
                assert r.status_code < 500, (schema[:40], r.text[:300])
                assert r.status_code == 200 or "error" in r.json()


# ---------------------------------------------------------------------------------------------- D7 D8 on PostgreSQL


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory):
    """A cluster of this module's own: these tests stop and start it."""
    with cluster_or_skip() as cluster:
        password = "p-" + str(time.time_ns())
        cluster.psql("CREATE DATABASE shop")
        cluster.psql(f"CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2);"
                     f"CREATE ROLE reader LOGIN PASSWORD '{password}'; GRANT SELECT ON orders TO reader;", db="shop")
        pgpass = write_pgpass(tmp_path_factory.mktemp("pgpass"), cluster, {"reader": password})
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PGPASSFILE", str(pgpass))
            yield cluster


def test_an_outage_is_a_503_and_a_source_down_at_start_comes_back(own_cluster, tmp_path):
    live = own_cluster.url("shop", "reader")
    own_cluster.stop()
    try:
        settings = {"database": [f"concert={sqlite_file(tmp_path)}", f"live={live}"], "execute_timeout": 1}
        with server(tmp_path, **settings) as url, httpx.Client(base_url=url, timeout=30) as client:
            # The file database serves; the one whose server is down answers 503, with a retry hint and no URL.
            r = client.post("/execute", json={"sql": "SELECT count(*) FROM singer", "database": "concert"})
            assert r.status_code == 200 and r.json()["rows"] == [[2]]
            r = client.post("/execute", json={"sql": "SELECT count(*) FROM orders", "database": "live"})
            assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable"
            assert r.headers["retry-after"] and "127.0.0.1" not in r.text and "postgresql://" not in r.text
            own_cluster.start()  # the outage ends: the background retry opens it
            deadline = time.monotonic() + 40
            while (r := client.post("/execute", json={"sql": "SELECT count(*) FROM orders", "database": "live"})
                   ).status_code == 503:
                assert time.monotonic() < deadline, r.text
                time.sleep(0.5)
            assert r.status_code == 200 and r.json()["rows"] == [[2]]
            # Down again while serving: a 503 (not "every connection is in use"), then back.
            own_cluster.stop()
            r = client.post("/execute", json={"sql": "SELECT count(*) FROM orders", "database": "live"})
            assert r.status_code == 503 and r.headers["retry-after"], r.text
            assert "postgresql://" not in r.text
            own_cluster.start()
            deadline = time.monotonic() + 40
            while (r := client.post("/execute", json={"sql": "SELECT count(*) FROM orders", "database": "live"})
                   ).status_code != 200:
                assert time.monotonic() < deadline, r.text
                time.sleep(0.5)
    finally:
        try:
            own_cluster.start()
        except Exception:
            pass  # already running


def test_the_time_limit_holds_on_every_engine(own_cluster, tmp_path):
    live = own_cluster.url("shop", "reader")
    slow = {
        "concert": "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
        "live": "SELECT count(*) FROM generate_series(1, 100000000) a, generate_series(1, 1000) b",
        "live2": "SELECT pg_sleep(30)",
    }
    settings = {"database": [f"concert={sqlite_file(tmp_path)}", f"live={live}", f"live2={live}"],
                "execute_timeout": 1}
    with server(tmp_path, **settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        for database, sql in slow.items():
            started = time.monotonic()
            r = client.post("/execute", json={"sql": sql, "database": database})
            took = time.monotonic() - started
            assert r.status_code == 200 and r.json()["status"] == "timeout", r.text
            assert r.json()["elapsed_s"] < 1 + 1, (database, r.json())  # the limit + 1 s, as test_hostile measures
            assert took < 1 + 4, (database, took)  # the whole request, on a 2-core CPU shared with other jobs


def test_reload_cannot_starve_queries(own_cluster, tmp_path):
    live = own_cluster.url("shop", "reader")
    with server(tmp_path, database=[f"live={live}"], max_concurrency=2) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        results = []

        def reload():
            results.append(client.post("/databases/live/reload").status_code)

        threads = [threading.Thread(target=reload) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert set(results) <= {200, 429} and 429 in results, results  # beyond 2 at once: 429, not a queue


def test_multirange_vote_over_http(own_cluster, tmp_path):
    live = own_cluster.url("shop", "reader")
    backend = FakeBackend("SELECT '{[1,2)}'::int4multirange AS m")
    with server(tmp_path, backend=backend, database=[f"live={live}"]) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        r = client.post("/sql", json={"question": "ranges?", "database": "live", "execute": True, "vote": True,
                                      "candidates": 2})
        assert r.status_code == 200, r.text
        assert r.json()["result"]["status"] == "ok"
    with psycopg.connect(live) as conn:  # the server itself is fine afterwards
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 2


def test_a_get_gets_an_empty_body_once_then_only_the_disconnect():
    """A streaming GET listens for the client's disconnect: it must wait for it, not spin on empty bodies."""
    import asyncio

    from serve.guard import _no_body

    sent = [{"type": "http.request", "body": b"x" * 100, "more_body": True}, {"type": "http.disconnect"}]

    async def client_receive():
        await asyncio.sleep(0.05)
        return sent.pop(0)

    async def run():
        receive = _no_body(client_receive)
        first = await receive()
        second = await asyncio.wait_for(receive(), 2)
        return first, second
    first, second = asyncio.run(run())
    assert first == {"type": "http.request", "body": b"", "more_body": False}
    assert second == {"type": "http.disconnect"} and not sent  # the body chunk was dropped, not handed on
