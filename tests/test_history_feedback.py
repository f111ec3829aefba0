"""The page's routes over the real app: GET/POST/DELETE /history (per key, bounded, kept across restarts),
POST /feedback (thumbs up -> a training record sqlft's loader and `sqlft train`'s config take; thumbs down kept
apart) and GET /databases/{name}/tables (the schema browser). Real databases: defog-data `restaurants` and a
SQLite file made here; the model is the fake one (these routes never call it).
"""

import json
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sqlft.data.examples import record_example
from serve.app import create_app
from serve.routes.history import HISTORY_LIMIT, HistoryEntry, HistoryFile
from serve.routes.tables import describe_tables
from serve.settings import Settings
from serve.testing import FakeBackend
from sqlft.config import DatasetSpec, load_config
from sqlft.data.errors import DataError
from sqlft.data.formats import load_records

ROOT = Path(__file__).resolve().parents[1]
CITY_SQL = "SELECT city_name, COUNT(*) FROM restaurant GROUP BY city_name"


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("db") / "shop.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT)")
        con.execute("CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer(id), "
                    "total REAL)")
        con.executemany("INSERT INTO customer VALUES (?, ?, ?)", [(1, "Ann", "Oslo"), (2, "Bo", "Rome")])
    return path


@contextmanager
def serving(data_dir: Path, shop: Path, **kw) -> Iterator[TestClient]:
    settings = Settings(backend="fake", demo_databases=False, database=["restaurants", f"shop={shop}"],
                        data_dir=str(data_dir), **kw)
    app = create_app(settings, load_backend=lambda s: FakeBackend(CITY_SQL))
    headers = {"X-API-Key": settings.api_key} if settings.api_key else None
    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz", headers=headers).status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz", headers=headers).json()
            time.sleep(0.02)
        yield client


def entry(i: int, **kw) -> dict:
    return {"question": f"question {i}?", "database": "restaurants", "sql": f"SELECT {i}", "status": "ok",
            "rows": 1} | kw


# ------------------------------------------------------------------------------------------ history


def test_history_newest_first_bounded_and_kept_across_restart(tmp_path, shop):
    with serving(tmp_path, shop) as c:
        assert c.get("/history").json() == []
        for i in range(HISTORY_LIMIT + 5):
            r = c.post("/history", json=entry(i))
            assert r.status_code == 201, r.text
        saved = r.json()
        assert saved["question"] == f"question {HISTORY_LIMIT + 4}?" and saved["id"] > 0 and saved["at"]
        assert [e["question"] for e in c.get("/history", params={"limit": 3}).json()] == \
            [f"question {i}?" for i in (HISTORY_LIMIT + 4, HISTORY_LIMIT + 3, HISTORY_LIMIT + 2)]
    with sqlite3.connect(tmp_path / "history.sqlite") as con:  # the oldest five are gone, not only hidden
        assert con.execute("SELECT COUNT(*) FROM history").fetchone()[0] == HISTORY_LIMIT

    with serving(tmp_path, shop) as c:  # a new server on the same folder: a restart
        kept = c.get("/history", params={"limit": HISTORY_LIMIT}).json()
        assert len(kept) == HISTORY_LIMIT and kept[-1]["question"] == "question 5?"
        assert kept[0] == saved


def test_history_is_per_key_and_stores_no_key(tmp_path, shop):
    with serving(tmp_path, shop) as c:
        alice, bob = {"X-API-Key": "alice-key"}, {"Authorization": "Bearer bob-key"}
        c.post("/history", json=entry(1), headers=alice)
        c.post("/history", json=entry(2, database=None, db_schema="CREATE TABLE t (a INT)", status=None, rows=None),
               headers=bob)
        c.post("/history", json=entry(3))  # no key: this client's own
        assert [e["question"] for e in c.get("/history", headers=alice).json()] == ["question 1?"]
        [pasted] = c.get("/history", headers=bob).json()
        assert pasted["db_schema"] == "CREATE TABLE t (a INT)" and pasted["database"] is None
        assert pasted["status"] is None
        assert [e["question"] for e in c.get("/history").json()] == ["question 3?"]
        assert c.delete("/history", headers=alice).json() == {"deleted": 1}
        assert c.get("/history", headers=alice).json() == [] and len(c.get("/history", headers=bob).json()) == 1
    stored = (tmp_path / "history.sqlite").read_bytes()
    assert b"alice-key" not in stored and b"bob-key" not in stored


def test_history_keeps_the_owners_who_wrote_last(tmp_path):
    """Without a key every client address is an owner: past the owner limit, the owner whose newest entry is oldest
    goes, so addresses that rotate cannot grow the file without bound; an owner who writes again is kept."""
    history = HistoryFile(tmp_path / "history.sqlite", limit=5, owner_limit=3)
    entry = HistoryEntry(question="How many?", db_schema="CREATE TABLE t (a INT)", sql="SELECT count(*) FROM t")
    for owner in ("a", "b", "c"):
        history.append(owner, entry)
    history.append("a", entry)  # a wrote last: b is now the one whose newest entry is oldest
    history.append("d", entry)
    assert [len(history.read(o, 10)) for o in ("a", "b", "c", "d")] == [2, 0, 1, 1]
    for owner in ("e", "f"):
        history.append(owner, entry)
    assert sorted(o for o in "abcdef" if history.read(o, 10)) == ["d", "e", "f"]
    with sqlite3.connect(tmp_path / "history.sqlite") as con:
        assert con.execute("SELECT count(DISTINCT owner) FROM history").fetchone() == (3,)


def test_history_needs_the_servers_key(tmp_path, shop):
    with serving(tmp_path, shop, api_key="s3cret") as c:
        assert c.get("/history").status_code == 401
        assert c.post("/history", json=entry(1)).status_code == 401
        assert c.post("/history", json=entry(1), headers={"X-API-Key": "s3cret"}).status_code == 201
        assert len(c.get("/history", headers={"X-API-Key": "s3cret"}).json()) == 1


def test_history_refuses_bad_entries(tmp_path, shop):
    with serving(tmp_path, shop) as c:
        for body, says in ((entry(1, db_schema="CREATE TABLE t (a INT)"), "exactly one of `database`"),
                           (entry(1, database=None), "exactly one of `database`"),
                           (entry(1, status="fine"), "status"),
                           (entry(1, rows=-1), "rows"),
                           (entry(1, question=""), "question"),
                           (entry(1, extra=1), "extra")):
            r = c.post("/history", json=body)
            assert r.status_code == 422 and says in r.json()["error"]["message"], (body, r.text)
        assert c.get("/history", params={"limit": 0}).status_code == 422
        assert c.get("/history", params={"limit": HISTORY_LIMIT + 1}).status_code == 422
        assert c.get("/history").json() == []


# ------------------------------------------------------------------------------------------ feedback


def test_thumbs_up_is_a_training_record(tmp_path, shop):
    with serving(tmp_path, shop) as c:
        ddl = {d["name"]: d["db_schema"] for d in c.get("/databases").json()}
        r = c.post("/feedback", json={"question": "Restaurants per city?", "database": "restaurants",
                                      "sql": CITY_SQL, "verdict": "up"})
        assert r.status_code == 201, r.text
        saved = r.json()
        assert saved["trainable"] and saved["records"] == 1
        assert Path(saved["file"]) == (tmp_path / "feedback" / "up.jsonl").resolve()
        edited = "SELECT name FROM customer WHERE city = 'Oslo'"
        r = c.post("/feedback", json={"question": "Who lives in Oslo?", "database": "shop", "sql": edited,
                                      "model_sql": "SELECT name FROM customers", "verdict": "up"})
        assert r.json()["records"] == 2

    records, problems = load_records(DatasetSpec(path=saved["file"]))
    assert problems == [] and len(records) == 2
    city, oslo = records
    assert (city.context, city.answer, city.db_id) == (ddl["restaurants"], CITY_SQL, "restaurants")
    assert city.question == "Restaurants per city?" and city.meta["verdict"] == "up"
    assert (oslo.answer, oslo.context, oslo.meta["db_path"]) == (edited, ddl["shop"], str(shop.resolve()))
    assert oslo.meta["model_sql"] == "SELECT name FROM customers"
    # eval runs each on its own database, not on one synthesized from the schema
    assert record_example(city, "0").database == "restaurants"
    assert record_example(oslo, "1").database == str(shop.resolve())
    # and `sqlft train CONFIG data.train=FILE` takes the file as it is
    config = load_config(ROOT / "configs" / "smollm2-135m-lora-cpu.yaml", [f"data.train={saved['file']}"])
    assert [spec.path for spec in config.data.train] == [saved["file"]]


def test_thumbs_down_is_kept_apart_and_not_trainable(tmp_path, shop):
    with serving(tmp_path, shop) as c:
        r = c.post("/feedback", json={"question": "How many?", "db_schema": "CREATE TABLE t (a INT)",
                                      "sql": "SELECT a FROM t", "verdict": "down"})
        assert r.status_code == 201 and not r.json()["trainable"]
    assert not (tmp_path / "feedback" / "up.jsonl").exists()
    [line] = (tmp_path / "feedback" / "down.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["wrong_sql"] == "SELECT a FROM t" and "answer" not in record and "db_id" not in record
    assert record["context"] == "CREATE TABLE t (a INT)" and record["verdict"] == "down"
    with pytest.raises(DataError, match="cannot detect the format"):  # never trained on as gold by mistake
        load_records(DatasetSpec(path=str(tmp_path / "feedback" / "down.jsonl")))


def test_feedback_refuses_bad_requests(tmp_path, shop):
    with serving(tmp_path, shop) as c:
        base = {"question": "q?", "database": "restaurants", "sql": "SELECT 1", "verdict": "up"}
        r = c.post("/feedback", json=base | {"database": "nope"})
        assert r.status_code == 404 and "Registered: restaurants, shop" in r.json()["error"]["message"]
        for body, says in ((base | {"verdict": "meh"}, "verdict"), (base | {"sql": ""}, "sql"),
                           ({k: v for k, v in base.items() if k != "verdict"}, "verdict"),
                           (base | {"db_schema": "CREATE TABLE t (a INT)"}, "exactly one of")):
            r = c.post("/feedback", json=body)
            assert r.status_code == 422 and says in r.json()["error"]["message"], (body, r.text)
    assert not (tmp_path / "feedback").exists()


def test_a_full_feedback_file_is_refused(tmp_path, shop, monkeypatch):
    import serve.routes.feedback as feedback_routes

    monkeypatch.setattr(feedback_routes, "MAX_FEEDBACK_BYTES", 1_000)  # ~5 lines of ~180 bytes
    body = {"question": "q?", "db_schema": "CREATE TABLE t (a INT)", "sql": "SELECT a FROM t", "verdict": "up"}
    with serving(tmp_path, shop) as c:
        codes = [c.post("/feedback", json=body).status_code for _ in range(8)]
        full = c.post("/feedback", json=body).json()["error"]
    kept = codes.count(201)
    assert 3 <= kept < 8 and codes == [201] * kept + [507] * (8 - kept)
    assert full["code"] == "feedback_full" and "train on it, then move it away" in full["message"]
    assert len((tmp_path / "feedback" / "up.jsonl").read_text().splitlines()) == kept


def test_a_folder_that_cannot_be_written_is_a_clear_error(tmp_path, shop):
    (tmp_path / "file").write_text("a file where the data folder should be")
    with serving(tmp_path / "file" / "data", shop) as c:
        for r in (c.post("/history", json=entry(1)),
                  c.post("/feedback", json={"question": "q?", "database": "restaurants", "sql": "SELECT 1",
                                            "verdict": "up"})):
            assert r.status_code == 503 and r.json()["error"]["code"] == "storage_unavailable", r.text
            assert "--data-dir" in r.json()["error"]["message"]
        assert c.get("/history").json() == []  # nothing kept yet: an empty history, not an error


def test_concurrent_thumbs_give_whole_lines(tmp_path, shop):
    with serving(tmp_path, shop) as c:
        body = {"question": "q?", "database": "restaurants", "sql": "SELECT 'x' || " + "'y' || " * 400 + "'z'"}
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda i: c.post("/feedback", json=body | {"question": f"q{i}?", "verdict": "up"}),
                                    range(24)))
    assert all(r.status_code == 201 for r in replies)
    lines = (tmp_path / "feedback" / "up.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["question"] for line in lines) == sorted(f"q{i}?" for i in range(24))


# ------------------------------------------------------------------------------------------ schema browser


def test_tables_of_registered_databases(tmp_path, shop):
    with serving(tmp_path, shop) as c:
        tables = {t["name"]: t for t in c.get("/databases/restaurants/tables").json()}
        assert set(tables) == {"geographic", "location", "restaurant"}
        columns = {col["name"]: col for col in tables["restaurant"]["columns"]}
        assert list(columns) == ["id", "name", "food_type", "city_name", "rating"]
        assert columns["rating"]["type"] == "FLOAT" and columns["name"]["type"] == "TEXT"
        shop_tables = {t["name"]: t for t in c.get("/databases/shop/tables").json()}
        assert shop_tables["customer"]["primary_key"] == ["id"] and shop_tables["customer"]["columns"][0] == \
            {"name": "id", "type": "INT", "primary_key": True, "references": None}
        orders = shop_tables["orders"]  # the SQLite file's own schema text keeps its foreign keys
        assert orders["foreign_keys"] == [{"columns": ["customer_id"], "table": "customer", "ref_columns": ["id"]}]
        assert [(col["name"], col["references"]) for col in orders["columns"]] == \
            [("order_id", None), ("customer_id", "customer.id"), ("total", None)]
        r = c.get("/databases/nope/tables")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_database"


def test_describe_tables_reads_keys_and_declared_types():
    ddl = ("CREATE TABLE singer (singer_id INT PRIMARY KEY, name VARCHAR(40), born DATE);\n"
           "CREATE TABLE concert (id INT, singer INT, venue TEXT, PRIMARY KEY (id), "
           "FOREIGN KEY (singer) REFERENCES singer(singer_id));\n"
           "CREATE TABLE ticket (concert_id INT REFERENCES concert, seat TEXT, PRIMARY KEY (concert_id, seat));\n"
           "CREATE VIEW v AS SELECT 1;")
    tables = {t.name: t for t in describe_tables(ddl, "sqlite", ["singer", "concert", "ticket", "odd"])}
    assert list(tables) == ["singer", "concert", "ticket", "odd"]  # a table no statement describes is still listed
    singer = tables["singer"].columns
    assert [(col.name, col.type, col.primary_key) for col in singer] == \
        [("singer_id", "INT", True), ("name", "VARCHAR(40)", False), ("born", "DATE", False)]
    assert tables["concert"].columns[1].references == "singer.singer_id"
    assert tables["concert"].foreign_keys[0].model_dump() == {"columns": ["singer"], "table": "singer",
                                                              "ref_columns": ["singer_id"]}
    ticket = tables["ticket"]
    assert ticket.primary_key == ["concert_id", "seat"] and [c.primary_key for c in ticket.columns] == [True, True]
    assert ticket.columns[0].references == "concert.id"  # REFERENCES without columns: the target's primary key
    assert tables["odd"].columns == []


def test_thumbs_up_file_trains(tmp_path, shop, tiny_model_dir):
    """The loop's last step: `sqlft train` on the thumbs-up file (a tiny Llama, 2 steps), each record's answer
    being what the loss learns."""
    from sqlft.training.dataset import build_training_data
    from sqlft.model.loading import load_tokenizer
    from sqlft.commands.train import train

    questions = ["Who lives in Oslo?", "How many customers?", "Customers by city?", "Orders per customer?"]
    sqls = ["SELECT name FROM customer WHERE city = 'Oslo'", "SELECT COUNT(*) FROM customer",
            "SELECT city, COUNT(*) FROM customer GROUP BY city", "SELECT customer_id, COUNT(*) FROM orders GROUP BY 1"]
    with serving(tmp_path, shop) as c:
        for question, sql in zip(questions, sqls):
            saved = c.post("/feedback", json={"question": question, "database": "shop", "sql": sql,
                                              "verdict": "up"}).json()
    config = load_config(None, [
        f"model.name={tiny_model_dir}", "model.method=lora", "model.dtype=float32", f"data.train={saved['file']}",
        "data.template=chatml", "data.max_length=256", "data.val_fraction=0", f"train.output_dir={tmp_path / 'run'}",
        "train.max_steps=2", "train.batch_size=2", "train.save_steps=2", "train.logging_steps=1",
        "train.gradient_checkpointing=false", "train.report_to=none", "train.warmup_ratio=0"])
    tokenizer = load_tokenizer(str(tiny_model_dir))
    data = build_training_data(config, tokenizer)
    learnt = [tokenizer.decode([t for t, m in zip(e.input_ids, e.completion_mask) if m]) for e in data.train]
    assert sorted(text.removesuffix("<|im_end|>") for text in learnt) == sorted(sqls)  # shuffled by the mixer
    run_dir = train(config)
    assert (run_dir / "config.yaml").is_file() and any(run_dir.rglob("adapter_model.safetensors"))
