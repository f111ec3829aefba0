"""Running SQL for the API: the one function every execution goes through, and rows as JSON.

    result = run_sql(database, "SELECT 1", max_rows=10, timeout_s=5)   # ExecutionResult, never raises

run_sql is where the engine is chosen (today: the database's DuckDB sandbox, in a worker process that is
killed at the deadline or past its memory cap, eval/isolation.py); it is called on the server's execution
pool, never on the event loop.
"""

import datetime
import decimal
import math
import uuid
from typing import Any

from eval.isolation import IsolatedExecutor
from eval.sandbox import ExecutionResult
from serve.registry import Database
from serve.schemas import ExecuteResponse


def run_sql(database: Database, sql: str, *, max_rows: int, timeout_s: float,
            isolated: IsolatedExecutor) -> ExecutionResult:
    """Run one query in a sandbox on the database. Failures (the sandbox's own included) are a status."""
    try:
        return isolated.execute(database.path, sql, max_rows=max_rows, timeout_s=timeout_s)
    except Exception as e:  # noqa: BLE001 - a sandbox bug must be an answer, not a 500
        return ExecutionResult("error", error=f"the query could not be run ({type(e).__name__})")


def execute_response(result: ExecutionResult) -> ExecuteResponse:
    return ExecuteResponse(status=result.status, columns=result.columns,
                           rows=[[json_value(v) for v in row] for row in result.rows],
                           truncated=result.truncated, error=result.error, elapsed_s=round(result.elapsed_s, 4))


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
