"""`sqlft eval` end to end on tiny real databases built in tmp_path: statuses, reports, resume, Defog, compare."""

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import shared_data

from eval import run as eval_run
from sqlft.data.examples import expand_alternatives
from eval.report import compare_runs
from sqlft.model.protocol import Generation
from sqlft.data.demo import resolve_data_path

SINGERS = [(1, "Joe", "France", 52), (2, "Ann", "Netherlands", 32), (3, "Tom", "France", 41), (4, "Lia", "US", 25)]
SLOW_SQL = "SELECT count(*) FROM " + ", ".join(f"singer s{i}" for i in range(16))  # 4^16 rows: runs for minutes


@pytest.fixture
def db_root(tmp_path: Path) -> Path:
    """Spider's layout: <root>/<db_id>/<db_id>.sqlite."""
    root = tmp_path / "database"
    (root / "concert").mkdir(parents=True)
    con = sqlite3.connect(root / "concert" / "concert.sqlite")
    con.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER)")
    con.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)", SINGERS)
    con.commit()
    con.close()
    return root


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# One prediction per status; the gold of g1 itself fails (a harness problem).
PREDICTIONS = [
    dict(id="m1", db_id="concert", gold_sql="SELECT count(*) FROM singer", pred_sql="SELECT COUNT(*) FROM singer"),
    # Spider mode strips DISTINCT from both sides, so this matches.
    dict(id="m2", db_id="concert", gold_sql="SELECT DISTINCT country FROM singer",
         pred_sql="SELECT country FROM singer"),
    dict(id="x1", db_id="concert", gold_sql="SELECT name FROM singer WHERE age > 40",
         pred_sql="SELECT name FROM singer WHERE age > 30"),
    dict(id="x2", db_id="concert", gold_sql="SELECT name FROM singer ORDER BY age",
         pred_sql="SELECT name FROM singer ORDER BY age DESC"),
    dict(id="p1", db_id="concert", gold_sql="SELECT name FROM singer", pred_sql="SELEC name FROM singer"),
    dict(id="p2", db_id="concert", gold_sql="SELECT name FROM singer", pred_sql=""),
    dict(id="e1", db_id="concert", gold_sql="SELECT name FROM singer", pred_sql="SELECT nam FROM singer"),
    dict(id="t1", db_id="concert", gold_sql="SELECT count(*) FROM singer", pred_sql=SLOW_SQL),
    dict(id="r1", db_id="concert", gold_sql="SELECT name FROM singer", pred_sql="DELETE FROM singer"),
    dict(id="g1", db_id="concert", gold_sql="SELECT nope FROM singer", pred_sql="SELECT name FROM singer"),
]
EXPECTED = {"m1": "match", "m2": "match", "x1": "mismatch", "x2": "mismatch", "p1": "pred_parse_error",
            "p2": "pred_parse_error", "e1": "pred_exec_error", "t1": "pred_timeout", "r1": "rejected",
            "g1": "gold_error"}


@pytest.mark.parametrize("dialect, flag, engine", [("sqlite", "auto", "sqlite"), ("duckdb", "auto", "sqlite"),
                                                   ("duckdb", "duckdb", "duckdb")])
def test_predictions_file_end_to_end(tmp_path, db_root, capsys, dialect, flag, engine):
    # A SQLite file runs on SQLite (sqlft.sql.engine's rule; SQL of another dialect transpiled), or with --engine
    # duckdb on a DuckDB copy of it.
    preds = write_jsonl(tmp_path / "preds.jsonl", PREDICTIONS)
    out = tmp_path / "out"
    eval_run.main(["--predictions", str(preds), "--db-root", str(db_root), "--dialect", dialect, "--engine", flag,
                   "--out", str(out), "--timeout-s", "0.5", "--workers", "2"])

    rows = read_jsonl(out / "results.jsonl")
    assert [r["id"] for r in rows] == [p["id"] for p in PREDICTIONS]  # one line per input, in input order
    assert {r["id"]: r["status"] for r in rows} == EXPECTED
    by_id = {r["id"]: r for r in rows}
    assert "only in pred: ('Ann',)" in by_id["x1"]["reason"]
    assert "another order" in by_id["x2"]["reason"]
    assert "nam" in by_id["e1"]["reason"] and "\x1b" not in by_id["p1"]["reason"]
    assert by_id["m1"]["exact_match"] and not by_id["m2"]["exact_match"]
    assert by_id["m1"]["hardness"] == by_id["x2"]["hardness"] == "easy"
    assert {r["engine"] for r in rows} == {engine}

    report = json.loads((out / "report.json").read_text())
    assert report["examples"] == 10 and report["scored"] == 9  # gold_error excluded
    assert report["execution_accuracy"] == round(2 / 9, 4)
    assert report["exact_match"] == round(1 / 9, 4)
    assert report["valid_sql"] == round(7 / 9, 4)  # all but the two parse errors
    assert report["counts"] == {"match": 2, "mismatch": 2, "pred_parse_error": 2, "pred_exec_error": 1,
                                "pred_timeout": 1, "rejected": 1, "gold_error": 1, "total": 10}
    assert report["gold_errors"][0]["id"] == "g1"
    assert report["by_database"]["concert"] == {"n": 9, "correct": 2, "accuracy": round(2 / 9, 4)}
    assert report["mode"] == "spider" and report["versions"]["data_sha256"]
    for name in ("report.md", "report.png"):
        assert (out / name).stat().st_size > 0
    assert "execution accuracy 22.2% (2/9" in capsys.readouterr().out


def test_gold_error_is_excluded_from_accuracy(tmp_path, db_root):
    preds = write_jsonl(tmp_path / "preds.jsonl", [PREDICTIONS[0], PREDICTIONS[-1]])
    out = tmp_path / "out"
    eval_run.main(["--predictions", str(preds), "--db-root", str(db_root), "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert report["execution_accuracy"] == 1.0 and report["scored"] == 1
    assert report["counts"]["gold_error"] == 1 and "nope" in report["gold_errors"][0]["reason"]


def test_strict_mode_keeps_distinct(tmp_path, db_root):
    preds = write_jsonl(tmp_path / "preds.jsonl", [PREDICTIONS[1]])
    out = tmp_path / "out"
    eval_run.main(["--predictions", str(preds), "--db-root", str(db_root), "--out", str(out), "--mode", "strict"])
    assert read_jsonl(out / "results.jsonl")[0]["status"] == "mismatch"


def test_missing_database_everywhere_is_a_clear_error(tmp_path):
    preds = write_jsonl(tmp_path / "preds.jsonl", [PREDICTIONS[0]])
    with pytest.raises(SystemExit, match="no database for db_id 'concert'"):
        eval_run.main(["--predictions", str(preds), "--db-root", str(tmp_path), "--out", str(tmp_path / "o")])


# ------------------------------------------------------------------ generation with a fake model


class FakeModel:
    """InferenceModel's interface; answers from a question -> text table and records what it was asked."""

    template = "fake"

    def __init__(self, answers: dict[str, str]):
        self.answers = answers
        self.asked: list[str] = []
        self.prompts: list[str] = []

    def sql_prompt(self, db_schema: str, question: str) -> str:
        return f"{db_schema}\n-- {question}"

    def generate(self, prompts, gen=None, on_answer=None):  # on_answer: progress, not counted here
        self.prompts += prompts
        questions = [p.rsplit("\n-- ", 1)[1] for p in prompts]
        self.asked += questions
        return [Generation(f"```sql\n{self.answers.get(q, 'SELECT 1')}\n```", len(p.split()), 7, 0.01)
                for p, q in zip(prompts, questions)]


SCHEMA = "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);"
RECORDS = [  # know_sql records without a database: scored on synthesized instances
    ("How many singers are there?", "SELECT count(*) FROM singer"),
    ("Names of singers older than 40?", "SELECT name FROM singer WHERE age > 40"),
    ("Countries of singers?", "SELECT country FROM singer"),
    ("Average age?", "SELECT avg(age) FROM singer"),
    ("Oldest singer?", "SELECT name FROM singer ORDER BY age DESC LIMIT 1"),
    ("Singers from France?", "SELECT name FROM singer WHERE country = 'France'"),
]


def test_resume_generates_only_what_is_missing(tmp_path):
    data = write_jsonl(tmp_path / "eval.jsonl", [{"context": SCHEMA, "question": q, "answer": a} for q, a in RECORDS])
    answers = dict(RECORDS)
    out = tmp_path / "out"
    argv = ["fake-model", "--data", str(data), "--out", str(out), "--instances", "2", "--workers", "2"]

    first = FakeModel(answers)
    report = eval_run.run(eval_run.parse_args(argv), load_model=lambda ref, template=None: first)
    assert len(first.asked) == 6 and report["execution_accuracy"] == 1.0
    rows = read_jsonl(out / "results.jsonl")
    assert {r["instances"] for r in rows} == {2} and all(r["synthetic"] for r in rows)

    # A kill during the second batch: three whole lines and half of the fourth survive.
    lines = (out / "predictions.jsonl").read_text().splitlines()
    (out / "predictions.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    kept = {json.loads(line)["id"] for line in lines[:3]}
    second = FakeModel(answers)
    report = eval_run.run(eval_run.parse_args(argv), load_model=lambda ref, template=None: second)
    missing = [q for i, (q, _) in enumerate(RECORDS) if str(i) not in kept]
    assert sorted(second.asked) == sorted(missing)
    assert report["scored"] == 6 and report["execution_accuracy"] == 1.0
    assert report["generation"]["examples"] == 6 and report["generation"]["new_tokens"] == 6 * 7

    # Everything is there now: the model is not even loaded.
    eval_run.run(eval_run.parse_args(argv), load_model=lambda ref, template=None: pytest.fail("model loaded"))

    # Other decoding settings cannot extend these predictions.
    with pytest.raises(SystemExit, match="new --out"):
        eval_run.main(argv + ["--max-new-tokens", "5"])


def test_spider_file_with_db_root(tmp_path, db_root):
    # Spider's own layout: no schema in the records; the model sees the database's CREATE TABLE text.
    data = tmp_path / "dev.json"
    data.write_text(json.dumps([
        {"db_id": "concert", "question": "How many singers?", "query": "SELECT count(*) FROM singer"},
        {"db_id": "concert", "question": "French singers?",
         "query": "SELECT name FROM singer WHERE country = 'France'"},
    ]))
    model = FakeModel({"How many singers?": "SELECT count(*) FROM singer",
                       "French singers?": "SELECT name FROM singer WHERE country = 'france'"})
    out = tmp_path / "out"
    report = eval_run.run(eval_run.parse_args(["m", "--data", str(data), "--db-root", str(db_root), "--out", str(out)]),
                          load_model=lambda ref, template=None: model)
    rows = read_jsonl(out / "results.jsonl")
    assert [r["status"] for r in rows] == ["match", "mismatch"]
    assert "only in gold: ('Joe',), ('Tom',)" in rows[1]["reason"]
    assert report["settings"]["dialect"] == "sqlite" and report["settings"]["data_kind"] == "spider"
    assert not rows[0]["synthetic"] and rows[0]["instances"] == 1
    # read from SQLite itself (sqlft.sql.sqlite_schema): the declared types, as the file's own DDL has them
    assert all(p.startswith("CREATE TABLE singer (singer_id INTEGER, name TEXT, country TEXT, age INTEGER, "
                            "PRIMARY KEY (singer_id));") for p in model.prompts), model.prompts[0]


def test_spider_rows_are_read_by_the_one_spider_reader(tmp_path, db_root):
    """sqlft.data.formats reads Spider for training and for `sqlft eval --db-root` alike. The eval keeps Spider's ids
    (a row's position, or its own id), reports a bad row, and takes the schema from the database even where a
    tables.json lies beside the file (the prompt shows the database's real DDL)."""
    from sqlft.data.examples import load_eval_set

    data = tmp_path / "dev.json"
    data.write_text(json.dumps([
        {"db_id": "concert", "question": "How many singers?", "query": "SELECT count(*) FROM singer"},
        {"db_id": "concert", "question": "No query?"},
        {"db_id": "concert", "question": "Oldest?", "query": "SELECT max(age) FROM singer", "id": "q7"},
        {"db_id": "concert", "question": "Names?", "query": "SELECT name FROM singer", "hardness": "easy"},
    ]))
    (tmp_path / "tables.json").write_text((Path(__file__).parent / "fixtures" / "data" / "spider" /
                                           "tables.json").read_text())
    evalset = load_eval_set(str(data), db_root=str(db_root))
    assert evalset.kind == "spider"
    assert [e.id for e in evalset.examples] == ["0", "q7", "3"]
    assert evalset.examples[2].difficulty == "easy"
    (problem,) = evalset.problems
    assert problem.startswith("dev.json[1]: missing field 'query'")
    assert all(e.db_schema.startswith("CREATE TABLE singer (singer_id INTEGER") for e in evalset.examples)
    assert all(e.database == str(db_root / "concert" / "concert.sqlite") for e in evalset.examples)


def test_defog_csv_alternatives(tmp_path):
    (tmp_path / "databases").mkdir()
    (tmp_path / "questions").mkdir()
    (tmp_path / "databases" / "tinyacademic.sql").write_text(
        "CREATE TABLE public.author (aid bigint NOT NULL, name text, oid bigint);\n"
        "INSERT INTO public.author (aid, name, oid) VALUES (1, 'Ada', 10);\n"
        "INSERT INTO public.author (aid, name, oid) VALUES (2, 'Alan', 20);\n")
    csv_path = tmp_path / "questions" / "questions_gen_postgres.csv"
    csv_path.write_text(
        "question,query,db_name,query_category,instructions\n"
        '"Which authors are there?","SELECT {author.name, author.aid} FROM author",tinyacademic,table_join,\n'
        '"How many authors?","SELECT COUNT(*) FROM author;SELECT COUNT(DISTINCT aid) FROM author",'
        "tinyacademic,group_by,Count rows.\n"
        '"Name of author 1?","SELECT name FROM author WHERE aid = 1",tinyacademic,instruct,\n')
    model = FakeModel({"Which authors are there?": "SELECT aid FROM author",  # one of the accepted subsets
                       "How many authors?\nCount rows.": "SELECT COUNT(DISTINCT author.aid) FROM author",
                       "Name of author 1?": "SELECT name FROM author WHERE aid = 2"})
    out = tmp_path / "out"
    report = eval_run.run(eval_run.parse_args(["m", "--data", str(csv_path), "--out", str(out)]),
                          load_model=lambda ref, template=None: model)
    rows = read_jsonl(out / "results.jsonl")
    assert [r["status"] for r in rows] == ["match", "match", "mismatch"]
    assert rows[0]["gold_alternatives"] == 3 and rows[1]["gold_alternatives"] == 2
    assert report["settings"]["dialect"] == "postgres"
    assert set(report["by_category"]) == {"table_join", "group_by", "instruct"}


def test_expand_alternatives():
    assert expand_alternatives("SELECT {a.x, a.y} FROM a") == [
        "SELECT a.x FROM a", "SELECT a.y FROM a", "SELECT a.x, a.y FROM a"]
    assert expand_alternatives("SELECT {x,y}, SUM(z) FROM t GROUP BY {};SELECT 1;") == [
        "SELECT x, SUM(z) FROM t GROUP BY x", "SELECT y, SUM(z) FROM t GROUP BY y",
        "SELECT x, y, SUM(z) FROM t GROUP BY x, y", "SELECT 1"]
    assert expand_alternatives("SELECT a FROM t") == ["SELECT a FROM t"]


def test_defog_questions_expand(tmp_path):
    shared = shared_data("defog", "questions")
    shared_data("defog", "questions", "questions_gen_postgres.csv")
    import csv
    rows = list(csv.DictReader(open(shared / "questions_gen_postgres.csv", encoding="utf-8")))
    golds = [expand_alternatives(row["query"]) for row in rows]
    assert len(rows) == 210 and all(golds) and all("{" not in g for alts in golds for g in alts)
    assert max(len(alts) for alts in golds) >= 7  # {a, b, c} -> 7 subsets


# ------------------------------------------------------------------ compare


def test_compare_lists_flipped_examples(tmp_path, db_root, capsys):
    base = [dict(id=f"q{i}", db_id="concert", question=f"question {i}", gold_sql="SELECT count(*) FROM singer",
                 pred_sql="SELECT count(*) FROM singer") for i in range(4)]
    a, b = [dict(row) for row in base], [dict(row) for row in base]
    a[1]["pred_sql"] = "SELECT 1"  # wrong in A, right in B
    b[2]["pred_sql"] = "SELECT nam FROM singer"  # right in A, wrong in B
    for name, rows in (("a", a), ("b", b)):
        eval_run.main(["--predictions", str(write_jsonl(tmp_path / f"{name}.jsonl", rows)),
                       "--db-root", str(db_root), "--out", str(tmp_path / name)])
    capsys.readouterr()
    eval_run.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    text = capsys.readouterr().out
    assert text == compare_runs(tmp_path / "a", tmp_path / "b") + "\n"
    fixed, broken = text.split("wrong in A, right in B: 1")[1].split("right in A, wrong in B: 1")
    assert "q1 [concert] mismatch -> match: question 1" in fixed
    assert "q2 [concert] match -> pred_exec_error: question 2" in broken
    assert "75.0%" in text.splitlines()[2]


# ------------------------------------------------------------------ the real model


@pytest.mark.slow
def test_real_model_on_three_demo_questions(tmp_path):
    try:
        resolve_data_path("demo:eval")
    except FileNotFoundError:
        pytest.skip("the demo eval set (sqlft/data/demo/eval.jsonl) is not there yet")
    from sqlft.config import EMBEDDED_MODEL
    out = tmp_path / "out"
    report = eval_run.run(eval_run.parse_args([EMBEDDED_MODEL, "--data", "demo:eval", "--limit", "3",
                                               "--max-new-tokens", "48", "--out", str(out)]))
    rows = read_jsonl(out / "results.jsonl")
    assert len(rows) == 3 and all(r["raw"] for r in rows)
    assert report["generation"]["new_tokens"] > 0 and report["versions"]["torch"]
    assert len(read_jsonl(out / "predictions.jsonl")) == 3


WRONG = "SELECT -1 AS wrong"  # runs and returns a row, never the gold's (an empty result would not vote)


class VotingFake(FakeModel):
    """Greedy answers run but give another result; sampled answers are right except every `wrong_every`-th."""

    def __init__(self, answers, wrong_every=0):
        super().__init__(answers)
        self.samples, self.wrong_every = 0, wrong_every

    def generate(self, prompts, gen=None, on_answer=None):  # on_answer: progress, not counted here
        if gen is not None and gen.do_sample:
            self.samples += 1
            if self.wrong_every and self.samples % self.wrong_every == 0:
                return [Generation(WRONG, 5, 4, 0.01) for _ in prompts]
            return super().generate(prompts, gen)
        return [Generation(WRONG, 5, 4, 0.01) for _ in prompts]


def test_voting_picks_the_majority_result_and_keeps_greedy_on_a_tie(tmp_path):
    data = write_jsonl(tmp_path / "eval.jsonl", [{"context": SCHEMA, "question": q, "answer": a} for q, a in RECORDS])

    def evaluate(out, *flags, model=None):
        argv = ["fake-model", "--data", str(data), "--out", str(tmp_path / out), "--instances", "2", *flags]
        return eval_run.run(eval_run.parse_args(argv), load_model=lambda ref, template=None: model)

    # 3 answers: the greedy one (wrong result) and two right samples -> the right result has 2 votes of 3
    report = evaluate("vote3", "--candidates", "3", "--vote", model=VotingFake(dict(RECORDS)))
    assert report["execution_accuracy"] == 1.0
    assert report["voting"] == {"questions": 6, "candidates": 3, "changed": 6, "changed_rate": 1.0,
                                "changed_and_correct": 6, "candidates_ran_mean": 3.0, "none_ran": 0,
                                "empty_left_out": 0}
    rows = read_jsonl(tmp_path / "vote3" / "results.jsonl")
    assert all(r["greedy_raw"] == WRONG for r in rows)
    assert "voting over executed results" in (tmp_path / "vote3" / "report.md").read_text()
    # 2 answers: greedy (wrong) against one right sample -> a tie, the greedy answer stays
    tie = evaluate("vote2", "--candidates", "2", "--vote", model=VotingFake(dict(RECORDS)))
    assert tie["execution_accuracy"] == 0.0 and tie["voting"]["changed"] == 0
    # 4 answers, the third sample wrong again: greedy + 1 wrong sample (2) against 2 right -> tie, greedy stays
    tie4 = evaluate("vote4", "--candidates", "4", "--vote", model=VotingFake(dict(RECORDS), wrong_every=3))
    assert tie4["execution_accuracy"] == 0.0 and tie4["voting"]["candidates_ran_mean"] == 4.0
    with pytest.raises(SystemExit):
        eval_run.parse_args(["fake-model", "--data", str(data), "--vote"])  # --vote alone: needs --candidates >= 2
    with pytest.raises(SystemExit):  # candidates are for voting (execution-guided decoding was removed)
        eval_run.parse_args(["fake-model", "--data", str(data), "--candidates", "3"])


def test_repair_rewrites_answers_that_do_not_run_and_leaves_the_others(tmp_path):
    data = write_jsonl(tmp_path / "eval.jsonl", [{"context": SCHEMA, "question": q, "answer": a} for q, a in RECORDS])
    answers = dict(RECORDS)
    answers["How many singers are there?"] = "SELECT count(*) FROM singers"  # no table singers: repaired
    answers["Names of singers older than 40?"] = "SELECT nam FROM singer WHERE age > 40"  # no column nam
    answers["Countries of singers?"] = "SELECT name FROM singer"  # runs, wrong: never touched
    answers["Average age?"] = "SELECT avg(height) FROM singer"  # no column close to height: fails as written

    def evaluate(out, *flags):
        argv = ["fake-model", "--data", str(data), "--out", str(tmp_path / out), "--instances", "2", *flags]
        return eval_run.run(eval_run.parse_args(argv), load_model=lambda ref, template=None: FakeModel(answers))

    plain = evaluate("plain")
    assert plain["counts"]["match"] == 2 and plain["repair"] is None
    repaired = evaluate("repaired", "--repair")
    assert repaired["counts"]["match"] == 4
    assert repaired["repair"] == {"repaired": 2, "repaired_and_correct": 2, "still_failing": 0}
    rows = {r["question"]: r for r in read_jsonl(tmp_path / "repaired" / "results.jsonl")}
    assert rows["How many singers are there?"]["repaired_from"] == "SELECT count(*) FROM singers"
    assert rows["How many singers are there?"]["pred_sql"] == "SELECT COUNT(*) FROM singer"
    assert "repaired_from" not in rows["Countries of singers?"] and rows["Countries of singers?"]["status"] == "mismatch"
    assert rows["Average age?"]["status"] == "pred_exec_error" and "repaired_from" not in rows["Average age?"]
    assert "Schema repair: 2 answers" in (tmp_path / "repaired" / "report.md").read_text()
    # The same predictions scored again with repair: generation is not redone (repair is scoring, not decoding).
    again = eval_run.run(eval_run.parse_args(["fake-model", "--data", str(data), "--out", str(tmp_path / "plain"),
                                              "--instances", "2", "--repair"]), load_model=None)
    assert again["counts"]["match"] == 4
    with pytest.raises(SystemExit):  # a predictions file has no schema to repair against: said, not ignored
        eval_run.parse_args(["--predictions", str(data), "--repair"])
