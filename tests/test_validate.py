"""Validation: loader problems, duplicates and over-long records are counted, shown and never truncated."""

import json
from pathlib import Path

import pytest

from sqlft.config import DatasetSpec
from sqlft.data.errors import DataError
from sqlft.data.formats import Problem, load_records
from sqlft.prompts.record import Record, Turn, sql_record
from sqlft.prompts.templates import render
from sqlft.data.validate import validate

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def words(record: Record) -> int:
    """A stand-in for the token length: words of the rendered example (no tokenizer needed)."""
    rendered = render(record, "sql")
    return len((rendered.prompt + rendered.completion).split())


def know_sql():
    return load_records(DatasetSpec(path=str(FIXTURES / "know_sql.jsonl")))


def test_report_counts_loader_problems_and_duplicates():
    records, problems = know_sql()  # 4 records (one a duplicate) and 5 bad rows
    kept, report = validate(records, problems=problems, length_of=words, max_length=1000, overlong="drop",
                            dedupe=True)
    assert [r.source for r in kept] == ["know_sql.jsonl:1", "know_sql.jsonl:2", "know_sql.jsonl:4"]
    assert (report.total, report.kept) == (9, 3)
    assert report.counts == {"missing_field": 1, "empty_field": 1, "wrong_type": 2, "bad_json": 1, "duplicate": 1}
    duplicate = report.examples["duplicate"][0]
    assert (duplicate.source, duplicate.message) == ("know_sql.jsonl:5", "same system, context and turns as "
                                                                         "know_sql.jsonl:4")
    assert report.longest == max(words(r) for r in kept)


def test_dedupe_off_keeps_duplicates():
    records, _ = know_sql()
    kept, report = validate(records, length_of=words, max_length=1000, overlong="drop", dedupe=False)
    assert len(kept) == 4 and report.counts == {}


def test_overlong_dropped_whole_never_truncated():
    records, _ = know_sql()
    lengths = {r.source: words(r) for r in records}
    limit = sorted(lengths.values())[1]  # the two shortest fit
    kept, report = validate(records, length_of=words, max_length=limit, overlong="drop", dedupe=False)
    assert all(lengths[r.source] <= limit for r in kept)
    assert report.counts["overlong"] == sum(n > limit for n in lengths.values())
    assert f"> data.max_length={limit}" in report.examples["overlong"][0].message
    originals = {r.source: r.answer for r in records}
    assert all(r.answer == originals[r.source] for r in kept)  # the SQL answer is untouched


def test_overlong_fail_lists_count_and_sources():
    records, _ = know_sql()
    with pytest.raises(DataError) as err:
        validate(records, length_of=words, max_length=5, overlong="fail", dedupe=False)
    message = str(err.value)
    assert message.startswith("4 of 4 records are longer than data.max_length=5")
    assert "know_sql.jsonl:1 (" in message and "Raise data.max_length" in message and "overlong=drop" in message


def test_nothing_left_raises_with_reasons():
    problems = [Problem("a.jsonl:1", "bad_json", "line is not valid JSON")]
    records = [sql_record("CREATE TABLE t (a INT)", "How many?", "SELECT COUNT(*) FROM t", source="a.jsonl:2")]
    with pytest.raises(DataError, match=r"no training records left after validation \(bad_json: 1, overlong: 1\)"):
        validate(records, problems=problems, length_of=words, max_length=3, overlong="drop", dedupe=True)


def test_unrenderable_record_is_counted():
    question_only = Record(turns=[Turn("user", "Hi")], source="x.jsonl:1")
    fine = sql_record("CREATE TABLE t (a INT)", "How many?", "SELECT COUNT(*) FROM t", source="x.jsonl:2")
    kept, report = validate([question_only, fine], length_of=words, max_length=100, overlong="drop", dedupe=True)
    assert kept == [fine] and report.counts == {"render_error": 1}
    assert "must end with an assistant turn" in report.examples["render_error"][0].message


def test_summary_and_json(tmp_path):
    problems = [Problem(f"big.jsonl:{i}", "bad_json", "line is not valid JSON") for i in range(1, 8)]
    records, _ = know_sql()
    _, report = validate(records, problems=problems, length_of=words, max_length=1000, overlong="drop",
                         dedupe=True)
    assert len(report.examples["bad_json"]) == 5  # the first 5 examples of each reason, the count is complete
    text = report.summary()
    assert text.startswith("data: kept 3 of 11 records")
    assert "bad_json" in text and "big.jsonl:1: line is not valid JSON" in text and "big.jsonl:6" not in text
    saved = json.loads(json.dumps(report.to_dict()))
    assert saved["dropped"] == {"bad_json": 7, "duplicate": 1} and saved["kept"] == 3
    assert saved["examples"]["duplicate"] == [{"source": "know_sql.jsonl:5",
                                              "message": "same system, context and turns as know_sql.jsonl:4"}]


def test_bad_policy():
    with pytest.raises(DataError, match="data.overlong is 'cut'"):
        validate([], length_of=words, max_length=10, overlong="cut", dedupe=True)
