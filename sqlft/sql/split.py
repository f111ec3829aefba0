"""The one SQL statement splitter, on sqlglot's tokenizer: a ';' ends a statement only where the dialect's tokenizer
reads a SEMICOLON token, so one inside a string, a quoted name, a comment or a dollar-quoted body ends nothing.
Tokens carry their offsets, so each statement is cut from the script exactly as it was written.

    scan(script, dialect)              -> statements (offsets, tokens) and whether the tokenizer read it all
    split_statements(script, dialect)  -> ["CREATE TABLE a (x INT);", ...]  each as written, with its ';'
    first_statement(script, dialect)   -> (first statement without its ';', what follows that ';')
    read_tokens(script, dialect)       -> the tokens up to where the tokenizer stopped

Text the tokenizer cannot read (an unterminated string or comment: model output, a broken file) stops it; what it
read before is kept, and the unreadable rest belongs to the last statement, as in any SQL lexer an unterminated
quote runs to the end. Callers that want something else for such text say so where they call.
"""

import functools
from dataclasses import dataclass, field

from sqlglot.dialects.dialect import Dialect, DialectType
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType


@functools.lru_cache(maxsize=None)
def _without_commands(tokenizer_class: type) -> type:
    return type(tokenizer_class.__name__, (tokenizer_class,), {"COMMANDS": set()})


@dataclass(frozen=True)
class Statement:
    script: str = field(repr=False)
    start: int  # just after the previous statement's ';' (0 for the first): leading space and comments are its own
    end: int  # its ';' (len(script) for a last statement without one)
    tokens: list[Token]  # its tokens, without the ';': none for a statement of only comments or unreadable text

    @property
    def text(self) -> str:
        """The statement as written, without its ';' (leading and trailing space and comments included)."""
        return self.script[self.start:self.end]

    @property
    def terminated(self) -> bool:
        return self.end < len(self.script)


def read_tokens(script: str, dialect: DialectType = None, *, commands: bool = True) -> tuple[list[Token], bool]:
    """(tokens, complete): the dialect's tokens of `script`; complete is False when the tokenizer stopped at text it
    cannot read, and the tokens are then those before it. commands=False: the text after a command word (EXPLAIN,
    SHOW, ...) is tokens too, not one string token (which is all a parser needs and is the dialect's way)."""
    dialect = Dialect.get_or_raise(dialect)
    tokenizer_class = dialect.tokenizer_class if commands else _without_commands(dialect.tokenizer_class)
    tokenizer = tokenizer_class(dialect=dialect)
    try:
        return tokenizer.tokenize(script), True
    except TokenError:
        return list(tokenizer.tokens), False


def scan(script: str, dialect: DialectType = None) -> tuple[list[Statement], bool]:
    """(statements, complete): every statement of `script` in order, empty ones (';;') and a trailing one of only
    space included; complete as in read_tokens (when False, the unreadable rest is inside the last statement)."""
    tokens, complete = read_tokens(script, dialect)
    statements, start, own = [], 0, []
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            statements.append(Statement(script, start, token.start, own))
            start, own = token.end + 1, []
        else:
            own.append(token)
    statements.append(Statement(script, start, len(script), own))
    return statements, complete


def split_statements(script: str, dialect: DialectType = None) -> list[str]:
    """The statements of a script as written, each stripped and with its ';' (the last one has it only if written);
    empty statements are left out. Text the tokenizer cannot read is split at every ';' instead, each part given a
    ';': one broken statement (an unterminated quote) does not swallow the statements after it."""
    statements, complete = scan(script, dialect)
    if not complete:
        return [part.strip() + ";" for part in script.split(";") if part.strip()]
    parts = [s.text.strip() + (";" if s.terminated else "") for s in statements]
    return [p for p in parts if p.strip(" \n\t;")]


def first_statement(script: str, dialect: DialectType = None) -> tuple[str, str]:
    """(the first statement without its ';', everything after that ';'); (script, "") when no ';' ends one. A ';'
    after text the tokenizer cannot read is not seen: the unterminated quote or comment runs to the end."""
    first = scan(script, dialect)[0][0]
    return first.text, script[first.end + 1:]
