"""Hardened SQLite execution of model-written SQL: the faithful engine for SQLite-dialect data (Spider, BIRD).

    with SqliteSandbox("concert_singer.sqlite", timeout_s=5) as box:
        result = box.execute("SELECT name FROM singer")   # ExecutionResult(status="ok", ...)

Same interface as sqlft.sql.duckdb_sandbox.DuckdbSandbox (DuckDB), so eval/run.py can pick either per database. SQLite-dialect
SQL run on SQLite itself gives what the official Spider evaluator (taoyds/test-suite-sql-eval, exec_eval.py)
sees; DuckDB after sqlft.sql.dialect.to_duckdb's rewrites does not always (benchmarks/FAITHFULNESS.md).

Failures are data (status "error" | "timeout" | "rejected"), never exceptions. The layers:
  - the file is opened through a URI with mode=ro&immutable=1: no writes, no locks, no -wal/-shm/journal files;
  - exactly one statement, and it must start with SELECT / WITH / VALUES (EXPLAIN, PRAGMA, DDL, DML refused);
  - an authorizer (asked by SQLite while it compiles the statement) allows only SELECT, reading tables and
    views of this database (not sqlite_master, not eponymous virtual tables such as pragma_table_info or
    json_each), WITH RECURSIVE, and functions other than those that touch files or load code; ATTACH, PRAGMA,
    transactions, every write and everything else is denied;
  - extension loading off; run-time limits: no attached database, a maximum value size (zeroblob(1e9),
    randomblob(1e9), x || x doublings fail with "string or blob too big"), a maximum LIKE/GLOB pattern and
    SQL length, no helper threads;
  - a few built-ins run for a time their arguments set inside one uninterruptible step (printf('%.*c',
    2000000000, 'x') took 27 s; instr/replace/trim/LIKE cost about len(X) * len(Y)): their size-setting
    arguments must be short literals or columns (see argument_problem);
  - a progress handler aborts the statement after the deadline (endless recursive CTEs, cross-join bombs), and
    fetching is bounded (max_rows + 1 rows, max_result_bytes in all).
Each thread gets its own connection, opened at its first execute() and reused by its later ones (opening one
per query cost ~15% of scoring time); each query sets a fresh authorizer and progress handler, and the statement
cache is off so that every statement is compiled, and authorized, anew.
Text is decoded as the official evaluator decodes it (invalid UTF-8 bytes dropped).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable
from itertools import chain, compress
from pathlib import Path
from typing import Any

from sqlft.sql.sandbox import ClosesOnce, ExecutionResult, value_size
from sqlft.sql.split import first_statement

SQLITE_MAGIC = b"SQLite format 3\x00"

# Functions that touch files or load code. Python's sqlite3 registers none of the file ones (they come with the
# sqlite3 shell's fileio extension) and is often built without extension loading; denied by name anyway, in
# case a build or a later version brings them.
DENIED_FUNCTIONS = frozenset({
    "load_extension", "readfile", "writefile", "edit", "lsmode", "lsdir", "fts3_tokenizer", "fts5",
    "sqlite_dbpage", "zipfile", "sqlar_compress", "sqlar_uncompress", "shell_add_schema", "shell_module_schema",
})
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
# Authorizer action codes (https://www.sqlite.org/c3ref/c_alter_table.html), for messages.
_ACTION_NAMES = {
    1: "CREATE INDEX", 2: "CREATE TABLE", 3: "CREATE TEMP INDEX", 4: "CREATE TEMP TABLE", 5: "CREATE TEMP TRIGGER",
    6: "CREATE TEMP VIEW", 7: "CREATE TRIGGER", 8: "CREATE VIEW", 9: "DELETE", 10: "DROP INDEX", 11: "DROP TABLE",
    12: "DROP TEMP INDEX", 13: "DROP TEMP TABLE", 14: "DROP TEMP TRIGGER", 15: "DROP TEMP VIEW", 16: "DROP TRIGGER",
    17: "DROP VIEW", 18: "INSERT", 19: "PRAGMA", 20: "READ", 21: "SELECT", 22: "TRANSACTION", 23: "UPDATE",
    24: "ATTACH", 25: "DETACH", 26: "ALTER TABLE", 27: "REINDEX", 28: "ANALYZE", 29: "CREATE VTABLE",
    30: "DROP VTABLE", 31: "FUNCTION", 32: "SAVEPOINT", 33: "RECURSIVE",
}
_SCHEMA_TABLES = ("sqlite_",)  # internal tables: not even their row count may be read

PROGRESS_EVERY = 1000  # VM instructions between deadline checks (~10-50 us of work)

# Built-ins whose single call (one VM step: neither the progress handler nor interrupt() reaches inside) runs
# for a time their arguments set, measured on SQLite 3.40: printf('%.*c', 2000000000, 'x') 27 s before giving
# NULL, whatever the length limit; instr/replace(X, Y) ~len(X) * len(Y) / 27 GB/s (6 s for 1 MB and 200 kB);
# trim(X, Y) ~len(X) * len(Y) * 6 ns (5 s for two 30 kB strings). Their size-setting argument must be a literal
# (checked below) or a column (data of the database, trusted); an expression could build anything.
MAX_FORMAT_WIDTH = 10_000  # printf/format: widths and precisions; '*' (taken from an argument) is refused
MAX_NEEDLE_CHARS = 1_000  # instr(X, Y) and replace(X, Y, Z): a literal Y
MAX_TRIM_CHARS = 100  # trim/ltrim/rtrim(X, Y): Y must be a literal
_CHECKED_ARGS = {  # function -> (argument index, what it may be)
    "printf": (0, "format"), "format": (0, "format"),
    "instr": (1, "needle"), "replace": (1, "needle"),
    "trim": (1, "trim"), "ltrim": (1, "trim"), "rtrim": (1, "trim"),
}
# SQLite's printf directives: flags, width, precision, length modifier, conversion.
_DIRECTIVE = re.compile(r"%([-+ #!0,]*)(\*|\d+)?(?:\.(\*|\d*))?(l{0,2})(.|$)", re.DOTALL)
# LIKE / GLOB cost ~len(string) * len(pattern) (0.9 s for 1 MB and a 200-character pattern).
MAX_PATTERN_CHARS = 200

_FIRST_WORDS = ("select", "with", "values")
_LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))", re.DOTALL)
# SQLite's lexical elements: strings, quoted names (unterminated ones run to the end), comments, words,
# whitespace, one other character.
_TOKEN = re.compile(r"""'(?:[^']|'')*'?|"(?:[^"]|"")*"?|`(?:[^`]|``)*`?|\[[^\]]*\]?|--[^\n]*|/\*.*?(?:\*/|\Z)"""
                    r"""|\s+|\w+|.""", re.DOTALL)
_QUOTES = {"'": "'", '"': '"', "`": "`", "[": "]"}
_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def official_text_factory(raw: bytes) -> str:
    """Text as the official Spider evaluator decodes it (exec_eval.get_cursor_from_path): invalid UTF-8 bytes
    are dropped, not replaced, so results compare exactly as there."""
    return raw.decode(errors="ignore")


# ------------------------------------------------------------------------------------------------ statements


def _tokens(sql: str) -> list[str]:
    return _TOKEN.findall(sql)


def _is_noise(token: str) -> bool:
    return token.isspace() or token.startswith(("--", "/*"))


def split_statement(sql: str) -> tuple[str, str]:
    """(the first statement without its ';', what follows it), by the one splitter (sqlft.sql.split) on SQLite's
    tokens: ';' inside strings, quoted names and comments does not count, and an unterminated quote or comment
    runs to the end (nothing after it is split off), as before. SQLite's own lexer (sqlite3.complete_statement),
    the authority on what SQLite will run, then confirms the end."""
    first, rest = first_statement(sql, "sqlite")
    if len(first) < len(sql) and not sqlite3.complete_statement(sql[: len(first) + 1]):
        return sql, ""  # CREATE TRIGGER ... BEGIN ...; END: not a query anyway; kept whole, then refused
    return first, rest


def _skip_noise(text: str) -> str:
    """text without leading whitespace and comments."""
    pos = 0
    while (m := _LEADING_NOISE.match(text, pos)) and m.end() > pos:
        pos = m.end()
    return text[pos:]


def statement_problem(sql: str) -> tuple[str, str] | None:
    """(status, reason) when `sql` is not exactly one SELECT-like statement, else None. Syntax errors are left
    to SQLite; the authorizer checks what the statement does."""
    first, rest = split_statement(sql)
    head = _skip_noise(first)
    if not head:
        return "error", "empty SQL"
    rest = _skip_noise(rest)
    while rest.startswith(";"):  # empty statements after the first are harmless
        rest = _skip_noise(rest[1:])
    if rest:
        return "rejected", "expected exactly one statement, got more than one"
    word = re.match(r"[A-Za-z_]+", head.lstrip("( \t\r\n"))
    if word is None or word.group(0).lower() not in _FIRST_WORDS:
        found = word.group(0).upper() if word else head[:20]
        return "rejected", f"only SELECT statements may run, got {found}"
    return None


# ------------------------------------------------------------------------------------------------ arguments


def _unquote(token: str) -> str | None:
    """The text of a string literal or quoted name token, else None."""
    close = _QUOTES.get(token[:1])
    if close is None or len(token) < 2 or not token.endswith(close):
        return None
    inner = token[1:-1]
    return inner if close == "]" else inner.replace(close * 2, close)


def _name(token: str) -> str | None:
    """The name a word or quoted-name token stands for (lower case), else None."""
    if re.fullmatch(r"[A-Za-z_]\w*", token):
        return token.lower()
    if token[:1] in ('"', "`", "["):
        text = _unquote(token)
        return text.lower() if text is not None else None
    return None


def _is_column(arg: list[str]) -> bool:
    """name, table.name or schema.table.name (words or quoted names)."""
    return (len(arg) % 2 == 1 and all(_name(t) is not None for t in arg[::2])
            and all(t == "." for t in arg[1::2]))


def format_problem(fmt: str) -> str | None:
    """Why a printf/format format string may not run: '*' widths or widths above MAX_FORMAT_WIDTH."""
    for m in _DIRECTIVE.finditer(fmt):
        _, width, precision, _, _ = m.groups()
        for part in (width, precision):
            if part == "*":
                return "printf() widths and precisions taken from arguments ('*') are not allowed"
            if part and int(part) > MAX_FORMAT_WIDTH:
                return f"printf() width or precision {int(part)} is larger than {MAX_FORMAT_WIDTH}"
    return None


def _argument_problem(function: str, arg: list[str]) -> str | None:
    index, kind = _CHECKED_ARGS[function]
    literal = _unquote(arg[0]) if len(arg) == 1 and arg[0][:1] in ("'", '"') else None
    number = len(arg) >= 1 and _NUMBER.fullmatch("".join(arg)) is not None
    if kind == "format":
        if literal is not None:
            return format_problem(literal)
        if number or _is_column(arg):
            return None  # a column's format comes from the database itself
        return f"{function}() needs a literal format string (or a column)"
    limit = MAX_NEEDLE_CHARS if kind == "needle" else MAX_TRIM_CHARS
    if literal is not None:
        return None if len(literal) <= limit else f"{function}() argument {index + 1} is longer than {limit} characters"
    if number or (kind == "needle" and _is_column(arg)):
        return None
    what = "a literal of at most" if kind == "trim" else "a column or a literal of at most"
    return f"{function}() argument {index + 1} must be {what} {limit} characters"


def argument_problem(sql: str) -> tuple[str | None, set[str]]:
    """(why the call arguments of `sql` may not run or None, the checked functions whose calls were seen).

    A lexical check of the calls of printf/format, instr/replace and trim/ltrim/rtrim (see _CHECKED_ARGS);
    the authorizer refuses calls of those functions that this scan did not see.
    """
    tokens = [t for t in _tokens(sql) if not _is_noise(t)]
    seen: set[str] = set()
    for i, token in enumerate(tokens[:-1]):
        name = _name(token)
        if name not in _CHECKED_ARGS or tokens[i + 1] != "(":
            continue
        seen.add(name)
        args: list[list[str]] = [[]]
        depth = 0
        for t in tokens[i + 2:]:
            if t == "(":
                depth += 1
            elif t == ")":
                if depth == 0:
                    break
                depth -= 1
            elif t == "," and depth == 0:
                args.append([])
                continue
            args[-1].append(t)
        index = _CHECKED_ARGS[name][0]
        if index < len(args) and args[index]:
            reason = _argument_problem(name, args[index])
            if reason is not None:
                return reason, seen
    return None, seen


# ------------------------------------------------------------------------------------------------ sandbox


class SqliteSandbox(ClosesOnce):
    """A read-only, hardened view of one SQLite file, shared by many threads (a connection per thread)."""

    def __init__(
        self,
        db_path: str | Path,
        *,
        timeout_s: float = 5.0,
        max_rows: int = 10_000,
        max_value_bytes: int = 1_000_000,
        max_result_bytes: int = 100_000_000,
        max_sql_chars: int = 100_000,
        immutable: bool = True,
        text_factory: Any = official_text_factory,
    ) -> None:
        """max_value_bytes bounds every string or blob, stored ones included (a query reading a larger stored
        value fails with "string or blob too big"); it also bounds the worst case of LIKE/instr/replace.
        immutable=True (default) opens the file without locks or journals: right for evaluation databases
        nobody writes to meanwhile; a file being written must be opened with immutable=False (mode=ro only)."""
        path = Path(db_path)
        if not path.is_file():
            raise FileNotFoundError(f"no SQLite database at {db_path}")
        with path.open("rb") as f:
            if f.read(16) != SQLITE_MAGIC:
                raise ValueError(f"{db_path} is not a SQLite database (no 'SQLite format 3' header)")
        self.path = path.resolve()
        self.timeout_s = timeout_s
        self.max_rows = max_rows
        self.max_value_bytes = max_value_bytes
        self.max_result_bytes = max_result_bytes
        self.max_sql_chars = max_sql_chars
        self.text_factory = text_factory
        self._uri = f"{self.path.as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
        con = sqlite3.connect(self._uri, uri=True, isolation_level=None)
        try:
            found = con.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
                                "AND name NOT LIKE 'sqlite_%'").fetchall()
        finally:
            con.close()
        self.tables: set[str] = {name for name, _ in found}
        self._known = {t.lower() for t in self.tables}
        self._views = {name.lower() for name, kind in found if kind == "view"}
        self._lock = threading.Lock()
        self._local = threading.local()  # .con: this thread's connection
        self._connections: list[sqlite3.Connection] = []  # every thread's, closed by close()
        self._closed = False
        self._cleanup: Path | None = None  # from_sql: the temporary folder to remove on close()

    @classmethod
    def from_sql(cls, setup_sql: Iterable[str] | str, **kwargs: Any) -> SqliteSandbox:
        """A sandbox over a temporary SQLite file built from CREATE/INSERT statements (tests, demo data);
        the file is deleted by close()."""
        folder = Path(tempfile.mkdtemp(prefix="sqlft-sqlite-"))
        path = folder / "db.sqlite"
        con = sqlite3.connect(path)
        try:
            con.executescript(setup_sql if isinstance(setup_sql, str) else ";\n".join(setup_sql))
            con.commit()
        finally:
            con.close()
        box = cls(path, **kwargs)
        box._cleanup = folder
        return box

    def _authorizer(self, denied: list[str], checked_calls: set[str]):
        known, views = self._known, self._views

        def check(action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None) -> int:
            if action not in _ALLOWED_ACTIONS:
                what = _ACTION_NAMES.get(action, str(action))
                detail = " ".join(a for a in (arg1, arg2) if a)
                denied.append(f"{what}{' ' + detail if detail else ''} is not allowed: only SELECT queries may run")
                return sqlite3.SQLITE_DENY
            if action == sqlite3.SQLITE_READ:
                table = (arg1 or "").lower()
                if arg2 == "" and db is None and not table.startswith(_SCHEMA_TABLES):
                    # No column is read (count(*), SELECT 1 FROM x): SQLite names the FROM item, which may be
                    # a CTE or a subquery. Eponymous virtual tables (json_each, pragma_*) are still refused:
                    # their first use writes sqlite_master, which is denied above.
                    return sqlite3.SQLITE_OK
                if db != "main" or table not in known:
                    denied.append(f"reading {arg1!r} is not allowed: only tables of this database may be read "
                                  f"(known tables are {sorted(self.tables)[:20]})")
                    return sqlite3.SQLITE_DENY
            elif action == sqlite3.SQLITE_FUNCTION:
                name = (arg2 or "").lower()
                if name in DENIED_FUNCTIONS:
                    denied.append(f"function {arg2}() is not allowed")
                    return sqlite3.SQLITE_DENY
                if name in _CHECKED_ARGS and name not in checked_calls and (source or "").lower() not in views:
                    denied.append(f"cannot check the arguments of {arg2}() in this query")
                    return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK

        return check

    def _thread_connection(self) -> sqlite3.Connection:
        """This thread's connection, opened and limited on first use. check_same_thread=False only so that
        close() may close it from another thread; no other thread ever runs a query on it."""
        con = getattr(self._local, "con", None)
        if con is not None:
            return con
        con = sqlite3.connect(self._uri, uri=True, isolation_level=None, check_same_thread=False,
                              cached_statements=0)  # no statement cache: every query is authorized anew
        try:
            if hasattr(con, "enable_load_extension"):  # absent when Python's sqlite3 is built without it
                con.enable_load_extension(False)
            con.text_factory = self.text_factory
            if hasattr(con, "setlimit"):  # Python >= 3.11
                con.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
                con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.max_value_bytes)
                con.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, self.max_sql_chars)
                con.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, MAX_PATTERN_CHARS)
                con.setlimit(sqlite3.SQLITE_LIMIT_WORKER_THREADS, 0)
        except BaseException:
            con.close()
            raise
        with self._lock:
            if self._closed:
                con.close()
                raise sqlite3.ProgrammingError("sandbox is closed")
            self._connections.append(con)
        self._local.con = con
        return con

    def _connect(self, denied: list[str], checked_calls: set[str], deadline: float,
                 timed_out: threading.Event) -> sqlite3.Connection:
        """This thread's connection, armed for one query: its own authorizer and deadline."""
        con = self._thread_connection()
        try:
            con.set_authorizer(self._authorizer(denied, checked_calls))

            def progress() -> int:
                if time.perf_counter() > deadline:
                    timed_out.set()
                    return 1  # non-zero: SQLite aborts the statement (OperationalError "interrupted")
                return 0

            con.set_progress_handler(progress, PROGRESS_EVERY)
        except BaseException:
            self._forget(con)
            raise
        return con

    def _forget(self, con: sqlite3.Connection) -> None:
        """Close this thread's connection (a later execute() opens a new one)."""
        self._local.con = None
        with self._lock:
            if con in self._connections:
                self._connections.remove(con)
        con.close()

    def execute(self, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None) -> ExecutionResult:
        max_rows = self.max_rows if max_rows is None else max_rows
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        start = time.perf_counter()

        def done(status: str, error: str = "", columns: list | None = None, rows: list | None = None,
                 truncated: bool = False) -> ExecutionResult:
            return ExecutionResult(status, columns or [], rows or [], truncated, error, time.perf_counter() - start)

        if len(sql) > self.max_sql_chars:
            return done("rejected", f"SQL longer than {self.max_sql_chars} characters")
        problem = statement_problem(sql)
        if problem is not None:
            return done(*problem)
        statement = split_statement(sql)[0]
        reason, checked_calls = argument_problem(statement)
        if reason is not None:
            return done("rejected", reason)
        with self._lock:
            if self._closed:
                return done("error", "sandbox is closed")

        denied: list[str] = []  # why the authorizer refused the query
        timed_out = threading.Event()
        try:
            con = self._connect(denied, checked_calls, start + timeout_s, timed_out)
        except (sqlite3.Error, OSError) as e:
            if self._closed:
                return done("error", "sandbox is closed")
            return done("error", f"cannot open {self.path}: {e}")
        cursor = None
        try:
            cursor = con.execute(statement)
            columns = [d[0] for d in cursor.description or []]
            rows: list[tuple] = []
            size = 0
            while len(rows) <= max_rows:
                chunk = cursor.fetchmany(min(1000, max_rows + 1 - len(rows)))
                if not chunk:
                    break
                rows.extend(chunk)
                size += _chunk_size(chunk)
                if size > self.max_result_bytes:
                    return done("error", f"result larger than {self.max_result_bytes} bytes")
            truncated = len(rows) > max_rows
            return done("ok", "", columns, rows[:max_rows], truncated)
        except (sqlite3.Error, MemoryError, OverflowError, ValueError) as e:
            if timed_out.is_set():
                return done("timeout", f"stopped after {timeout_s:g} s")
            if denied:
                return done("rejected", denied[0])
            if isinstance(e, MemoryError):  # SQLite's hard_heap_limit or the worker's cap (sqlft/sql/isolation.py)
                return done("rejected", "the query needs more memory than its limit")
            return done("error", str(e) or type(e).__name__)
        finally:
            self._disarm(con, cursor)

    def _disarm(self, con: sqlite3.Connection, cursor: sqlite3.Cursor | None) -> None:
        """End the query (its statement finalized) and clear its hooks; a connection that cannot be reset is
        closed rather than reused."""
        try:
            if cursor is not None:
                cursor.close()
            con.set_authorizer(None)
            con.set_progress_handler(None, PROGRESS_EVERY)
            if con.in_transaction:  # never, with SELECT only and autocommit; reuse only a clean connection
                raise sqlite3.OperationalError("left in a transaction")
        except sqlite3.Error:
            self._forget(con)

    def _release(self) -> None:
        with self._lock:  # a thread's connection is added under the lock, and never once _closed is set
            connections, self._connections = self._connections, []
        for con in connections:  # threads' connections; a query still running on one fails with "closed"
            con.close()
        if self._cleanup is not None:
            shutil.rmtree(self._cleanup, ignore_errors=True)


_TEXT = frozenset({str, bytes})
_SIZED = frozenset({str, bytes, int, float, type(None)})  # what SQLite returns (text through official_text_factory)


def _chunk_size(chunk: list[tuple]) -> int:
    """value_size summed over every cell, by type in C (a Python call per cell was ~5% of Spider scoring)."""
    cells = list(chain.from_iterable(chunk))
    if not set(map(type, cells)) <= _SIZED:
        return sum(value_size(v) for v in cells)  # another type (a str subclass, ...): one by one
    return 16 * len(cells) + sum(map(len, compress(cells, map(_TEXT.__contains__, map(type, cells)))))


def is_sqlite_file(path: str | Path) -> bool:
    """Whether `path` is a SQLite database file (by its 16-byte header)."""
    try:
        with Path(path).open("rb") as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False
