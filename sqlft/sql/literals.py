"""What gold SQL asks of the data, for synthesized databases (sqlft.sql.synth): the literals each column is compared
to, the joins, the tables of each set-operation branch, the group sizes HAVING needs.

    facts = harvest("SELECT name FROM singer WHERE age > 30", parse_tables(ddl))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

from sqlft.sql.schema import Table

MAX_GROUP = 30  # HAVING count(*) >= k is planted (k rows alike) up to this k

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

    _harvest_groups_and_sums(tree, facts, index, known_columns)
    _harvest_comparisons(tree, facts, add, index, known_columns)
    return facts


def _harvest_groups_and_sums(tree: exp.Expression, facts: GoldFacts, index: dict[str, set[str]],
                             known_columns: set[str]) -> None:
    """HAVING count(*) > k: groups need k + 1 rows; sum()/avg() arguments: numeric columns."""
    for having in tree.find_all(exp.Having):
        for cmp in having.find_all(exp.GT, exp.GTE, exp.EQ):
            if isinstance(cmp.this, exp.Count) and isinstance(cmp.expression, exp.Literal):
                k = _literal(cmp.expression, known_columns)
                if isinstance(k, int) and not isinstance(k, bool):
                    facts.min_group = max(facts.min_group, min(MAX_GROUP, k + isinstance(cmp, exp.GT)))
    for agg in tree.find_all(exp.Sum, exp.Avg):
        if (col := _column_of(agg.this, known_columns)) is not None:
            facts.numeric_uses += _resolve(col, index)


def _harvest_comparisons(tree: exp.Expression, facts: GoldFacts, add, index: dict[str, set[str]],
                         known_columns: set[str]) -> None:
    """Column-vs-literal predicates (through `add`, which knows the set-operation branch) and column = column
    joins, x IN (SELECT y ...) included."""
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
