"""Checks that need no model: every problem a command can find in its settings before it loads a model (which
takes seconds to minutes) is found first, and all of them are reported at once.

`sqlft serve` and `sqlft eval` call these before loading anything:

    problems = model_problems("runs/x/merged", template=None) + database_problems({"shop": "data/shop.sqlite"})
"""

import re
from pathlib import Path

from sqlft.sql.database import DEFOG_DATABASES, DUCKDB_MAGIC
from sqlft.sql.postgres import PostgresError, check_url, is_postgres_url, redact
from sqlft.sql.sqlite_sandbox import SQLITE_MAGIC
from sqlft.config import ConfigError
from sqlft.config.embedded import EMBEDDED_MODELS, EMBEDDED_PREFIX, ModelNotFound, gguf_path
from sqlft.core.paths import cache_dir
from sqlft.config.run_folder import CONFIG, RunFolder, read_merged_meta
from sqlft.prompts.templates import check_template

HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")  # organisation/name: the only model reference that is not on this disk


def model_problems(ref: str, template: str | None = None) -> list[str]:
    """What keeps `ref` (a base model, a training run or a merged folder) from loading, as far as the disk tells;
    a hub id is left to the loader (the hub may be reachable)."""
    problems = template_problems(template)
    if not ref:
        return problems + ["no model given: name a merged folder, a training run or a base model"]
    if ref.startswith(EMBEDDED_PREFIX):
        key = ref[len(EMBEDDED_PREFIX):]
        if key not in EMBEDDED_MODELS:
            return problems + [f"unknown embedded model '{ref}'; available: "
                               + ", ".join(EMBEDDED_PREFIX + k for k in EMBEDDED_MODELS)]
        if not (cache_dir("models") / key / "config.json").is_file():  # converted once; else the GGUF is needed
            try:
                gguf_path(key)
            except ModelNotFound as err:
                problems.append(str(err))
        return problems
    path = Path(ref).expanduser()
    if not path.exists():
        if HUB_ID.fullmatch(ref):
            return problems
        return problems + [f"model not found: {ref} is not a folder here (a merged folder, a training run or a "
                           "Hugging Face model folder), nor a hub id (organisation/name)"]
    run = RunFolder(path)
    if run.is_run():
        try:
            config = run.config()
        except (ConfigError, OSError) as err:
            return problems + [f"{ref}: its config.yaml cannot be read: {err}"]
        if run.has_adapter:  # the adapter sits on its base model, which must load too
            problems += [f"{ref} (the base model of its adapter): {p}" for p in model_problems(config.model.name)]
        return problems
    if read_merged_meta(path) is not None or (path / "config.json").is_file():
        return problems
    if (path / CONFIG).is_file():
        return problems + [f"{ref} holds a config.yaml but no adapter/ or model/ folder: the run has not saved its "
                           "weights yet (still training, or stopped early); wait for it, or give its merged folder"]
    return problems + [f"{ref} is neither a training run (config.yaml + adapter/), a merged folder (sqlft.yaml), "
                       "nor a Hugging Face model folder (config.json)"]


def template_problems(template: str | None) -> list[str]:
    if not template:
        return []
    try:
        check_template(template)
    except ValueError as err:
        return [f"--template: {err}"]
    return []


def database_problems(sources: dict[str, str]) -> list[str]:
    """What keeps each registered database (name -> file, dump, defog name or PostgreSQL URL) from opening, as far
    as can be told without reading it: a missing or foreign file, an unknown name, a URL libpq cannot read or one
    that holds a password. Whether a server answers is left to the connection (it may be down for a while)."""
    problems = []
    for name, source in sources.items():
        problem = source_problem(source)
        if problem:
            problems.append(f"database '{name}': {problem}")
    return problems


def source_problem(source: str) -> str | None:
    if is_postgres_url(source):
        try:
            check_url(source)
        except PostgresError as err:
            return redact(str(err))
        return None
    path = Path(source).expanduser()
    if not path.exists():
        if source in DEFOG_DATABASES:
            return None
        if "/" in source or "." in source:
            return f"file not found: {source}"
        return (f"unknown database '{source}': not a file, not a PostgreSQL URL, and not a defog-data database "
                f"({', '.join(DEFOG_DATABASES)})")
    if path.is_dir():
        return f"{source} is a folder; give the database file inside it"
    try:
        with path.open("rb") as f:
            header = f.read(16)
    except OSError as err:
        return f"cannot read {source}: {err.strerror}"
    if header.startswith(SQLITE_MAGIC) or header[8:12] == DUCKDB_MAGIC or path.suffix.lower() == ".sql":
        return None
    return f"{source} is not a SQLite or DuckDB database (by its header) nor a PostgreSQL dump (.sql)"


def db_root_problem(db_root: str | None) -> str | None:
    """`sqlft eval --db-root`: a folder of databases or a PostgreSQL server URL."""
    if not db_root:
        return None
    if is_postgres_url(db_root):
        try:
            check_url(db_root)
        except PostgresError as err:
            return f"--db-root: {redact(str(err))}"
        return None
    if not Path(db_root).expanduser().is_dir():
        return f"--db-root: {db_root} is not a folder (give the folder of <db_id>/<db_id>.sqlite files, or a " \
               "PostgreSQL URL postgresql://USER@HOST:PORT/)"
    return None
