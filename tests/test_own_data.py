"""A user's own data end to end, on real SQLite files: `data.train=FILE` overrides, records with a db_path (relative
to their file) or a db_id under --db-root, a run's validation.jsonl scored on the user's databases with the
summary saying where each example ran, SQLite foreign keys in the prompt, BIRD files (evidence in the prompt,
BIRD's set rule), and every settings problem reported before a model loads."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from eval import run as eval_run
from sqlft.data.examples import load_eval_set
from sqlft.sql.sqlite_schema import sqlite_ddl
from sqlft.config import DatasetSpec, load_config
from sqlft.data.formats import load_records

SHOP_DDL = """
CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT, city TEXT);
CREATE TABLE "order" (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer(id), total REAL);
"""
SHOP_ROWS = {"customer": [(1, "Ann", "Oslo"), (2, "Bob", "Rome"), (3, "Cid", "Oslo")],
             "order": [(1, 1, 10.0), (2, 1, 5.5), (3, 2, 7.0)]}


def make_shop(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(SHOP_DDL)
    for table, rows in SHOP_ROWS.items():
        con.executemany(f'INSERT INTO "{table}" VALUES (?, ?, ?)', rows)
    con.commit()
    con.close()
    return path


class AnswerTable:
    """The model's place in `eval.run.run`: answers looked up by question; it records the prompts it was given.
    What is under test is where the answers run, not the model."""

    template = "table"

    def __init__(self, answers: dict[str, str]):
        self.answers, self.prompts = answers, []

    def sql_prompt(self, db_schema: str, question: str) -> str:
        return f"{db_schema}\n-- {question}"

    def generate(self, prompts, gen=None, on_answer=None):  # on_answer: progress, not counted here
        from sqlft.model.protocol import Generation
        self.prompts += prompts
        return [Generation(self.answers[p.rsplit("\n-- ", 1)[1]], 10, 5, 0.01) for p in prompts]


def evaluate(argv: list[str], model: AnswerTable | None = None) -> tuple[dict, list[dict], str]:
    """eval.run over argv; (report, results rows, the summary line printed)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report = eval_run.run(eval_run.parse_args(argv), load_model=(lambda ref, template=None: model) if model
                              else None)
    folder = Path(argv[argv.index("--out") + 1])
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    return report, rows, out.getvalue().strip().splitlines()[-1]


# ------------------------------------------------------------------ data.train=FILE


def test_data_train_file_override(tmp_path):
    config = load_config(None, ["data.train=mine.jsonl"])
    assert [(d.path, d.weight) for d in config.data.train] == [("mine.jsonl", 1.0)]
    config = load_config(None, ["data.train=[a.jsonl, b.csv]", "data.validation=held.jsonl"])
    assert [d.path for d in config.data.train] == ["a.jsonl", "b.csv"]
    assert [d.path for d in config.data.validation] == ["held.jsonl"]
    config = load_config(None, ["data.train=[{path: a.jsonl, weight: 2}, b.jsonl]"])
    assert [(d.path, d.weight) for d in config.data.train] == [("a.jsonl", 2.0), ("b.jsonl", 1.0)]
    with pytest.raises(Exception, match="data.train\\[0\\]: expected a mapping, got int"):
        load_config(None, ["data.train=[3]"])


# ------------------------------------------------------------------ records on the user's databases


def own_records(tmp_path: Path) -> Path:
    """Records as a user writes them: db_path relative to the data file, plus one schema-only record."""
    make_shop(tmp_path / "data" / "dbs" / "shop.sqlite")
    schema = sqlite_ddl(tmp_path / "data" / "dbs" / "shop.sqlite")
    rows = [
        {"db_id": "shop", "db_path": "dbs/shop.sqlite", "context": schema, "question": "How many customers?",
         "answer": "SELECT count(*) FROM customer"},
        {"db_id": "shop", "db_path": "dbs/shop.sqlite", "context": schema, "question": "Customers in Oslo?",
         "answer": "SELECT name FROM customer WHERE city = 'Oslo'"},
        {"db_id": "toy", "context": "CREATE TABLE t (a INT, b TEXT)", "question": "How many t?",
         "answer": "SELECT count(*) FROM t"},
    ]
    path = tmp_path / "data" / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ANSWERS = {"How many customers?": "SELECT count(*) FROM customer",
           "Customers in Oslo?": "SELECT name FROM customer WHERE city = 'Rome'",
           "How many t?": "SELECT count(*) FROM t"}


def test_db_path_is_taken_from_the_data_files_folder(tmp_path, monkeypatch):
    data = own_records(tmp_path)
    monkeypatch.chdir(tmp_path)  # not the data file's folder: dbs/shop.sqlite does not resolve from here
    records, problems = load_records(DatasetSpec(path=str(data)))
    assert not problems
    assert records[0].meta["db_path"] == str((tmp_path / "data" / "dbs" / "shop.sqlite").resolve())
    assert "db_path" not in records[2].meta


def test_validation_file_of_a_run_is_scored_on_the_users_database(tmp_path, monkeypatch):
    """`sqlft eval RUN --data RUN/validation.jsonl`: the held-out records keep their database (an absolute
    db_path), so the eval runs on the user's SQLite file, and the summary says so; the schema-only record says
    synthesized."""
    from sqlft.training.dataset import held_out_sql_rows

    records, _ = load_records(DatasetSpec(path=str(own_records(tmp_path))))
    run = tmp_path / "runs" / "mine"
    run.mkdir(parents=True)
    (run / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held_out_sql_rows(records)))
    monkeypatch.chdir(run)  # from anywhere
    report, rows, line = evaluate(["m", "--data", str(run / "validation.jsonl"), "--out", str(tmp_path / "out")],
                                  AnswerTable(ANSWERS))
    shop = str((tmp_path / "data" / "dbs" / "shop.sqlite").resolve())
    assert [(r["status"], r["engine"], r["database"]) for r in rows] == [
        ("match", "sqlite", shop), ("mismatch", "sqlite", shop), ("match", "duckdb", "synthesized")]
    assert "only in gold: ('Ann',), ('Cid',)" in rows[1]["reason"]  # the user's rows, not synthesized ones
    assert report["ran_on"][shop] == {"engine": "sqlite", "n": 2, "correct": 1}
    assert "ran on shop.sqlite (sqlite, 2); synthesized from the records' schemas (duckdb, 1)" in line
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"| {shop} | sqlite | 2 | 1 |" in md and "| synthesized | duckdb | 1 | 1 |" in md


def test_db_id_with_db_root_runs_on_that_database(tmp_path, capsys):
    make_shop(tmp_path / "dbs" / "shop" / "shop.sqlite")
    data = tmp_path / "records.jsonl"
    data.write_text(json.dumps({"db_id": "shop", "context": "CREATE TABLE customer (id INT, name TEXT, city TEXT)",
                                "question": "How many customers?", "answer": "SELECT count(*) FROM customer"}) + "\n"
                    + json.dumps({"db_id": "elsewhere", "context": "CREATE TABLE t (a INT)",
                                  "question": "How many t?", "answer": "SELECT count(*) FROM t"}) + "\n")
    report, rows, line = evaluate(["m", "--data", str(data), "--db-root", str(tmp_path / "dbs"),
                                   "--out", str(tmp_path / "out")], AnswerTable(ANSWERS))
    assert [(r["engine"], Path(r["database"]).name) for r in rows] == [("sqlite", "shop.sqlite"),
                                                                       ("duckdb", "synthesized")]
    assert "ran on shop.sqlite (sqlite, 1); synthesized" in line
    err = capsys.readouterr().err
    assert "examples: 1 on sqlite, 1 on databases synthesized from their schema" in err
    assert "1 examples have no database of their own" in err  # said before anything is generated


# ------------------------------------------------------------------ SQLite foreign keys reach the prompt


def test_sqlite_schema_keeps_foreign_keys(tmp_path):
    shop = make_shop(tmp_path / "shop.sqlite")
    assert sqlite_ddl(shop) == (
        "CREATE TABLE customer (id INTEGER, name TEXT, city TEXT, PRIMARY KEY (id));\n"
        'CREATE TABLE "order" (id INTEGER, customer_id INTEGER, total REAL, PRIMARY KEY (id), '
        "FOREIGN KEY (customer_id) REFERENCES customer(id));")
    # eval: a Spider-style file under --db-root shows the model the keys
    data = tmp_path / "dev.json"
    data.write_text(json.dumps([{"db_id": "shop", "question": "q", "query": "SELECT 1"}]))
    (tmp_path / "root" / "shop").mkdir(parents=True)
    make_shop(tmp_path / "root" / "shop" / "shop.sqlite")
    (example,) = load_eval_set(str(data), db_root=str(tmp_path / "root")).examples
    assert "FOREIGN KEY (customer_id) REFERENCES customer(id)" in example.db_schema
    # serve: the registered SQLite file's schema text is the same
    from serve.registry import open_database
    database = open_database("shop", str(shop), timeout_s=5, max_rows=10)
    try:
        assert database.engine == "sqlite" and database.ddl == sqlite_ddl(shop)
    finally:
        database.sandbox.close()


# ------------------------------------------------------------------ BIRD


def bird_folder(tmp_path: Path) -> Path:
    """BIRD's dev layout: dev.json beside dev_databases/<db_id>/<db_id>.sqlite (no dev_tables.json)."""
    make_shop(tmp_path / "bird" / "dev_databases" / "shop" / "shop.sqlite")
    rows = [
        {"question_id": 0, "db_id": "shop", "question": "Which cities have customers?",
         "evidence": "a city is where a customer lives", "SQL": "SELECT city FROM customer",
         "difficulty": "simple"},
        {"question_id": 1, "db_id": "shop", "question": "Name and city of customers with orders?", "evidence": "",
         "SQL": 'SELECT c.name, c.city FROM customer c JOIN "order" o ON o.customer_id = c.id',
         "difficulty": "moderate"},
    ]
    (tmp_path / "bird" / "dev.json").write_text(json.dumps(rows))
    return tmp_path / "bird" / "dev.json"


def test_bird_file_loads_with_evidence_and_database(tmp_path):
    records, problems = load_records(DatasetSpec(path=str(bird_folder(tmp_path))))
    assert not problems and len(records) == 2
    first = records[0]
    assert first.question == "Which cities have customers?\nEvidence: a city is where a customer lives"
    assert records[1].question == "Name and city of customers with orders?"  # no evidence: no empty line
    assert first.answer == "SELECT city FROM customer" and first.db_id == "shop"
    assert "FOREIGN KEY (customer_id) REFERENCES customer(id)" in first.context  # read from the SQLite file
    assert first.meta["db_path"].endswith("dev_databases/shop/shop.sqlite") and first.meta["id"] == "0"
    assert first.meta["difficulty"] == "simple"
    assert load_config(None, ["data.train=[{path: x.json, format: bird}]"]).data.train[0].format == "bird"


BIRD_ANSWERS = {
    # duplicates and another order: the same set of rows
    "Which cities have customers?\nEvidence: a city is where a customer lives":
        "SELECT city FROM customer ORDER BY city DESC",
    # the gold's columns swapped: BIRD compares rows as tuples, so this is wrong under its rule
    "Name and city of customers with orders?":
        'SELECT c.city, c.name FROM customer c JOIN "order" o ON o.customer_id = c.id',
}


@pytest.mark.parametrize("how", ["beside the file", "--db-root"])
def test_bird_scored_by_birds_set_rule(tmp_path, how):
    data = bird_folder(tmp_path)
    root = ["--db-root", str(data.parent / "dev_databases")] if how == "--db-root" else []
    model = AnswerTable(BIRD_ANSWERS)
    report, rows, line = evaluate(["m", "--data", str(data), *root, "--mode", "set", "--out",
                                   str(tmp_path / "set")], model)
    assert [(r["id"], r["status"]) for r in rows] == [("0", "match"), ("1", "mismatch")]
    assert all(r["engine"] == "sqlite" and r["database"].endswith("shop.sqlite") for r in rows)
    # the evidence reaches the prompt, and so do the SQLite file's keys
    assert any(p.endswith("Evidence: a city is where a customer lives") for p in model.prompts)
    assert all("FOREIGN KEY (customer_id)" in p for p in model.prompts)
    assert report["by_difficulty"]["simple"]["correct"] == 1 and "ran on shop.sqlite (sqlite, 2)" in line
    # Spider's rule lets columns come in any order; BIRD's does not.
    _, rows, _ = evaluate(["m", "--data", str(data), *root, "--mode", "strict", "--out", str(tmp_path / "strict")],
                          AnswerTable(BIRD_ANSWERS))
    assert rows[1]["status"] == "match"


# ------------------------------------------------------------------ errors before the wait


def test_eval_refuses_bad_settings_before_loading(tmp_path, capsys):
    data = own_records(tmp_path)
    with pytest.raises(SystemExit) as done:
        eval_run.main([str(tmp_path / "no-such-model"), "--data", str(data), "--db-root",
                       "postgresql://reader:secret@db.example/shop", "--out", str(tmp_path / "out")])
    message = str(done.value)
    assert "a password in the URL" in message and "secret" not in message
    with pytest.raises(SystemExit) as done:
        eval_run.main([str(tmp_path / "no-such-model"), "--data", str(data), "--template", "chatmlx",
                       "--out", str(tmp_path / "out")])
    message = str(done.value)
    assert "model not found" in message and "Did you mean 'chatml'" in message and "no model was loaded" in message
    assert "loading" not in capsys.readouterr().err


def test_serve_lists_every_problem_before_loading(tmp_path):
    from serve.main import main as serve_main
    (tmp_path / "notadb.sqlite").write_text("hello")
    with pytest.raises(SystemExit) as done:
        serve_main([str(tmp_path / "missing-run"), "--no-demo-databases",
                    "--database", "live=postgresql://reader:secret@db.example:5432/shop",
                    "--database", f"bad={tmp_path / 'notadb.sqlite'}", "--database", "gone=gone.duckdb",
                    "--database", "typo=restaurant"])
    message = str(done.value)
    assert message.startswith("sqlft serve: cannot start:")
    for words in ("model not found", "database 'live': ", "a password in the URL", "database 'bad': ",
                  "not a SQLite or DuckDB database", "database 'gone': file not found: gone.duckdb",
                  "unknown database 'restaurant'"):
        assert words in message, words
    assert "secret" not in message


@pytest.mark.slow
def test_serve_exits_non_zero_when_loading_fails(tmp_path):
    """A model folder that passes the checks on disk but cannot load: the server stops with status 1 and the reason
    instead of staying up answering 503."""
    from sqlft.core.net import free_port

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": "many"}))
    done = subprocess.run([sys.executable, "-m", "serve.main", str(broken), "--no-demo-databases", "--port",
                           str(free_port())], capture_output=True, text=True, timeout=240)
    assert done.returncode == 1
    assert "sqlft serve: cannot start:" in done.stderr and "vocab_size" in done.stderr


def test_missing_db_path_is_said_before_generating_and_never_synthesized(tmp_path, capsys):
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in [
        {"db_path": "nowhere/shop.sqlite", "context": "CREATE TABLE customer (id INT)", "question": "How many t?",
         "answer": "SELECT count(*) FROM customer"},
        {"context": "CREATE TABLE t (a INT, b TEXT)", "question": "How many customers?",
         "answer": "SELECT count(*) FROM t"}]))
    report, rows, line = evaluate(["m", "--data", str(data), "--out", str(tmp_path / "out")], AnswerTable(ANSWERS))
    assert rows[0]["status"] == "gold_error" and "db_path nowhere/shop.sqlite not found" in rows[0]["reason"]
    assert not rows[0]["synthetic"] and rows[1]["synthetic"]
    assert "ran on shop.sqlite (not usable, 1); synthesized" in line
    err = capsys.readouterr().err
    assert err.index("no database for mine.jsonl:1") < err.index("loading m")
