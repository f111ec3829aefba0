"""The schema text of a SQLite file, read from SQLite itself: one CREATE TABLE line per table with the declared
column types, the primary key and the FOREIGN KEYs, the layout the Spider recipe trains on (tables.json's DDL).

A DuckDB copy of the file (sqlft.sql.database.prepare_database) keeps columns and primary keys but drops foreign keys,
and building it reads every row: serve, eval and the BIRD reader take a SQLite file's schema from here instead.

    python -m sqlft.sql.sqlite_schema concert_singer.sqlite
"""

import re
import sqlite3
import sys
from pathlib import Path

from sqlft.core.errors import SqlftError
from sqlft.sql.sqlite_sandbox import is_sqlite_file

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SqliteSchemaError(SqlftError, ValueError):
    """A file that is not a readable SQLite database."""


def quote(name: str) -> str:
    """A name in double quotes, as SQLite reads it whatever it holds."""
    return '"' + name.replace('"', '""') + '"'


def _bare(con: sqlite3.Connection, name: str) -> bool:
    """Whether SQLite's own parser reads `name` unquoted as that column name (keywords such as `order` it does
    not): fewer tokens in the prompt, and the text the Spider DDL would have."""
    if not _PLAIN.fullmatch(name):
        return False
    try:
        con.execute(f"SELECT {name} FROM (SELECT 1 AS {quote(name)})").fetchall()
        return True
    except sqlite3.Error:
        return False


def sqlite_ddl(path: str | Path) -> str:
    """`CREATE TABLE t (col TYPE, ..., PRIMARY KEY (a), FOREIGN KEY (b) REFERENCES u(c));` per table, tables in
    the file's order of creation. Read-only (immutable): the file is never written, not even a journal."""
    path = Path(path).expanduser()
    if not is_sqlite_file(path):
        raise SqliteSchemaError(f"{path} is not a SQLite database file")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as err:
        raise SqliteSchemaError(f"cannot open {path}: {err}") from None
    try:
        tables = [name for (name,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
        ident = lambda name: name if _bare(con, name) else quote(name)  # noqa: E731
        return "\n".join(_table_ddl(con, table, ident) for table in tables)
    except sqlite3.Error as err:
        raise SqliteSchemaError(f"cannot read the schema of {path}: {err}") from None
    finally:
        con.close()


def _table_ddl(con: sqlite3.Connection, table: str, ident) -> str:
    columns = con.execute(f"PRAGMA table_info({quote(table)})").fetchall()  # cid, name, type, notnull, dflt, pk
    parts = [f"{ident(name)} {declared}".rstrip() for _, name, declared, _, _, _ in columns]
    key = _primary_key(con, table)
    if key:
        parts.append(f"PRIMARY KEY ({', '.join(ident(k) for k in key)})")
    # id, seq, table, from, to, ...: one row per column pair; a composite key shares its id
    keys: dict[int, list[tuple]] = {}
    for row in con.execute(f"PRAGMA foreign_key_list({quote(table)})").fetchall():
        keys.setdefault(row[0], []).append(row)
    for _, rows in sorted(keys.items(), reverse=True):  # SQLite numbers them last declared first
        rows.sort(key=lambda r: r[1])
        target = rows[0][2]
        # `to` is NULL when the key names the target's primary key implicitly (REFERENCES t without columns)
        to = [r[4] for r in rows] if all(r[4] for r in rows) else _primary_key(con, target)
        refs = f"({', '.join(ident(c) for c in to)})" if to else ""
        parts.append(f"FOREIGN KEY ({', '.join(ident(r[3]) for r in rows)}) REFERENCES {ident(target)}{refs}")
    return f"CREATE TABLE {ident(table)} ({', '.join(parts)});"


def _primary_key(con: sqlite3.Connection, table: str) -> list[str]:
    """The primary key's columns in key order (table_info's pk is the 1-based position in the key, 0 outside)."""
    columns = con.execute(f"PRAGMA table_info({quote(table)})").fetchall()
    return [c[1] for c in sorted(columns, key=lambda c: c[5]) if c[5]]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        sys.exit("usage: python -m sqlft.sql.sqlite_schema FILE.sqlite (prints the schema text the model sees)")
    print(sqlite_ddl(argv[0]))


if __name__ == "__main__":
    main()
