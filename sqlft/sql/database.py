"""Real databases as DuckDB files: DuckDB files as they are, SQLite files, PostgreSQL dumps, defog-data names.

`prepare_database(source)` returns a DuckDB file to open read-only, built once into `cache_dir("databases")`
(keyed by a hash of the source's bytes) and reused; `schema_ddl(db_path, tables)` gives the CREATE TABLE text a
model sees as its context. Try it: `python -m sqlft.sql.database academic` prints that database's schema.
"""

import difflib
import functools
import hashlib
import importlib.util
import os
import re
import sqlite3
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

from sqlft.core.errors import SqlftError
from sqlft.sql.sqlite_sandbox import SQLITE_MAGIC
from sqlft.core.paths import cache_dir
from sqlft.sql.schema import quote_identifier
from sqlft.sql.split import scan

# The seven databases the `defog-data` package ships as <name>/<name>.sql (PostgreSQL dumps).
DEFOG_DATABASES = ("academic", "advising", "atis", "geography", "restaurants", "scholar", "yelp")
# Part of every cache key: bump it when a conversion changes, so files built by older code are not reused.
CONVERTER_VERSION = "1"

DUCKDB_MAGIC = b"DUCK"  # at byte offset 8 of every DuckDB database file
BUILD_CONFIG = {"enable_external_access": False, "autoinstall_known_extensions": False,
                "autoload_known_extensions": False}
INSERT_CHUNK_PARAMS = 2000  # bound parameters per multi-row INSERT: ~20k rows/s, 8x faster than executemany

# pg_dump noise: session settings, ownership, privileges, comments, sequences and indexes. None of it changes
# what a read-only query returns, and much of it (OWNER TO, pg_catalog calls) cannot run on DuckDB.
_NOISE = re.compile(
    r"""^(SET\s|RESET\s|SELECT\s+pg_catalog\.|SELECT\s+setval|GRANT\s|REVOKE\s|COMMENT\s+ON\s|BEGIN|COMMIT
    |START\s+TRANSACTION|CREATE\s+EXTENSION|CREATE\s+(UNIQUE\s+)?INDEX|CREATE\s+SEQUENCE|ALTER\s+SEQUENCE
    |ALTER\s+\w+(\s+\w+)?\s+\S+\s+OWNER\s+TO|ALTER\s+TABLE\s+(ONLY\s+)?\S+\s+ALTER\s+COLUMN
    |ALTER\s+SCHEMA|CREATE\s+SCHEMA\s+(IF\s+NOT\s+EXISTS\s+)?public\b)""",
    re.IGNORECASE | re.VERBOSE,
)
_COPY = re.compile(r"^COPY\s+(\S+)\s*\(([^)]*)\)\s+FROM\s+stdin", re.IGNORECASE)
# Backslash escapes of PostgreSQL's COPY text format.
_COPY_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)")
_COPY_CHARS = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


class DatabaseError(SqlftError, ValueError):
    """A database source that cannot be found or converted; the message says what and where."""


def defog_database_names() -> list[str]:
    return list(DEFOG_DATABASES)


def prepare_database(source: str | Path) -> Path:
    """Path of a DuckDB file for `source`: a .duckdb file, a SQLite file, a PostgreSQL dump, or a defog name."""
    path, name = Path(source).expanduser(), str(source)
    if name in DEFOG_DATABASES and not path.is_file():
        return _build_cached(_defog_dump(name), name, _load_postgres_dump)
    if not path.exists():
        if os.sep in name or "." in name:
            raise DatabaseError(f"Database file not found: {name}")
        hint = difflib.get_close_matches(name, DEFOG_DATABASES, n=1)
        did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
        raise DatabaseError(f"Unknown database {name!r}: not a file and not a defog-data database "
                            f"({', '.join(DEFOG_DATABASES)}).{did_you_mean}")
    if path.is_dir():
        raise DatabaseError(f"Expected a database file, got a directory: {path}")
    with path.open("rb") as f:
        header = f.read(16)
    if header[8:12] == DUCKDB_MAGIC:
        return path.resolve()
    if header.startswith(SQLITE_MAGIC):
        return _build_cached(path, path.stem, _load_sqlite)
    if path.suffix.lower() == ".sql":
        return _build_cached(path, path.stem, _load_postgres_dump)
    raise DatabaseError(f"{path} is not a DuckDB or SQLite database (by its header) nor a PostgreSQL dump (.sql)")


def table_names(db_path: Path) -> list[str]:
    """User tables, sorted; tables outside DuckDB's default schema are named schema.table."""
    return list(_catalog(db_path))


def schema_ddl(db_path: Path, tables: Sequence[str] | None = None) -> str:
    """One `CREATE TABLE name (col TYPE, ..., PRIMARY KEY (...));` line per table.

    All tables in name order, or the given ones in the given order (duplicates dropped), so the same
    arguments always give the same text: it is the context of a training record.
    """
    catalog = _catalog(db_path)
    selected = list(catalog) if tables is None else list(dict.fromkeys(tables))
    for name in selected:
        if name not in catalog:
            hint = difflib.get_close_matches(name, catalog, n=1)
            raise DatabaseError(f"No table {name!r} in {db_path}" + (f". Did you mean {hint[0]!r}?" if hint else ""))
    return "\n".join(catalog[name] for name in selected)


def column_names(db_path: Path) -> set[str]:
    """Every column name of a DuckDB file (sqlft.sql.dialect.to_duckdb tells a "double-quoted" string from a column)."""
    with duckdb.connect(str(db_path), read_only=True) as con:
        return {name for (name,) in con.execute("SELECT DISTINCT column_name FROM duckdb_columns() "
                                                "WHERE NOT internal").fetchall()}


def _catalog(db_path: Path) -> dict[str, str]:
    """{table name: its CREATE TABLE line}, in name order; read once per version of the file."""
    path = Path(db_path)
    if not path.is_file():
        raise DatabaseError(f"Database file not found: {db_path}")
    stat = path.stat()
    # Opening a DuckDB connection costs tens of ms; serving and data building ask for schemas again and again.
    return _read_catalog(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _read_catalog(db_path: str, mtime_ns: int, size: int) -> dict[str, str]:
    with duckdb.connect(db_path, read_only=True) as con:
        reserved = {k for (k,) in con.execute(
            "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'").fetchall()}
        parts: dict[tuple[str, str], list[str]] = defaultdict(list)  # (schema, table) -> column defs, key
        for schema, table, col, dtype in con.execute(
                "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
                "WHERE (schema_name, table_name) IN (SELECT schema_name, table_name FROM duckdb_tables() "
                "WHERE database_name = current_database() AND NOT internal) "  # base tables, not views
                "ORDER BY schema_name <> 'main', schema_name, table_name, column_index").fetchall():
            parts[schema, table].append(f"{_ident(col, reserved)} {dtype}")
        for schema, table, key in con.execute(
                "SELECT schema_name, table_name, constraint_column_names FROM duckdb_constraints() "
                "WHERE database_name = current_database() AND constraint_type = 'PRIMARY KEY'").fetchall():
            parts[schema, table].append(f"PRIMARY KEY ({', '.join(_ident(c, reserved) for c in key)})")
    catalog = {}
    for (schema, table), defs in parts.items():
        name = table if schema == "main" else f"{schema}.{table}"
        qualified = ".".join(_ident(p, reserved) for p in ([table] if schema == "main" else [schema, table]))
        catalog[name] = f"CREATE TABLE {qualified} ({', '.join(defs)});"
    return catalog


def _ident(name: str, reserved: set[str]) -> str:
    # DuckDB matches unquoted names case-insensitively: quotes only where the name needs them (fewer tokens).
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name.lower() not in reserved:
        return name
    return quote_identifier(name)


# ---------------------------------------------------------------------------------------------- building


def _defog_dump(name: str) -> Path:
    # The package data lies next to defog_data/__init__.py; find it without importing the package's code.
    spec = importlib.util.find_spec("defog_data")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseError(f"Database {name!r} needs the defog-data package: pip install defog-data==0.1.1")
    dump = Path(list(spec.submodule_search_locations)[0]) / name / f"{name}.sql"
    if not dump.is_file():
        raise DatabaseError(f"defog-data has no dump for {name!r} at {dump}")
    return dump


def _build_cached(source: Path, stem: str, load: Callable[[duckdb.DuckDBPyConnection, Path], None]) -> Path:
    """Build `source` into the cache once: into a temp file, renamed into place only when complete."""
    sha = hashlib.sha256(CONVERTER_VERSION.encode() + b"\0")
    with source.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    digest = sha.hexdigest()[:16]
    target = cache_dir("databases") / f"{stem}-{digest}.duckdb"
    if target.exists():
        return target
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        # A dump is SQL from elsewhere: its statements may not read or write files or fetch extensions.
        with duckdb.connect(str(tmp), config=BUILD_CONFIG) as con:
            load(con, source)
            con.execute("CHECKPOINT")  # everything in the main file, no .wal left beside it
        os.replace(tmp, target)  # atomic: readers see no file or a whole one
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return target


def _insert_rows(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], rows: list[Sequence]) -> None:
    """Multi-row parameterised INSERTs; DuckDB casts each value to its column's type (e.g. '12' -> BIGINT)."""
    if not rows:
        return
    per_row = "(" + ", ".join("?" * len(columns)) + ")"
    chunk = max(1, INSERT_CHUNK_PARAMS // max(1, len(columns)))
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        con.execute(head + ", ".join([per_row] * len(part)), [v for row in part for v in row])


# ---------------------------------------------------------------------------------------------- SQLite


def _load_sqlite(con: duckdb.DuckDBPyConnection, source: Path) -> None:
    # DuckDB's sqlite extension would be downloaded at run time (no network here): copy rows through sqlite3.
    # immutable=1 opens the file without locks or journals, so the source is never written to (and a pending
    # -wal file beside it is not read: copy databases that are not in use).
    src = sqlite3.connect(f"{source.resolve().as_uri()}?immutable=1", uri=True)
    src.text_factory = lambda b: b.decode("utf-8", errors="replace")  # Spider has a few non-UTF-8 strings
    try:
        tables = [t for (t,) in src.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        if not tables:
            raise DatabaseError(f"SQLite file {source} has no tables")
        for table in tables:
            info = src.execute(f"PRAGMA table_info({quote_identifier(table)})").fetchall()  # cid, name, type, notnull, dflt, pk
            rows = src.execute(f"SELECT * FROM {quote_identifier(table)}").fetchall()
            names = [col[1] for col in info]
            types, rows = _sqlite_column_types([col[2] for col in info], rows)
            defs = [f"{quote_identifier(n)} {t}" for n, t in zip(names, types)]
            key = [col[1] for col in sorted(info, key=lambda c: c[5]) if col[5] > 0]
            if key and _is_key(rows, [names.index(k) for k in key]):
                defs.append(f"PRIMARY KEY ({', '.join(quote_identifier(k) for k in key)})")
            try:
                con.execute(f"CREATE TABLE {quote_identifier(table)} ({', '.join(defs)})")
                _insert_rows(con, quote_identifier(table), [quote_identifier(n) for n in names], rows)
            except duckdb.Error as e:
                raise DatabaseError(f"Copying table {table!r} from {source} failed: {e}") from e
    finally:
        src.close()


def _sqlite_column_types(declared: list[str], rows: list[tuple]) -> tuple[list[str], list[tuple]]:
    """DuckDB types from the values SQLite actually holds (its columns are dynamically typed).

    A column of ints is BIGINT, of numbers DOUBLE, of bytes BLOB, anything else or mixed VARCHAR (values
    turned into text); an empty column follows its declared type's SQLite affinity.
    """
    types, converters = [], []
    for i, decl in enumerate(declared):
        kinds = {type(row[i]) for row in rows if row[i] is not None}
        if kinds and kinds <= {int}:
            types.append("BIGINT")
        elif kinds and kinds <= {int, float}:
            types.append("DOUBLE")
        elif kinds == {bytes}:
            types.append("BLOB")
        elif kinds:
            types.append("VARCHAR")
            if kinds != {str}:
                converters.append(i)
        else:
            types.append(_affinity_type(decl))
    if converters:
        def text(v):
            return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)
        rows = [tuple(text(v) if i in converters and v is not None else v for i, v in enumerate(row))
                for row in rows]
    return types, rows


def _affinity_type(declared: str) -> str:
    # SQLite's column affinity rules (https://www.sqlite.org/datatype3.html, section 3.1), in their order.
    d = declared.upper()
    if "INT" in d:
        return "BIGINT"
    if any(s in d for s in ("CHAR", "CLOB", "TEXT")) or not d or "BLOB" in d:
        return "VARCHAR"
    return "DOUBLE"  # REAL and NUMERIC affinity


def _is_key(rows: list[tuple], idx: list[int]) -> bool:
    # SQLite accepts NULL and (for non-INTEGER keys) duplicate primary keys; DuckDB would reject those rows.
    keys = [tuple(row[i] for i in idx) for row in rows]
    return all(v is not None for k in keys for v in k) and len(set(keys)) == len(keys)



# ---------------------------------------------------------------------------------------------- PostgreSQL


def _load_postgres_dump(con: duckdb.DuckDBPyConnection, source: Path) -> None:
    """Tables, primary keys and rows of a pg_dump-style script (INSERT or COPY ... FROM stdin data)."""
    creates: dict[str, tuple[int, exp.Create]] = {}  # table -> (line, CREATE), later ALTERs' primary keys in
    schemas: list[tuple[int, str]] = []
    loads: list[tuple[int, str, list[list[str | None]] | None]] = []  # (line, statement, COPY rows)
    text = source.read_text(encoding="utf-8", errors="replace")
    for line, statement, copy_rows in _split_statements(text):
        if _NOISE.match(statement):
            continue
        if copy_rows is not None or re.match(r"INSERT\s", statement, re.IGNORECASE):
            loads.append((line, statement, copy_rows))
            continue
        tree = _parse(statement, line, source)
        if isinstance(tree, exp.Create) and tree.kind == "SCHEMA":
            schemas.append((line, tree.sql("duckdb")))
        elif isinstance(tree, exp.Create) and tree.kind == "TABLE" and isinstance(tree.this, exp.Schema):
            creates[_table_key(tree.this.this)] = (line, _clean_create(tree))
        elif isinstance(tree, exp.Alter) and _add_primary_key(tree, creates):
            pass
        elif isinstance(tree, exp.Alter) and tree.args.get("actions") and all(
                isinstance(a, exp.AddConstraint) for a in tree.args["actions"]):
            pass  # foreign keys, UNIQUE, CHECK: not needed to query a copy of data PostgreSQL already checked
        else:
            loads.append((line, statement, None))  # views, updates, ...: run in order after the tables
    if not creates:
        raise DatabaseError(f"No CREATE TABLE statements found in {source}")
    # Primary keys go in before the data (pg_dump adds them at the end); DuckDB cannot add one to a full table.
    for line, ddl in schemas + [(line, create.sql("duckdb")) for line, create in creates.values()]:
        _run(con, ddl, line, source)
    for line, statement, copy_rows in loads:
        if copy_rows is not None:
            m = _COPY.match(statement)
            table = _strip_public(sqlglot.to_table(m.group(1), dialect="postgres")).sql("duckdb")
            columns = [c.strip() for c in m.group(2).split(",")]
            try:
                _insert_rows(con, table, columns, copy_rows)
            except duckdb.Error as e:
                raise DatabaseError(f"{source}, line {line}: loading `{_short(statement)}` failed: {e}") from e
        else:
            _run_postgres(con, statement, line, source)


def _run_postgres(con: duckdb.DuckDBPyConnection, statement: str, line: int, source: Path) -> None:
    """Run a data statement as written where DuckDB accepts it, else as sqlglot transpiles it.

    DuckDB reads most PostgreSQL INSERTs as they are, and sqlglot is lossy on some of them (it writes
    INTERVAL '15 minutes' as INTERVAL '15' MIN): the statement as written comes first.
    """
    as_written = re.sub(r"^(INSERT\s+INTO\s+)public\.", r"\1", statement, flags=re.IGNORECASE)
    try:
        con.execute(as_written)
        return
    except duckdb.Error as e:
        first_error = e
    transpiled = _parse(statement, line, source).transform(_strip_public).sql("duckdb")
    try:
        con.execute(transpiled)
    except duckdb.Error as e:
        raise DatabaseError(f"{source}, line {line}: `{_short(statement)}` failed on DuckDB as written "
                            f"({first_error}) and as transpiled by sqlglot ({e})") from e


def _parse(statement: str, line: int, source: Path) -> exp.Expression:
    try:
        return sqlglot.parse_one(statement, read="postgres")
    except sqlglot.errors.ParseError as e:
        raise DatabaseError(f"{source}, line {line}: cannot parse `{_short(statement)}`: {e}") from e


def _run(con: duckdb.DuckDBPyConnection, sql: str, line: int, source: Path) -> None:
    try:
        con.execute(sql)
    except duckdb.Error as e:
        raise DatabaseError(f"{source}, line {line}: `{_short(sql)}` failed on DuckDB: {e}") from e


def _short(statement: str, limit: int = 160) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= limit else flat[:limit] + " ..."


def _strip_public(node: exp.Expression) -> exp.Expression:
    # PostgreSQL's default schema is `public`, DuckDB's `main`: unqualified names must find the tables.
    if isinstance(node, exp.Table) and node.args.get("db") and node.db.lower() == "public":
        node.set("db", None)
    return node


def _table_key(table: exp.Table) -> str:
    return _strip_public(table.copy()).sql("duckdb").lower()


def _clean_create(create: exp.Create) -> exp.Create:
    """PostgreSQL-only column details out: public., SERIAL, nextval() defaults, foreign keys."""
    create = create.transform(_strip_public)
    schema = create.this
    for item in list(schema.expressions):
        if isinstance(item, exp.ForeignKey):
            item.pop()
        elif isinstance(item, exp.ColumnDef):
            kind = item.args.get("kind")
            if kind is not None and kind.this in (exp.DataType.Type.SERIAL, exp.DataType.Type.SMALLSERIAL):
                item.set("kind", exp.DataType.build("INT"))
            elif kind is not None and kind.this == exp.DataType.Type.BIGSERIAL:
                item.set("kind", exp.DataType.build("BIGINT"))
            for constraint in list(item.args.get("constraints") or []):
                c = constraint.args.get("kind")
                if isinstance(c, exp.Reference) or (
                        isinstance(c, exp.DefaultColumnConstraint) and "nextval" in c.sql().lower()):
                    constraint.pop()
    return create


def _add_primary_key(alter: exp.Alter, creates: dict[str, tuple[int, exp.Create]]) -> bool:
    """Fold `ALTER TABLE t ADD CONSTRAINT ... PRIMARY KEY (...)` into t's CREATE; False if not such an ALTER."""
    keys = [pk for action in alter.args.get("actions") or [] for pk in action.find_all(exp.PrimaryKey)]
    if not keys or _table_key(alter.this) not in creates:
        return False
    create = creates[_table_key(alter.this)][1]
    has_key = any(isinstance(e, exp.PrimaryKey) for e in create.this.expressions) or any(
        isinstance(c.args.get("kind"), exp.PrimaryKeyColumnConstraint)
        for e in create.this.expressions if isinstance(e, exp.ColumnDef) for c in e.args.get("constraints") or [])
    if not has_key:
        create.this.append("expressions", exp.PrimaryKey(expressions=keys[0].expressions))
    return True


# pg_dump writes `COPY t (cols) FROM stdin;` and then its rows, up to a line `\\.`. Those data lines are not SQL
# (tabs, \\N, unbalanced quotes), so the tokenizer never sees them: the script is split one stretch of SQL at a
# time, each stretch ending with a COPY's ';' (or the end), and the rows after it are read as COPY's text format.
_COPY_END = re.compile(r"\bCOPY\s[^;]*?\sFROM\s+stdin\s*;", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?(?:\*/|$)", re.DOTALL)


def _split_statements(text: str) -> Iterator[tuple[int, str, list[list[str | None]] | None]]:
    """(first line, statement without its `;`, COPY rows or None) for each statement of a SQL script.

    Split by sqlft.sql.split on PostgreSQL's tokens, so a `;` inside quoted strings and names, E'' and $$ strings
    and comments ends nothing; after `COPY ... FROM stdin;` the data lines up to `\\.` are its rows; psql
    meta-commands are skipped. An unterminated quote runs to the end: the last statement.
    """
    pos, line = 0, 1
    while pos < len(text):
        stretch, found, ends_in_copy = _sql_stretch(text, pos)
        end, first_line, line = pos + len(stretch), line, line + stretch.count("\n")  # the stretch's first, last
        for n, (start_line, statement) in enumerate(found):
            rows = None
            if ends_in_copy and n == len(found) - 1:
                rows, end, line = _copy_rows(text, end, line)
            yield first_line - 1 + start_line, statement, rows
        if not ends_in_copy:
            return
        pos = end


def _sql_stretch(text: str, pos: int) -> tuple[str, list[tuple[int, str]], bool]:
    """(the SQL from `pos` up to and including the `;` of the next COPY ... FROM stdin, its statements with their
    lines in it, whether a COPY ends it). A COPY-like text inside a string or comment is not one: the stretch up to
    it must end in a COPY statement."""
    for match in _COPY_END.finditer(text, pos):
        statements = list(_stretch_statements(text[pos:match.end()]))
        if statements and _COPY.match(statements[-1][1]):
            return text[pos:match.end()], statements, True
    return text[pos:], list(_stretch_statements(text[pos:])), False


def _stretch_statements(stretch: str) -> Iterator[tuple[int, str]]:
    """(first line, text from its first token to its `;`) of each statement of a stretch that has any token; the
    text the tokenizer could not read, at the end, is one more."""
    statements, complete = scan(stretch, "postgres")
    line, offset = 1, 0  # `line` is the line of stretch[offset]: counted on, so a long dump is read once
    for statement in statements:
        tokens = _without_meta_commands(statement.tokens)
        start = tokens[0].start if tokens else statement.start
        if tokens or (not complete and statement is statements[-1] and statement.text.strip()):
            line += stretch.count("\n", offset, start)
            offset = start
            yield line, _without_comments(stretch, tokens, statement.end)


def _without_comments(stretch: str, tokens: list, end: int) -> str:
    """The statement from its first token to `end` with its comments cut out, each left as a space (between
    tokens there is only space and comments)."""
    text = stretch[tokens[0].start:end]
    if "--" not in text and "/*" not in text:
        return text.strip()
    pieces, pos = [], tokens[0].start
    for token in tokens:
        pieces += [_COMMENT.sub(" ", stretch[pos:token.start]), stretch[token.start:token.end + 1]]
        pos = token.end + 1
    pieces.append(_COMMENT.sub(" ", stretch[pos:end]))
    return "".join(pieces).strip()


def _without_meta_commands(tokens: list) -> list:
    """A statement's tokens without the psql meta-command lines before it (`\\connect db`, `\\restrict key`)."""
    while tokens and tokens[0].token_type == TokenType.BACKSLASH:
        tokens = [t for t in tokens if t.line != tokens[0].line]
    return tokens


def _copy_rows(text: str, i: int, line: int) -> tuple[list[list[str | None]], int, int]:
    """Rows of COPY's text format from just after `FROM stdin;`: tab-separated, \\N is NULL, ends at `\\.`."""
    i = text.find("\n", i) + 1 or len(text)  # data starts on the next line
    line += 1
    rows: list[list[str | None]] = []
    while i < len(text):
        end = text.find("\n", i)
        end = len(text) if end < 0 else end
        raw = text[i:end].rstrip("\r")
        i, line = end + 1, line + 1
        if raw == "\\.":
            break
        rows.append([None if f == "\\N" else _COPY_ESCAPE.sub(_unescape, f) for f in raw.split("\t")])
    return rows, i, line


def _unescape(m: re.Match) -> str:
    s = m.group(1)
    if s[0] == "x" and len(s) > 1:
        return chr(int(s[1:], 16))
    if s[0] in "01234567":
        return chr(int(s, 8))
    return _COPY_CHARS.get(s, s)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python -m sqlft.sql.database SOURCE [TABLE ...]   (SOURCE: file or defog name)")
    db_path = prepare_database(args[0])
    print(f"-- {db_path}")
    print(schema_ddl(db_path, args[1:] or None))


if __name__ == "__main__":
    main()
