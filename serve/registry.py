"""The databases a server answers questions about: name -> DuckDB file, schema text, hardened sandbox.

Sources are whatever eval.database.prepare_database accepts (DuckDB or SQLite files, PostgreSQL dumps,
defog-data names). A YAML file lists them as a mapping:

    databases:
      shop: data/shop.duckdb
      concert: data/concert_singer.sqlite
"""

from dataclasses import dataclass
from pathlib import Path

import yaml

from eval.database import prepare_database, schema_ddl, table_names
from eval.sandbox import Sandbox


@dataclass
class Database:
    name: str
    path: Path  # the DuckDB file (converted once into the cache for SQLite files and dumps)
    tables: list[str]
    ddl: str  # CREATE TABLE text, the model's context
    sandbox: Sandbox


def open_databases(sources: dict[str, str], *, timeout_s: float, max_rows: int, memory_limit: str = "1GB",
                   max_result_bytes: int = 16_000_000) -> dict[str, Database]:
    """Prepare and open every database; raises DatabaseError/FileNotFoundError naming the bad one."""
    databases = {}
    try:
        for name, source in sources.items():
            path = prepare_database(source)
            # Schema first: DuckDB refuses a second connection to a file that the sandbox holds open with
            # another configuration.
            tables, ddl = table_names(path), schema_ddl(path)
            databases[name] = Database(name, path, tables, ddl, Sandbox(
                path, timeout_s=timeout_s, max_rows=max_rows, memory_limit=memory_limit,
                max_result_bytes=max_result_bytes))
    except Exception:
        close_databases(databases)
        raise
    return databases


def close_databases(databases: dict[str, Database]) -> None:
    for database in databases.values():
        database.sandbox.close()


def read_databases_file(path: str | Path) -> dict[str, str]:
    """name -> source from a YAML file's `databases:` mapping; relative paths are relative to the file."""
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("databases") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
        raise ValueError(f"{path}: expected a mapping `databases: {{name: file or defog name}}`")
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
