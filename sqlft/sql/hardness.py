"""Spider's hardness levels (easy, medium, hard, extra) of a gold query, on a sqlglot tree.

A port of `Evaluator.eval_hardness` in Spider's evaluation.py (taoyds/spider, taoyds/test-suite-sql-eval):
the same three counts and thresholds, computed on sqlglot nodes in place of Spider's process_sql dicts.
Try it: `python -m sqlft.sql.hardness "SELECT count(*) FROM singer"` prints easy.
"""

import sys

from sqlglot import exp

from sqlft.sql.dialect import parse_sql

LEVELS = ("easy", "medium", "hard", "extra")
# Spider's AGG_OPS (besides 'none'): only these count as aggregates.
_AGGS = (exp.Max, exp.Min, exp.Count, exp.Sum, exp.Avg)
_SET_OPS = (exp.Union, exp.Intersect, exp.Except)
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div)


def hardness(sql: str, dialect: str = "sqlite") -> str:
    """easy | medium | hard | extra; "" when the SQL does not parse (Spider's parser would fail too)."""
    parsed = parse_sql(sql, dialect)
    if not parsed.ok or parsed.tree is None:
        return ""
    return hardness_of(parsed.tree)


def hardness_of(tree: exp.Expression) -> str:
    comp1, comp2, others = count_component1(tree), count_component2(tree), count_others(tree)
    if comp1 <= 1 and others == 0 and comp2 == 0:
        return "easy"
    if (others <= 2 and comp1 <= 1 and comp2 == 0) or (comp1 <= 2 and others < 2 and comp2 == 0):
        return "medium"
    if ((others > 2 and comp1 <= 2 and comp2 == 0) or (2 < comp1 <= 3 and others <= 2 and comp2 == 0)
            or (comp1 <= 1 and others == 0 and comp2 <= 1)):
        return "hard"
    return "extra"


# ------------------------------------------------------------------ Spider's parts of a query


def _outer_select(tree: exp.Expression) -> exp.Select | None:
    """The SELECT Spider's counts look at. For `A UNION B` Spider's parser keeps A as the query and B as
    sql['union'], so only A's clauses count; sqlglot nests `A UNION B UNION C` to the left, hence the loop.
    An ORDER BY/LIMIT after the set operation belongs to the last query in Spider's parse: not counted."""
    while isinstance(tree, (exp.Subquery, *_SET_OPS)):
        tree = tree.this
    return tree if isinstance(tree, exp.Select) else None


def _conditions(node: exp.Expression | None) -> tuple[list[exp.Expression], int, int]:
    """(condition units, 'and' tokens, 'or' tokens) of a WHERE/HAVING/ON clause: Spider keeps a flat list
    [cond, 'and'|'or', cond, ...]; parentheses are flattened the same way."""
    if node is None:
        return [], 0, 0
    if isinstance(node, (exp.Where, exp.Having, exp.Paren)):
        return _conditions(node.this)
    if isinstance(node, (exp.And, exp.Or)):
        left, right = _conditions(node.this), _conditions(node.expression)
        is_and = isinstance(node, exp.And)
        return left[0] + right[0], left[1] + right[1] + is_and, left[2] + right[2] + (not is_and)
    return [node], 0, 0


def _from_conditions(select: exp.Select) -> tuple[list[exp.Expression], int, int]:
    """Every JOIN ... ON condition; Spider joins the ON clauses of several joins with 'and'."""
    units, ors = [], 0
    for join in select.args.get("joins") or []:
        found = _conditions(join.args.get("on"))
        units, ors = units + found[0], ors + found[2]
    return units, 0, ors


def _all_conditions(select: exp.Select) -> tuple[list[exp.Expression], int]:
    """Condition units and 'or' tokens of FROM (ON), WHERE and HAVING together."""
    units, ors = [], 0
    for found in (_from_conditions(select), _conditions(select.args.get("where")),
                  _conditions(select.args.get("having"))):
        units += found[0]
        ors += found[2]
    return units, ors


def _negated(cond: exp.Expression) -> bool:
    """Spider's not_op: `a NOT IN`, `a NOT LIKE`, `a NOT BETWEEN`. In `a IS NOT NULL` the NOT follows IS,
    which Spider's parser reads as the value, not as not_op."""
    if isinstance(cond, exp.Not):
        return not isinstance(cond.this, exp.Is)
    return bool(cond.args.get("negate"))


def _operator(cond: exp.Expression) -> exp.Expression:
    return cond.this if isinstance(cond, exp.Not) else cond


def _is_like(cond: exp.Expression) -> bool:
    return isinstance(_operator(cond), (exp.Like, exp.ILike))


def _values(cond: exp.Expression) -> list[exp.Expression]:
    """Spider's val1/val2 of a condition unit: the operands after the operator (the left side is val_unit)."""
    op = _operator(cond)
    if isinstance(op, exp.Between):
        return [op.args.get("low"), op.args.get("high")]
    if isinstance(op, exp.In):
        return [op.args.get("query")] if op.args.get("query") is not None else []
    if isinstance(op, exp.Exists):
        return [op.this]
    return [op.expression] if isinstance(op.args.get("expression"), exp.Expression) else []


def _is_query(node: exp.Expression | None) -> bool:
    return isinstance(node, (exp.Subquery, exp.Query))


def _has_agg(node: exp.Expression | None) -> bool:
    """Spider's agg_id != none for a select item or an ORDER BY column unit: the outermost function is an
    aggregate; for `max(a) - min(b)` Spider records the aggregate of the first operand only."""
    node = node.unalias() if node is not None else None
    while isinstance(node, (*_ARITHMETIC, exp.Paren)):
        node = node.this
    return isinstance(node, _AGGS)


# ------------------------------------------------------------------ the three counts


def count_component1(tree: exp.Expression) -> int:
    """WHERE, GROUP BY, ORDER BY, LIMIT (1 each), one per joined table, one per 'or' and per LIKE."""
    select = _outer_select(tree)
    if select is None:
        return 0
    count = sum(select.args.get(key) is not None for key in ("where", "group", "order", "limit"))
    count += len(select.args.get("joins") or [])  # table units minus one (a FROM subquery is a unit too)
    units, ors = _all_conditions(select)
    return count + ors + sum(_is_like(u) for u in units)


def count_component2(tree: exp.Expression) -> int:
    """Nested queries: subqueries as condition values (not FROM subqueries), plus a top INTERSECT/UNION/EXCEPT."""
    top = tree
    while isinstance(top, exp.Subquery):
        top = top.this
    select = _outer_select(tree)
    nested = int(isinstance(top, _SET_OPS))
    if select is not None:
        units, _ = _all_conditions(select)
        nested += sum(_is_query(value) for unit in units for value in _values(unit))
    return nested


def count_others(tree: exp.Expression) -> int:
    """More than one aggregate, select item, WHERE condition or GROUP BY column: 1 each."""
    select = _outer_select(tree)
    if select is None:
        return 0
    where, where_ands, where_ors = _conditions(select.args.get("where"))
    having, having_ands, having_ors = _conditions(select.args.get("having"))
    group = select.args.get("group")
    group_by = list(group.expressions) if group else []
    order = select.args.get("order")

    aggs = sum(_has_agg(e) for e in select.expressions)
    # Spider's count_agg tests unit[0] != 0: for a WHERE condition unit[0] is not_op, so it counts NOTs.
    aggs += sum(_negated(u) for u in where)
    aggs += sum(_has_agg(g) for g in group_by)
    if order is not None:
        for ordered in order.expressions:
            value = ordered.this
            operands = [value.this, value.expression] if isinstance(value, _ARITHMETIC) else [value]
            aggs += sum(_has_agg(o) for o in operands)
    # HAVING is passed unsliced: its 'and'/'or' strings pass unit[0] != 0 too, and conditions count their NOT.
    aggs += sum(_negated(u) for u in having) + having_ands + having_ors

    count = int(aggs > 1)
    count += len(select.expressions) > 1
    count += len(where) > 1
    count += len(group_by) > 1
    return count


def main(argv: list[str] | None = None) -> None:
    for sql in (sys.argv[1:] if argv is None else argv):
        print(hardness(sql) or "unparseable", sql, sep="\t")


if __name__ == "__main__":
    main()
