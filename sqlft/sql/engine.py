"""The one execution rule, shared by `sqlft eval` and `sqlft serve`: which engine runs SQL on a database source.

    engine_for("concert_singer.sqlite")     -> "sqlite"    SQLite files run on SQLite itself
    engine_for("shop.duckdb")               -> "duckdb"    DuckDB files on DuckDB
    engine_for("postgresql://u@host/shop")  -> "postgres"  PostgreSQL URLs on that server
    engine_for("academic"), engine_for("x.sql") -> "duckdb"  dumps and defog-data names, converted once to DuckDB

So the same SQL on the same source gives the same status and rows in eval and serve. SQL written in another
dialect than the engine's is transpiled by sqlglot first (`to_engine`).
"""

from __future__ import annotations

from pathlib import Path

import sqlglot

from sqlft.sql.database import prepare_database
from sqlft.sql.postgres import PostgresSandbox, is_postgres_url
from sqlft.sql.duckdb_sandbox import DuckdbSandbox
from sqlft.sql.dialect import to_duckdb
from sqlft.sql.sandbox import Sandbox
from sqlft.sql.sqlite_sandbox import SqliteSandbox, is_sqlite_file

ENGINES = ("sqlite", "duckdb", "postgres")  # each engine's SQL dialect has the same name in sqlglot


def engine_for(source: str | Path) -> str:
    """The engine that runs SQL on `source` (a file, a defog-data name or a PostgreSQL URL)."""
    if is_postgres_url(source):
        return "postgres"
    if is_sqlite_file(Path(str(source)).expanduser()):
        return "sqlite"
    return "duckdb"


def open_sandbox(source: str | Path, engine: str | None = None, *, timeout_s: float = 5.0,
                 max_rows: int = 10_000, max_result_bytes: int = 100_000_000, memory_limit: str = "1GB",
                 pool_size: int = 4, pool_timeout_s: float = 1.0, allow_privileged_role: bool = False) -> Sandbox:
    """A sandbox over `source` on `engine` (default: engine_for(source)). DuckDB sources that are not DuckDB
    files are converted once into the cache (sqlft.sql.database.prepare_database). memory_limit: DuckDB only;
    pool_size and pool_timeout_s: PostgreSQL only (connections, and the wait for one before PoolBusy);
    allow_privileged_role: PostgreSQL only, see sqlft.sql.postgres.PostgresSandbox."""
    engine = engine or engine_for(source)
    bounds = {"timeout_s": timeout_s, "max_rows": max_rows, "max_result_bytes": max_result_bytes}
    if engine == "postgres":
        return PostgresSandbox(str(source), pool_size=pool_size, pool_timeout_s=pool_timeout_s,
                               allow_privileged_role=allow_privileged_role, **bounds)
    if engine == "sqlite":
        return SqliteSandbox(Path(str(source)).expanduser(), **bounds)
    if engine == "duckdb":
        return DuckdbSandbox(prepare_database(source), memory_limit=memory_limit, **bounds)
    raise ValueError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")


def to_engine(sql: str, dialect: str, engine: str, columns: set[str] | None = None) -> str:
    """`sql`, written in `dialect`, as `engine` runs it: as written when the dialects agree, else transpiled.

    To DuckDB, SQLite-dialect SQL also gets sqlft.sql.dialect.to_duckdb's rewrites (columns: every column name, to tell
    a "double-quoted" string from a column). SQL sqlglot cannot read comes back unchanged: the engine then
    reports its own error.
    """
    if engine == "duckdb":
        return to_duckdb(sql, dialect, columns)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if dialect == engine:
        return sql
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None]
    except sqlglot.errors.SqlglotError:
        return sql
    if len(trees) != 1:
        return sql
    return trees[0].sql(dialect=engine)
