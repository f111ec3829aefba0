"""Schema repair: an answer that names a table or column its database does not have, rewritten to names the schema
has. Applied only to answers that do not run (sqlft.scoring.answer checks, through its caller's executor), so an answer that runs is never changed.

Why: on Spider's held-out databases most wrong answers of the fine-tuned 135M model do not run, nearly all on a
name that is not in the schema (`FROM apartment_booking` for Apartment_Bookings, `SELECT Name FROM party` where Name
is a column of host). Repairing them turned 34 of 200 greedy answers right into 49 (17.0% -> 24.5%; one run,
benchmarks/RESULTS.md "Schema repair"), and never turned a right answer wrong (a repaired answer ran nowhere before).

Rules, in order, in each SELECT of the statement (sqlglot's scopes):
1. a table the schema lacks -> the closest table name: the same name up to case and a plural "s", else the one
   table whose name holds all its words, else difflib's closest at ratio >= 0.6;
2. a one-table SELECT that names columns its table lacks -> the schema table that has all of them (the one whose
   name is closest to the written one when several do);
3. a join condition `A.x = B.y` naming a column one side lacks -> the foreign key between the two tables (or the
   one *_id column they share);
4. a column its table lacks -> the one other table of the SELECT that has it, else the closest column (ratio 0.7).
A double-quoted name that is no column is left alone: SQLite reads it as a string ("Spring"). No rule invents a
join or a table that is not in the schema; a name no rule can place stays, and the answer fails as it did.

    names = schema_names(ddl, "sqlite")
    repair_sql("SELECT count(*) FROM apartment_booking", names, "sqlite")  # SELECT COUNT(*) FROM apartment_bookings
    repair_answer(sql, ddl, "sqlite", runs=lambda sql: ...)  # repaired only when it does not run
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Callable

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from sqlft.sql.schema import parse_tables

TABLE_CUTOFF = 0.6  # difflib ratio for a table name (rule 1)
COLUMN_CUTOFF = 0.7  # difflib ratio for a column name (rule 4): columns are many, so a closer match is wanted


@dataclass(frozen=True)
class SchemaNames:
    columns: dict[str, tuple[str, ...]]  # lower-cased table name -> its columns, as declared
    tables: dict[str, str]  # lower-cased table name -> the name as declared
    links: dict[tuple[str, str], tuple[str, str]]  # (table a, table b) lower-cased -> (column of a, column of b)


@functools.lru_cache(maxsize=256)  # an eval set asks for each database's schema once per answer
def schema_names(ddl: str, dialect: str = "sqlite") -> SchemaNames:
    tables = parse_tables(ddl, dialect)
    links: dict[tuple[str, str], tuple[str, str]] = {}
    for table in tables:
        for cols, target, ref_cols in table.foreign_keys:
            if len(cols) == 1:
                links.setdefault((table.name.lower(), target.lower()), (cols[0], ref_cols[0]))
                links.setdefault((target.lower(), table.name.lower()), (ref_cols[0], cols[0]))
    return SchemaNames({t.name.lower(): tuple(c.name for c in t.columns) for t in tables},
                       {t.name.lower(): t.name for t in tables}, links)


def repair_answer(sql: str, ddl: str, dialect: str, runs: Callable[[str], bool]) -> str:
    """An answer as eval and serve give it: `sql` itself when runs(sql) says it runs on its database or no rule
    applies, else the repaired SQL. runs is called only when a rule would change something."""
    repaired = repair_sql(sql, schema_names(ddl, dialect), dialect)
    return sql if repaired == sql or runs(sql) else repaired


def repair_sql(sql: str, names: SchemaNames, dialect: str) -> str:
    """The SQL with the names rules 1-4 place; the text unchanged when none applies or it does not parse."""
    if not names.columns or not sql.strip():
        return sql
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
        changed = _repair_tables(tree, names)
        for scope in traverse_scope(tree):
            changed |= _Scope.of(scope, names).repair()
        return tree.sql(dialect=dialect) if changed else sql
    except (sqlglot.errors.SqlglotError, ValueError, KeyError, AttributeError, RecursionError):
        return sql  # what sqlglot cannot read or scope cannot be repaired: it fails as it was written


def closest(name: str, options: list[str] | tuple[str, ...], cutoff: float) -> str | None:
    """The option `name` most likely means (see rules 1 and 4), None when none is close enough."""
    by_lower = {option.lower(): option for option in options}
    wanted = name.lower()
    for form in (wanted, wanted + "s", wanted + "es", wanted[:-1] if wanted.endswith("s") else ""):
        if form in by_lower:
            return by_lower[form]
    words = _words(wanted)
    holders = [option for option in by_lower if words and words <= _words(option)]
    if len(holders) == 1:
        return by_lower[holders[0]]
    match = difflib.get_close_matches(wanted, list(by_lower), n=1, cutoff=cutoff)
    return by_lower[match[0]] if match else None


def _words(name: str) -> set[str]:
    return set(name.replace("-", "_").split("_")) - {""}


def _repair_tables(tree: exp.Expression, names: SchemaNames) -> bool:
    """Rule 1."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    changed = False
    for table in tree.find_all(exp.Table):
        name = table.name
        if not name or name.lower() in names.columns or name.lower() in ctes:
            continue
        match = closest(name, list(names.tables.values()), TABLE_CUTOFF)
        if match:
            table.set("this", exp.to_identifier(match))
            changed = True
    return changed


@dataclass
class _Scope:
    """One SELECT: its sources (alias -> table node, or None for a subquery, and the columns it offers)."""
    scope: Scope
    names: SchemaNames
    sources: dict[str, tuple[exp.Table | None, tuple[str, ...]]]
    output_names: set[str]  # the SELECT's own aliases: ORDER BY total may name one

    @classmethod
    def of(cls, scope: Scope, names: SchemaNames) -> _Scope:
        sources: dict[str, tuple[exp.Table | None, tuple[str, ...]]] = {}
        for alias, source in scope.sources.items():
            if isinstance(source, exp.Table):
                columns = names.columns.get(source.name.lower())
                if columns is None:  # a table no rule could place: its columns are unknown, leave the scope
                    return cls(scope, names, {}, set())
                sources[alias] = (source, columns)
            else:
                sources[alias] = (None, tuple(source.expression.named_selects))
        select = scope.expression
        output = {a.alias.lower() for a in select.expressions if isinstance(a, exp.Alias)} \
            if isinstance(select, exp.Select) else set()
        return cls(scope, names, sources, output)

    def has(self, alias: str, column: str) -> bool:
        return alias in self.sources and column.lower() in {c.lower() for c in self.sources[alias][1]}

    def columns(self) -> list[exp.Column]:
        return [c for c in self.scope.columns
                if c.name and c.name != "*" and not (not c.table and c.this.args.get("quoted"))]

    def missing(self, column: exp.Column) -> bool:
        if column.table:
            return column.table in self.sources and not self.has(column.table, column.name)
        return (column.name.lower() not in self.output_names
                and not any(self.has(alias, column.name) for alias in self.sources))

    def repair(self) -> bool:
        if not self.sources:
            return False
        return self._swap_single_table() | self._repair_joins() | self._repair_columns()

    def _swap_single_table(self) -> bool:
        """Rule 2."""
        if len(self.sources) != 1:
            return False
        alias, (node, _) = next(iter(self.sources.items()))
        columns = self.columns()
        wanted = {c.name.lower() for c in columns if c.name.lower() not in self.output_names}
        if node is None or not wanted or not any(self.missing(c) for c in columns):
            return False
        holders = [t for t, cols in self.names.columns.items() if wanted <= {c.lower() for c in cols}]
        if not holders:
            return False
        best = max(holders, key=lambda t: difflib.SequenceMatcher(None, t, node.name.lower()).ratio())
        node.set("this", exp.to_identifier(self.names.tables[best]))
        self.sources[alias] = (node, self.names.columns[best])
        return True

    def _repair_joins(self) -> bool:
        """Rule 3."""
        select = self.scope.expression
        if not isinstance(select, exp.Select):
            return False
        changed = False
        for join in select.args.get("joins") or []:
            on = join.args.get("on")
            for eq in on.find_all(exp.EQ) if on is not None else []:
                left, right = eq.this, eq.expression
                if not (isinstance(left, exp.Column) and isinstance(right, exp.Column) and left.table and right.table
                        and left.table in self.sources and right.table in self.sources
                        and (self.missing(left) or self.missing(right))):
                    continue
                link = self._link(left.table, right.table)
                if link:
                    left.set("this", exp.to_identifier(link[0]))
                    right.set("this", exp.to_identifier(link[1]))
                    changed = True
        return changed

    def _link(self, a: str, b: str) -> tuple[str, str] | None:
        (node_a, cols_a), (node_b, cols_b) = self.sources[a], self.sources[b]
        if node_a is None or node_b is None:
            return None
        link = self.names.links.get((node_a.name.lower(), node_b.name.lower()))
        if link:
            return link
        shared = {c.lower() for c in cols_a} & {c.lower() for c in cols_b}
        shared = {c for c in shared if c.endswith("id")} or shared
        if len(shared) != 1:
            return None
        name = shared.pop()
        return next(c for c in cols_a if c.lower() == name), next(c for c in cols_b if c.lower() == name)

    def _repair_columns(self) -> bool:
        """Rule 4."""
        changed = False
        for column in self.columns():
            if not self.missing(column):
                continue
            holders = [alias for alias in self.sources if self.has(alias, column.name)]
            if column.table and len(holders) == 1:
                places = [(holders[0], column.name)]
            else:  # the closest column: of its own table first
                aliases = [column.table] + [a for a in self.sources if a != column.table] if column.table \
                    else list(self.sources)
                places = [(alias, closest(column.name, self.sources[alias][1], COLUMN_CUTOFF)) for alias in aliases]
            for alias, name in places:
                if name and not self._would_compare_to_itself(column, alias, name):
                    if column.table:
                        column.set("table", exp.to_identifier(alias))
                    column.set("this", exp.to_identifier(name))
                    changed = True
                    break
        return changed

    @staticmethod
    def _would_compare_to_itself(column: exp.Column, alias: str, name: str) -> bool:
        """T1.x = T2.x placed as T2.x = T2.x would join everything to everything: a wrong answer that runs."""
        parent = column.parent
        if not isinstance(parent, exp.EQ):
            return False
        other = parent.expression if parent.this is column else parent.this
        return isinstance(other, exp.Column) and other.table == alias and other.name.lower() == name.lower()
