"""Identifier-constrained decoding: where the SQL so far says a table or a column must come next, only names
that exist in the schema may be written (a lexical form of PICARD, Scholak et al. 2021).

Two places are certain enough to constrain without a full incremental parser:
  - after FROM / JOIN: a table of the schema (or a subquery's "(");
  - after a qualifier and a dot (T1.  singer.): a column of that table, of the table an alias names
    ("singer AS T1"), or of any table when the alias is not defined yet (SELECT T1.name ... FROM ...).
Elsewhere the model writes freely. At a constrained step the highest-scoring tokens (top_k) are checked in
order and those that would leave the name invalid are masked; when none of them is valid the step is left alone
rather than forcing an unlikely token.
"""

import re

import torch

from eval.synth import schema_from_ddl

_WORD = re.compile(r"\w+")
_FROM_BEFORE = re.compile(r"\b(?:FROM|JOIN)\s+$", re.IGNORECASE)
_DOT_BEFORE = re.compile(r"\b(\w+)\.$")
_ALIAS = re.compile(r"\b(\w+)\s+AS\s+(\w+)", re.IGNORECASE)


class IdentifierConstraint:
    """A processor for sqlft.decoding.decode: masks, at each step, the likely tokens that would write a name the
    schema of that row does not have."""

    def __init__(self, tokenizer, schemas: list[str], top_k: int = 8, greedy: bool = True):
        """schemas: the schema text (DDL) of each row of the batch."""
        self.tokenizer, self.top_k, self.greedy = tokenizer, top_k, greedy
        self.names = [{t.lower(): {c.lower() for c in info["columns"]} for t, info in _tables(s).items()}
                      for s in schemas]
        self.corrected = 0  # steps where the model's first choice was not a valid name (for reports)

    def __call__(self, rows: list[int], generated: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for b, row in enumerate(rows):
            tables = self.names[row]
            if not tables:
                continue
            text = self.tokenizer.decode(generated[b], skip_special_tokens=True)
            candidates = torch.topk(scores[b], self.top_k).indices.tolist()
            if self.greedy and valid_continuation(text, self.tokenizer.decode(candidates[0]), tables):
                continue  # the fast path: the model's own choice is fine
            valid = [t for t in candidates if valid_continuation(text, self.tokenizer.decode(t), tables)]
            if not valid:
                continue  # none of the likely tokens fits: leave the step alone rather than force a bad one
            self.corrected += valid[0] != candidates[0]
            keep = scores[b, valid].clone()
            scores[b] = float("-inf")
            scores[b, valid] = keep
        return scores


def _tables(ddl: str) -> dict:
    """The schema's tables and columns, read as serve's pruning reads them (DuckDB DDL first, then SQLite's)."""
    return schema_from_ddl(ddl, dialect="duckdb") or schema_from_ddl(ddl)


def valid_continuation(text: str, token: str, tables: dict[str, set[str]]) -> bool:
    """Does appending `token` to `text` keep every table or column name that the token writes valid? A name that
    reaches the end of the text may still be growing, so it needs only be the start of an allowed name."""
    new = text + token
    aliases = None
    for word in _WORD.finditer(new):
        if word.end() <= len(text):
            continue  # written before this token
        before = new[:word.start()]
        if _FROM_BEFORE.search(before):
            allowed = set(tables)
        elif (qualified := _DOT_BEFORE.search(before)) and not qualified.group(1).isdigit():
            qualifier = qualified.group(1).lower()
            if aliases is None:
                aliases = {alias.lower(): table.lower() for table, alias in _ALIAS.findall(new)}
            table = qualifier if qualifier in tables else aliases.get(qualifier)
            # an alias not defined yet (SELECT T1.name ... FROM) allows the columns of every table
            allowed = tables[table] if table in tables else set().union(*tables.values())
        else:
            continue
        name = word.group(0).lower()
        growing = word.end() == len(new)
        if not (any(a.startswith(name) for a in allowed) if growing else name in allowed):
            return False
    return True
