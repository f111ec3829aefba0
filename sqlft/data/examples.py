"""Eval sets: records in any sqlft format, Spider files with a database folder, Defog's CSV, predictions files.

Everything becomes an `Example`: a question, one or more gold SQL alternatives (a prediction is correct if
it matches any), and where its database comes from: a real database (a file or a defog-data name, built by
sqlft.sql.database.prepare_database; or a database on a PostgreSQL server when --db-root is its URL) or, for
schema-only records, databases synthesized from the schema.
"""

import csv
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlft.sql.database import DatabaseError, defog_database_names, prepare_database, schema_ddl
from sqlft.sql.postgres import PostgresError, database_url, is_postgres_url, read_url_schema
from sqlft.sql.sqlite_sandbox import is_sqlite_file
from sqlft.sql.sqlite_schema import SqliteSchemaError, sqlite_ddl
from sqlft.sql.split import split_statements
from sqlft.config import DatasetSpec
from sqlft.data.errors import DataError
from sqlft.data.formats import is_spider_file, load_records, read_spider
from sqlft.data.demo import DEMO_PREFIX, resolve_data_path
from sqlft.prompts.record import Record

DEFOG_COLUMNS = {"question", "query", "db_name"}


@dataclass
class Example:
    id: str
    question: str  # what the model is asked (Defog's instructions appended)
    gold_sqls: list[str]  # alternatives: the prediction is correct if it matches any of them
    db_id: str = ""
    db_schema: str = ""  # CREATE TABLE text the model sees; "" when predictions are given
    database: str = ""  # file, defog name or PostgreSQL URL (sqlft.sql.engine); "" -> synthesize from db_schema
    database_error: str = ""  # why no database could be found (the example is then a gold_error)
    difficulty: str = ""  # the record's own label, when it has one
    category: str = ""
    pred_sql: str | None = None  # given by a predictions file; None: the model writes it
    source: str = ""  # file:line, for messages


@dataclass
class EvalSet:
    examples: list[Example]
    problems: list[str]  # rows that could not become examples, one message each
    path: str  # the file read
    sha256: str
    dialect: str  # the dialect the gold SQL is written in, as far as the data tells (--dialect overrides)
    kind: str  # "records", "spider", "defog" or "predictions"
    meta: dict = field(default_factory=dict)


def file_sha256(path: str | Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def load_eval_set(data: str, *, fmt: str = "auto", db_root: str | None = None, limit: int = 0) -> EvalSet:
    """The examples of an eval set file (or demo:eval); `limit` keeps the first N."""
    path = resolve_data_path(data)
    if not Path(path).is_file():
        raise DataError(f"eval set not found: {data} (give a .jsonl/.json/.csv/.parquet file or demo:eval)")
    if path.lower().endswith(".csv") and DEFOG_COLUMNS <= set(_csv_header(path)):
        examples, problems, kind = _defog_examples(path, db_root), [], "defog"
    elif db_root and fmt in ("auto", "spider", "bird") and is_spider_file(path):
        # Spider and BIRD files usually carry no schema: take it from the database under --db-root.
        examples, problems, kind = _spider_examples(path, db_root)
    else:
        examples, problems = _record_examples(path, fmt, db_root)
        kind = "records"
    if limit > 0:
        examples = examples[:limit]
    _attach_schemas(examples)
    return EvalSet(examples, problems, path, file_sha256(path), _data_dialect(data, kind), kind)


def load_predictions(path: str, db_root: str | None = None) -> EvalSet:
    """A JSONL predictions file: `id, db_id, gold_sql, pred_sql` per line (optional question, difficulty,
    category); gold_sql may be a list of alternatives. Scored without a model."""
    if not Path(path).is_file():
        raise DataError(f"predictions file not found: {path}")
    examples, problems = [], []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        source = f"{Path(path).name}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"{source}: not valid JSON ({err.msg}); the line is skipped")
            continue
        if not isinstance(row, dict):
            problems.append(f"{source}: expected a JSON object with id, db_id, gold_sql, pred_sql")
            continue
        gold = row.get("gold_sql") or []
        db_id = str(row.get("db_id") or "")
        example = Example(
            id=str(row.get("id", number)), question=str(row.get("question") or ""),
            gold_sqls=[gold] if isinstance(gold, str) else [str(g) for g in gold], db_id=db_id,
            difficulty=str(row.get("difficulty") or row.get("hardness") or ""),
            category=str(row.get("category") or ""), pred_sql=str(row.get("pred_sql") or ""), source=source)
        _locate_database(example, db_root)
        examples.append(example)
    return EvalSet(examples, problems, path, file_sha256(path), "sqlite", "predictions")


# ------------------------------------------------------------------ Defog


def expand_alternatives(query: str) -> list[str]:
    """Defog's gold: `;` separates accepted queries, and `{a, b}` lists columns of which every non-empty
    subset is accepted (`GROUP BY {}` takes the same columns), as sql-eval's get_all_minimal_queries does."""
    queries = []
    # By the one splitter: a ';' inside a string literal separates nothing. Its braces are plain tokens to sqlglot.
    for sql in split_statements(query, "postgres"):
        sql = sql.removesuffix(";").strip()
        if not sql:
            continue
        start = sql.find("{")
        end = sql.find("}", start + 1)
        if start < 0 or end < 0:
            queries.append(sql)
            continue
        options = [o.strip() for o in sql[start + 1:end].split(",") if o.strip()]
        for size in range(1, len(options) + 1):
            for chosen in itertools.combinations(options, size):
                columns = ", ".join(chosen)
                right = sql[end + 1:].replace("GROUP BY {}", f"GROUP BY {columns}")
                queries.append(sql[:start] + columns + right)
    return queries


def _csv_header(path: str) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return next(csv.reader(f), [])


def _defog_examples(path: str, db_root: str | None) -> list[Example]:
    """questions_gen_*.csv: question, query, db_name, query_category, instructions. The databases are the
    dumps in ../databases/<db>.sql beside the questions folder, in --db-root, or defog-data's own."""
    dumps = [Path(path).resolve().parent.parent / "databases"] + ([Path(db_root)] if db_root else [])
    dumps = [d for d in dumps if not is_postgres_url(str(d))]
    examples = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            question = row["question"].strip()
            if (row.get("instructions") or "").strip():
                question += "\n" + row["instructions"].strip()
            example = Example(id=str(i), question=question, gold_sqls=expand_alternatives(row["query"]),
                              db_id=row["db_name"], category=row.get("query_category") or "",
                              source=f"{Path(path).name}:{i + 2}")
            dump = next((d / f"{example.db_id}.sql" for d in dumps if (d / f"{example.db_id}.sql").is_file()), None)
            example.database = str(dump) if dump else example.db_id
            if is_postgres_url(db_root):  # the dumps loaded into a server, one database per db_name
                example.database = database_url(db_root, example.db_id)
            examples.append(example)
    return examples


# ------------------------------------------------------------------ Spider with --db-root


def _spider_examples(path: str, db_root: str) -> tuple[list[Example], list[str], str]:
    """Spider's rows (read by sqlft.data.formats, the one Spider reader) with their databases under --db-root; a row's
    id is its own `id` or its position in the file, as Spider numbers its questions."""
    records, problems = read_spider(path, tables_json=False)
    examples = []
    for position, record in records:
        example = _example(record, str(record.meta.get("id", position)))
        _locate_database(example, db_root)
        examples.append(example)
    return examples, [f"{p.source}: {p.message}" for p in problems], "spider"


# ------------------------------------------------------------------ records in any sqlft format


def _record_examples(path: str, fmt: str, db_root: str | None) -> tuple[list[Example], list[str]]:
    records, problems = load_records(DatasetSpec(path=path, format=fmt))
    messages = [f"{p.source}: {p.message}" for p in problems]
    examples = []
    for i, record in enumerate(records):
        if not record.answer.strip():
            messages.append(f"{record.source}: no gold SQL (the record has no answer); the record is skipped")
            continue
        examples.append(record_example(record, str(record.meta.get("id", i)), db_root))
    return examples, messages


def record_example(record: Record, example_id: str, db_root: str | None = None) -> Example:
    """A SQL record as an Example: its database is the record's db_path, a database for its db_id under db_root or
    among defog-data's, else synthesized from its schema. (Also how the GRPO reward finds a record's database.)"""
    example = _example(record, example_id)
    db_path = str(record.meta.get("db_path", ""))
    if db_path:
        example.database = db_path
        if not (is_postgres_url(db_path) or db_path in defog_database_names() or Path(db_path).expanduser().is_file()):
            # said before anything is generated (eval.run), and the example is a gold_error, never synthesized
            example.database_error = (f"db_path {db_path} not found (a relative db_path is taken from the data "
                                      "file's folder, else from the working directory)")
    else:
        _locate_database(example, db_root, required=False)
    return example


def _example(record: Record, example_id: str) -> Example:
    """A SQL record's question, gold, schema and labels as an Example (its database is the caller's to find)."""
    extra = record.meta
    return Example(id=example_id, question=record.question, gold_sqls=[record.answer], db_id=record.db_id,
                   db_schema=record.context, difficulty=str(extra.get("difficulty") or extra.get("hardness") or ""),
                   category=str(extra.get("category") or ""), source=record.source)


# ------------------------------------------------------------------ databases


def database_candidates(db_id: str, db_root: str) -> list[Path]:
    """Where a db_id's database may lie under --db-root: Spider's layout first, then flat files."""
    root = Path(db_root)
    return [root / db_id / f"{db_id}.sqlite", root / f"{db_id}.duckdb", root / db_id / f"{db_id}.duckdb",
            root / f"{db_id}.sqlite", root / f"{db_id}.sql"]


def _locate_database(example: Example, db_root: str | None, required: bool = True) -> None:
    """Set example.database from --db-root or a defog-data name; when `required` and none is found, say why
    in database_error (otherwise the example falls back to synthesized databases). A PostgreSQL URL as
    db_root names a server: db_id is the database on it."""
    if is_postgres_url(db_root):
        example.database = database_url(db_root, example.db_id)
        return
    if db_root:
        found = next((p for p in database_candidates(example.db_id, db_root) if p.is_file()), None)
        if found:
            example.database = str(found)
            return
    if example.db_id in defog_database_names():
        example.database = example.db_id
        return
    if required:
        looked = ", ".join(str(p) for p in database_candidates(example.db_id, db_root)[:2]) if db_root else \
            "no --db-root given"
        example.database_error = f"no database for db_id '{example.db_id}' ({looked})"


def _attach_schemas(examples: list[Example]) -> None:
    """Examples with a real database but no schema text get the database's CREATE TABLE text; a database
    that cannot be built is recorded on its examples (they become gold_error, a harness problem). Databases
    of examples that have a schema are built later, by scoring."""
    schemas: dict[str, str] = {}
    for example in examples:
        if example.db_schema or not example.database or example.database_error:
            continue
        if example.database not in schemas:
            try:
                schemas[example.database] = database_schema(example.database)
            except (DatabaseError, PostgresError, SqliteSchemaError, OSError) as err:
                schemas[example.database] = f"error: {err}"
        text = schemas[example.database]
        if text.startswith("error: "):
            example.database_error = f"database '{example.db_id}' cannot be built: {text[7:]}"
        else:
            example.db_schema = text


def database_schema(source: str) -> str:
    """The CREATE TABLE text the model sees for a database: a PostgreSQL catalog's, a SQLite file's read from SQLite
    itself (its FOREIGN KEYs included, as the Spider recipe trains), else the DuckDB copy's."""
    if is_postgres_url(source):
        return read_url_schema(source).ddl
    if is_sqlite_file(Path(source).expanduser()):
        return sqlite_ddl(source)
    return schema_ddl(prepare_database(source))


def _data_dialect(data: str, kind: str) -> str:
    """Defog's CSV is PostgreSQL; sqlft's demo sets are written for DuckDB (sqlft/data/demo/README.md);
    Spider and know_sql data (sql-create-context) are SQLite."""
    if kind == "defog":
        return "postgres"
    return "duckdb" if data.startswith(DEMO_PREFIX) else "sqlite"
