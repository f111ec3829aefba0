"""Record formats: tiny authored fixtures (good and bad rows) and the real samples in ../shared/data."""

import json
from pathlib import Path

import pytest
from conftest import shared_data as conftest_shared_data

from sqlft.config import DatasetSpec
from sqlft.data.errors import DataError
from sqlft.data.formats import load_records
from sqlft.prompts.record import SQL_SYSTEM
from sqlft.prompts.templates import render

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def shared_data(relative: str) -> Path:
    """A file under ../shared/data (real public samples), or skip when this checkout has none."""
    return conftest_shared_data(*relative.split("/"))


def load(path, **spec) -> tuple[list, list]:
    return load_records(DatasetSpec(path=str(path), **spec))


# --------------------------------------------------------------- fixtures: every bad row gets its own reason

# file -> (format detected, records kept, [(source, reason, text the message must contain)])
CASES = {
    "know_sql.jsonl": ("know_sql", 4, [
        ("know_sql.jsonl:6", "missing_field", "'answer'"),
        ("know_sql.jsonl:7", "empty_field", "'question'"),
        ("know_sql.jsonl:8", "wrong_type", "'answer' is int"),
        ("know_sql.jsonl:9", "bad_json", "not valid JSON"),
        ("know_sql.jsonl:10", "wrong_type", "record is a list"),
    ]),
    "spider/train.jsonl": ("spider", 4, [("train.jsonl:5", "missing_schema", "'flights'")]),
    "alpaca.json": ("alpaca", 3, [
        ("alpaca.json[3]", "wrong_type", "'output' is int"),
        ("alpaca.json[4]", "bad_turns", "'history'"),
        ("alpaca.json[5]", "empty_field", "'instruction'"),
    ]),
    "dolly.csv": ("dolly", 2, [("dolly.csv:5", "empty_field", "'response'")]),
    "sharegpt.json": ("sharegpt", 2, [
        ("sharegpt.json[2]", "bad_turns", "ends with a user turn"),
        ("sharegpt.json[3]", "bad_turns", "'conversations[1].from' is \"robot\""),
        ("sharegpt.json[4]", "bad_turns", "alternate"),
        ("sharegpt.json[5]", "wrong_type", "conversations[0]: field 'value' is list"),
        ("sharegpt.json[6]", "wrong_type", "'conversations' is str"),
        ("sharegpt.json[7]", "missing_field", "'conversations'"),
    ]),
    "messages.jsonl": ("messages", 2, [
        ("messages.jsonl:3", "bad_turns", "turn 1 is 'assistant'"),
        ("messages.jsonl:4", "empty_field", "messages[1]: field 'content' is empty"),
        ("messages.jsonl:5", "missing_field", "messages[1]: field 'content' is missing or null"),
    ]),
    "guanaco.jsonl": ("guanaco", 2, [
        ("guanaco.jsonl:3", "bad_turns", "before the first '### Human:'"),
        ("guanaco.jsonl:4", "bad_turns", "ends with a user turn"),
        ("guanaco.jsonl:5", "bad_turns", "turn 1 (user) in field 'text' is empty"),
    ]),
    "llama2.jsonl": ("llama2_text", 2, [
        ("llama2.jsonl:3", "bad_turns", "ends with a user turn"),
        ("llama2.jsonl:4", "bad_turns", "field 'text' is not Llama-2 chat text"),
    ]),
}


@pytest.mark.parametrize("name", CASES)
def test_fixture_records_and_problems(name):
    fmt, kept, expected = CASES[name]
    records, problems = load(FIXTURES / name, format=fmt)
    assert load(FIXTURES / name) == (records, problems)  # format auto detects fmt
    assert len(records) == kept
    assert [(p.source, p.reason) for p in problems] == [(s, r) for s, r, _ in expected]
    for problem, (_, _, words) in zip(problems, expected):
        assert words in problem.message
    assert all(r.answer for r in records)  # every record is a training record


def test_know_sql_fields():
    records, _ = load(FIXTURES / "know_sql.jsonl")
    first, second = records[:2]
    assert (first.task, first.system, first.db_id) == ("sql", SQL_SYSTEM, "dept")
    assert first.context.startswith("CREATE TABLE head")
    assert (first.question, first.answer) == ("How many heads are older than 56?",
                                              "SELECT COUNT(*) FROM head WHERE age > 56")
    assert second.meta == {"db_path": "dbs/dept.duckdb"}


def test_spider_schema_from_tables_json():
    records, _ = load(FIXTURES / "spider" / "train.jsonl")
    concert = records[0].context.splitlines()
    assert concert[1] == "CREATE TABLE singer (singer_id NUMERIC, name TEXT, is_male BOOLEAN, PRIMARY KEY (singer_id));"
    assert concert[3] == ("CREATE TABLE singer_in_concert (concert_id NUMERIC, singer_id NUMERIC, "
                          "PRIMARY KEY (concert_id, singer_id), "
                          "FOREIGN KEY (concert_id) REFERENCES concert(concert_id), "
                          "FOREIGN KEY (singer_id) REFERENCES singer(singer_id));")
    assert records[3].context == "CREATE TABLE pets (pet_id NUMERIC, weight NUMERIC, vaccinated BOOLEAN)"  # own context
    assert {r.db_id for r in records} == {"concert", "pets"}


def test_spider_without_tables_json_is_a_problem(tmp_path):
    (tmp_path / "dev.jsonl").write_text(json.dumps({"db_id": "x", "question": "q?", "query": "SELECT 1"}) + "\n")
    records, problems = load(tmp_path / "dev.jsonl")
    assert records == [] and problems[0].reason == "missing_schema"
    assert "no tables.json next to the data file" in problems[0].message


def test_spider_rows_keep_their_positions_and_labels(tmp_path):
    from sqlft.data.formats import is_spider_file, read_spider

    rows = [{"db_id": "x", "question": "q?", "query": "SELECT 1", "hardness": "easy", "question_toks": ["q"]},
            {"db_id": "x", "question": "", "query": "SELECT 2"},
            {"db_id": "x", "question": "r?", "query": "SELECT 3", "id": 12, "context": "CREATE TABLE t (a INT)"}]
    (tmp_path / "dev.json").write_text(json.dumps(rows))
    assert is_spider_file(str(tmp_path / "dev.json")) and not is_spider_file(str(FIXTURES / "alpaca.json"))
    records, problems = read_spider(str(tmp_path / "dev.json"), tables_json=False)  # the schema comes elsewhere
    assert [(p, r.answer, r.context) for p, r in records] == [(0, "SELECT 1", ""), (2, "SELECT 3", "CREATE TABLE t (a INT)")]
    assert records[0][1].meta == {"hardness": "easy"} and records[1][1].meta == {"id": 12}
    assert [(p.source, p.reason) for p in problems] == [("dev.json[1]", "empty_field")]
    _, problems = read_spider(str(tmp_path / "dev.json"))  # for training, a schema is required
    assert [p.reason for p in problems] == ["missing_schema", "empty_field"]


def test_alpaca_history_system_and_input():
    records, _ = load(FIXTURES / "alpaca.json")
    assert (records[0].context, records[0].task) == ("Good morning", "instruct")
    assert records[1].system == "Answer in one word."
    # With history, the input joins the last instruction (the template puts the context on the first user turn).
    assert [(t.role, t.content) for t in records[2].turns] == [
        ("user", "Name a primary colour."), ("assistant", "Red"), ("user", "And another one?\nnot red"),
        ("assistant", "Blue")]
    assert records[2].context == ""


def test_dolly_csv_multiline_cell_and_category():
    records, _ = load(FIXTURES / "dolly.csv")
    assert records[0].context == "The town library opened on 3 May 1921,\nwith two rooms and four hundred books."
    assert records[0].meta == {"category": "closed_qa"}
    assert records[1].source == "dolly.csv:4"  # the line the row starts on, after a 2-line cell


def test_sharegpt_system_turn_and_tool_roles():
    records, _ = load(FIXTURES / "sharegpt.json")
    assert records[0].system == "You are a SQL assistant." and records[0].turns[0].role == "user"
    assert records[1].system == "You can call functions."  # top-level system field
    assert records[1].meta == {"tools": '[{"name": "get_time"}]'}
    assert [t.role for t in records[1].turns] == ["user", "assistant", "user", "assistant"]  # call, observation
    assert records[1].turns[1].content.startswith('{"name": "get_time"')


def test_llama2_text_system_and_turns():
    records, _ = load(FIXTURES / "llama2.jsonl")
    assert records[0].system == "You write SQL."
    assert [t.content for t in records[0].turns] == ["Count the heads.", "SELECT COUNT(*) FROM head"]
    assert [t.content for t in records[1].turns] == ["Hi", "Hello!", "What is 2+2?", "4"]


def test_parquet_with_null_cell(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows = [{"context": "CREATE TABLE t (a INT)", "question": "How many rows?", "answer": "SELECT COUNT(*) FROM t"},
            {"context": "CREATE TABLE t (a INT)", "question": "Sum of a?", "answer": None}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "sql.parquet")
    records, problems = load(tmp_path / "sql.parquet")
    assert [r.source for r in records] == ["sql.parquet[0]"]
    assert (problems[0].source, problems[0].reason) == ("sql.parquet[1]", "missing_field")
    assert "'answer'" in problems[0].message


def test_json_lines_in_a_json_file_and_max_records(tmp_path):
    row = {"instruction": "Say hi", "output": "Hi"}
    (tmp_path / "lines.json").write_text("\n".join(json.dumps(row) for _ in range(5)))
    records, _ = load(tmp_path / "lines.json", max_records=3)
    assert [r.source for r in records] == ["lines.json:1", "lines.json:2", "lines.json:3"]


def test_jsonl_line_separator_inside_a_string(tmp_path):
    # U+2028 may appear unescaped in JSON text; it is not a line end for JSON Lines.
    rows = [{"instruction": "first\u2028line", "output": "ok"}, {"instruction": "second", "output": "ok"}]
    (tmp_path / "u.jsonl").write_text("\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    records, problems = load(tmp_path / "u.jsonl")
    assert problems == [] and [r.question for r in records] == ["first\u2028line", "second"]


# --------------------------------------------------------------- whole-dataset failures raise DataError


def test_undetectable_format_names_the_keys():
    with pytest.raises(DataError, match=r"keys \['completion', 'prompt'\]"):
        load(FIXTURES / "unknown_keys.jsonl")


def test_rows_that_are_not_objects(tmp_path):
    (tmp_path / "strings.json").write_text('["a", "b"]')
    with pytest.raises(DataError, match="records of type str"):
        load(tmp_path / "strings.json")
    (tmp_path / "garbage.jsonl").write_text("not json\n{also not}\n")
    with pytest.raises(DataError, match="found no readable records"):
        load(tmp_path / "garbage.jsonl")
    with pytest.raises(DataError, match="no path"):
        load("")


@pytest.mark.parametrize("name, content, words", [
    ("missing.jsonl", None, "data file not found: .*missing.jsonl"),
    ("notes.txt", "hello", "unknown file type '.txt'"),
    ("broken.json", '[{"a": 1},', "broken.json is not valid JSON"),
    ("object.json", '{"rows": []}', r"expected a list of records or \{\"data\": \[...\]\}, found an object with keys"),
])
def test_file_failures(tmp_path, name, content, words):
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=words):
        load(tmp_path / name)


def test_folder_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        load(tmp_path)
    with pytest.raises(DataError, match="unknown format 'sharegtp'. Did you mean 'sharegpt'"):
        load(FIXTURES / "sharegpt.json", format="sharegtp")


def test_hub_id_without_hub(monkeypatch):
    import datasets
    import huggingface_hub.constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Both libraries read the variable at import: set their flags too, in case they were imported earlier.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as err:
        load("sqlft-tests/no-such-dataset")
    message = str(err.value)
    assert "'sqlft-tests/no-such-dataset'" in message and "hub is unreachable" in message
    assert "set path" in message


# --------------------------------------------------------------- real samples in ../shared/data


@pytest.mark.parametrize("relative, fmt, count", [
    ("spider_train/spider_train.jsonl", "know_sql", 7000),  # Spider turned into know_sql records (with db_id)
    ("instruct/dolly/databricks-dolly-15k.first208.jsonl", "dolly", 208),
    ("instruct/alpaca/alpaca_tiny.json", "alpaca", 100),
    ("instruct/llamafactory/identity.json", "alpaca", 91),
    ("instruct/sharegpt/glaive_toolcall_en_demo.json", "sharegpt", 300),
    ("instruct/sharegpt/dummy_conversation_with_system.json", "sharegpt", 500),
    ("instruct/sharegpt/chat_tiny.json", "sharegpt", 1),
])
def test_real_samples_load_cleanly(relative, fmt, count):
    path = shared_data(relative)
    records, problems = load(path)
    assert problems == [] and len(records) == count
    assert records == load(path, format=fmt)[0]  # detection picked fmt


def test_real_spider_records_are_sql_with_db():
    records, _ = load(shared_data("spider_train/spider_train.jsonl"), max_records=50)
    assert len(records) == 50
    assert all(r.task == "sql" and r.db_id and r.context.startswith("CREATE TABLE") for r in records)


def test_real_dolly_categories_and_sharegpt_systems():
    dolly, _ = load(shared_data("instruct/dolly/databricks-dolly-15k.first208.jsonl"))
    assert len({r.meta["category"] for r in dolly}) == 8
    chats, _ = load(shared_data("instruct/sharegpt/dummy_conversation_with_system.json"))
    assert sum(bool(r.system) for r in chats) == 6
    tiny, _ = load(shared_data("instruct/sharegpt/chat_tiny.json"))
    assert tiny[0].system == "You are an AI assistant." and len(tiny[0].turns) == 4


def test_real_guanaco_both_forms():
    parquet = shared_data("instruct/guanaco/guanaco-llama2-1k.train.parquet")
    llama2, llama2_problems = load(parquet)
    human, human_problems = load(shared_data("instruct/guanaco/openassistant-guanaco-style.DERIVED.jsonl"))
    # 3 of the 1,000 conversations have an empty turn: reported, not dropped silently.
    assert (len(llama2), len(human)) == (997, 997)
    assert {p.reason for p in llama2_problems + human_problems} == {"bad_turns"}
    assert all(a.turns == b.turns for a, b in zip(llama2, human))
    # Rendering the parsed records with the llama2 template gives back the published text exactly.
    import pyarrow.parquet as pq
    texts = pq.read_table(parquet).column("text").to_pylist()
    for record in llama2:
        rendered = render(record, "llama2")
        index = int(record.source.split("[")[1].rstrip("]"))
        assert rendered.prompt + rendered.completion == texts[index], record.source
