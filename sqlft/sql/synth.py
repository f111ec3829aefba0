"""Synthesized DuckDB databases for schema-only records (know_sql, spider_train): DDL + gold SQL -> data.

Rows are drawn so that the gold queries' predicates and joins hit, as Spider's distilled test suites do
(Zhong et al., 2020): literals from the gold SQL are planted in the columns they are compared to, keys join.
    paths = synthesize(ddl, gold_sqls)            # instances x DuckDB files, cached
The schema comes from sqlft.sql.schema (parse_tables), what each gold query asks of the data from sqlft.sql.literals;
sqlft.sql.gold_check checks a gold query on the instances made here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import re
import uuid
from pathlib import Path

import duckdb

from sqlft.sql.literals import ColKey, GoldFacts, Predicate, harvest
from sqlft.core.paths import cache_dir
from sqlft.sql.schema import Column, Table, create_table_sql, parse_tables, quote_identifier

# Bump when the generated data changes for the same inputs: it is part of the cache key.
SYNTH_VERSION = 1

NULL_SHARES = (0.03, 0.08, 0.12)  # per instance, so NULL handling differs between instances
PLANTED_SHARE = 0.5  # share of a table's rows that carry one gold query's literals and join keys
LITERAL_BIAS = 0.3  # chance that an ordinary cell takes a (near) literal of its column's class
FK_HIT = 0.85  # chance that a key column takes a value of the referenced primary key (else may dangle)

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
                    con.execute(f"INSERT INTO {quote_identifier(table.name)} SELECT {casts} FROM (VALUES {marks}) v({names})",
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
