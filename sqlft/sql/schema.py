"""Database schemas: the one schema model and DDL reader (tables, columns, types, keys: parse_tables), the one
statement splitter on sqlglot's tokenizer (split_statements), and how a schema is written into a prompt.

Readers: synthesized databases (sqlft.sql.synth), serve's schema pruning.
Prompts: the CREATE TABLE text as given ("ddl"), or one line per table ("compact"). Part of the prompt format: a
run records its data.schema_format and every inference path (eval, ask, serve) formats the schema the same way,
through sqlft.prompts.templates.

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
from sqlglot.tokens import TokenType, Tokenizer

SCHEMA_FORMATS = ("ddl", "compact")

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
_STATEMENT_END = re.compile(r";\s*(?:\n|$)")


def check_schema_format(name: str) -> None:
    if name not in SCHEMA_FORMATS:
        raise ValueError(f"Unknown schema format '{name}'. Choose one of: {', '.join(SCHEMA_FORMATS)}")


def format_schema(ddl: str, schema_format: str) -> str:
    """The schema text for a prompt. `ddl` returns the text unchanged."""
    check_schema_format(schema_format)
    if schema_format == "ddl" or not ddl.strip():
        return ddl
    return _compact(ddl)


@functools.lru_cache(maxsize=4096)  # a training set repeats each database's schema for every question
def _compact(ddl: str) -> str:
    lines = []
    for statement in _statements(ddl):
        line = _compact_table(statement)
        lines.append(line if line is not None else statement.strip())
    return "\n".join(line for line in lines if line)


def _statements(ddl: str) -> list[str]:
    """Split at semicolons that end a line, so a ';' inside a string or comment mid-line does not split."""
    parts, start = [], 0
    for match in _STATEMENT_END.finditer(ddl):
        parts.append(ddl[start:match.start() + 1])
        start = match.end()
    parts.append(ddl[start:])
    return [p for p in parts if p.strip()]


def _compact_table(statement: str) -> str | None:
    schema = _create_table(statement)
    return _render_table(schema) if schema is not None else None


def _create_table(statement: str) -> exp.Schema | None:
    """The column list of a CREATE TABLE statement, None for anything else or what no dialect parses."""
    if "create" not in statement.lower():
        return None
    for dialect in (None, "postgres", "sqlite"):
        try:
            parsed = sqlglot.parse_one(statement, read=dialect)
        except (sqlglot.errors.SqlglotError, ValueError):
            continue
        if isinstance(parsed, exp.Create) and parsed.kind == "TABLE" and isinstance(parsed.this, exp.Schema):
            return parsed.this
        return None
    return None


def _render_table(schema: exp.Schema) -> str | None:
    columns: dict[str, list[str]] = {}  # column name -> [name, type, pk?, ->ref]
    extra = []  # multi-column keys, which do not belong to one column
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            columns[item.name] = [item.name, _coarse(item.args.get("kind"))]
            for constraint in item.args.get("constraints") or []:
                if isinstance(constraint.kind, exp.PrimaryKeyColumnConstraint):
                    columns[item.name].append("pk")
                elif isinstance(constraint.kind, exp.Reference):
                    columns[item.name].append(_arrow(constraint.kind, [item.name]))
        elif isinstance(item, exp.PrimaryKey):
            names = [e.name for e in item.expressions]
            if len(names) == 1 and names[0] in columns:
                columns[names[0]].append("pk")
            else:
                extra.append(f"pk({', '.join(names)})")
        elif isinstance(item, exp.ForeignKey) and item.args.get("reference"):
            names = [e.name for e in item.expressions]
            arrow = _arrow(item.args["reference"], names)
            if len(names) == 1 and names[0] in columns:
                columns[names[0]].append(arrow)
            else:
                extra.append(f"({', '.join(names)}) {arrow}")
    if not columns:
        return None
    parts = [" ".join(p for p in parts if p) for parts in columns.values()] + extra
    return f"{schema.this.name}({', '.join(parts)})"


def _coarse(kind: exp.DataType | None) -> str:
    if kind is None:  # SQLite allows untyped columns
        return ""
    name = _type_name(kind)
    family = TYPE_FAMILIES.get(name)
    return _COMPACT_WORD[family] if family and name not in _COMPACT_AS_WRITTEN else name.lower()


def _type_name(kind: exp.DataType) -> str:
    return kind.this.name if hasattr(kind.this, "name") else str(kind.this)


def _arrow(reference: exp.Reference, columns: list[str]) -> str:
    target = reference.this
    if isinstance(target, exp.Schema):
        table, ref_columns = target.this.name, [e.name for e in target.expressions]
    else:
        table, ref_columns = target.name, []
    ref_columns = ref_columns or columns  # REFERENCES t without columns: same-named key
    return f"->{table}.{ref_columns[0]}" if len(ref_columns) == 1 else f"->{table}({', '.join(ref_columns)})"


# ----------------------------------------------------------------------------- the schema model and DDL reader

@dataclass
class Column:
    name: str
    type: str  # DuckDB type used in CREATE TABLE
    family: str  # int | num | float | text | bool | date | timestamp | time | blob


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


def _parse_table(create: exp.Create) -> Table | None:
    schema = create.this
    if create.kind != "TABLE" or not isinstance(schema, exp.Schema):
        return None  # CREATE TABLE ... AS SELECT, views, indexes: no column list to synthesize
    table = Table(name=schema.this.name, columns=[])
    seen: set[str] = set()
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            if item.name.lower() in seen:  # DuckDB refuses duplicate column names (case-insensitive)
                continue
            seen.add(item.name.lower())
            ddb_type, family = _duckdb_type(item.args.get("kind"))
            table.columns.append(Column(item.name, ddb_type, family))
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
        for part in split_statements(ddl):
            try:
                statements.extend(sqlglot.parse(part, read=dialect))
            except (sqlglot.errors.SqlglotError, RecursionError):
                continue
    tables: dict[str, Table] = {}
    for statement in statements:
        if isinstance(statement, exp.Create):
            table = _parse_table(statement)
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


def split_statements(sql: str) -> list[str]:
    """The statements of a SQL script as written, each with its ';', split at the semicolons sqlglot's tokenizer
    sees: a ';' inside a string, a quoted name or a comment ends nothing. Text the tokenizer cannot read (an
    unterminated quote) is split at every ';'.

    Two scanners stay apart on purpose: sqlft.sql.database reads PostgreSQL dumps, whose COPY data lines are not
    SQL, and sqlft.sql.sqlite_sandbox confirms a statement's end with SQLite's own lexer, the authority on what
    SQLite will run. The compact prompt format keeps its line rule (_statements) so prompts stay byte-identical.
    """
    try:
        tokens = Tokenizer().tokenize(sql)
    except sqlglot.errors.TokenError:
        return [s.strip() + ";" for s in sql.split(";") if s.strip()]
    parts, start = [], 0
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            parts.append(sql[start:token.end + 1].strip())
            start = token.end + 1
    if sql[start:].strip():
        parts.append(sql[start:].strip())
    return [p for p in parts if p.strip(" \n\t;")]
