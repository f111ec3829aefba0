"""The databases a server answers questions about: name -> engine, schema text, hardened sandbox.

Sources are files (DuckDB, SQLite), PostgreSQL dumps, defog-data names or PostgreSQL URLs. Where each runs is
sqlft.sql.engine.engine_for's rule, the one `sqlft eval` follows: SQLite files on SQLite, PostgreSQL URLs on the
server, the rest on DuckDB. A YAML file lists them as a mapping:

    databases:
      shop: data/shop.duckdb
      concert: data/concert_singer.sqlite
      live: postgresql://reader@db.example:5432/shop     # password: PGPASSWORD, ~/.pgpass or a service file
"""

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sqlft.sql.database import column_names, prepare_database, schema_ddl, table_names
from sqlft.sql.engine import engine_for, open_sandbox
from sqlft.sql.postgres import PostgresSandbox, redact
from sqlft.sql.sandbox import Sandbox
from sqlft.sql.sqlite_schema import sqlite_ddl


class Databases(dict):
    """name -> Database, and the registered sources that cannot be reached now (name -> why, for the log):
    those answer 503 with a retry hint while the server retries them in the background."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unavailable: dict[str, str] = {}


@dataclass
class Database:
    name: str
    engine: str  # sqlft.sql.engine.ENGINES: where its SQL runs
    tables: list[str]
    ddl: str  # CREATE TABLE text, the model's context
    sandbox: Sandbox
    source: str = ""  # as given, passwords masked
    columns: set[str] = field(default_factory=set)  # DuckDB: every column name (for SQLite-dialect rewrites)


def open_database(name: str, source: str, *, timeout_s: float, max_rows: int, memory_limit: str = "1GB",
                  max_result_bytes: int = 16_000_000, pool_size: int = 4, pool_wait_s: float = 1.0,
                  allow_privileged_role: bool = False) -> Database:
    engine = engine_for(source)
    bounds = {"timeout_s": timeout_s, "max_rows": max_rows, "max_result_bytes": max_result_bytes}
    if engine == "postgres":
        box = open_sandbox(source, engine, pool_size=pool_size, pool_timeout_s=pool_wait_s,
                           allow_privileged_role=allow_privileged_role, **bounds)
        return Database(name, engine, box.table_list, box.ddl, box, redact(source))
    # The schema text of files and dumps comes from their DuckDB copy, for SQLite files too: the same text as
    # before, and as the demo data's contexts. Schema first: DuckDB refuses a second connection to a file that
    # the sandbox holds open with another configuration.
    path = prepare_database(source)
    tables, ddl = table_names(path), schema_ddl(path)
    if engine == "sqlite":  # from SQLite itself: the DuckDB copy drops FOREIGN KEYs, which the model trained with
        ddl = sqlite_ddl(source)
    columns = column_names(path) if engine == "duckdb" else set()
    box = open_sandbox(source if engine == "sqlite" else path, engine, memory_limit=memory_limit, **bounds)
    return Database(name, engine, tables, ddl, box, source, columns)


def open_databases(sources: dict[str, str], **limits) -> dict[str, Database]:
    """Prepare and open every database (limits: open_database's keywords); raises DatabaseError,
    PostgresError or FileNotFoundError naming the bad one."""
    databases = {}
    try:
        for name, source in sources.items():
            databases[name] = open_database(name, source, **limits)
    except Exception:
        close_databases(databases)
        raise
    return databases


def reload_schema(database: Database) -> Database:
    """Read a PostgreSQL database's schema from its catalog again; ValueError for files (read at start)."""
    if not isinstance(database.sandbox, PostgresSandbox):
        raise ValueError(f"{database.name} is a {database.engine} file: its schema is read when the server starts; "
                         "restart the server to read it again (reload is for PostgreSQL databases)")
    schema = database.sandbox.reload_schema()
    database.tables, database.ddl = schema.tables, schema.ddl
    return database


def close_databases(databases: dict[str, Database]) -> None:
    for database in databases.values():
        database.sandbox.close()


def read_databases_file(path: str | Path) -> dict[str, str]:
    """name -> source from a YAML file's `databases:` mapping; relative paths are relative to the file."""
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("databases") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
        raise ValueError(f"{path}: expected a mapping `databases: {{name: file, defog name or PostgreSQL URL}}`")
    sources = {}
    for name, source in entries.items():
        candidate = path.parent / source
        sources[str(name)] = str(candidate) if not Path(source).is_absolute() and candidate.exists() else source
    return sources


def parse_database_flag(flag: str) -> tuple[str, str]:
    """'NAME=SOURCE' -> (name, source); a bare defog name or file is named after itself (its stem)."""
    if "=" in flag:
        name, source = flag.split("=", 1)
        return name.strip(), source.strip()
    return Path(flag).stem, flag
