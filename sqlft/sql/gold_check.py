"""Checking a gold query on synthesized databases: does it run, return rows, and tell right from wrong?

    check = check_gold(paths, gold_sql, "sqlite")   # GoldCheck: runs, nonempty, varies, discriminating
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import sqlglot

from sqlft.sql.dialect import to_duckdb


def _run(con: duckdb.DuckDBPyConnection, sql: str, timeout_s: float) -> list[tuple]:
    timer = threading.Timer(timeout_s, con.interrupt)  # a timer calling interrupt() is what stops DuckDB
    timer.start()
    try:
        return con.execute(sql).fetchall()
    finally:
        timer.cancel()


def _canonical(rows: list[tuple], ordered: bool) -> tuple:
    # Spider compares results as multisets unless the query orders them.
    keyed = [tuple(repr(v) for v in row) for row in rows]
    return tuple(keyed if ordered else sorted(keyed))


@dataclass
class GoldCheck:
    """How one gold query behaves on a set of synthesized instances.

    discriminating: the gold runs on every instance and its result is not the same on all of them plus an
    empty copy of the schema (same tables, no rows). False means the result does not depend on the data
    (`SELECT 1`, `... WHERE 1=0`) or the data never moved it: any prediction giving that result would pass.
    varies: the result differs between at least two of the instances themselves (stricter; the empty copy
    is a probe, not one of the test databases).
    Results compare as multisets of rows (as lists when the gold has a top-level ORDER BY).
    """

    sql: str  # the gold as executed on DuckDB
    runs: list[bool]
    nonempty: list[bool]
    errors: list[str | None]
    varies: bool
    discriminating: bool

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(self.runs) and any(self.nonempty)


def _message(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def check_gold(db_paths: list[Path], gold_sql: str, dialect: str = "sqlite", *, timeout_s: float = 10.0) -> GoldCheck:
    """Run one gold query on every instance (and on an empty copy of the schema) and report how it fares."""
    n = len(db_paths)
    # One in-memory connection attaching every instance: a connection costs ~25-40 ms, an ATTACH ~7 ms.
    con = duckdb.connect(":memory:")
    try:
        for i, path in enumerate(db_paths):
            con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS i{i} (READ_ONLY)")
        if n:
            con.execute("USE i0")
        ddl = [r[0] for r in con.execute("SELECT sql FROM duckdb_tables() WHERE database_name = 'i0'").fetchall()]
        columns = {r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = 'i0'").fetchall()}
        try:
            sql = to_duckdb(gold_sql, dialect, columns=columns)  # SQLite rewrites: sqlft/sql/dialect.py
        except sqlglot.errors.SqlglotError as e:
            return GoldCheck(gold_sql, [False] * n, [False] * n, [f"transpile: {_message(e)}"] * n, False, False)

        runs, nonempty, errors, results = [], [], [], []
        for i in range(n):
            try:
                con.execute(f"USE i{i}")
                rows = _run(con, sql, timeout_s)
            except duckdb.Error as e:
                runs.append(False)
                nonempty.append(False)
                errors.append(_message(e))
                continue
            runs.append(True)
            nonempty.append(bool(rows))
            errors.append(None)
            results.append(rows)

        try:
            ordered = bool(sqlglot.parse_one(sql, read="duckdb").args.get("order"))
        except sqlglot.errors.SqlglotError:
            ordered = False
        canon = {_canonical(r, ordered) for r in results}
        varies = len(canon) > 1
        discriminating = bool(runs) and all(runs) and varies
        if runs and all(runs) and not varies:
            try:
                con.execute("USE memory")
                for statement in ddl:
                    con.execute(statement)
                discriminating = _canonical(_run(con, sql, timeout_s), ordered) not in canon
            except duckdb.Error:
                pass  # the probe failing says nothing about the gold on the real instances
        return GoldCheck(sql, runs, nonempty, errors, varies, discriminating)
    finally:
        con.close()
