"""Report numbers from hand-made result rows: accuracy without gold errors, breakdowns, files, comparisons."""

import json

from eval.report import compare_runs, summarize, summary_line, write_report


def row(id: str, status: str, *, hardness: str = "easy", difficulty: str = "", category: str = "", db_id: str = "db",
        exact: bool = False, valid: bool = True, discriminating: bool | None = None) -> dict:
    return {"id": id, "db_id": db_id, "question": f"question {id}", "gold_sql": "SELECT 1", "pred_sql": "SELECT 1",
            "raw": "", "status": status, "reason": "" if status == "match" else f"why {id}", "hardness": hardness,
            "difficulty": difficulty, "category": category, "exact_match": exact, "valid_sql": valid,
            "discriminating": discriminating}


ROWS = [
    row("a", "match", exact=True, category="join", db_id="one"),
    row("b", "match", hardness="hard", difficulty="medium", category="join", db_id="two"),
    row("c", "mismatch", hardness="hard", difficulty="hard", discriminating=False, db_id="two"),
    row("d", "pred_parse_error", valid=False, hardness="medium"),
    row("e", "gold_error", hardness="extra", db_id="two"),
]
SETTINGS = {"mode": "spider", "model": None, "data": "x.jsonl", "data_sha256": "ab" * 32, "dialect": "sqlite"}


def test_summary_numbers():
    s = summarize(ROWS, SETTINGS)
    assert (s["examples"], s["scored"]) == (5, 4)
    assert s["execution_accuracy"] == 0.5 and s["exact_match"] == 0.25 and s["valid_sql"] == 0.75
    assert s["counts"]["gold_error"] == 1 and s["counts"]["pred_timeout"] == 0
    # Hardness levels come in Spider's order; the gold_error row is not in any breakdown.
    assert list(s["by_hardness"]) == ["easy", "medium", "hard"]
    assert s["by_hardness"]["hard"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    # The record's own label wins in by_difficulty; b's label differs from its computed hardness.
    assert s["by_difficulty"]["medium"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert s["difficulty_differs_from_hardness"] == 1
    assert s["by_category"] == {"join": {"n": 2, "correct": 2, "accuracy": 1.0}}
    assert s["by_database"]["two"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert s["non_discriminating_gold"] == ["c"]
    assert s["gold_errors"] == [{"id": "e", "db_id": "two", "reason": "why e"}]
    assert s["versions"]["duckdb"] and s["versions"]["sqlglot"] and "torch" not in s["versions"]


def test_no_scored_examples_gives_zero_not_an_error():
    s = summarize([row("e", "gold_error")], SETTINGS)
    assert s["execution_accuracy"] == 0.0 and s["scored"] == 0


def test_written_files(tmp_path):
    generation = {"examples": 4, "total_s": 2.0, "per_example_s": 0.5, "new_tokens": 40, "prompt_tokens": 400,
                  "tokens_per_s": 20.0}
    s = write_report(tmp_path, ROWS, SETTINGS, generation)
    assert json.loads((tmp_path / "report.json").read_text())["execution_accuracy"] == 0.5
    md = (tmp_path / "report.md").read_text()
    for part in ("**50.0%** (2/4)", "## Accuracy by Spider hardness", "records' own difficulty", "## Gold errors",
                 "`e` (two): why e", "20.0 new tokens/s", "non-discriminating"):
        assert part in md
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert summary_line(s, tmp_path).startswith("execution accuracy 50.0% (2/4, 1 gold errors excluded)")


def test_compare_runs(tmp_path):
    other = [dict(r) for r in ROWS]
    other[2]["status"], other[0]["status"] = "match", "pred_exec_error"
    for name, rows, mode in (("a", ROWS, "spider"), ("b", other, "strict")):
        (tmp_path / name).mkdir()
        write_report(tmp_path / name, rows, {**SETTINGS, "mode": mode})
        (tmp_path / name / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = compare_runs(tmp_path / "a", tmp_path / "b")
    assert "different comparison modes (spider vs strict)" in text
    assert "c [two] mismatch -> match: question c" in text.split("wrong in A, right in B: 1")[1]
    assert "a [one] match -> pred_exec_error: question a" in text.split("right in A, wrong in B: 1")[1]
