"""Running SQL for the API: the one function every execution goes through, and rows as JSON.

    result = run_sql(database, "SELECT 1", max_rows=10, timeout_s=5)   # ExecutionResult, never raises

Each database's engine was chosen when it was opened, by sqlft.sql.engine.engine_for (the rule `sqlft eval`
follows); engine_sql transpiles the model's SQL to that engine's dialect with sqlft.sql.engine.to_engine, as eval
does. run_sql is called on the server's execution pool, never on the event loop.
"""

import datetime
import decimal
import math
import uuid
from typing import Any

from sqlft.sql.engine import to_engine
from sqlft.sql.postgres import PoolBusy, SourceUnavailable
from sqlft.sql.repair import repair_answer
from sqlft.sql.duckdb_sandbox import ExecutionResult
from sqlft.sql.vote import Vote, vote
from serve.errors import ApiError
from serve.registry import Database
from serve.schemas import ExecuteResponse


def engine_sql(database: Database, sql: str, dialect: str | None) -> str:
    """`sql`, written in `dialect` (None: unknown, taken as the engine's own), as the database's engine runs it."""
    if not dialect:
        return sql
    try:
        return to_engine(sql, dialect, database.engine, database.columns or None)
    except Exception:  # noqa: BLE001 - sqlglot can fail oddly on odd input: the engine then says what is wrong
        return sql


def run_sql(database: Database, sql: str, *, max_rows: int, timeout_s: float) -> ExecutionResult:
    """Run one query in the database's sandbox. Failures (the sandbox's own included) are a status; a
    PostgreSQL database whose connections are all busy is a 429."""
    try:
        return database.sandbox.execute(sql, max_rows=max_rows, timeout_s=timeout_s)
    except PoolBusy:
        raise ApiError(429, "busy", f"Every connection to database {database.name!r} is in use; retry shortly.",
                       headers={"Retry-After": "1"}) from None
    except SourceUnavailable:
        raise ApiError(503, "database_unavailable", f"Database {database.name!r} cannot be reached now; retry "
                       "shortly.", headers={"Retry-After": "5"}) from None
    except Exception as e:  # noqa: BLE001 - a sandbox bug must be an answer, not a 500
        return ExecutionResult("error", error=f"the query could not be run ({type(e).__name__})")


def vote_on(database: Database, sqls: list[str], dialect: str | None, *, max_rows: int,
            timeout_s: float) -> Vote:
    """sqlft.sql.vote over the candidates' SQL (the greedy answer first), each run on `database` as /execute runs it."""
    def run(sql: str) -> list[ExecutionResult] | None:
        result = run_sql(database, engine_sql(database, sql, dialect), max_rows=max_rows, timeout_s=timeout_s)
        return [result] if result.status == "ok" else None
    return vote(sqls, run)


def repair_on(database: Database, sqls: list[str], dialect: str | None, *, timeout_s: float) -> list[str]:
    """Each answer as sqlft.scoring.execution.answer_sql gives it: rewritten to the schema's names (sqlft.sql.repair) when it does
    not run on `database`, else as written."""
    def runs(sql: str) -> bool:
        return run_sql(database, engine_sql(database, sql, dialect), max_rows=1, timeout_s=timeout_s).status == "ok"

    # samples often repeat one another: each distinct answer is checked and repaired once
    answers = {sql: repair_answer(sql, database.ddl, dialect or database.engine, runs) for sql in dict.fromkeys(sqls)}
    return [answers[sql] for sql in sqls]


def execute_response(result: ExecutionResult, sql: str = "", executed_sql: str = "") -> ExecuteResponse:
    """The answer for `result`; executed_sql is shown when it differs from `sql` (transpiled)."""
    return ExecuteResponse(status=result.status, columns=result.columns,
                           rows=[[json_value(v) for v in row] for row in result.rows],
                           truncated=result.truncated, error=result.error, elapsed_s=round(result.elapsed_s, 4),
                           executed_sql=executed_sql if executed_sql and executed_sql != sql else None)


def json_value(value: Any) -> Any:
    """A DuckDB value as JSON: numbers stay numbers; dates, decimals, UUIDs, bytes become text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN or Infinity
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, (datetime.date, datetime.time, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)
