"""Reading the SQL back out of a model's reply: the other half of the prompt format (the templates' stop markers
end a reply; fences, prose and several statements are cut away). sqlglot decides what parses."""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel
from sqlglot.tokens import TokenType

from sqlft.prompts.templates import TEMPLATES
from sqlft.sql.split import read_tokens


# Text after any of these belongs to the next turn or to nothing: every template's stop markers, and the end
# markers of models whose output may be scored without one of sqlft's templates.
_END_MARKERS = tuple(dict.fromkeys([stop for t in TEMPLATES.values() for stop in t.stops] + [
    "<|end_of_text|>", "<|endoftext|>", "<|end|>", "\n### ", "\nQuestion:"]))
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)(?:```|$)", re.DOTALL)
# SELECT / WITH may start mid-sentence ("The answer is SELECT ..."); other statements only at a line start,
# optionally after a "SQL:"-style prefix, so prose words like "update" or "from" do not start a candidate.
_START_ANYWHERE = re.compile(r"\b(SELECT|WITH)\b", re.IGNORECASE)
_START_OF_LINE = re.compile(
    r"(?:^|\n|:|`)[ \t]*((?:INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|REPLACE|PRAGMA|ATTACH|DETACH|COPY|EXPORT"
    r"|INSTALL|LOAD|SET|CALL|CHECKPOINT|VALUES|FROM|EXPLAIN|DESCRIBE|SHOW|SUMMARIZE|PIVOT|VACUUM)\b)",
    re.IGNORECASE,
)
# The tokens a statement's end is found among: SQLite's quote ', " and ` as before sqlglot's tokenizer took this
# over (a reply's own dialect may not know ` and then split inside `a;b`), plus /* */ comments and [names]. Words
# such as EXPLAIN do not make the rest of a line one string token here: prose starts with them too.
_TOKENS_DIALECT = "sqlite"
_PROSE_LINE = re.compile(r"^\s*(?:this|the|here|note|explanation|it|which|in\s+this|i|we)\b", re.IGNORECASE)


def extract_sql(text: str, dialect: str = "duckdb") -> str:
    """The SQL a model wrote, from whatever it wrote; "" if there is none.

    Handles ```sql fences (closed or cut off), prose before and after, "SQL:"-style prefixes, template end
    markers and several statements (the first complete one is kept, without its ';'). When no candidate
    parses, the first candidate is returned as is: the model wrote broken SQL and should be scored for it.
    """
    text = _cut_at_end_marker(text)
    for lang, body in _FENCE.findall(text):
        if lang.lower() in ("", "sql", "sqlite", "duckdb", "postgresql", "postgres", "mysql", "tsql") and body.strip():
            found = _first_statement(body, dialect)
            if found:
                return found
    return _first_statement(text, dialect)


def _cut_at_end_marker(text: str) -> str:
    cut = len(text)
    for marker in _END_MARKERS:
        i = text.find(marker)
        if 0 < i < cut:
            cut = i
    # A ChatML header left at the start ("<|im_start|>assistant\n") is not part of the answer.
    return re.sub(r"^\s*<\|im_start\|>\w*\n?", "", text[:cut])


def _first_statement(text: str, dialect: str) -> str:
    strong = {m.start(1) for m in _START_OF_LINE.finditer(text)}
    strong |= {m.start(1) for m in _START_ANYWHERE.finditer(text) if m.group(1).isupper() or _at_line_start(text, m.start(1))}
    weak = {m.start(1) for m in _START_ANYWHERE.finditer(text)} - strong  # "select the rows ..." in prose
    fallback = ""
    for start in sorted(strong) + sorted(weak):
        rest = text[start:]
        if text[:start].endswith("`") and not text[:start].endswith("``"):
            rest = rest.split("`", 1)[0]  # inline code: "Run `SELECT a FROM t` to ..."
        candidate = _carve(rest)
        if not candidate:
            continue
        if start in strong:
            fallback = fallback or candidate
        sql = _trim_prose(candidate, dialect)
        if sql:
            return sql
    return fallback


def _at_line_start(text: str, i: int) -> bool:
    before = text[:i].rstrip(" \t")
    return not before or before[-1] in "\n:`."  # "." : a sentence starting with the keyword


def _carve(text: str) -> str:
    """The statement starting at text[0]: up to the first ';' or sentence-ending '.' outside quotes, a fence,
    a blank line or a line of prose."""
    text = text[: _statement_end(text)]
    text = text.split("```", 1)[0]
    text = re.split(r"\n[ \t]*\n", text, maxsplit=1)[0]
    lines = text.split("\n")
    for i, line in enumerate(lines[1:], start=1):
        if _PROSE_LINE.match(line):
            lines = lines[:i]
            break
    return "\n".join(lines).strip().rstrip("`").strip()


def _statement_end(text: str) -> int:
    """Index of the first ';', or '.' followed by a space or the end, outside quotes and comments: the first
    SEMICOLON or sentence-ending dot among sqlglot's tokens (sqlft.sql.split), which know quotes and comments.

    A '.' before whitespace never occurs in SQL outside quotes ("t.a" has none, "1." is rare), but ends a
    sentence: "... LIMIT 1. This returns ...". Prose after the SQL may hold an unbalanced quote ("isn't"): the
    tokenizer stops there and, as an open quote runs to the end, nothing after it ends the statement.
    """
    for token in read_tokens(text, _TOKENS_DIALECT, commands=False)[0]:
        if token.token_type == TokenType.SEMICOLON:
            return token.start
        if token.text.endswith(".") and token.token_type in (TokenType.DOT, TokenType.NUMBER) and (
                token.end + 1 == len(text) or text[token.end + 1].isspace()):
            return token.end  # "LIMIT 1. The": the dot is the end of the number token "1."
    return len(text)


def _parses(sql: str, dialect: str) -> bool:
    try:
        trees = sqlglot.parse(sql, read=dialect, error_level=ErrorLevel.RAISE)
    except (sqlglot.errors.SqlglotError, RecursionError):  # RecursionError: nested hundreds of levels deep
        return False
    # sqlglot falls back to an opaque Command for statements it does not know: not evidence of SQL.
    return len(trees) == 1 and trees[0] is not None and not isinstance(trees[0], exp.Command)


def _trim_prose(candidate: str, dialect: str) -> str:
    """The candidate if it parses, else its longest prefix ending before a Title-case word ("... FROM t The
    answer is") that parses; "" if none does.

    Only a prose-looking tail is ever cut: a generation cut off mid-query ("SELECT a FROM t WHERE") must stay
    broken rather than become a different, valid query.
    """
    if _parses(candidate, dialect):
        return candidate
    words = candidate.split(" ")
    for n in range(len(words) - 1, 1, -1):
        if re.fullmatch(r"[A-Z][a-z]+\W*", words[n]):
            sql = " ".join(words[:n]).rstrip(",: \n")
            if _parses(sql, dialect):
                return sql
    return ""


