"""sqlft/scoring/answer.py: the one path from a model's replies to the answer (extract -> repair -> vote), with a
fake executor in place of eval's sandboxes or serve's database."""

import pytest

from sqlft.scoring.answer import AnswerOptions, choose_answer
from sqlft.sql.sandbox import ExecutionResult

SCHEMA = "CREATE TABLE singer (singer_id INT, name TEXT, country TEXT)"
FRANCE = "SELECT name FROM singer WHERE country = 'France'"
PERU = "SELECT name FROM singer WHERE country = 'Peru'"
NOBODY = "SELECT name FROM singer WHERE country = 'Mars'"
MISSPELT = "SELECT name FROM singers WHERE country = 'France'"  # no table singers: repair names singer
ROWS = {FRANCE: [("Joe",), ("Tom",)], PERU: [("Ann",)], NOBODY: []}


class FakeExecutor:
    """Runs the SQL in ROWS on `instances` instances (anything else fails); records each call."""

    def __init__(self, instances: int = 1, untranspilable: tuple[str, ...] = ()):
        self.instances, self.untranspilable = instances, untranspilable
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, sql: str, probe: bool) -> list[ExecutionResult] | None:
        self.calls.append((sql, probe))
        if sql in self.untranspilable:
            return None
        result = ExecutionResult("ok", ["name"], ROWS[sql]) if sql in ROWS else ExecutionResult("error", error="no")
        return [result] * (1 if probe else self.instances)


def reply(sql: str) -> str:
    return f"Here is the query:\n```sql\n{sql};\n```\nIt lists the singers."


def test_the_greedy_reply_as_written_without_repair_or_vote():
    execute = FakeExecutor()
    chosen = choose_answer([reply(MISSPELT)], "sqlite", SCHEMA, execute, AnswerOptions())
    assert (chosen.index, chosen.sql, chosen.repaired_from, chosen.vote) == (0, MISSPELT, None, None)
    assert chosen.reply == reply(MISSPELT) and chosen.written == [MISSPELT] and execute.calls == []
    # nothing to run: no executor is needed at all
    assert choose_answer([reply(PERU)], "sqlite", "", None, AnswerOptions()).sql == PERU


def test_the_callers_sql_is_taken_as_written():
    chosen = choose_answer(["the model's text"], "sqlite", SCHEMA, FakeExecutor(), AnswerOptions(), written=[PERU])
    assert chosen.sql == PERU and chosen.reply == "the model's text"


def test_repair_rewrites_only_an_answer_that_does_not_run():
    execute = FakeExecutor()
    chosen = choose_answer([reply(MISSPELT)], "sqlite", SCHEMA, execute, AnswerOptions(repair=True))
    assert chosen.sql == "SELECT name FROM singer WHERE country = 'France'" and chosen.repaired_from == MISSPELT
    assert execute.calls == [(MISSPELT, True)]  # the check is a probe
    runs = choose_answer([reply(FRANCE)], "sqlite", SCHEMA, FakeExecutor(), AnswerOptions(repair=True))
    assert runs.sql == FRANCE and runs.repaired_from is None


def test_repair_needs_a_schema_and_an_answer_that_cannot_be_run_counts_as_not_running():
    execute = FakeExecutor()
    no_schema = choose_answer([reply(MISSPELT)], "sqlite", "", execute, AnswerOptions(repair=True))
    assert no_schema.sql == MISSPELT and execute.calls == []
    untranspilable = FakeExecutor(untranspilable=(MISSPELT,))
    assert choose_answer([reply(MISSPELT)], "sqlite", SCHEMA, untranspilable,
                         AnswerOptions(repair=True)).repaired_from == MISSPELT


def test_vote_picks_the_majority_result_over_repaired_answers():
    execute = FakeExecutor(instances=3)
    replies = [reply(PERU), reply(MISSPELT), reply(FRANCE), reply(MISSPELT)]
    chosen = choose_answer(replies, "sqlite", SCHEMA, execute, AnswerOptions(repair=True, vote=True))
    assert chosen.index == 1 and chosen.reply == replies[1] and chosen.sql == FRANCE
    assert chosen.repaired_from == MISSPELT and chosen.written[0] == PERU
    assert (chosen.vote.candidates, chosen.vote.ran, chosen.vote.votes, chosen.vote.changed) == (4, 4, 3, True)
    # only an answer a rule would change is checked (once, a probe); each distinct answer runs once for the vote
    assert execute.calls == [(MISSPELT, True), (PERU, False), (FRANCE, False)]


def test_a_tie_keeps_the_greedy_answer_and_empty_results_do_not_vote():
    tie = choose_answer([reply(PERU), reply(FRANCE)], "sqlite", SCHEMA, FakeExecutor(), AnswerOptions(vote=True))
    assert (tie.index, tie.sql, tie.vote.changed, tie.vote.votes) == (0, PERU, False, 1)
    empty = choose_answer([reply(NOBODY), reply(NOBODY), reply(PERU)], "sqlite", SCHEMA, FakeExecutor(),
                          AnswerOptions(vote=True))
    assert (empty.index, empty.vote.empty) == (2, 2)


def test_no_sql_and_answers_that_fail_leave_the_greedy_one():
    chosen = choose_answer(["I cannot answer that.", reply("SELECT nope FROM nowhere")], "sqlite", SCHEMA,
                           FakeExecutor(), AnswerOptions(repair=True, vote=True))
    assert (chosen.index, chosen.sql, chosen.vote.ran, chosen.vote.votes) == (0, "", 0, 0)


def test_a_result_that_fails_on_one_instance_does_not_vote():
    def execute(sql: str, probe: bool) -> list[ExecutionResult]:
        ok = ExecutionResult("ok", ["name"], ROWS[sql])
        return [ok, ExecutionResult("timeout")] if sql == FRANCE else [ok]

    chosen = choose_answer([reply(PERU), reply(FRANCE), reply(FRANCE)], "sqlite", SCHEMA, execute,
                           AnswerOptions(vote=True))
    assert (chosen.index, chosen.vote.ran) == (0, 1)


def test_float_tolerance_lets_close_results_agree():
    def execute(sql: str, probe: bool) -> list[ExecutionResult]:
        return [ExecutionResult("ok", ["x"], [(1.0 if sql == "SELECT 1.0" else 1.0001,)])]

    replies = [reply("SELECT 2"), reply("SELECT 1.0"), reply("SELECT 1.0001")]
    exact = choose_answer(replies, "sqlite", "", execute, AnswerOptions(vote=True))
    close = choose_answer(replies, "sqlite", "", execute, AnswerOptions(vote=True, float_tolerance=0.01))
    assert (exact.vote.votes, close.vote.votes) == (2, 3)


def test_an_error_the_executor_raises_is_the_callers():
    def execute(sql: str, probe: bool):
        raise RuntimeError("every connection is busy")

    with pytest.raises(RuntimeError, match="busy"):
        choose_answer([reply(PERU), reply(FRANCE)], "sqlite", SCHEMA, execute, AnswerOptions(vote=True))
