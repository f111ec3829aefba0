"""Hardened DuckDB execution of model-written SQL: one read-only SELECT over known tables, in a time limit.

    with Sandbox("spider.duckdb", timeout_s=5) as box:
        result = box.execute("SELECT name FROM singer")   # ExecutionResult(status="ok", ...)

Failures are data (status "error" | "timeout" | "rejected"), never exceptions. See DESIGN.md for why each
setting is there (read_only alone still lets SQL read files, ATTACH and COPY TO).
"""

from __future__ import annotations

import atexit
import json
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb


@dataclass
class ExecutionResult:
    status: str  # "ok" | "error" | "timeout" | "rejected"
    columns: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    truncated: bool = False  # more than max_rows rows: only the first max_rows are kept
    error: str = ""  # DuckDB's message, or why the query was rejected
    elapsed_s: float = 0.0


# Given at connect time: some cannot be changed on a running database.
_CONNECT_CONFIG = {
    "enable_external_access": False,  # no files, ATTACH, COPY TO, INSTALL, HTTP
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "python_enable_replacements": False,  # no scans of Python DataFrames that happen to be in scope
}

# Parts of DuckDB's own parse tree (json_serialize_sql) a FROM clause may hold; everything else, table
# functions (read_csv, glob, query_table, duckdb_settings ...) and SHOW/DESCRIBE included, is refused.
_ALLOWED_REFS = {"BASE_TABLE", "JOIN", "SUBQUERY", "EXPRESSION_LIST", "EMPTY", "PIVOT"}

# A single call of these builds a value whose size an argument sets, in one uninterruptible step outside
# memory_limit: repeat('x', 2000000000) ran 16 s past a 1 s timeout and range(200000000) 96 s. Their size
# arguments must be literals of at most MAX_SIZE_ARG, and they may not nest.
MAX_SIZE_ARG = 1000
_SIZE_ARGS = {
    "repeat": (1,), "lpad": (1,), "rpad": (1,), "list_resize": (1,), "array_resize": (1,),
    "range": (0, 1, 2), "generate_series": (0, 1, 2),
}
_FORMAT_FUNCTIONS = {"printf", "format"}  # a width in the format string: printf('%2000000000d', 1)

# One private, hardened, empty database used only to parse: json_serialize_sql gives DuckDB's own reading of
# the query, which sqlglot does not (it parses FROM '/etc/passwd' as a table, CHECKPOINT as a column).
_parser: duckdb.DuckDBPyConnection | None = None
_parser_lock = threading.Lock()


def _parse_tree(sql: str) -> dict[str, Any]:
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(":memory:", config=_CONNECT_CONFIG | {"lock_configuration": True})
        return json.loads(_parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])


@atexit.register
def _close_parser() -> None:
    with _parser_lock:
        if _parser is not None:
            _parser.close()


def _reject_reason(sql: str, known_tables: set[str]) -> tuple[str, str] | None:
    """(status, reason) for SQL that must not run: "error" for a syntax error, "rejected" otherwise."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:  # ParserException: the model wrote invalid SQL
        return "error", str(e)
    if len(statements) != 1:
        return "rejected", f"expected exactly one statement, got {len(statements)}"
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        return "rejected", f"only SELECT statements may run, got {statement.type.name}"
    tree = _parse_tree(statement.query)
    if tree.get("error"):
        return "rejected", f"cannot inspect the query: {tree.get('error_message', 'unknown error')}"
    known = {t.lower() for t in known_tables}
    for ref, ctes in _table_refs(tree["statements"], frozenset()):
        kind = ref.get("type")
        if kind not in _ALLOWED_REFS:
            what = ref.get("function", {}).get("function_name") or kind
            return "rejected", f"{what} is not allowed: only tables of this database may be read"
        if kind != "BASE_TABLE":
            continue
        table = ref.get("table_name", "").lower()
        schema = ref.get("schema_name", "").lower()
        catalog = ref.get("catalog_name", "")
        if catalog or schema not in ("", "main"):
            return "rejected", f"table {'.'.join(p for p in (catalog, schema, table) if p)} is not a table of this database"
        if table not in known and not (schema == "" and table in ctes):
            return "rejected", f"unknown table {ref.get('table_name', '')!r}: known tables are {sorted(known)[:20]}"
    reason = _size_reason(tree["statements"])
    return None if reason is None else ("rejected", reason)


def _size_reason(tree: Any) -> str | None:
    for call in _nodes(tree, lambda n: n.get("class") == "FUNCTION" and "function_name" in n):
        name = call["function_name"].lower()
        args = _arguments(call)
        if name in _SIZE_ARGS:
            for i in _SIZE_ARGS[name]:
                value = _constant_number(args[i]) if i < len(args) else 0.0
                if value is None or abs(value) > MAX_SIZE_ARG:
                    return f"{name}() needs literal size arguments of at most {MAX_SIZE_ARG}"
            if any(_nodes(args, lambda n: n.get("function_name", "").lower() in _SIZE_ARGS)):
                return f"{name}() may not be nested in another size-setting function"
        if name in _FORMAT_FUNCTIONS:
            fmt = args[0].get("literal", {}) if args else {}
            if fmt.get("kind") != "STRING" or any(int(d) > MAX_SIZE_ARG for d in re.findall(r"\d+", fmt.get("text", ""))):
                return f"{name}() needs a literal format string with widths of at most {MAX_SIZE_ARG}"
    return None


def _nodes(node: Any, match: Any) -> Iterator[dict[str, Any]]:
    """Every dict in a JSON tree for which match(dict) is true."""
    if isinstance(node, list):
        for item in node:
            yield from _nodes(item, match)
    elif isinstance(node, dict):
        if match(node):
            yield node
        for value in node.values():
            yield from _nodes(value, match)


def _arguments(call: dict[str, Any]) -> list[dict[str, Any]]:
    if "arguments" in call:  # DuckDB 2.0: [{"name": ..., "expression": ...}]
        return [a["expression"] for a in call["arguments"]]
    return list(call.get("children", []))  # earlier versions


def _constant_number(node: dict[str, Any]) -> float | None:
    if node.get("class") != "CONSTANT":
        return None
    try:
        return float(node["literal"]["text"])
    except (KeyError, TypeError, ValueError):
        return None


def _table_refs(node: Any, ctes: frozenset[str]) -> Iterator[tuple[dict[str, Any], frozenset[str]]]:
    """Every table ref in DuckDB's parse tree, with the CTE names in scope where it appears.

    Table refs are the dicts with "alias" and "sample" that are neither expressions ("class") nor query
    nodes ("modifiers"); looking at every dict, not only known keys, keeps this an allow-list.
    """
    if isinstance(node, list):
        for item in node:
            yield from _table_refs(item, ctes)
        return
    if not isinstance(node, dict):
        return
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict) and cte_map.get("map"):
        ctes = ctes | {entry["key"].lower() for entry in cte_map["map"]}
    if "alias" in node and "sample" in node and "class" not in node and "modifiers" not in node:
        yield node, ctes
    for value in node.values():
        yield from _table_refs(value, ctes)


def check_sql(sql: str, known_tables: set[str]) -> str | None:
    """Why `sql` must not run (a syntax error included), or None when it may.

    Allowed: exactly one statement, of type SELECT according to DuckDB's parser, reading only tables in
    known_tables or CTEs the query defines; no table functions, no other catalogs or schemas.
    """
    found = _reject_reason(sql, known_tables)
    return None if found is None else found[1]


class Sandbox:
    """A hardened DuckDB database shared by many threads: each execute() runs on its own cursor."""

    def __init__(
        self,
        db_path: str | Path | None,
        *,
        timeout_s: float = 5.0,
        memory_limit: str = "1GB",
        max_rows: int = 10_000,
        max_result_bytes: int = 100_000_000,
        threads: int = 1,
        temp_dir_limit: str = "0B",
        setup_sql: Iterable[str] = (),
    ) -> None:
        """db_path None opens an empty in-memory database; setup_sql (CREATE/INSERT ...) then builds it
        before the configuration is locked (use Sandbox.from_sql). A file database is opened read-only."""
        self.timeout_s = timeout_s
        self.max_rows = max_rows
        self.max_result_bytes = max_result_bytes
        if db_path is None:
            # An in-memory database cannot be opened read_only; the SELECT-only check keeps it unchanged.
            self._con = duckdb.connect(":memory:", config=dict(_CONNECT_CONFIG))
            for statement in setup_sql:
                self._con.execute(statement)
        else:
            if not Path(db_path).is_file():
                raise FileNotFoundError(f"no DuckDB database at {db_path}")
            self._con = duckdb.connect(str(db_path), read_only=True, config=dict(_CONNECT_CONFIG))
        # max_temp_directory_size given to connect() is shown but not enforced: SET it (DESIGN.md).
        self._con.execute(f"SET max_temp_directory_size = '{_size(temp_dir_limit)}'")
        self._con.execute(f"SET memory_limit = '{_size(memory_limit)}'")
        self._con.execute(f"SET threads = {int(threads)}")
        self._con.execute("SET lock_configuration = true")
        self.tables: set[str] = {
            name
            for (name,) in self._con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE NOT internal AND NOT temporary "
                "UNION SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary"
            ).fetchall()
        }
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_sql(cls, setup_sql: Iterable[str] | str, **kwargs: Any) -> Sandbox:
        """An in-memory sandbox built from CREATE/INSERT statements (test fixtures, demo data)."""
        if isinstance(setup_sql, str):
            setup_sql = [s.query for s in duckdb.extract_statements(setup_sql)]
        return cls(None, setup_sql=setup_sql, **kwargs)

    def execute(self, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None) -> ExecutionResult:
        max_rows = self.max_rows if max_rows is None else max_rows
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        start = time.perf_counter()
        rejected = _reject_reason(sql, self.tables)
        if rejected is not None:
            status, reason = rejected
            return ExecutionResult(status, error=reason, elapsed_s=time.perf_counter() - start)

        with self._lock:  # cursor() on a closed connection raises; close() takes the same lock
            if self._closed:
                return ExecutionResult("error", error="sandbox is closed", elapsed_s=time.perf_counter() - start)
            cursor = self._con.cursor()
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            cursor.interrupt()

        # interrupt() from another thread is what stops a running DuckDB query (DESIGN.md): asyncio and
        # signal-based timeouts cannot preempt the C++ call.
        timer = threading.Timer(timeout_s, stop)
        timer.daemon = True
        timer.start()
        try:
            cursor.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchmany(max_rows + 1)
            status, error = "ok", ""
        except duckdb.Error as e:
            columns, rows = [], []
            status, error = ("timeout", f"stopped after {timeout_s:g} s") if timed_out.is_set() else ("error", str(e))
        finally:
            timer.cancel()
            cursor.close()
        truncated = len(rows) > max_rows
        return ExecutionResult(status, columns, rows[:max_rows], truncated, error, time.perf_counter() - start)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._con.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _size(value: str) -> str:
    """A size such as '1GB' or '0B', checked because it is pasted into a SET statement."""
    text = value.strip()
    if not text or not all(c.isalnum() or c in ". " for c in text):
        raise ValueError(f"not a size: {value!r} (expected something like '512MB' or '1GB')")
    return text
