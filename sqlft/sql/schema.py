"""Database schemas: the one schema model and DDL reader (tables, columns, types, keys: _table, parse_tables), and
how a schema is written into a prompt. Statements are split by sqlft.sql.split.

Readers: the compact prompt format, synthesized databases (sqlft.sql.synth), repair, serve's schema pruning and
table browser.
Prompts: the CREATE TABLE text as given ("ddl"), or one line per table ("compact"). Part of the prompt format: a
run records its data.schema_format and data.schema_format_version, and every inference path (eval, ask, serve)
formats the schema the same way, through sqlft.prompts.templates.

The full DDL is most of every text-to-SQL prompt (Spider: ~400 tokens), and the model needs only the names, a
coarse type, the keys and the joins. "compact" keeps exactly those:

    CREATE TABLE head (head_ID NUMERIC, name TEXT,      ->  head(head_ID num pk, name text)
        PRIMARY KEY (head_ID));
    CREATE TABLE management (head_ID NUMERIC, ...,      ->  management(head_ID num ->head.head_ID, ...)
        FOREIGN KEY (head_ID) REFERENCES head(head_ID));

Statements that are not a parseable CREATE TABLE (views, comments, a dialect sqlglot cannot read) are kept as
they were written, so nothing in the schema is ever lost, only shortened.
"""

import functools
import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

from sqlft.sql.split import scan, split_statements

SCHEMA_FORMATS = ("ddl", "compact")
# How a format renders, versioned, because a prompt must stay the one a run was trained on: a run records the version
# it trained with (data.schema_format_version in its config.yaml; a run from before versions has none: 1) and is
# asked in it. "ddl" is the same in every version. Version 1's compact cut statements only at a ';' that ends a
# line (a one-line "CREATE TABLE a (x INT); CREATE TABLE b (y INT)" stayed DDL) and wrote names bare (`my table(first
# name text)`); version 2 cuts at every ';' sqlglot's tokenizer sees and double-quotes a name that is not a plain
# identifier (`"my table"("first name" text)`), so the model sees names it can write in SQL.
SCHEMA_FORMAT_VERSION = 2
SCHEMA_FORMAT_VERSIONS = (1, 2)

# The one type table: sqlglot type name -> family. The family picks the DuckDB type and the value generator of a
# synthesized column (Column, below) and the coarse word the compact prompt format writes (quote or not, date
# functions or not). A name not listed is a text column to synthesis and written as it is (lower case) in prompts.
TYPE_FAMILIES = {
    **dict.fromkeys(("TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "UTINYINT", "USMALLINT", "UMEDIUMINT",
                     "UINT", "UBIGINT", "SERIAL", "BIGSERIAL", "SMALLSERIAL", "INT128", "HUGEINT"), "int"),
    **dict.fromkeys(("FLOAT", "DOUBLE", "REAL"), "float"),
    **dict.fromkeys(("DECIMAL", "BIGDECIMAL", "MONEY", "SMALLMONEY", "UDECIMAL", "NUMBER"), "decimal"),
    **dict.fromkeys(("TEXT", "VARCHAR", "CHAR", "NCHAR", "NVARCHAR", "BPCHAR", "NAME", "MEDIUMTEXT", "LONGTEXT",
                     "TINYTEXT", "STRING", "UUID", "JSON", "ENUM", "CITEXT"), "text"),
    "BOOLEAN": "bool",
    "DATE": "date",
    **dict.fromkeys(("DATETIME", "DATETIME2", "DATETIME64", "TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMPLTZ",
                     "TIMESTAMPNTZ", "SMALLDATETIME"), "timestamp"),
    **dict.fromkeys(("TIME", "TIMETZ"), "time"),
    **dict.fromkeys(("BLOB", "BINARY", "VARBINARY", "MEDIUMBLOB", "LONGBLOB", "TINYBLOB", "BYTEA"), "blob"),
}
_COMPACT_WORD = {"int": "int", "float": "num", "decimal": "num", "text": "text", "bool": "bool", "date": "date",
                 "timestamp": "timestamp", "time": "time", "blob": "blob"}
# Written as they are in compact prompts, not as their family's word: they were so before the two type tables
# became one, and a prompt must stay the one a run was trained on (tests/golden/prompts.json holds JSON's).
_COMPACT_AS_WRITTEN = {"UMEDIUMINT", "SMALLMONEY", "JSON", "DATETIME64", "MEDIUMBLOB", "LONGBLOB", "TINYBLOB"}
_V1_STATEMENT_END = re.compile(r";\s*(?:\n|$)")
_PLAIN_NAME = re.compile(r"[^\W\d]\w*")  # written bare in SQL by every engine (a letter or _, then word characters)


def check_schema_format(name: str) -> None:
    if name not in SCHEMA_FORMATS:
        raise ValueError(f"Unknown schema format '{name}'. Choose one of: {', '.join(SCHEMA_FORMATS)}")


def check_schema_format_version(version: int) -> None:
    if version not in SCHEMA_FORMAT_VERSIONS:
        raise ValueError(f"Unknown schema format version {version!r}. Choose one of: "
                         f"{', '.join(map(str, SCHEMA_FORMAT_VERSIONS))}")


def format_schema(ddl: str, schema_format: str, version: int = SCHEMA_FORMAT_VERSION) -> str:
    """The schema text for a prompt, as `version` of the format writes it. `ddl` returns the text unchanged."""
    check_schema_format(schema_format)
    check_schema_format_version(version)
    if schema_format == "ddl" or not ddl.strip():
        return ddl
    return _compact(ddl, version)


@functools.lru_cache(maxsize=4096)  # a training set repeats each database's schema for every question
def _compact(ddl: str, version: int) -> str:
    statements, name = (_v1_statements(ddl), str) if version == 1 else (_statements(ddl), _sql_name)
    lines = []
    for statement in statements:
        table = _read_create_table(statement)
        lines.append(_render_table(table, name) if table is not None else statement.strip())
    return "\n".join(line for line in lines if line)


def _statements(ddl: str) -> list[str]:
    """Each statement as written with its ';' (sqlft.sql.split); text the tokenizer cannot read (an unterminated
    quote) stays whole in the last one, kept as written, so nothing is lost."""
    return [s.text.strip() + (";" if s.terminated else "") for s in scan(ddl)[0] if s.text.strip()]


def _v1_statements(ddl: str) -> list[str]:
    """Version 1's cut: at semicolons that end a line, even inside a string. Frozen: it is part of the prompts of
    runs trained before version 2, not a way to split SQL (that is sqlft.sql.split)."""
    parts, start = [], 0
    for match in _V1_STATEMENT_END.finditer(ddl):
        parts.append(ddl[start:match.start() + 1])
        start = match.end()
    parts.append(ddl[start:])
    return [p for p in parts if p.strip()]


def _read_create_table(statement: str) -> "Table | None":
    """The table of one CREATE TABLE statement as sqlglot's own, then PostgreSQL's, then SQLite's dialect reads it;
    None for anything else (views, comments) or what none reads."""
    if "create" not in statement.lower():
        return None
    for dialect in (None, "postgres", "sqlite"):
        try:
            parsed = sqlglot.parse_one(statement, read=dialect)
        except (sqlglot.errors.SqlglotError, ValueError):
            continue
        return _table(parsed) if isinstance(parsed, exp.Create) else None
    return None


def _render_table(table: "Table", name) -> str:
    """`table(column type pk ->other.key, ...)`; names written by `name` (version 1: as they are)."""
    notes = {c.name: [name(c.name), _coarse(c.type_name)] for c in table.columns}  # column -> its words
    extra = []  # multi-column keys, which do not belong to one column
    if len(table.primary_key) == 1 and table.primary_key[0] in notes:
        notes[table.primary_key[0]].append("pk")
    elif table.primary_key:
        extra.append(f"pk({', '.join(map(name, table.primary_key))})")
    for columns, ref_table, ref_columns in table.foreign_keys:
        ref_columns = ref_columns or columns  # REFERENCES t without columns: same-named key
        arrow = (f"->{name(ref_table)}.{name(ref_columns[0])}" if len(ref_columns) == 1
                 else f"->{name(ref_table)}({', '.join(map(name, ref_columns))})")
        if len(columns) == 1 and columns[0] in notes:
            notes[columns[0]].append(arrow)
        else:
            extra.append(f"({', '.join(map(name, columns))}) {arrow}")
    parts = [" ".join(word for word in words if word) for words in notes.values()] + extra
    return f"{name(table.name)}({', '.join(parts)})"


def _sql_name(name: str) -> str:
    return name if _PLAIN_NAME.fullmatch(name) else quote_identifier(name)


def _coarse(type_name: str) -> str:
    if not type_name:  # SQLite allows untyped columns
        return ""
    family = TYPE_FAMILIES.get(type_name)
    return _COMPACT_WORD[family] if family and type_name not in _COMPACT_AS_WRITTEN else type_name.lower()


def _type_name(kind: exp.DataType) -> str:
    return kind.this.name if hasattr(kind.this, "name") else str(kind.this)


# ----------------------------------------------------------------------------- the schema model and DDL reader

@dataclass
class Column:
    name: str
    type: str  # DuckDB type used in CREATE TABLE
    family: str  # int | num | float | text | bool | date | timestamp | time | blob
    type_name: str = ""  # the declared type's sqlglot name (INT, VARCHAR, ...): "" for an untyped (SQLite) column
    declared: str = ""  # the declared type as sqlglot writes it (VARCHAR(50), DECIMAL(10, 2)); "" when untyped


@dataclass
class Table:
    name: str
    columns: list[Column]
    primary_key: list[str] = field(default_factory=list)
    # (columns, referenced table, referenced columns), names as written in the DDL
    foreign_keys: list[tuple[list[str], str, list[str]]] = field(default_factory=list)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name.lower() == name.lower()), None)


_DUCKDB_TYPE = {"int": "BIGINT", "float": "DOUBLE", "text": "VARCHAR", "bool": "BOOLEAN", "date": "DATE",
                "timestamp": "TIMESTAMP", "time": "TIME", "blob": "BLOB"}


def _duckdb_type(kind: exp.DataType | None) -> tuple[str, str]:
    """(DuckDB type, family) of a column type, by TYPE_FAMILIES. Unknown and missing types are text."""
    if kind is None:  # SQLite allows untyped columns
        return "VARCHAR", "text"
    name = _type_name(kind)
    family = TYPE_FAMILIES.get(name, "text")
    if family == "decimal":
        params = [p.name for p in kind.expressions]
        if name != "NUMBER" and params and all(p.isdigit() for p in params) and int(params[0]) <= 38:
            return f"DECIMAL({','.join(params)})", "float"
        # SQLite NUMERIC (Spider's "number") holds integers and reals; DuckDB's bare DECIMAL is (18,3),
        # which would round values and change AVG results, so keep a DOUBLE and draw mostly integers.
        return "DOUBLE", "num"
    return _DUCKDB_TYPE[family], family  # SQLite integers are 64-bit: BIGINT


def _names(nodes: list[exp.Expression]) -> list[str]:
    return [n.name for n in nodes]


def _reference(ref: exp.Reference) -> tuple[str, list[str]]:
    target = ref.this  # Schema(this=Table, expressions=[cols]) or a bare Table
    if isinstance(target, exp.Schema):
        return target.this.name, _names(target.expressions)
    return target.name, []


def _table(create: exp.Create) -> Table | None:
    """The one reader of a parsed CREATE TABLE: its columns with their types, primary key and foreign keys (as
    written: the referenced columns may be [] and the table need not exist; parse_tables resolves them). None for
    what has no column list (CREATE TABLE ... AS SELECT, views, indexes)."""
    schema = create.this
    if create.kind != "TABLE" or not isinstance(schema, exp.Schema):
        return None
    table = Table(name=schema.this.name, columns=[])
    seen: set[str] = set()
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            if item.name.lower() in seen:  # DuckDB refuses duplicate column names (case-insensitive)
                continue
            seen.add(item.name.lower())
            kind = item.args.get("kind")
            ddb_type, family = _duckdb_type(kind)
            table.columns.append(Column(item.name, ddb_type, family, _type_name(kind) if kind else "",
                                        kind.sql() if kind else ""))
            for constraint in item.args.get("constraints") or []:
                if isinstance(constraint.kind, exp.PrimaryKeyColumnConstraint):
                    table.primary_key = [item.name]
                elif isinstance(constraint.kind, exp.Reference):
                    ref_table, ref_cols = _reference(constraint.kind)
                    table.foreign_keys.append(([item.name], ref_table, ref_cols))
        elif isinstance(item, exp.PrimaryKey):
            table.primary_key = _names(item.expressions)
        elif isinstance(item, exp.ForeignKey) and item.args.get("reference"):
            ref_table, ref_cols = _reference(item.args["reference"])
            table.foreign_keys.append((_names(item.expressions), ref_table, ref_cols))
    return table if table.columns else None


def parse_tables(ddl: str, dialect: str = "sqlite") -> list[Table]:
    """CREATE TABLE statements -> tables; statements sqlglot cannot parse are skipped, not fatal."""
    try:
        statements = sqlglot.parse(ddl, read=dialect)
    except (sqlglot.errors.SqlglotError, RecursionError):
        # One bad statement (or one nested hundreds of levels deep) should not lose the others: one by one.
        statements = []
        for part in split_statements(ddl, dialect):
            try:
                statements.extend(sqlglot.parse(part, read=dialect))
            except (sqlglot.errors.SqlglotError, RecursionError):
                continue
    tables: dict[str, Table] = {}
    for statement in statements:
        if isinstance(statement, exp.Create):
            table = _table(statement)
            if table and table.name.lower() not in tables:
                tables[table.name.lower()] = table
    # Resolve references to real tables/columns; a FK without columns refers to the target's primary key.
    for table in tables.values():
        resolved = []
        for cols, ref_table, ref_cols in table.foreign_keys:
            target = tables.get(ref_table.lower())
            if target is None:
                continue
            ref_cols = ref_cols or target.primary_key
            if len(ref_cols) != len(cols):
                continue
            resolved.append((cols, target.name, ref_cols))
        table.foreign_keys = resolved
    return list(tables.values())


def schema_from_ddl(ddl: str, dialect: str = "sqlite") -> dict:
    """DDL -> {table: {"columns": {column: DuckDB type}, "primary_key": [...],
    "foreign_keys": [{"columns": [...], "ref_table": str, "ref_columns": [...]}]}} (JSON-serializable)."""
    return {
        t.name: {
            "columns": {c.name: c.type for c in t.columns},
            "primary_key": list(t.primary_key),
            "foreign_keys": [{"columns": c, "ref_table": rt, "ref_columns": rc} for c, rt, rc in t.foreign_keys],
        }
        for t in parse_tables(ddl, dialect)
    }


def quote_identifier(name: str) -> str:
    """A name as a double-quoted SQL identifier (DuckDB, SQLite, PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def create_table_sql(table: Table) -> str:
    """The DuckDB CREATE TABLE of a parsed table. No PRIMARY KEY / FOREIGN KEY / NOT NULL: synthesized data is
    meant to break them at times."""
    columns = ", ".join(f"{quote_identifier(c.name)} {c.type}" for c in table.columns)
    return f"CREATE TABLE {quote_identifier(table.name)} ({columns})"
