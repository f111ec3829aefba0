"""How a database schema is written into a prompt: the CREATE TABLE text as given ("ddl"), or one line per table
("compact"). Part of the prompt format: a run records its data.schema_format and every inference path (eval,
ask, serve) formats the schema the same way, through sqlft.templates.

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

import sqlglot
from sqlglot import exp

SCHEMA_FORMATS = ("ddl", "compact")

# sqlglot type names -> the coarse type a query writer needs (quote or not, date functions or not).
_COARSE = {
    "int": {"TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "UTINYINT", "USMALLINT", "UINT", "UBIGINT",
            "SERIAL", "BIGSERIAL", "SMALLSERIAL", "HUGEINT", "INT128"},
    "num": {"FLOAT", "DOUBLE", "REAL", "DECIMAL", "BIGDECIMAL", "MONEY", "NUMBER", "UDECIMAL"},
    "text": {"TEXT", "VARCHAR", "CHAR", "NCHAR", "NVARCHAR", "BPCHAR", "NAME", "MEDIUMTEXT", "LONGTEXT",
             "TINYTEXT", "STRING", "UUID", "CITEXT", "ENUM"},
    "date": {"DATE"},
    "timestamp": {"DATETIME", "DATETIME2", "TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMPLTZ", "TIMESTAMPNTZ",
                  "SMALLDATETIME"},
    "bool": {"BOOLEAN"},
    "time": {"TIME", "TIMETZ"},
    "blob": {"BLOB", "BINARY", "VARBINARY", "BYTEA"},
}
_COARSE_OF = {name: coarse for coarse, names in _COARSE.items() for name in names}
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
    name = kind.this.name if hasattr(kind.this, "name") else str(kind.this)
    return _COARSE_OF.get(name, name.lower())


def _arrow(reference: exp.Reference, columns: list[str]) -> str:
    target = reference.this
    if isinstance(target, exp.Schema):
        table, ref_columns = target.this.name, [e.name for e in target.expressions]
    else:
        table, ref_columns = target.name, []
    ref_columns = ref_columns or columns  # REFERENCES t without columns: same-named key
    return f"->{table}.{ref_columns[0]}" if len(ref_columns) == 1 else f"->{table}({', '.join(ref_columns)})"
