"""The Streamlit page: AppTest against a real API on 127.0.0.1 (fake model, real defog database and a SQLite
file), the `sqlft ui --with-server` launcher, and one end-to-end run in headless Chromium: ask, browse the
schema, download the rows as CSV, thumbs up (a training record on the server), reload (the history is still
there), with a screenshot at each step.

Screenshots go to $SQLFT_ARTIFACTS, else tests/artifacts/.
"""

import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from serve.app import create_app
from serve.settings import Settings
from serve.testing import FakeBackend, running_server
from sqlft.config import DatasetSpec
from sqlft.data.formats import load_records
from sqlft.core.net import free_port, wait_for_http
from ui.charts import Chart, choose_chart
from ui.client import ApiClient, result_problem

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "ui" / "app.py")
CITY_SQL = "SELECT city_name, COUNT(*) AS restaurants FROM restaurant GROUP BY city_name ORDER BY 2 DESC, 1"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sqlft-data")


@pytest.fixture(scope="module")
def api_url(data_dir):
    shop = data_dir.parent / "shop.sqlite"
    with sqlite3.connect(shop) as con:
        con.execute("CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT)")
        con.execute("CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer(id), "
                    "total REAL)")
    backend = FakeBackend(CITY_SQL)
    app = create_app(Settings(backend="fake", demo_databases=False, database=["restaurants", f"shop={shop}"],
                              data_dir=str(data_dir)), load_backend=lambda s: backend)
    with running_server(app) as url:
        yield url


def page(monkeypatch, url: str) -> AppTest:
    monkeypatch.setenv("SQLFT_API_URL", url)
    monkeypatch.delenv("SQLFT_API_KEY", raising=False)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception, at.exception
    return at


def kinds(at: AppTest) -> list[str]:
    return [getattr(e, "type", "") for e in at.main]


# ------------------------------------------------------------------------------------------ pieces


def test_choose_chart():
    assert choose_chart(["city", "n"], [["a", 1], ["b", 2]]) == Chart("bar", "city", "n")
    assert choose_chart(["n", "city"], [[1, "a"], [2, None]]) == Chart("bar", "city", "n")
    assert choose_chart(["day", "n"], [["2024-01-01", 1], ["2024-01-02", 2]]) == Chart("line", "day", "n")
    assert choose_chart(["year", "papers"], [[2019, 4], [2020, 7]]) == Chart("line", "year", "papers")
    assert choose_chart(["city", "n"], [["a", 1]]) is None  # one bar says nothing
    assert choose_chart(["a", "b"], [["x", "y"], ["z", "w"]]) is None  # no number
    assert choose_chart(["a", "b", "c"], [["x", 1, 2], ["y", 3, 4]]) is None
    assert choose_chart(["ok", "n"], [[True, 1], [False, 2]]) == Chart("bar", "ok", "n")


def test_client_errors_are_plain_words():
    reply = ApiClient(f"http://127.0.0.1:{free_port()}").databases()
    assert not reply.ok and "Cannot reach the sqlft API" in reply.error and "sqlft serve" in reply.error
    assert "not run" in result_problem({"status": "rejected", "error": "DROP"})
    assert result_problem({"status": "ok"}) == ""


# ------------------------------------------------------------------------------------------ AppTest


def test_ask_see_sql_table_chart_and_history(monkeypatch, api_url):
    at = page(monkeypatch, api_url)
    assert at.selectbox[0].value == "restaurants"
    assert "CREATE TABLE restaurant" in at.code[0].value  # the schema
    at.text_input[0].input("Which city has the most restaurants?")
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.code[-1].value == CITY_SQL and at.code[-1].language == "sql"
    frame = at.dataframe[0].value
    assert list(frame.columns) == ["city_name", "restaurants"] and len(frame) > 1
    assert "vega_lite_chart" in kinds(at)  # one label + one number column: a bar chart
    assert at.text_area(key="sql_editor").value == CITY_SQL
    assert [b.label for b in at.download_button] == ["Download CSV"]  # a button, not the table's hover toolbar
    assert at.sidebar.button[0].label == "✓ Which city has the most restaurants?"  # history, newest first

    # Edit the SQL and run it; then SQL that may not run is explained, not raised.
    at.text_area(key="sql_editor").input("SELECT name, rating FROM restaurant ORDER BY rating DESC LIMIT 3")
    next(b for b in at.button if b.label == "Run SQL").click().run()
    frame = at.dataframe[0].value
    assert list(frame.columns) == ["name", "rating"] and len(frame) == 3
    at.text_area(key="sql_editor").input("DROP TABLE restaurant")
    next(b for b in at.button if b.label == "Run SQL").click().run()
    assert not at.exception and "was not run" in at.error[0].value and not at.dataframe


def test_history_comes_back_in_a_new_session(monkeypatch, api_url):
    question = "How many restaurants does each city have? (new session)"
    at = page(monkeypatch, api_url)
    at.text_input[0].input(question)
    at.button[0].click().run()
    assert not at.error, [e.value for e in at.error]

    fresh = page(monkeypatch, api_url)  # what a reload gives: a new session with nothing in its state
    assert fresh.session_state["answer"] is None
    past = next(b for b in fresh.sidebar.button if b.label == f"✓ {question[:60]}")
    past.click().run()
    assert not fresh.exception and fresh.subheader[0].value == question
    assert fresh.text_area(key="sql_editor").value == CITY_SQL
    assert any(c.value.startswith("from the history, asked ") for c in fresh.caption)
    next(b for b in fresh.button if b.label == "Run SQL").click().run()  # its rows, run again
    assert list(fresh.dataframe[0].value.columns) == ["city_name", "restaurants"]


def test_schema_browser_shows_tables_columns_and_keys(monkeypatch, api_url):
    at = page(monkeypatch, api_url)
    labels = [e.label for e in at.sidebar.expander]
    assert "restaurant (5 columns)" in labels and "geographic (3 columns)" in labels
    restaurant = next(e for e in at.sidebar.expander if e.label == "restaurant (5 columns)")
    columns = restaurant.table[0].value
    assert list(columns["column"]) == ["id", "name", "food_type", "city_name", "rating"]
    assert list(columns["type"]) == ["BIGINT", "TEXT", "TEXT", "TEXT", "FLOAT"]
    at.selectbox[0].set_value("shop").run()
    customer, orders = (next(e for e in at.sidebar.expander if e.label.startswith(f"{name} ("))
                        for name in ("customer", "orders"))
    assert customer.label == "customer (3 columns · PK)" and orders.label == "orders (3 columns · PK · 1 FK)"
    assert list(customer.table[0].value["key"]) == ["PK", "", ""]
    assert list(orders.table[0].value["key"]) == ["PK", "FK", ""]
    assert orders.caption[0].value == "customer_id → customer.id"


def test_pasted_ddl_gives_sql_without_running(monkeypatch, api_url):
    at = page(monkeypatch, api_url)
    at.radio[0].set_value("Paste DDL").run()
    at.text_area[0].input("CREATE TABLE restaurant (city_name VARCHAR);")
    at.text_input[0].input("Count per city")
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert at.code[-1].value == CITY_SQL and not at.dataframe
    assert next(b for b in at.button if b.label == "Run SQL").disabled


def test_api_down_is_said_in_plain_words(monkeypatch):
    at = page(monkeypatch, f"http://127.0.0.1:{free_port()}")
    assert "Cannot reach the sqlft API" in at.sidebar.error[0].value
    assert at.button[0].disabled  # no asking without an API


# ------------------------------------------------------------------------------------------ launcher + browser


def wait_http(url: str, timeout_s: float = 90, proc: subprocess.Popen | None = None) -> None:
    wait_for_http(url, timeout_s=timeout_s, alive=lambda: proc is None or proc.poll() is None)


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def test_sqlft_ui_with_server_starts_and_stops_both():
    api_port, ui_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ui.main", "--with-server", "fake-model", "--api-url",
                             f"http://127.0.0.1:{api_port}", "--port", str(ui_port), "--",
                             "--backend", "fake", "--no-demo-databases"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{api_port}/readyz", proc=proc)
        wait_http(f"http://127.0.0.1:{ui_port}/_stcore/health", proc=proc)
    finally:
        stop(proc)
    for url in (f"http://127.0.0.1:{api_port}/healthz", f"http://127.0.0.1:{ui_port}/_stcore/health"):
        with pytest.raises(httpx.HTTPError):
            httpx.get(url, timeout=2)


@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
def test_browser_end_to_end(api_url, data_dir, tmp_path):
    """In Chromium: ask; the schema browser; the CSV download; thumbs up (a record sqlft's loader reads back);
    a reload keeps the history. A screenshot at each step."""
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
    artifacts = Path(os.environ.get("SQLFT_ARTIFACTS") or ROOT / "tests" / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    question = "Which city has the most restaurants? (in the browser)"
    ui_port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ui.main", "--api-url", api_url, "--port", str(ui_port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{ui_port}/_stcore/health", proc=proc)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, accept_downloads=True,
                viewport={"width": 1400, "height": 1800},
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                      "--disable-sync", "--no-first-run"])
            try:
                tab = browser.new_page()
                sidebar = tab.locator('[data-testid="stSidebar"]')
                tab.goto(f"http://127.0.0.1:{ui_port}", wait_until="networkidle", timeout=60_000)

                def snap(name: str) -> Path:
                    tab.wait_for_timeout(1000)  # let charts and tables finish drawing before the picture
                    shot = artifacts / name
                    tab.screenshot(path=str(shot), full_page=True)
                    assert shot.stat().st_size > 10_000
                    return shot

                # The schema browser: a table's columns and types, in the sidebar.
                restaurant = sidebar.locator('[data-testid="stExpander"]', has_text="restaurant (5 columns)")
                restaurant.get_by_text("restaurant (5 columns)").click()
                browsed = restaurant.locator('[data-testid="stTable"]')
                browsed.wait_for(timeout=30_000)
                assert "city_name" in browsed.inner_text() and "FLOAT" in browsed.inner_text()

                question_box = tab.get_by_label("Question")
                question_box.wait_for(timeout=60_000)
                question_box.fill(question)
                tab.get_by_role("button", name="Generate SQL").click()
                tab.locator('[data-testid="stDataFrame"]').wait_for(timeout=60_000)
                tab.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=30_000)
                assert "GROUP BY city_name" in tab.locator('[data-testid="stCode"]').last.inner_text()
                snap("page_answer.png")

                # The CSV download: a visible button, and the file holds the rows.
                with tab.expect_download(timeout=30_000) as download:
                    tab.get_by_role("button", name="Download CSV").click()
                csv = Path(download.value.path()).read_text()
                assert download.value.suggested_filename == "which_city_has_the_most_restaurants_in_the_browser.csv"
                assert csv.splitlines()[0] == "city_name,restaurants" and len(csv.splitlines()) > 2

                # Thumbs up: the server appends a training record; the page says where.
                tab.get_by_role("radio", name="Thumbs up").click()
                tab.get_by_text("Kept as a training example").wait_for(timeout=30_000)
                snap("page_thumbs_up.png")
                records, problems = load_records(DatasetSpec(path=str(data_dir / "feedback" / "up.jsonl")))
                [record] = [r for r in records if r.question == question]
                assert problems == [] and record.answer == CITY_SQL and record.db_id == "restaurants"
                assert "CREATE TABLE restaurant" in record.context

                # A reload: a new session; the history is the server's, so it is still there.
                tab.reload(wait_until="networkidle", timeout=60_000)
                past = sidebar.get_by_role("button", name=re.compile(re.escape(question[:60])))
                past.wait_for(timeout=60_000)
                snap("page_history_after_reload.png")
                past.click()
                tab.get_by_role("heading", name=question).wait_for(timeout=30_000)
                assert "GROUP BY city_name" in tab.locator('[data-testid="stCode"]').last.inner_text()

                # Another database: its tables' primary keys in the browser.
                sidebar.locator('[data-testid="stSelectbox"]').click()
                tab.get_by_role("option", name="shop (sqlite)").click()
                for label in ("customer (3 columns · PK)", "orders (3 columns · PK · 1 FK)"):
                    sidebar.get_by_text(label).click()
                orders = sidebar.locator('[data-testid="stExpander"]', has_text="orders (3 columns · PK · 1 FK)")
                orders.locator('[data-testid="stTable"]').wait_for(timeout=30_000)
                assert re.search(r"customer_id\s+INT\s+FK", orders.locator('[data-testid="stTable"]').inner_text())
                assert "customer_id → customer.id" in orders.inner_text()
                snap("page_schema_browser.png")
            finally:
                browser.close()
    finally:
        stop(proc)


def test_vote_over_several_answers(monkeypatch, api_url):
    at = page(monkeypatch, api_url)
    next(n for n in at.number_input if n.label == "Answers to vote over").set_value(3).run()
    at.text_input[0].input("Which city has the most restaurants?")
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.code[-1].value == CITY_SQL
    assert any("voted over 3 answers: 3 ran, 3 agreed; the first answer kept" in c.value for c in at.caption)
