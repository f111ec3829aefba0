"""Synthesized DuckDB databases for schema-only records (know_sql, spider_train): DDL + gold SQL -> data.

Rows are drawn so that the gold queries' predicates and joins hit, as Spider's distilled test suites do
(Zhong et al., 2020): literals from the gold SQL are planted in the columns they are compared to, keys join.
    paths = synthesize(ddl, gold_sqls)            # instances x DuckDB files, cached
    check = check_gold(paths, gold_sql, "sqlite") # runs? rows? does the test tell right from wrong?
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import re
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp

from eval.sql import to_duckdb
from sqlft.paths import cache_dir

# Bump when the generated data changes for the same inputs: it is part of the cache key.
SYNTH_VERSION = 1

NULL_SHARES = (0.03, 0.08, 0.12)  # per instance, so NULL handling differs between instances
PLANTED_SHARE = 0.5  # share of a table's rows that carry one gold query's literals and join keys
LITERAL_BIAS = 0.3  # chance that an ordinary cell takes a (near) literal of its column's class
FK_HIT = 0.85  # chance that a key column takes a value of the referenced primary key (else may dangle)
MAX_GROUP = 30  # HAVING count(*) >= k is planted (k rows alike) up to this k

NAMES = ("Ann", "Bob", "Carla", "Dev", "Eva", "Femi", "Gus", "Hana", "Ivan", "Jo", "Kemal", "Lin", "Mia",
         "Noor", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tao", "Uma", "Vik", "Wen", "Yara", "Zed", "Ola")
PLACES = ("Paris", "Lima", "Oslo", "Cairo", "Austin", "Kyoto", "Porto", "Delhi", "Quito", "Perth", "Accra",
          "Bern", "Dakar", "Hanoi", "Turin", "Leeds", "Pune", "Riga", "Sucre", "Tromso")
WORDS = ("red", "blue", "green", "alpha", "beta", "gamma", "north", "south", "east", "west", "small", "large",
         "old", "new", "fast", "slow", "open", "closed", "gold", "silver", "delta", "omega", "prime", "basic")
PERSON_HINTS = ("name", "first", "last", "author", "director", "owner", "manager", "customer", "student",
                "artist", "player", "winner", "driver", "captain", "host", "person")
PLACE_HINTS = ("city", "country", "state", "location", "town", "place", "address", "nation", "venue", "region")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")

# sqlglot type -> (DuckDB type, family). The family picks the value generator. Unknown types become VARCHAR.
_INT_TYPES = {"TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "UTINYINT", "USMALLINT", "UMEDIUMINT", "UINT",
              "UBIGINT", "SERIAL", "BIGSERIAL", "SMALLSERIAL", "INT128", "HUGEINT"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
_DECIMAL_TYPES = {"DECIMAL", "BIGDECIMAL", "MONEY", "SMALLMONEY", "UDECIMAL", "NUMBER"}
_TEXT_TYPES = {"TEXT", "VARCHAR", "CHAR", "NCHAR", "NVARCHAR", "BPCHAR", "NAME", "MEDIUMTEXT", "LONGTEXT",
               "TINYTEXT", "STRING", "UUID", "JSON", "ENUM", "CITEXT"}
_TIMESTAMP_TYPES = {"DATETIME", "DATETIME2", "DATETIME64", "TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMPLTZ",
                    "TIMESTAMPNTZ", "SMALLDATETIME"}
_BLOB_TYPES = {"BLOB", "BINARY", "VARBINARY", "MEDIUMBLOB", "LONGBLOB", "TINYBLOB", "BYTEA"}


# ----------------------------------------------------------------------------- schema


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


def _duckdb_type(kind: exp.DataType | None) -> tuple[str, str]:
    if kind is None:  # SQLite allows untyped columns
        return "VARCHAR", "text"
    name = kind.this.name if hasattr(kind.this, "name") else str(kind.this)
    if name in _INT_TYPES:
        return "BIGINT", "int"  # SQLite integers are 64-bit
    if name in _FLOAT_TYPES:
        return "DOUBLE", "float"
    if name in _DECIMAL_TYPES:
        params = [p.name for p in kind.expressions]
        if name != "NUMBER" and params and all(p.isdigit() for p in params) and int(params[0]) <= 38:
            return f"DECIMAL({','.join(params)})", "float"
        # SQLite NUMERIC (Spider's "number") holds integers and reals; DuckDB's bare DECIMAL is (18,3),
        # which would round values and change AVG results, so keep a DOUBLE and draw mostly integers.
        return "DOUBLE", "num"
    if name in _TEXT_TYPES:
        return "VARCHAR", "text"
    if name == "BOOLEAN":
        return "BOOLEAN", "bool"
    if name == "DATE":
        return "DATE", "date"
    if name in _TIMESTAMP_TYPES:
        return "TIMESTAMP", "timestamp"
    if name in {"TIME", "TIMETZ"}:
        return "TIME", "time"
    if name in _BLOB_TYPES:
        return "BLOB", "blob"
    return "VARCHAR", "text"


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
    except sqlglot.errors.SqlglotError:
        # One bad statement should not lose the others: retry them one by one.
        statements = []
        for part in ddl.split(";"):
            try:
                statements.extend(sqlglot.parse(part, read=dialect))
            except sqlglot.errors.SqlglotError:
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


# ----------------------------------------------------------------------------- literals from gold SQL

ColKey = tuple[str, str]  # (table, column), lower-cased

_FLIP = {"gt": "lt", "gte": "lte", "lt": "gt", "lte": "gte", "eq": "eq", "neq": "neq"}
_OPS = {exp.EQ: "eq", exp.NEQ: "neq", exp.GT: "gt", exp.GTE: "gte", exp.LT: "lt", exp.LTE: "lte",
        exp.Like: "like", exp.ILike: "like"}
# Wrappers that keep a column's values recognisable: lower(name) = 'x' still wants 'x' in name.
# HAVING sum(x) > 10000 wants x near 10000 too.
_TRANSPARENT = (exp.Lower, exp.Upper, exp.Trim, exp.Cast, exp.TryCast, exp.Paren, exp.Min, exp.Max, exp.Avg, exp.Sum)


@dataclass
class Predicate:
    column: ColKey
    op: str  # eq | neq | gt | gte | lt | lte | in | between | like
    values: list  # Python literals; a LIKE keeps its pattern
    negated: bool = False
    branch: int = 0  # which SELECT of a top-level UNION / INTERSECT / EXCEPT it belongs to


@dataclass
class GoldFacts:
    tables: list[str] = field(default_factory=list)
    predicates: list[Predicate] = field(default_factory=list)
    joins: list[tuple[ColKey, ColKey]] = field(default_factory=list)
    numeric_uses: list[ColKey] = field(default_factory=list)  # arguments of sum() / avg()
    branch_tables: list[list[str]] = field(default_factory=list)  # tables per top-level set-operation branch
    is_except: bool = False  # top level is EXCEPT: its branches must not share values
    min_group: int = 1  # rows a group needs to pass the query's HAVING count(*) > / >= / = k


_NOT_LITERAL = object()


def _literal(node: exp.Expression, known_columns: set[str]) -> object:
    if isinstance(node, exp.Paren):
        return _literal(node.this, known_columns)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        try:
            return int(node.this)
        except ValueError:
            pass
        try:
            return float(node.this)
        except ValueError:  # hex and other forms: not worth planting
            return _NOT_LITERAL
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        value = _literal(node.this, known_columns)
        return _NOT_LITERAL if value is _NOT_LITERAL else -value  # type: ignore[operator]
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if _is_string_column(node, known_columns):
        return node.name
    return _NOT_LITERAL


def _is_string_column(node: exp.Expression, known_columns: set[str]) -> bool:
    # SQLite reads "x" as a column when one is named x, else as the string 'x'; Spider gold relies on it.
    return (isinstance(node, exp.Column) and not node.table and node.this.args.get("quoted")
            and node.name.lower() not in known_columns)


def _column_of(node: exp.Expression, known_columns: set[str]) -> exp.Column | None:
    while isinstance(node, _TRANSPARENT):
        node = node.this
    if isinstance(node, exp.Column) and not _is_string_column(node, known_columns):
        return node
    return None


def _sources(select: exp.Select) -> dict[str, str]:
    """alias or name -> table name for the tables read directly by this SELECT (not by its subqueries)."""
    sources = {}
    for table in select.find_all(exp.Table):
        if table.find_ancestor(exp.Select) is select:
            sources[table.alias_or_name.lower()] = table.name.lower()
            sources.setdefault(table.name.lower(), table.name.lower())
    return sources


def _resolve(column: exp.Column, index: dict[str, set[str]]) -> list[ColKey]:
    """The (table, column) a column reference reads: its own SELECT first, then outer ones (correlation),
    then any table with such a column (aliases of derived tables, odd scoping)."""
    name, qualifier = column.name.lower(), column.table.lower()
    select = column.find_ancestor(exp.Select)
    while select is not None:
        sources = _sources(select)
        if qualifier and qualifier in sources:
            table = sources[qualifier]
            return [(table, name)] if name in index.get(table, ()) else []
        if not qualifier:
            hits = sorted({(t, name) for t in sources.values() if name in index.get(t, ())})
            if hits:
                return hits
        select = select.find_ancestor(exp.Select)
    return [(t, name) for t in sorted(index) if name in index[t]]


def _branches(tree: exp.Expression) -> list[exp.Expression]:
    """The SELECTs joined by a top-level UNION / INTERSECT / EXCEPT (the query itself otherwise)."""
    if isinstance(tree, exp.SetOperation):
        return _branches(tree.this) + _branches(tree.expression)
    return [tree]


def harvest(gold_sql: str, tables: list[Table], dialect: str = "sqlite") -> GoldFacts:
    """The tables, column-vs-literal predicates and column = column joins of one gold query."""
    index = {t.name.lower(): {c.name.lower() for c in t.columns} for t in tables}
    known_columns = set().union(*index.values()) if index else set()
    facts = GoldFacts()
    try:
        tree = sqlglot.parse_one(gold_sql, read=dialect)
    except sqlglot.errors.SqlglotError:  # unparseable gold: no literals to plant, the data stays random
        return facts
    if tree is None:
        return facts
    facts.tables = sorted({t.name.lower() for t in tree.find_all(exp.Table) if t.name.lower() in index})
    branches = _branches(tree)
    facts.branch_tables = [sorted({t.name.lower() for t in b.find_all(exp.Table) if t.name.lower() in index})
                           for b in branches]
    facts.is_except = isinstance(tree, exp.Except)
    branch_of = {id(b): i for i, b in enumerate(branches)}

    def add(col: exp.Column, op: str, values: list, negated: bool = False) -> None:
        node = col
        while node is not None and id(node) not in branch_of:
            node = node.parent
        branch = branch_of.get(id(node), 0) if node is not None else 0
        for key in _resolve(col, index):
            facts.predicates.append(Predicate(key, op, values, negated, branch))

    for having in tree.find_all(exp.Having):
        for cmp in having.find_all(exp.GT, exp.GTE, exp.EQ):
            if isinstance(cmp.this, exp.Count) and isinstance(cmp.expression, exp.Literal):
                k = _literal(cmp.expression, known_columns)
                if isinstance(k, int) and not isinstance(k, bool):
                    facts.min_group = max(facts.min_group, min(MAX_GROUP, k + isinstance(cmp, exp.GT)))
    for agg in tree.find_all(exp.Sum, exp.Avg):
        if (col := _column_of(agg.this, known_columns)) is not None:
            facts.numeric_uses += _resolve(col, index)

    for node in tree.find_all(exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike,
                              exp.In, exp.Between):
        negated = bool(node.args.get("negate")) or isinstance(node.parent, exp.Not)
        if isinstance(node, exp.Between):
            col = _column_of(node.this, known_columns)
            low, high = _literal(node.args["low"], known_columns), _literal(node.args["high"], known_columns)
            if col is not None and low is not _NOT_LITERAL and high is not _NOT_LITERAL:
                add(col, "between", [low, high], negated)
            continue
        if isinstance(node, exp.In):
            col = _column_of(node.this, known_columns)
            if col is None:
                continue
            query = node.args.get("query")
            if query is not None:  # x IN (SELECT y ...) is a join on x = y
                inner = query.this if isinstance(query, exp.Subquery) else query
                if isinstance(inner, exp.Select) and len(inner.expressions) == 1:
                    other = _column_of(inner.expressions[0], known_columns)
                    if other is not None:
                        facts.joins += [(a, b) for a in _resolve(col, index) for b in _resolve(other, index)]
                continue
            values = [_literal(v, known_columns) for v in node.expressions]
            values = [v for v in values if v is not _NOT_LITERAL]
            if values:
                add(col, "in", values, negated)
            continue
        op = _OPS[type(node)]
        left, right = node.this, node.expression
        left_col, right_col = _column_of(left, known_columns), _column_of(right, known_columns)
        if left_col is not None and right_col is not None:
            if op == "eq":
                facts.joins += [(a, b) for a in _resolve(left_col, index) for b in _resolve(right_col, index)]
            continue
        if left_col is not None and (value := _literal(right, known_columns)) is not _NOT_LITERAL:
            add(left_col, op, [value], negated)
        elif right_col is not None and op != "like" and (value := _literal(left, known_columns)) is not _NOT_LITERAL:
            add(right_col, _FLIP[op], [value], negated)
    return facts


# ----------------------------------------------------------------------------- values


def _coerce(value: object, family: str) -> object:
    """A value as the column's family stores it, or None when it cannot be (then it is not used)."""
    if value is None:
        return None
    try:
        if family in ("int", "num", "float"):
            if isinstance(value, bool):
                return int(value)
            if isinstance(value, str):
                text = value.strip()
                value = int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
            if not isinstance(value, (int, float)) or value != value:  # NaN never hits a predicate
                return None
            if abs(value) > 2**53:  # beyond what BIGINT / DOUBLE hold exactly; never a useful literal
                return None
            if family == "int":
                return int(value) if float(value).is_integer() else None
            return float(value) if family == "float" else value
        if family == "text":
            if isinstance(value, bytes):
                return value.decode("utf-8", "replace")
            if isinstance(value, float) and value.is_integer():
                return str(int(value))
            return value.isoformat() if isinstance(value, (dt.date, dt.time)) else str(value)
        if family == "bool":
            if isinstance(value, (bool, int)):
                return bool(value)
            text = str(value).strip().lower()
            return {"t": True, "true": True, "1": True, "yes": True, "y": True,
                    "f": False, "false": False, "0": False, "no": False, "n": False}.get(text)
        if family == "date":
            if isinstance(value, dt.datetime):
                return value.date()
            if isinstance(value, dt.date):
                return value
            return dt.date.fromisoformat(str(value)[:10])
        if family == "timestamp":
            if isinstance(value, dt.datetime):
                return value
            if isinstance(value, dt.date):
                return dt.datetime(value.year, value.month, value.day)
            return dt.datetime.fromisoformat(str(value))
        if family == "time":
            return value if isinstance(value, dt.time) else dt.time.fromisoformat(str(value))
        if family == "blob":
            return value if isinstance(value, bytes) else str(value).encode()
    except (ValueError, TypeError, OverflowError):
        return None
    return None


def _shift(value: object, step: int) -> object:
    """The value `step` units away: numbers +-1, ISO dates +-1 day; other strings do not move."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value + step
    if isinstance(value, str) and DATE_RE.match(value):
        try:
            day = dt.date.fromisoformat(value[:10]) + dt.timedelta(days=step)
            return day.isoformat() + value[10:]
        except ValueError:
            return value
    return value


def _expand_like(pattern: str, rng: random.Random) -> str:
    """A string matching a LIKE pattern: '%' becomes a short word (or nothing), '_' one letter."""
    out = []
    for i, char in enumerate(pattern):
        if char == "%":
            word = rng.choice(WORDS)
            out.append("" if rng.random() < 0.3 else (word + " " if i == 0 else " " + word))
        elif char == "_":
            out.append(rng.choice("abcdefghij"))
        else:
            out.append(char)
    return "".join(out)


def _satisfying(pred: Predicate, rng: random.Random) -> object:
    """A value for which the predicate is true (None when there is no useful one)."""
    if pred.negated or pred.op == "neq":
        return None
    values = pred.values
    if pred.op == "like":
        return _expand_like(str(values[0]), rng) if isinstance(values[0], str) else values[0]
    if pred.op == "in":
        return rng.choice(values)
    if pred.op == "between":
        low, high = values
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and not isinstance(low, bool):
            mid = (low + high) / 2
            return int(mid) if isinstance(low, int) and isinstance(high, int) else mid
        return low
    value = values[0]
    if pred.op == "gt":
        return _shift(value, 1) if _shift(value, 1) != value else f"{value}z"
    if pred.op == "lt":
        return _shift(value, -1)
    return value  # eq, gte, lte


def _near(pred: Predicate, rng: random.Random) -> list:
    """Literals and their neighbours, so that = / > / >= / BETWEEN bounds give different answers."""
    if pred.op == "like":
        return [_expand_like(str(pred.values[0]), rng) for _ in range(2)] if isinstance(pred.values[0], str) else []
    out = []
    for value in pred.values:
        out += [_shift(value, -1), value, _shift(value, 1)]
    if pred.op == "between":
        out.append(_satisfying(Predicate(pred.column, "between", pred.values), rng))
    return out


def _text_words(name: str) -> tuple[str, ...]:
    lowered = name.lower()
    if any(h in lowered for h in PERSON_HINTS):
        return NAMES
    if any(h in lowered for h in PLACE_HINTS):
        return PLACES
    return WORDS


def _fresh_values(family: str, name: str, size: int, literals: list, rng: random.Random) -> list:
    """`size` distinct plausible values for a column (pool), around its literals where it has some."""
    lowered = name.lower()
    # "2008" (SQLite double-quoted) counts as a number for a numeric column
    numeric_lits = [n for n in (_coerce(v, "num") for v in literals if not isinstance(v, bool)) if n is not None]
    if family in ("int", "num", "float"):
        if numeric_lits:
            low, high = int(min(numeric_lits)) - 10, int(max(numeric_lits)) + 10
        elif "year" in lowered:
            low, high = 1990, 2024
        elif "age" in lowered.split("_") or lowered == "age":
            low, high = 18, 80
        elif lowered.endswith("id") or lowered.endswith("code") or lowered.endswith("number"):
            low, high = 1, 2 * size + 4
        else:
            low, high = 0, 50
        if family == "float" or any(isinstance(v, float) and not v.is_integer() for v in numeric_lits):
            return sorted({round(rng.uniform(low, high), 1) for _ in range(size)})
        return rng.sample(range(low, high + 1), min(size, high - low + 1))
    if family == "bool":
        return [True, False]
    if family in ("date", "timestamp", "time"):
        out = []
        for _ in range(size):
            moment = dt.datetime(2000, 1, 1) + dt.timedelta(days=rng.randint(0, 9000), minutes=rng.randint(0, 1439))
            out.append(moment.date() if family == "date" else moment.time() if family == "time" else moment)
        return sorted(set(out))
    if family == "blob":
        return [w.encode() for w in rng.sample(WORDS, min(size, len(WORDS)))]
    # text: dates for date-like names or literals, digits for numeric literals, short words otherwise
    text_lits = [v for v in literals if isinstance(v, str)]
    if "date" in lowered or any(DATE_RE.match(v) for v in text_lits):
        return sorted({(dt.date(2000, 1, 1) + dt.timedelta(days=rng.randint(0, 9000))).isoformat()
                       for _ in range(size)})
    if literals and all(_coerce(v, "num") is not None for v in literals):
        return [str(v) for v in _fresh_values("int", name, size, numeric_lits, rng)]
    words = _text_words(name)
    out: list[str] = []
    for _ in range(size * 3):
        if len(out) >= size:
            break
        value = rng.choice(words) if rng.random() < 0.7 else f"{rng.choice(words)} {rng.choice(WORDS)}"
        if value not in out:
            out.append(value)
    return out


def _dedupe(values: list) -> list:
    seen, out = set(), []
    for v in values:
        key = (type(v).__name__, v)
        if v is not None and key not in seen:
            seen.add(key)
            out.append(v)
    return out


# ----------------------------------------------------------------------------- one instance


def _variants(facts: GoldFacts) -> list[tuple[list[str], dict[ColKey, Predicate]]]:
    """(tables, one predicate per column) for each planted row chain of a query: each branch of a
    UNION / INTERSECT / EXCEPT gets its own, and `x = 'a' OR x = 'b'` one per literal (at most 3)."""
    out = []
    for branch, tables in enumerate(facts.branch_tables or [facts.tables]):
        by_col: dict[ColKey, list[Predicate]] = {}
        for p in facts.predicates:
            if p.branch == branch:
                by_col.setdefault(p.column, []).append(p)
        count = min(3, max((len(ps) for ps in by_col.values()), default=1))
        out += [(tables, {col: ps[v % len(ps)] for col, ps in by_col.items()}) for v in range(count)]
    return out[:6]


def _retyped(tables: list[Table], facts: list[GoldFacts]) -> list[Table]:
    """Column types adjusted to how the gold uses them, as SQLite's type affinity would: a TEXT column that
    is summed/averaged or joined to a number becomes DOUBLE (DuckDB refuses avg(VARCHAR) and VARCHAR IN
    (DOUBLE ...)); a non-key number column compared with a word ('null' in Spider's hr_1) becomes VARCHAR."""
    numeric = {k for f in facts for k in f.numeric_uses}
    families = {(t.name.lower(), c.name.lower()): c.family for t in tables for c in t.columns}
    numbers = ("int", "num", "float")
    for f in facts:
        for a, b in f.joins:
            if families.get(a) == "text" and families.get(b) in numbers:
                numeric.add(a)
            if families.get(b) == "text" and families.get(a) in numbers:
                numeric.add(b)
    wordy = {p.column for f in facts for p in f.predicates if p.op in ("eq", "neq", "in")
             and any(isinstance(v, str) and _coerce(v, "num") is None for v in p.values)}
    # Keys stay numbers: a VARCHAR key holding 'null' would break every join on it (DuckDB casts to compare).
    wordy -= {k for f in facts for pair in f.joins for k in pair}
    wordy -= {(t.name.lower(), c.lower()) for t in tables for c in t.primary_key}
    wordy -= {(t.name.lower(), c.lower()) for t in tables for cs, _, _ in t.foreign_keys for c in cs}
    wordy -= {(rt.lower(), c.lower()) for t in tables for _, rt, rcs in t.foreign_keys for c in rcs}
    out = []
    for t in tables:
        columns = []
        for c in t.columns:
            key = (t.name.lower(), c.name.lower())
            if key in numeric and c.family == "text":
                c = Column(c.name, "DOUBLE", "num")
            elif key in wordy and key not in numeric and c.family in numbers:
                c = Column(c.name, "VARCHAR", "text")
            columns.append(c)
        out.append(Table(t.name, columns, list(t.primary_key), list(t.foreign_keys)))
    return out


class _Classes:
    """Union-find over columns: FK pairs, same-name columns and gold join pairs share one value pool,
    because Spider joins on them (often without a declared foreign key)."""

    def __init__(self, keys: list[ColKey]) -> None:
        self.parent = {k: k for k in keys}

    def find(self, key: ColKey) -> ColKey:
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: ColKey, b: ColKey) -> None:
        if a in self.parent and b in self.parent:
            ra, rb = sorted((self.find(a), self.find(b)))  # sorted: the same root whatever the edge order
            self.parent[rb] = ra


def _table_order(tables: list[Table], facts: list[GoldFacts]) -> list[Table]:
    """Referenced tables first (FKs, and gold joins onto a single-column primary key), cycles tolerated."""
    by_name = {t.name.lower(): t for t in tables}
    pk_of = {(t.name.lower(), t.primary_key[0].lower()) for t in tables if len(t.primary_key) == 1}
    after: dict[str, set[str]] = {name: set() for name in by_name}
    for t in tables:
        for _, ref_table, _ in t.foreign_keys:
            if ref_table.lower() != t.name.lower():
                after[t.name.lower()].add(ref_table.lower())
    for f in facts:
        for a, b in f.joins:
            for child, parent in ((a, b), (b, a)):
                if parent in pk_of and child not in pk_of and child[0] != parent[0]:
                    after[child[0]].add(parent[0])
    order: list[str] = []
    while len(order) < len(by_name):
        ready = [n for n in by_name if n not in order and after[n] <= set(order)]
        if not ready:  # a cycle: take the first remaining table as it is
            ready = [next(n for n in by_name if n not in order)]
        order.append(ready[0])
    return [by_name[n] for n in order]


def _link(tables: list[Table], facts: list[GoldFacts]) -> _Classes:
    """Columns that must share values: FK pairs, same-name columns, the gold's column = column joins."""
    keys = sorted((t.name.lower(), c.name.lower()) for t in tables for c in t.columns)
    classes = _Classes(keys)
    for t in tables:
        for fk_cols, ref_table, ref_cols in t.foreign_keys:
            for a, b in zip(fk_cols, ref_cols):
                classes.union((t.name.lower(), a.lower()), (ref_table.lower(), b.lower()))
    first_of: dict[str, ColKey] = {}
    for key in keys:
        classes.union(first_of.setdefault(key[1], key), key)
    for f in facts:
        for a, b in f.joins:
            classes.union(a, b)
    return classes


class _Instance:
    """The random data of one instance, generated table by table in `rows()`."""

    def __init__(self, tables: list[Table], facts: list[GoldFacts], rows_per_table: int, seed: int,
                 instance: int, instances: int) -> None:
        self.rng = rng = random.Random(f"synth:{seed}:{instance}")  # str seeds hash with sha512: stable
        self.facts = facts
        self.rows_per_table = rows_per_table
        self.cols = {(t.name.lower(), c.name.lower()): c for t in tables for c in t.columns}
        self.classes = _link(tables, facts)
        referencing = {(t.name.lower(), c.lower()) for t in tables for cs, _, _ in t.foreign_keys for c in cs}
        referenced = {(rt.lower(), c.lower()) for t in tables for _, rt, rcs in t.foreign_keys for c in rcs}
        # Distinct values only for a primary key that is not a foreign key too: Spider declares link tables'
        # keys (management.department_ID) as primary keys and the gold then counts their duplicates.
        self.single_pk = {(t.name.lower(), t.primary_key[0].lower()) for t in tables if len(t.primary_key) == 1}
        self.single_pk -= referencing
        # No NULLs in keys and join columns: one NULL empties every `x NOT IN (SELECT key ...)`, a frequent
        # Spider pattern whose real databases keep keys filled.
        self.no_null = {(t.name.lower(), c.lower()) for t in tables for c in t.primary_key}
        self.no_null |= referencing | referenced | {k for f in facts for pair in f.joins for k in pair}
        self.no_null |= {k for k in self.cols if k[1].endswith("id")}
        self.null_share = rng.choice(NULL_SHARES)

        members: dict[ColKey, list[ColKey]] = {}
        for key in sorted(self.cols):
            members.setdefault(self.classes.find(key), []).append(key)
        self.preds: dict[ColKey, list[Predicate]] = {}  # class root -> predicates on its columns
        for f in facts:
            for p in f.predicates:
                if p.column in self.cols:
                    self.preds.setdefault(self.classes.find(p.column), []).append(p)
        self.pools: dict[ColKey, list] = {}  # class root -> values its columns draw from
        self.near: dict[ColKey, list] = {}  # class root -> literals and their neighbours
        for root, keys in sorted(members.items()):
            # Draw in the family of a numeric member if any (text members then hold digit strings that still
            # join and compare with it), else of the key column.
            anchor = next((k for k in keys if self.cols[k].family in ("int", "num", "float")), None) or next(
                (k for k in keys if k in self.single_pk), keys[0])
            literals = [v for p in self.preds.get(root, []) for v in p.values if p.op != "like"]
            keyish = any(k in self.single_pk or k[1].endswith("id") for k in keys)
            # Small pools for ordinary columns: GROUP BY / COUNT then meet ties and groups of several rows.
            # Names are mostly distinct, as in real data (EXCEPT / NOT IN on names would empty otherwise).
            named = any("name" in k[1] for k in keys)
            size = rows_per_table + 8 if keyish else rows_per_table + 4 if named else rng.randint(3, 8)
            values = _fresh_values(self.cols[anchor].family, anchor[1], size, literals, rng)
            self.near[root] = _dedupe([v for p in self.preds.get(root, []) for v in _near(p, rng)])
            self.pools[root] = _dedupe(values + self.near[root])

        # Gold queries planted in this instance, in an order shared by all tables so that one query's rows
        # line up across the tables it joins; instances rotate through the queries.
        useful = [i for i, f in enumerate(facts) if f.tables and (f.predicates or len(f.tables) > 1)]
        random.Random(f"synth:{seed}:plant").shuffle(useful)
        if useful:
            shift = instance * max(1, len(useful) // max(1, instances)) % len(useful)
            useful = useful[shift:] + useful[:shift]
        self.variants = {q: _variants(facts[q]) for q in useful}
        self.units = [(q, v) for q in useful for v in range(len(self.variants[q]))]
        self.pk_values: dict[ColKey, list] = {}  # class root -> values of a generated distinct primary key
        self.skew: dict[ColKey, tuple[list, list[float]]] = {}  # column -> (ranked key values, weights)
        self.planted: dict[tuple[int, int], dict[ColKey, object]] = {}  # (query, variant) -> root -> value

    def pool(self, key: ColKey) -> list:
        family = self.cols[key].family
        values = [v for v in (_coerce(x, family) for x in self.pools[self.classes.find(key)]) if v is not None]
        return values or _fresh_values(family, key[1], 8, [], self.rng)

    def draw(self, key: ColKey) -> object:
        """One ordinary cell: NULL, a referenced key, a (near) literal or a pool value."""
        root, family, rng = self.classes.find(key), self.cols[key].family, self.rng
        if key not in self.no_null and rng.random() < self.null_share:
            return None
        if self.pk_values.get(root) and rng.random() < FK_HIT:
            if key not in self.skew:
                # Skewed (1/rank) so that some keys gather many rows: HAVING count(*) >= 3 and "the most
                # frequent" need big groups and ties; a fresh rank order per column and instance.
                ranked = list(self.pk_values[root])
                rng.shuffle(ranked)
                self.skew[key] = (ranked, [1 / (i + 1) for i in range(len(ranked))])
            ranked, weights = self.skew[key]
            if (value := _coerce(rng.choices(ranked, weights)[0], family)) is not None:
                return value
        if self.near[root] and rng.random() < LITERAL_BIAS:
            if (value := _coerce(rng.choice(self.near[root]), family)) is not None:
                return value
        return rng.choice(self.pool(key))

    def distinct(self, key: ColKey, n: int) -> list:
        """n distinct values for a primary key: its own literals first (WHERE id = 5 must find a row),
        then the referenced key's values (1:1 tables), then the pool."""
        root, family, rng = self.classes.find(key), self.cols[key].family, self.rng
        own = [_coerce(v, family) for p in self.preds.get(root, []) if p.column == key and p.op != "like"
               for v in p.values]
        referenced = [v for v in (_coerce(x, family) for x in self.pk_values.get(root, [])) if v is not None]
        pool = self.pool(key)
        rng.shuffle(referenced)
        rng.shuffle(pool)
        unique = _dedupe(own + referenced + pool)[:n]
        while len(unique) < n:  # a tiny domain (booleans): duplicates are unavoidable
            unique.append(rng.choice(unique or pool))
        rng.shuffle(unique)
        return unique

    def rows(self, table: Table) -> list[tuple]:
        tname, rng = table.name.lower(), self.rng
        keys = [(tname, c.name.lower()) for c in table.columns]
        n = self.rows_per_table + rng.randint(0, 2)
        # Room for the groups that HAVING count(*) >= k asks for (rows_per_table 12 cannot hold k = 15).
        n = max([n] + [self.facts[q].min_group + 2 for q, _ in self.units_for(tname, n)])
        rows = [[self.draw(k) for k in keys] for _ in range(n)]
        for j, key in enumerate(keys):
            if key in self.single_pk:
                for row, value in zip(rows, self.distinct(key, n)):
                    row[j] = value
        self.plant(tname, keys, rows)
        for j, key in enumerate(keys):
            if key in self.single_pk:
                self.pk_values.setdefault(self.classes.find(key), [r[j] for r in rows])
        return [tuple(r) for r in rows]

    def plant(self, tname: str, keys: list[ColKey], rows: list[list]) -> None:
        """Rows that each carry one gold query's (variant's) literals and the join values of its rows in the
        tables generated before, so that conjunctions and multi-table joins hit together."""
        free = list(range(len(rows)))
        self.rng.shuffle(free)
        for q, v in self.units_for(tname, len(rows)):
            wanted: dict[int, object] = {}
            for j, key in enumerate(keys):
                root = self.classes.find(key)
                # Own chain first; later variants fall back to variant 0's values, so that the two sides of
                # an INTERSECT / OR land on the same projected values (not for EXCEPT: that would empty it).
                copied = self.planted.get((q, v), {}).get(root)
                if copied is None and not self.facts[q].is_except:
                    copied = self.planted.get((q, 0), {}).get(root)
                if copied is not None and (value := _coerce(copied, self.cols[key].family)) is not None:
                    wanted[j] = value
            for p in self.variants[q][v][1].values():
                if p.column[0] == tname:
                    value = _coerce(_satisfying(p, self.rng), self.cols[p.column].family)
                    if value is not None:
                        wanted[keys.index(p.column)] = value
            row_i = free[0]
            for j, key in enumerate(keys):  # a wanted primary key value picks its row instead
                if key in self.single_pk and j in wanted:
                    row_i = next((i for i in free if rows[i][j] == wanted[j]), row_i)
                    del wanted[j]  # never overwrite a primary key: it must stay distinct
            free.remove(row_i)
            for j, value in wanted.items():
                rows[row_i][j] = value
            for j, key in enumerate(keys):
                if rows[row_i][j] is not None:
                    self.planted.setdefault((q, v), {}).setdefault(self.classes.find(key), rows[row_i][j])
            for _ in range(self.facts[q].min_group - 1):  # a group that big: copies of the row, keys aside
                if not free:
                    break
                copy_i = free.pop(0)
                for j, key in enumerate(keys):
                    if key not in self.single_pk:
                        rows[copy_i][j] = rows[row_i][j]
            if not free:
                break

    def units_for(self, tname: str, n: int) -> list[tuple[int, int]]:
        """The (query, variant) chains planted in a table of n rows."""
        slots = max(1, round(n * PLANTED_SHARE))
        return [u for u in self.units if tname in self.variants[u[0]][u[1]][0]][:slots]


def _generate(tables: list[Table], facts: list[GoldFacts], rows_per_table: int, seed: int, instance: int,
              instances: int) -> dict[str, list[tuple]]:
    """Rows for every table of one instance: table name -> list of row tuples in column order."""
    data = _Instance(tables, facts, rows_per_table, seed, instance, instances)
    return {t.name: data.rows(t) for t in _table_order(tables, facts)}


# ----------------------------------------------------------------------------- files


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_table_sql(table: Table) -> str:
    """The DuckDB CREATE TABLE of a parsed table. No PRIMARY KEY / FOREIGN KEY / NOT NULL: synthesized data is
    meant to break them at times."""
    columns = ", ".join(f"{_quote(c.name)} {c.type}" for c in table.columns)
    return f"CREATE TABLE {_quote(table.name)} ({columns})"


def _write(path: Path, tables: list[Table], rows: dict[str, list[tuple]]) -> None:
    """Build into a temp file next to `path`, then rename: readers never see a half-built database."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        con = duckdb.connect(str(tmp))
        try:
            con.begin()  # one transaction: a commit per statement makes a build ~5x slower
            for table in tables:
                con.execute(create_table_sql(table))
                if rows.get(table.name):
                    marks = ", ".join("(" + ", ".join("?" for _ in table.columns) + ")" for _ in rows[table.name])
                    params = [v for row in rows[table.name] for v in row]
                    # TRY_CAST: a value the type cannot hold (DECIMAL(4,2) and a literal 1e6) becomes NULL
                    # instead of failing the whole build.
                    casts = ", ".join(f"TRY_CAST(v.c{i} AS {c.type})" for i, c in enumerate(table.columns))
                    names = ", ".join(f"c{i}" for i in range(len(table.columns)))
                    con.execute(f"INSERT INTO {_quote(table.name)} SELECT {casts} FROM (VALUES {marks}) v({names})",
                                params)
            con.commit()
        finally:
            con.close()
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)


def synthesize(ddl: str, gold_sqls: list[str], *, dialect: str = "sqlite", instances: int = 3,
               rows_per_table: int = 12, seed: int = 0, out_dir: Path | None = None) -> list[Path]:
    """`instances` DuckDB files with different random data for one schema, cached by their inputs.

    Tables get the DDL's columns and types (mapped to DuckDB) but no PRIMARY KEY / FOREIGN KEY / NOT NULL,
    and about rows_per_table (+0-2) rows each. Types follow the gold's use where SQLite's affinity would
    (a TEXT column averaged or joined to a number becomes DOUBLE), so the DuckDB types can differ from
    schema_from_ddl. Pass every gold query of the database: their literals and joins shape the data.
    """
    key_src = json.dumps([SYNTH_VERSION, ddl, list(gold_sqls), dialect, instances, rows_per_table, seed])
    key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
    folder = (Path(out_dir) if out_dir is not None else cache_dir("synth")) / key
    paths = [folder / f"{i}.duckdb" for i in range(instances)]
    if all(p.exists() for p in paths):
        return paths
    tables = parse_tables(ddl, dialect)
    if not tables:
        raise ValueError(f"no CREATE TABLE with columns found in the DDL (read as {dialect!r}): {ddl[:200]!r}")
    facts = [harvest(sql, tables, dialect) for sql in gold_sqls]
    tables = _retyped(tables, facts)
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(paths):
        if not path.exists():
            _write(path, tables, _generate(tables, facts, rows_per_table, seed, i, instances))
    return paths


# ----------------------------------------------------------------------------- checking gold queries


def _run(con: duckdb.DuckDBPyConnection, sql: str, timeout_s: float) -> list[tuple]:
    timer = threading.Timer(timeout_s, con.interrupt)  # a timer calling interrupt() is what stops DuckDB
    timer.start()
    try:
        return con.execute(sql).fetchall()
    finally:
        timer.cancel()


def _canonical(rows: list[tuple], ordered: bool) -> tuple:
    # Spider compares results as multisets unless the query orders them.
    keyed = [tuple(repr(v) for v in row) for row in rows]
    return tuple(keyed if ordered else sorted(keyed))


@dataclass
class GoldCheck:
    """How one gold query behaves on a set of synthesized instances.

    discriminating: the gold runs on every instance and its result is not the same on all of them plus an
    empty copy of the schema (same tables, no rows). False means the result does not depend on the data
    (`SELECT 1`, `... WHERE 1=0`) or the data never moved it: any prediction giving that result would pass.
    varies: the result differs between at least two of the instances themselves (stricter; the empty copy
    is a probe, not one of the test databases).
    Results compare as multisets of rows (as lists when the gold has a top-level ORDER BY).
    """

    sql: str  # the gold as executed on DuckDB
    runs: list[bool]
    nonempty: list[bool]
    errors: list[str | None]
    varies: bool
    discriminating: bool

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(self.runs) and any(self.nonempty)


def _message(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def check_gold(db_paths: list[Path], gold_sql: str, dialect: str = "sqlite", *, timeout_s: float = 10.0) -> GoldCheck:
    """Run one gold query on every instance (and on an empty copy of the schema) and report how it fares."""
    n = len(db_paths)
    # One in-memory connection attaching every instance: a connection costs ~25-40 ms, an ATTACH ~7 ms.
    con = duckdb.connect(":memory:")
    try:
        for i, path in enumerate(db_paths):
            con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS i{i} (READ_ONLY)")
        if n:
            con.execute("USE i0")
        ddl = [r[0] for r in con.execute("SELECT sql FROM duckdb_tables() WHERE database_name = 'i0'").fetchall()]
        columns = {r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = 'i0'").fetchall()}
        try:
            sql = to_duckdb(gold_sql, dialect, columns=columns)  # SQLite rewrites: eval/sql.py
        except sqlglot.errors.SqlglotError as e:
            return GoldCheck(gold_sql, [False] * n, [False] * n, [f"transpile: {_message(e)}"] * n, False, False)

        runs, nonempty, errors, results = [], [], [], []
        for i in range(n):
            try:
                con.execute(f"USE i{i}")
                rows = _run(con, sql, timeout_s)
            except duckdb.Error as e:
                runs.append(False)
                nonempty.append(False)
                errors.append(_message(e))
                continue
            runs.append(True)
            nonempty.append(bool(rows))
            errors.append(None)
            results.append(rows)

        try:
            ordered = bool(sqlglot.parse_one(sql, read="duckdb").args.get("order"))
        except sqlglot.errors.SqlglotError:
            ordered = False
        canon = {_canonical(r, ordered) for r in results}
        varies = len(canon) > 1
        discriminating = bool(runs) and all(runs) and varies
        if runs and all(runs) and not varies:
            try:
                con.execute("USE memory")
                for statement in ddl:
                    con.execute(statement)
                discriminating = _canonical(_run(con, sql, timeout_s), ordered) not in canon
            except duckdb.Error:
                pass  # the probe failing says nothing about the gold on the real instances
        return GoldCheck(sql, runs, nonempty, errors, varies, discriminating)
    finally:
        con.close()
