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
from collections.abc import Callable
from typing import Any

from sqlft.sql.engine import to_engine
from sqlft.sql.postgres import PoolBusy, SourceUnavailable
from sqlft.sql.sandbox import ExecutionResult
from sqlft.scoring.answer import Executor
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


def database_executor(database: Database, dialect: str | None, *, max_rows: int,
                      time_left: Callable[[], float]) -> Executor:
    """How sqlft.scoring.answer runs an answer on `database`, as /execute runs it: repair's check reads one row, the
    vote up to max_rows. Each phase gets the time left (time_left()) when it begins: repair's checks from now."""
    timeouts = {True: time_left()}  # by probe: True for repair's checks, False for the vote's queries

    def execute(sql: str, probe: bool) -> list[ExecutionResult]:
        if probe not in timeouts:
            timeouts[probe] = time_left()  # the vote's queries: what is left once repair is done
        return [run_sql(database, engine_sql(database, sql, dialect), max_rows=1 if probe else max_rows,
                        timeout_s=timeouts[probe])]
    return execute


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
