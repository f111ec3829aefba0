"""Dataset formats: read a file (.jsonl, .json, .csv, .parquet) or a hub dataset into `Record`s.

`load_records(spec)` returns (records, problems): a bad record becomes a `Problem` (where, why, what to do),
never an exception and never silently dropped. Only a whole-dataset failure (missing file, unknown extension,
undetectable format, hub unreachable) raises `DataError`. Formats and their fields are listed in FIELDS.
"""

import csv
import difflib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sqlft.config import DatasetSpec
from sqlft.data.errors import DataError  # its own module: the registry raises it without importing formats
from sqlft.prompts.record import SQL_SYSTEM, Record, Turn, sql_record

# Required fields of each format (optional ones in brackets), for detection and error messages.
FIELDS = {
    "know_sql": "context, question, answer [db_id, db_path, system]",
    "spider": "question, query, db_id [context, or a tables.json next to the file]",
    "bird": "question, SQL, db_id [evidence, question_id, difficulty; context, or a *tables.json or the "
            "<db_id>/<db_id>.sqlite files next to the file]",
    "alpaca": "instruction, output [input, system, history]",
    # Alpaca records named in a LLaMA-Factory dataset_info.json (sqlft.data.registry sets this format): the input is
    # joined to the instruction as LLaMA-Factory does, "instruction\ninput", whatever the template.
    "llamafactory_alpaca": "instruction, output [input, system, history] (through a LLaMA-Factory registry)",
    "dolly": "instruction, response [context, category]",
    "sharegpt": "conversations: [{from, value}] [system]",
    "messages": "messages: [{role, content}] [system]",
    "guanaco": "text: '### Human: ... ### Assistant: ...'",
    "llama2_text": "text: '<s>[INST] ... [/INST] ... </s>'",
    "text": "text (pre-rendered: the template already applied; another column via columns: {text: content})",
}
FORMATS = tuple(FIELDS)
FILE_TYPES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass
class Problem:
    source: str  # "file.jsonl:17" (line) or "file.json[16]" (index)
    reason: str  # snake_case code: missing_field, empty_field, wrong_type, bad_json, bad_turns, missing_schema
    message: str  # what is wrong and what to do


class _Bad(Exception):
    """Raised inside a converter; load_records turns it into a Problem for that record."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def load_records(spec: DatasetSpec) -> tuple[list[Record], list[Problem]]:
    """Records of one dataset, plus a Problem for each row that could not become a record.

    spec.max_records caps the rows read (bad rows included), so the first N rows of the file are used.
    """
    if not spec.path:
        raise DataError("a dataset has no path; set path to a data file or a hub dataset id")
    if spec.registry:
        from sqlft.data.registry import download_hint, from_registry
        entry_spec, spec = spec, from_registry(spec)
        try:
            rows = _read_rows(spec)
        except DataError:  # a hub entry that cannot be downloaded here: say which file to fetch, and how
            hint = download_hint(entry_spec)
            if hint is None:
                raise
            raise DataError(hint) from None
    else:
        rows = _read_rows(spec)
    if spec.max_records > 0:
        rows = rows[:spec.max_records]
    if spec.columns:
        rows = [(source, _renamed(row, spec.columns)) for source, row in rows]
    if spec.format == "auto":
        fmt = detect_format([row for _, row in rows if not isinstance(row, Problem)], spec.path)
    else:
        fmt = spec.format
    if fmt not in FIELDS:
        close = difflib.get_close_matches(fmt, FORMATS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise DataError(f"{spec.path}: unknown format '{fmt}'.{hint} Choose auto or one of: {', '.join(FORMATS)}")
    if fmt == "spider":
        convert = _spider_converter(spec.path)
    elif fmt == "bird":
        convert = _bird_converter(spec.path)
    elif spec.tags and fmt in ("sharegpt", "messages"):
        convert = _tagged_converter(fmt, spec.tags)
    else:
        convert = _CONVERTERS[fmt]
    positioned, problems = _convert_rows(rows, fmt, convert)
    records = [record for _, record in positioned]
    if Path(spec.path).expanduser().is_file():
        for record in records:
            if record.meta.get("db_path"):
                record.meta["db_path"] = locate_db_path(str(record.meta["db_path"]), Path(spec.path).expanduser().parent)
    return records, problems


def locate_db_path(db_path: str, folder: Path) -> str:
    """A record's db_path as an absolute path, so that it still works from a run's validation.jsonl: a relative
    path is taken from the data file's folder (as a databases file's are), else from the working directory. One
    found neither way (or a URL) stays as written: the eval then says it is missing."""
    path = Path(db_path).expanduser()
    if "://" in db_path or path.is_absolute():
        return db_path
    for base in (folder, Path.cwd()):
        if (base / path).is_file():
            return str((base / path).resolve())
    return db_path


def read_spider(path: str, *, tables_json: bool = True) -> tuple[list[tuple[int, Record]], list[Problem]]:
    """Spider's rows (question, query, db_id), or BIRD's (question, SQL, evidence, db_id), as SQL records, each with
    its row's position in the file (Spider's question ids are positions). The one Spider reader: training data goes
    through it (load_records), and so does `sqlft eval --db-root` with tables_json=False: a record's schema is then
    its own `context` or "" (the eval reads the schema from the database itself, so the prompt shows the
    database's real DDL)."""
    rows = _read_rows(DatasetSpec(path=path))
    good = [row for _, row in rows if not isinstance(row, Problem)]
    if good and detect_format(good, path) == "bird":
        return _convert_rows(rows, "bird", _bird_converter(path, tables_json))
    return _convert_rows(rows, "spider", _spider_converter(path, tables_json))


def is_spider_file(path: str) -> bool:
    """Whether a local .json/.jsonl file holds Spider rows (question, query, db_id) or BIRD's (question, SQL,
    db_id): rows whose database is named by db_id, read by read_spider."""
    if not path.lower().endswith((".json", ".jsonl")):
        return False
    try:
        rows = [row for _, row in _read_rows(DatasetSpec(path=path)) if not isinstance(row, Problem)]
        return detect_format(rows, path) in ("spider", "bird")
    except DataError:  # unreadable: reading it as records reports why
        return False


def _convert_rows(rows: list[tuple[str, Any]], fmt: str,
                  convert: Callable[[dict], Record]) -> tuple[list[tuple[int, Record]], list[Problem]]:
    """(position in the file, record) for each row that converts, a Problem for each that does not."""
    records, problems = [], []
    for position, (source, row) in enumerate(rows):
        if isinstance(row, Problem):  # a line that was not valid JSON
            problems.append(row)
            continue
        try:
            if not isinstance(row, dict):
                raise _Bad("wrong_type", f"the record is a {type(row).__name__}, expected a JSON object with "
                                         f"the fields {FIELDS[fmt]}")
            record = convert(row)
        except _Bad as bad:
            problems.append(Problem(source, bad.reason, bad.message))
            continue
        record.source = source
        records.append((position, record))
    return records, problems


def detect_format(rows: list[Any], path: str = "") -> str:
    """The format of a dataset, from the keys of its first records (and the markers of a `text` field)."""
    first = [row for row in rows[:20] if isinstance(row, dict)]
    keys = set().union(*first) if first else set()
    texts = [row["text"] for row in first if isinstance(row.get("text"), str)]
    if "conversations" in keys:
        return "sharegpt"
    if "messages" in keys:
        return "messages"
    if {"question", "SQL", "db_id"} <= keys:
        return "bird"
    if {"question", "query", "db_id"} <= keys:
        return "spider"
    if {"context", "question", "answer"} <= keys:
        return "know_sql"
    if {"instruction", "response"} <= keys:
        return "dolly"
    if {"instruction", "output"} <= keys:
        return "alpaca"
    if any("### Human:" in t for t in texts):  # any: a malformed first row must not hide the format
        return "guanaco"
    if any("[INST]" in t for t in texts):
        return "llama2_text"
    if texts:  # a text column with no turn markers: already rendered, trained as it is
        return "text"
    if not first:
        seen = f"records of type {type(rows[0]).__name__}" if rows else "no readable records"
        raise DataError(f"{path}: cannot detect the format: found {seen}, expected JSON objects. "
                        "Check that the file holds one record per line (.jsonl) or a list of records (.json)")
    known = "\n  ".join(f"{name}: {fields}" for name, fields in FIELDS.items())
    raise DataError(f"{path}: cannot detect the format from the keys {sorted(keys)} of the first records. "
                    f"Rename the fields to one of these formats, or set format: explicitly\n  {known}")


def _renamed(row: Any, columns: dict) -> Any:
    """The row with the dataset's column names turned into ours (columns: {our field: the dataset's column})."""
    if not isinstance(row, dict):
        return row
    renamed = dict(row)
    for ours, theirs in columns.items():
        if theirs in row and ours != theirs:
            renamed[ours] = renamed.pop(theirs)
    return renamed


# ---------------------------------------------------------------- reading rows


def _read_rows(spec: DatasetSpec) -> list[tuple[str, Any]]:
    """(source, row) pairs; a JSONL line that does not parse is kept as a Problem in place of the row."""
    path = Path(spec.path).expanduser()
    if path.is_dir():
        raise DataError(f"{spec.path} is a folder; point path at a {'/'.join(FILE_TYPES)} file inside it")
    if not path.exists():
        if path.suffix.lower() in FILE_TYPES or spec.path.startswith((".", "/", "~")):
            raise DataError(f"data file not found: {spec.path} (paths are relative to the directory you run "
                            "sqlft from)")
        return _hub_rows(spec)
    suffix = path.suffix.lower()
    if suffix not in FILE_TYPES:
        raise DataError(f"{spec.path}: unknown file type '{suffix}'; use one of {', '.join(FILE_TYPES)}")
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq
            return [(f"{path.name}[{i}]", row) for i, row in enumerate(pq.read_table(path).to_pylist())]
        text = path.read_text(encoding="utf-8-sig")  # -sig: a BOM (common in CSV from Excel) is not a key
    except UnicodeDecodeError as err:
        raise DataError(f"{spec.path} is not UTF-8 text ({err}); re-save it as UTF-8") from None
    except Exception as err:  # permissions, a truncated parquet file, ...
        raise DataError(f"cannot read {spec.path}: {err}") from None
    if suffix == ".jsonl":
        return _jsonl_rows(text, path.name)
    if suffix == ".csv":
        return _csv_rows(text, path.name)
    return _json_rows(text, path.name, spec.path)


def _jsonl_rows(text: str, name: str) -> list[tuple[str, Any]]:
    rows = []
    # split("\n"), not splitlines(): JSON strings may hold a raw U+2028, which splitlines() treats as a line end.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue  # blank lines (a trailing newline, a separator) are not records
        source = f"{name}:{number}"
        try:
            rows.append((source, json.loads(line)))
        except json.JSONDecodeError as err:
            rows.append((source, Problem(source, "bad_json", f"line is not valid JSON ({err.msg} at column "
                                                             f"{err.colno}); fix or delete the line")))
    return rows


def _json_rows(text: str, name: str, path: str) -> list[tuple[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # one object per line in a .json file: read it as JSON Lines
            return _jsonl_rows(text, name)
        raise DataError(f"{path} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        what = f"an object with keys {sorted(data)[:10]}" if isinstance(data, dict) else type(data).__name__
        raise DataError(f"{path}: expected a list of records or {{\"data\": [...]}}, found {what}")
    return [(f"{name}[{i}]", row) for i, row in enumerate(data)]


def _csv_rows(text: str, name: str) -> list[tuple[str, Any]]:
    # The csv module, not pandas: every cell stays a string ("" when empty) instead of becoming NaN or a float.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows, start = [], 2  # line 1 is the header
    for row in reader:
        rows.append((f"{name}:{start}", row))
        start = reader.line_num + 1  # a quoted cell may span lines
    return rows


def _hub_rows(spec: DatasetSpec) -> list[tuple[str, Any]]:
    try:
        import datasets
        dataset = datasets.load_dataset(spec.path, split=spec.split)
    except Exception as err:  # ConnectionError offline, DatasetNotFoundError, a bad split name, ...
        raise DataError(
            f"cannot load '{spec.path}' (split '{spec.split}') from the Hugging Face hub: {err}. It is not a local "
            "file, so it was taken as a hub dataset id, and the hub is unreachable from here (or the id is "
            f"wrong). On a machine that is online, run: python -c \"import datasets; datasets.load_dataset("
            f"'{spec.path}', split='{spec.split}').to_json('data.jsonl')\", copy data.jsonl here, and set path "
            "to it") from None
    stop = spec.max_records if spec.max_records > 0 else len(dataset)
    return [(f"{spec.path}:{spec.split}[{i}]", dataset[i]) for i in range(min(stop, len(dataset)))]


# ---------------------------------------------------------------- fields


def _fields(row: dict, fmt: str, required: tuple[str, ...]) -> list[str]:
    """The required fields as non-empty strings, or _Bad naming every missing field at once."""
    missing = [key for key in required if row.get(key) is None]  # None: a null cell in parquet or a hub dataset
    if missing:
        names = ", ".join(f"'{key}'" for key in missing)
        raise _Bad("missing_field", f"missing field {names} ({fmt} records need {FIELDS[fmt]}); add it, or set the "
                                    f"dataset's format if this is not {fmt} data")
    return [_text(row, key) for key in required]


def _text(row: dict, key: str, required: bool = True) -> str:
    value = row.get(key)
    if value is None:
        if required:
            raise _Bad("missing_field", f"field '{key}' is missing or null; fill it in or remove the record")
        return ""
    if not isinstance(value, str):  # no silent str(): a number where SQL or a question belongs is a data bug
        raise _Bad("wrong_type", f"field '{key}' is {type(value).__name__} ({_preview(value)}), expected a string; "
                                 "fix the record (quote the value)")
    if required and not value.strip():
        raise _Bad("empty_field", f"field '{key}' is empty; fill it in or remove the record")
    return value


def _preview(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------- formats


KNOW_SQL_FIELDS = ("context", "question", "answer", "db_id", "system")


def _know_sql(row: dict) -> Record:
    context, question, answer = _fields(row, "know_sql", ("context", "question", "answer"))
    # Other plain fields (id, db_path, difficulty, category, ...) travel in meta: eval reports by them.
    meta = {k: v for k, v in row.items()
            if k not in KNOW_SQL_FIELDS and isinstance(v, (str, int, float, bool)) and v != ""}
    return sql_record(context, question, answer, db_id=_text(row, "db_id", required=False),
                      system=_text(row, "system", required=False) or SQL_SYSTEM, meta=meta)


SPIDER_EXTRA = ("id", "difficulty", "hardness", "category")  # plain fields a Spider-style row may carry: reports use them


def _spider_converter(path: str, tables_json: bool = True) -> Callable[[dict], Record]:
    """Spider rows need a schema: their own `context`, else Spider's tables.json beside the data file (with
    tables_json=False: their own `context` or none, for a caller that reads it from the database)."""
    folder = Path(path).expanduser().parent
    schemas = _spider_schemas(folder / "tables.json") if tables_json else {}

    def convert(row: dict) -> Record:
        question, query, db_id = _fields(row, "spider", ("question", "query", "db_id"))
        db_schema = _text(row, "context", required=False) or schemas.get(db_id, "")
        if not db_schema and tables_json:
            where = "no tables.json next to the data file" if not schemas else f"'{db_id}' is not in tables.json"
            raise _Bad("missing_schema", f"no schema for database '{db_id}': no 'context' field and {where}; put "
                                         "Spider's tables.json beside the file or add a 'context' with the "
                                         "CREATE TABLE statements")
        meta = {k: row[k] for k in SPIDER_EXTRA if isinstance(row.get(k), (str, int, float)) and row[k] != ""}
        db_file = folder / "database" / db_id / f"{db_id}.sqlite"  # Spider's layout, when the databases are there
        if db_file.is_file():
            meta["db_path"] = str(db_file)
        return sql_record(db_schema, question, query, db_id=db_id, meta=meta)
    return convert


BIRD_EXTRA = ("difficulty",)  # BIRD's simple / moderate / challenging: reports break accuracy down by it
BIRD_DATABASES = ("dev_databases", "train_databases", "databases", "database")  # folders beside BIRD's files


def bird_question(question: str, evidence: str) -> str:
    """A BIRD question with its evidence (external knowledge), as the model is asked it in training and eval alike:
    the templates have one question slot, so the evidence follows the question on a line of its own."""
    return f"{question}\nEvidence: {evidence}" if evidence.strip() else question


def _bird_converter(path: str, tables_json: bool = True) -> Callable[[dict], Record]:
    """BIRD rows (question, SQL, evidence, db_id): the schema is their own `context`, else BIRD's dev_tables.json /
    train_tables.json (or tables.json) beside the file, else read from the SQLite file in <folder>/dev_databases/
    <db_id>/<db_id>.sqlite (or train_databases/, databases/, database/), which is also the record's db_path."""
    from sqlft.sql.sqlite_schema import SqliteSchemaError, sqlite_ddl

    folder = Path(path).expanduser().parent
    tables = next((t for t in [folder / "tables.json", *sorted(folder.glob("*_tables.json"))] if t.is_file()), None)
    schemas = _spider_schemas(tables) if tables_json and tables else {}
    read: dict[Path, str] = {}

    def convert(row: dict) -> Record:
        question, sql, db_id = _fields(row, "bird", ("question", "SQL", "db_id"))
        evidence = _text(row, "evidence", required=False)
        meta = {k: row[k] for k in BIRD_EXTRA if isinstance(row.get(k), str) and row[k]}
        if isinstance(row.get("question_id"), (int, str)) and row["question_id"] != "":
            meta["id"] = str(row["question_id"])  # BIRD's own ids in results.jsonl
        db_file = next((f for d in BIRD_DATABASES if (f := folder / d / db_id / f"{db_id}.sqlite").is_file()), None)
        if db_file:
            meta["db_path"] = str(db_file)
        db_schema = _text(row, "context", required=False) or schemas.get(db_id, "")
        if not db_schema and tables_json and db_file:
            if db_file not in read:
                try:
                    read[db_file] = sqlite_ddl(db_file)
                except SqliteSchemaError as err:
                    raise _Bad("missing_schema", f"{err}; add a 'context' with the CREATE TABLE statements") from None
            db_schema = read[db_file]
        if not db_schema and tables_json:
            raise _Bad("missing_schema", f"no schema for database '{db_id}': no 'context' field, no *tables.json and "
                                         f"no {db_id}/{db_id}.sqlite under {', '.join(BIRD_DATABASES)} beside the "
                                         "file; put BIRD's dev_tables.json (or the databases) beside it")
        return sql_record(db_schema, bird_question(question, evidence), sql, db_id=db_id, meta=meta)
    return convert


def _spider_schemas(tables_json: Path) -> dict[str, str]:
    """db_id -> CREATE TABLE DDL (column types, primary and foreign keys) from Spider's tables.json."""
    if not tables_json.is_file():
        return {}
    try:
        databases = json.loads(tables_json.read_text(encoding="utf-8"))
        return {db["db_id"]: _spider_ddl(db) for db in databases}
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise DataError(f"{tables_json} does not have Spider's tables.json layout ({err!r}); fix it or give each "
                        "record a 'context' field with its CREATE TABLE statements") from None


def _spider_ddl(db: dict) -> str:
    tables = db["table_names_original"]
    columns = db["column_names_original"]  # [table index, name]; entry 0 is [-1, "*"]
    types = {"number": "NUMERIC", "boolean": "BOOLEAN"}  # Spider's text/time/others -> TEXT
    lines = []
    for t, table in enumerate(tables):
        parts = [f"{name} {types.get(db['column_types'][c], 'TEXT')}"
                 for c, (owner, name) in enumerate(columns) if owner == t]
        for key in db["primary_keys"]:
            key = key if isinstance(key, list) else [key]  # newer tables.json: composite keys as lists
            if columns[key[0]][0] == t:
                parts.append(f"PRIMARY KEY ({', '.join(columns[c][1] for c in key)})")
        for c, ref in db["foreign_keys"]:
            if columns[c][0] == t:
                parts.append(f"FOREIGN KEY ({columns[c][1]}) REFERENCES {tables[columns[ref][0]]}({columns[ref][1]})")
        lines.append(f"CREATE TABLE {table} ({', '.join(parts)});")
    return "\n".join(lines)


def _alpaca(row: dict) -> Record:
    instruction, output = _fields(row, "alpaca", ("instruction", "output"))
    context = _text(row, "input", required=False)
    history = row.get("history") or []
    if not isinstance(history, list) or not all(
            isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, str) and x.strip() for x in pair)
            for pair in history):
        raise _Bad("bad_turns", "field 'history' must be a list of [user, assistant] pairs of non-empty strings")
    turns = [Turn(role, text) for user, answer in history for role, text in (("user", user), ("assistant", answer))]
    if history and context:
        # The template joins the context to the FIRST user turn; with history, the input belongs to the last
        # instruction, so it is joined there the way LLaMA-Factory does ("instruction\ninput").
        instruction, context = f"{instruction}\n{context}", ""
    turns += [Turn("user", instruction), Turn("assistant", output)]
    return Record(turns=turns, system=_text(row, "system", required=False), context=context, task="instruct")


def _llamafactory_alpaca(row: dict) -> Record:
    # LLaMA-Factory's AlpacaDatasetConverter (src/llamafactory/data/converter.py; aligner.convert_alpaca in 0.5):
    # the user turn is "\n".join of the non-empty instruction and input, so the input follows the instruction.
    record = _alpaca({**row, "input": ""})
    context = _text(row, "input", required=False)
    if context:
        last = record.turns[-2]
        record.turns[-2] = Turn(last.role, f"{last.content}\n{context}")
    return record


def _dolly(row: dict) -> Record:
    instruction, response = _fields(row, "dolly", ("instruction", "response"))
    category = _text(row, "category", required=False)
    return Record(turns=[Turn("user", instruction), Turn("assistant", response)],
                  context=_text(row, "context", required=False), task="instruct",
                  meta={"category": category} if category else {})


# ShareGPT speakers -> our two roles. Our templates have only user and assistant turns, so a tool call is
# something the assistant writes and a tool result (observation) is something the assistant is given.
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "function_call": "assistant", "observation": "user", "tool": "user"}


def _sharegpt(row: dict) -> Record:
    return _conversation(row, "sharegpt", "conversations", "from", "value")


def _messages(row: dict) -> Record:
    return _conversation(row, "messages", "messages", "role", "content")


TAGS = ("role_tag", "content_tag", "user_tag", "assistant_tag", "system_tag", "observation_tag", "function_tag")


def _tagged_converter(fmt: str, tags: dict) -> Callable[[dict], Record]:
    """Conversations whose turn keys and speaker names are given by LLaMA-Factory-style tags
    (role_tag: from, content_tag: value, user_tag: human, assistant_tag: gpt, system_tag, observation_tag, ...)."""
    unknown = sorted(set(tags) - set(TAGS))
    if unknown:
        raise DataError(f"unknown tags {', '.join(unknown)}; use {', '.join(TAGS)}")
    key = "conversations" if fmt == "sharegpt" else "messages"
    role_key = tags.get("role_tag", "from" if fmt == "sharegpt" else "role")
    text_key = tags.get("content_tag", "value" if fmt == "sharegpt" else "content")
    roles = dict(SHAREGPT_ROLES)
    for tag, role in (("user_tag", "user"), ("assistant_tag", "assistant"), ("system_tag", "system"),
                      ("observation_tag", "user"), ("function_tag", "assistant")):
        if tag in tags:
            roles[tags[tag]] = role
    return lambda row: _conversation(row, fmt, key, role_key, text_key, roles)


def _conversation(row: dict, fmt: str, key: str, role_key: str, text_key: str,
                  roles: dict[str, str] = SHAREGPT_ROLES) -> Record:
    items = row.get(key)
    if items is None:
        raise _Bad("missing_field", f"missing field '{key}' ({fmt} records need {FIELDS[fmt]})")
    if not isinstance(items, list):
        raise _Bad("wrong_type", f"field '{key}' is {type(items).__name__} ({_preview(items)}), expected a list "
                                 f"of {{{role_key}, {text_key}}} objects")
    turns = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if not isinstance(item, dict) or role_key not in item or text_key not in item:
            raise _Bad("bad_turns", f"'{where}' is {_preview(item)}; each turn needs '{role_key}' and '{text_key}'")
        role = roles.get(item[role_key]) if isinstance(item[role_key], str) else None
        if role is None:
            raise _Bad("bad_turns", f"'{where}.{role_key}' is {_preview(item[role_key])}; use one of "
                                    f"{', '.join(roles)}")
        try:
            turns.append(Turn(role, _text(item, text_key)))
        except _Bad as bad:  # say which turn, not only which key
            raise _Bad(bad.reason, f"{where}: {bad.message}") from None
    system = _text(row, "system", required=False)
    if turns and turns[0].role == "system":
        if system:
            raise _Bad("bad_turns", f"two system prompts: field 'system' and '{key}[0]'; keep one")
        system = turns.pop(0).content
    # Tool definitions (LLaMA-Factory's `tools`, a JSON string) are kept for whoever builds the system prompt.
    tools = row.get("tools")
    return Record(turns=_checked_turns(turns), system=system, task="chat",
                  meta={"tools": tools} if isinstance(tools, str) and tools.strip() else {})


def _checked_turns(turns: list[Turn]) -> list[Turn]:
    """Turns must go user, assistant, user, ..., assistant (the last assistant turn is the training target)."""
    if not turns:
        raise _Bad("bad_turns", "the conversation has no user/assistant turns")
    for i, turn in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if turn.role != expected:
            raise _Bad("bad_turns", f"turn {i + 1} is '{turn.role}' where '{expected}' was expected; turns must "
                                    "alternate user/assistant starting with user (a system turn only first)")
    if turns[-1].role != "assistant":
        raise _Bad("bad_turns", "the conversation ends with a user turn; a training record must end with the "
                                "assistant's answer (drop the last turn or add the answer)")
    return turns


_GUANACO_MARK = re.compile(r"### (Human|Assistant):")


def _guanaco(row: dict) -> Record:
    (text,) = _fields(row, "guanaco", ("text",))
    parts = _GUANACO_MARK.split(text)  # [before, speaker, text, speaker, text, ...]
    if parts[0].strip():
        raise _Bad("bad_turns", "field 'text' has text before the first '### Human:' marker")
    turns = [Turn("user" if speaker == "Human" else "assistant", body.strip())
             for speaker, body in zip(parts[1::2], parts[2::2])]
    return Record(turns=_nonempty(_checked_turns(turns)), task="chat")


# One Llama-2 exchange: "<s>[INST] user [/INST] answer </s>"; the first user text may open with <<SYS>>...<</SYS>>.
# An answer ends at </s>, at the next [INST] (some exports leave out </s>), or at the end of the text.
_LLAMA2_TURN = re.compile(r"\s*(?:<s>)?\s*\[INST\](.*?)\[/INST\](.*?)(?:</s>|(?=\s*(?:<s>)?\s*\[INST\])|$)", re.S)
_LLAMA2_SYS = re.compile(r"\s*<<SYS>>(.*?)<</SYS>>(.*)", re.S)


def _llama2_text(row: dict) -> Record:
    (text,) = _fields(row, "llama2_text", ("text",))
    turns, system, end = [], "", 0
    while end < len(text.rstrip()):
        match = _LLAMA2_TURN.match(text, end)
        if not match or match.end() == end:
            raise _Bad("bad_turns", f"field 'text' is not Llama-2 chat text after character {end} "
                                    "(expected '<s>[INST] ... [/INST] ... </s>' per exchange)")
        user, answer = match.group(1), match.group(2)
        sys_match = _LLAMA2_SYS.match(user) if not turns else None
        if sys_match:
            system, user = sys_match.group(1).strip(), sys_match.group(2)
        turns += [Turn("user", user.strip())] + ([Turn("assistant", answer.strip())] if answer.strip() else [])
        end = match.end()
    return Record(turns=_nonempty(_checked_turns(turns)), system=system, task="chat")


def _nonempty(turns: list[Turn]) -> list[Turn]:
    for i, turn in enumerate(turns):
        if not turn.content:
            raise _Bad("bad_turns", f"turn {i + 1} ({turn.role}) in field 'text' is empty")
    return turns


def _pre_rendered(row: dict) -> Record:
    (text,) = _fields(row, "text", ("text",))
    return Record(turns=[], text=text, task="text")


_CONVERTERS: dict[str, Callable[[dict], Record]] = {
    "know_sql": _know_sql, "alpaca": _alpaca, "llamafactory_alpaca": _llamafactory_alpaca, "dolly": _dolly,
    "sharegpt": _sharegpt, "messages": _messages,
    "guanaco": _guanaco, "llama2_text": _llama2_text, "text": _pre_rendered}
