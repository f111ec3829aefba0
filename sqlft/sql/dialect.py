"""SQL text handling with sqlglot: parse, transpile to DuckDB, normalise. (Reading SQL out of a model's reply is
sqlft.prompts.reply: it depends on the templates' stop markers.)

`to_duckdb(sql, "sqlite", columns)` adds the rewrites that make DuckDB return what SQLite returns for
Spider-style SQL: transpiled alone, gold Spider SQL gives SQLite's result on DuckDB for ~63% of queries; with the
rewrites (double-quoted strings, bare columns beside aggregates, case-insensitive LIKE, implicit casts) ~96%
(benchmarks/FAITHFULNESS.md). Nothing here executes SQL; the sandboxes do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers



@dataclass
class ParsedSQL:
    sql: str
    ok: bool
    error: str  # "" when ok
    tree: exp.Expression | None


def parse_sql(sql: str, dialect: str = "duckdb") -> ParsedSQL:
    """Parse one statement. Bad SQL is data (ok=False); an unknown dialect raises ValueError."""
    Dialect.get_or_raise(dialect)  # ValueError: "Unknown dialect 'x'. Did you mean y?"
    text = sql.strip().rstrip(";").strip()
    if not text:
        return ParsedSQL(sql, False, "empty SQL", None)
    try:
        trees = [t for t in sqlglot.parse(text, read=dialect, error_level=ErrorLevel.RAISE) if t is not None]
    except sqlglot.errors.SqlglotError as e:  # ParseError, TokenError
        return ParsedSQL(sql, False, str(e), None)
    except RecursionError:  # SELECT 1+1+...+1 with hundreds of terms: too deep for sqlglot, not a crash
        return ParsedSQL(sql, False, "the SQL is nested too deeply to parse", None)
    if len(trees) != 1:
        return ParsedSQL(sql, False, f"expected one statement, got {len(trees)}", None)
    return ParsedSQL(sql, True, "", trees[0])


# ---------------------------------------------------------------------------------------------------------
# Transpiling to DuckDB


def to_duckdb(sql: str, dialect: str, columns: set[str] | None = None) -> str:
    """Transpile `sql` from `dialect` to DuckDB. SQL sqlglot cannot parse comes back unchanged (DuckDB then
    reports its own error, which scores the query as wrong).

    For dialect "sqlite" the rewrites below make DuckDB give SQLite's results. `columns` (every column name of
    the schema) is needed to tell a double-quoted string literal from a quoted column name; without it that
    rewrite is skipped.
    """
    Dialect.get_or_raise(dialect)
    if dialect == "duckdb":
        return sql  # no round trip through sqlglot: it could only lose something
    parsed = parse_sql(sql, dialect)
    if not parsed.ok or parsed.tree is None:
        return sql
    tree = parsed.tree
    if dialect == "sqlite":
        tree = _sqlite_rewrites(tree, {c.lower() for c in columns} if columns is not None else None)
    return tree.sql(dialect="duckdb")


def _sqlite_rewrites(tree: exp.Expression, columns: set[str] | None) -> exp.Expression:
    if columns is not None:
        _quoted_strings(tree, columns)
    for select in list(tree.find_all(exp.Select)):
        _bare_columns(select)
    for like in list(tree.find_all(exp.Like)):
        # SQLite LIKE is case-insensitive (for ASCII); DuckDB LIKE is not.
        like.replace(exp.ILike(**like.args))
    for div in list(tree.find_all(exp.Div)):
        # DuckDB's // is SQLite's '/': integer division (truncating) for two integers, true division otherwise.
        # SQLite gives NULL for x/0 where DuckDB's // raises, hence NULLIF.
        div.replace(exp.IntDiv(this=div.this, expression=_nonzero(div.expression)))
    for mod in list(tree.find_all(exp.Mod)):
        mod.set("expression", _nonzero(mod.expression))
    _quote_int_literals(tree)
    return tree


def _nonzero(divisor: exp.Expression) -> exp.Expression:
    if isinstance(divisor, exp.Literal) and not divisor.is_string and float(divisor.this) != 0:
        return divisor
    return exp.Nullif(this=divisor, expression=exp.Literal.number(0))


def _quoted_strings(tree: exp.Expression, columns: set[str]) -> None:
    """SQLite reads "abc" as a string literal when no column is named abc; DuckDB always as an identifier."""
    names = set(columns)
    names |= {a.alias.lower() for a in tree.find_all(exp.Alias)}
    for table_alias in tree.find_all(exp.TableAlias):  # WITH x(a, b) / AS t(a, b) column lists
        names |= {c.name.lower() for c in table_alias.columns}
    for column in list(tree.find_all(exp.Column)):
        ident = column.this
        if (
            isinstance(ident, exp.Identifier)
            and ident.quoted
            and not column.table
            and ident.name.lower() not in names
        ):
            column.replace(exp.Literal.string(ident.name))


def _own_nodes(root: exp.Expression) -> Iterator[exp.Expression]:
    """Nodes under root that belong to its SELECT: nested queries and window functions are skipped."""
    skip = (exp.Query, exp.Window)
    for node in root.walk(prune=lambda n: isinstance(n, skip)):
        if not isinstance(node, skip):
            yield node


def _bare_columns(select: exp.Select) -> None:
    """Wrap columns that are neither grouped nor aggregated, which SQLite allows and DuckDB refuses.

    SQLite takes a bare column from the row holding the value of the query's only min()/max() (hence
    ARG_MIN/ARG_MAX), otherwise from an arbitrary row of the group (ANY_VALUE). Wrapping a column that is
    constant within its group changes nothing, so the rewrite may be generous.
    """
    group = select.args.get("group")
    group_exprs = list(group.expressions) if group else []
    aggs = [n for p in select.expressions for n in _own_nodes(p) if isinstance(n, exp.AggFunc)]
    if not group_exprs and not aggs:
        return
    extremes = [a for a in aggs if isinstance(a, (exp.Min, exp.Max))]
    extreme = extremes[0] if len(extremes) == 1 else None

    aliases = {p.alias.lower() for p in select.expressions if isinstance(p, exp.Alias)}
    # A column qualified by a table of an enclosing query is a correlated reference: not ours to wrap.
    sources = [select.args.get("from_") or select.args.get("from"), *(select.args.get("joins") or [])]
    local = {s.this.alias_or_name.lower() for s in sources if s is not None}
    grouped = {g.sql().lower() for g in group_exprs}
    # Projections the GROUP BY names by alias or position are grouping keys themselves.
    keep: set[int] = set()
    for g in group_exprs:
        for i, p in enumerate(select.expressions):
            by_alias = isinstance(g, exp.Column) and not g.table and isinstance(p, exp.Alias) and p.alias.lower() == g.name.lower()
            by_position = isinstance(g, exp.Literal) and not g.is_string and g.this == str(i + 1)
            if by_alias or by_position or p.unalias().sql().lower() == g.sql().lower():
                keep.add(i)

    roots = [p for i, p in enumerate(select.expressions) if i not in keep]
    for key in ("having", "order"):
        if select.args.get(key):
            roots.append(select.args[key])
    for root in roots:
        for node in list(_own_nodes(root)):
            if not isinstance(node, exp.Column) or isinstance(node.this, exp.Star):
                continue
            if isinstance(node.find_ancestor(exp.AggFunc, exp.Select), exp.AggFunc):
                continue
            if node.sql().lower() in grouped or (not node.table and node.name.lower() in aliases):
                continue
            if node.table and node.table.lower() not in local:
                continue
            if extreme is not None:
                cls = exp.ArgMin if isinstance(extreme, exp.Min) else exp.ArgMax
                node.replace(cls(this=node.copy(), expression=extreme.this.copy()))
            else:
                node.replace(exp.AnyValue(this=node.copy()))


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)


def _int_literal(node: exp.Expression) -> str | None:
    """The text of an integer literal (possibly negated), else None."""
    if isinstance(node, exp.Neg):
        inner = _int_literal(node.this)
        return None if inner is None else "-" + inner
    if isinstance(node, exp.Literal) and not node.is_string and re.fullmatch(r"\d+", node.this):
        return node.this
    return None


def _quote_int_literals(tree: exp.Expression) -> None:
    """column OP 123 -> column OP '123'.

    SQLite compares a TEXT column with a number as text; DuckDB refuses VARCHAR < INTEGER. A string literal
    is cast to the column's type by DuckDB, so '123' still compares numerically with a numeric column.
    Only integers: '2.5' cast to an INTEGER column would round.
    """
    def quote(node: exp.Expression) -> None:
        text = _int_literal(node)
        if text is not None:
            node.replace(exp.Literal.string(text))

    for cmp in list(tree.find_all(*_COMPARISONS)):
        if isinstance(cmp.this, exp.Column):
            quote(cmp.expression)
        elif isinstance(cmp.expression, exp.Column):
            quote(cmp.this)
    for node in list(tree.find_all(exp.In)):
        if isinstance(node.this, exp.Column):
            for value in list(node.expressions):
                quote(value)
    for node in list(tree.find_all(exp.Between)):
        if isinstance(node.this, exp.Column):
            quote(node.args["low"])
            quote(node.args["high"])


# ---------------------------------------------------------------------------------------------------------
# Normal forms for exact match and the Spider-compatible comparison


def normalise(sql: str, dialect: str = "duckdb", tree: exp.Expression | None = None) -> str:
    """A canonical one-line form: lowercase identifiers, uppercase keywords, no trailing ';'.

    SQL sqlglot cannot parse falls back to collapsed whitespace, so this never raises on odd SQL. `tree`: the
    parse of `sql` when the caller has it (it is normalised in place: not usable afterwards).
    """
    if tree is None:
        parsed = parse_sql(sql, dialect)
        if not parsed.ok or parsed.tree is None:
            return " ".join(sql.strip().rstrip(";").split())
        tree = parsed.tree
    try:
        # In place, copy=False: the tree is ours, and sqlglot's defensive deep copy costs about what a parse does.
        tree = normalize_identifiers(tree, dialect=dialect)
        return tree.sql(dialect=dialect, normalize=True, normalize_functions="upper", copy=False)
    except Exception:  # sqlglot's generators can fail on odd model output with any error (KeyError seen on DDL)
        return " ".join(sql.strip().rstrip(";").split())


def exact_match(gold: str, pred: str, dialect: str = "duckdb") -> bool:
    return normalise(gold, dialect) == normalise(pred, dialect)


def strip_distinct(sql: str, dialect: str = "duckdb") -> str:
    """Remove every DISTINCT (SELECT DISTINCT and COUNT(DISTINCT x)), as the official Spider test-suite
    evaluation does by default (keep_distinct=False). UNION stays a set union: it has no DISTINCT token.
    Without the word DISTINCT the SQL comes back as written (no parse: most queries; what the official runs)."""
    if "distinct" not in sql.lower():
        return sql
    parsed = parse_sql(sql, dialect)
    if not parsed.ok or parsed.tree is None:
        # The official code drops every 'distinct' token; do the same.
        return re.sub(r"\bdistinct\b\s*", "", sql, flags=re.IGNORECASE)
    tree = parsed.tree
    for select in tree.find_all(exp.Select):
        select.set("distinct", None)
    for distinct in list(tree.find_all(exp.Distinct)):
        values = distinct.expressions
        if len(values) == 1:
            distinct.replace(values[0])
        else:  # COUNT(DISTINCT a, b): keep the tuple count without DISTINCT
            distinct.replace(exp.Tuple(expressions=values))
    return tree.sql(dialect=dialect, copy=False)  # a fresh parse: no defensive copy needed


def has_order_by(sql: str, dialect: str = "duckdb") -> bool:
    """Whether the outermost query has ORDER BY (then row order matters in the comparison).

    The official code tests the substring 'order by' anywhere; an ORDER BY inside a subquery does not order
    the result, so only the top level counts here. Unparseable SQL falls back to the substring test.
    """
    parsed = parse_sql(sql, dialect)
    if not parsed.ok or parsed.tree is None:
        return "order by" in " ".join(sql.lower().split())
    tree = parsed.tree
    while isinstance(tree, exp.Subquery):
        tree = tree.this
    return tree.args.get("order") is not None
