"""What every sandbox is: the `Sandbox` protocol, the `ExecutionResult` it returns, and what its engines share.

    with open_sandbox("shop.duckdb") as box:                  # sqlft.sql.engine: the engine the source needs
        result = box.execute("SELECT count(*) FROM orders")   # ExecutionResult(status="ok", ...)

The engines: DuckDB (sqlft.sql.duckdb_sandbox.DuckdbSandbox), SQLite (sqlft.sql.sqlite_sandbox.SqliteSandbox),
PostgreSQL (sqlft.sql.postgres.PostgresSandbox), and a DuckDB or SQLite file whose queries run in killable worker
processes (sqlft.sql.isolation.IsolatedSandbox). Failures are data (a status and a reason), never exceptions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol, Self


@dataclass
class ExecutionResult:
    status: str  # "ok" | "error" | "timeout" | "rejected"
    columns: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    truncated: bool = False  # more than max_rows rows: only the first max_rows are kept
    error: str = ""  # the engine's message, or why the query was rejected
    elapsed_s: float = 0.0


class Sandbox(Protocol):
    """Bounded, read-only execution of model-written SQL on one database, shared by many threads."""

    tables: set[str]  # the tables (and views) a query may read

    def execute(self, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None) -> ExecutionResult:
        """Never raises; max_rows and timeout_s default to the sandbox's own."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class Closing:
    """`with x:` closes x on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ClosesOnce(Closing):
    """close() frees the sandbox's resources once, however many threads call it.

    The subclass sets self._lock (the lock its queries take before using the connection) and self._closed = False,
    and frees its resources in _release(). The flag is set under the lock and _release runs after, outside it: a
    query that takes the lock later sees _closed, and one that held it has finished with the connection."""

    _lock: threading.Lock
    _closed: bool

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._release()

    def _release(self) -> None:
        raise NotImplementedError


def value_size(value: Any) -> int:
    """Bytes a fetched value holds, roughly, for the result byte budgets (max_result_bytes): 16 for any value,
    plus the length of a string or blob, plus the contents of a list, tuple or dict.

    Containers are sized by their contents because the engines return them: DuckDB's LIST, ARRAY, STRUCT and MAP,
    PostgreSQL's arrays and json/jsonb (lists and dicts). Counted as one value, a 10-million-element list_value
    or jsonb would pass the budget it is there to enforce. SQLite returns only str, bytes and numbers, whose size
    this gives as its own sizing did.
    """
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return len(value) + 16
    if isinstance(value, (list, tuple)):
        return 16 + sum(value_size(v) for v in value)
    if isinstance(value, dict):
        return 16 + sum(value_size(k) + value_size(v) for k, v in value.items())
    return 16
