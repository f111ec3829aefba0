"""Schema pruning: keep only the CREATE TABLE statements a question seems to need, so a big schema fits.

The rule, kept simple on purpose so a user can predict it:
1. Words of the question (lower-cased, plural "s" dropped, common words removed) are matched against the words
   of each table's name and column names (split at "_" and camelCase). Words that name a column in most tables
   (id, name) say nothing about which table is meant and are ignored.
2. Every table with a match is kept, plus its neighbours: tables it references by a foreign key or that
   reference it, and tables holding a column named like its one-column primary key (writes.aid -> author.aid),
   since a question about authors and papers needs the table that joins them.
3. No match at all: the whole schema is kept (nothing to go on).
The statements kept are the original text, in the original order.
"""

import re

from sqlft.sql.schema import schema_from_ddl
from sqlft.sql.split import split_statements

STOPWORDS = frozenset("""
a an and any are as at be by did do does each every for from give has have how i in is it its list me
many much more most number of on or per show than that the their them there these this those to total
was were what when where which who whose with all find get return tell ones one same sql table tables
""".split())


def prune_schema(ddl: str, question: str) -> tuple[str, list[str]]:
    """(pruned DDL, kept table names). Text that is not a CREATE TABLE statement is kept as it is."""
    statements = split_statements(ddl)
    schema = schema_from_ddl(ddl, dialect="duckdb") or schema_from_ddl(ddl)
    if len(schema) < 2:
        return ddl, list(schema)
    matched = {t for t, n in match_counts(schema, question).items() if n > 0}
    if not matched:
        return ddl, list(schema)
    kept = set(matched)
    for table in matched:
        kept |= neighbours(schema, table)
    parts = []
    for text in statements:
        names = list(schema_from_ddl(text, dialect="duckdb") or schema_from_ddl(text))
        if not names or any(n in kept for n in names):
            parts.append(text)
    return "\n".join(parts), [t for t in schema if t in kept]


def words(text: str) -> set[str]:
    """camelCase and snake_case split, lower-cased, plural 's' dropped: 'CityNames' -> {'city', 'name'}."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    return {_singular(w) for w in re.findall(r"[a-z]+|[0-9]+", text.lower())}


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def match_counts(schema: dict, question: str) -> dict[str, int]:
    """Per table: how many distinct question words its name (counted twice) and columns contain."""
    asked = words(question) - STOPWORDS
    column_words = {t: set().union(*(words(c) for c in info["columns"])) for t, info in schema.items()}
    # A word in the columns of more than half the tables (id, name) does not point at any of them.
    common = {w for w in asked if sum(w in cw for cw in column_words.values()) > len(schema) / 2}
    asked -= common
    return {t: 2 * len(asked & words(t)) + len(asked & column_words[t]) for t in schema}


def neighbours(schema: dict, table: str) -> set[str]:
    """Tables one join away from `table`: by a declared foreign key, or by a column named like its key."""
    found = set()
    for fk in schema[table]["foreign_keys"]:
        found.add(fk["ref_table"])
    for other, info in schema.items():
        if any(fk["ref_table"] == table for fk in info["foreign_keys"]):
            found.add(other)
    key = _join_key(schema, table)
    for other, info in schema.items():
        columns = {c.lower() for c in info["columns"]}
        other_key = _join_key(schema, other)
        if (key and key in columns) or (other_key and other_key in {c.lower() for c in schema[table]["columns"]}):
            found.add(other)
    found.discard(table)
    return found


def _join_key(schema: dict, table: str) -> str | None:
    """A one-column primary key other tables may hold to join this one; "id" is everyone's and links nothing."""
    key = schema[table]["primary_key"]
    return key[0].lower() if len(key) == 1 and key[0].lower() != "id" else None
