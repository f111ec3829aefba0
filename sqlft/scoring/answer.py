"""Choosing the answer from a model's replies: the SQL read out of each (sqlft.prompts.reply), repaired when it does
not run (sqlft.sql.repair), voted on by executed result (sqlft.sql.vote). The one path `sqlft eval` (and so the
reports) and serve (POST /sql, the MCP server) take; each brings its own executor, since eval runs an answer in
its scoring sandboxes (every synthesized instance) and serve on a registered database with the request's limits.

    chosen = choose_answer([greedy, *samples], "sqlite", ddl, execute, AnswerOptions(repair=True, vote=True))
    chosen.sql, chosen.repaired_from, chosen.vote      # execute(sql, probe) -> one result per instance, or None
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlft.prompts.reply import extract_sql
from sqlft.sql.sandbox import ExecutionResult
from sqlft.sql.repair import repair_answer
from sqlft.sql.vote import Vote, vote


class Executor(Protocol):
    def __call__(self, sql: str, probe: bool) -> list[ExecutionResult] | None:
        """The SQL's result on each of the question's databases (instances), None when it cannot be run there at all.
        probe: only whether it runs is asked (repair's check): the caller may run it on fewer instances or rows.
        An error it raises (serve: a busy pool, a database gone) is the caller's and passes through."""


@dataclass(frozen=True)
class AnswerOptions:
    repair: bool = False  # an answer that does not run is rewritten to the names the schema has
    vote: bool = False  # the reply whose result most replies give wins; otherwise the first (greedy) reply
    float_tolerance: float = 0.0  # vote: results equal within it agree (eval passes --float-tolerance; serve: exact)


@dataclass
class Answer:
    index: int  # the chosen reply (0: the greedy one)
    reply: str  # its text
    sql: str  # its SQL as answered: repaired when asked and it did not run
    written: list[str]  # each reply's SQL as the model wrote it (before repair)
    sqls: list[str]  # each reply's SQL as answered
    vote: Vote | None  # how the vote went; None without one

    @property
    def repaired_from(self) -> str | None:
        """The chosen SQL as written, when repair changed it."""
        written = self.written[self.index]
        return written if self.sql != written else None


def choose_answer(replies: list[str], dialect: str, schema: str, execute: Executor | None,
                  options: AnswerOptions, written: list[str] | None = None) -> Answer:
    """The answer among `replies` (the greedy one first). written: each reply's SQL when the caller already has it
    (a predictions file's pred_sql), else read out of the reply in `dialect`. With options.repair and a schema,
    each distinct SQL that does not run is repaired once; with options.vote, sqlft.sql.vote picks among them.
    `execute` is called only for those two (None: neither is asked for)."""
    if written is None:
        written = [extract_sql(reply, dialect) for reply in replies]
    sqls = written
    if options.repair and schema:
        sqls = repair_each(written, dialect, schema, execute)
    chosen = None
    if options.vote:
        chosen = vote(sqls, lambda sql: _results_if_ok(execute(sql, False)), options.float_tolerance)
    index = chosen.index if chosen else 0
    return Answer(index, replies[index], sqls[index], written, sqls, chosen)


def repair_each(written: list[str], dialect: str, schema: str, execute: Executor) -> list[str]:
    """Each SQL as sqlft.sql.repair gives it: rewritten when it does not run, else as written."""
    def runs(sql: str) -> bool:
        return _results_if_ok(execute(sql, True)) is not None

    # samples often repeat one another: each distinct answer is checked and repaired once
    repaired = {sql: repair_answer(sql, schema, dialect, runs) for sql in dict.fromkeys(written)}
    return [repaired[sql] for sql in written]


def _results_if_ok(results: list[ExecutionResult] | None) -> list[ExecutionResult] | None:
    """The results when the SQL ran on every instance, else None (what sqlft.sql.vote counts as not run)."""
    return results if results and all(r.status == "ok" for r in results) else None
