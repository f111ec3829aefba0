"""Request and response bodies of the HTTP API (pydantic: validated at the edge, dataclasses inside).

Requests forbid unknown fields (a misspelt `max_row` is an error, not silently ignored), take JSON types
strictly (`"max_rows": true` or `"execute": "yes"` is a 422, not 1 or True) and bound every size, so one
request cannot ask for unbounded memory or time.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_QUESTION_CHARS = 2_000
MAX_SCHEMA_CHARS = 200_000  # ~50k tokens: far past any context; the token budget check gives the real limit
MAX_SQL_CHARS = 20_000
MAX_ROWS_LIMIT = 10_000  # hard cap; the server's --max-rows may be lower
MAX_NEW_TOKENS_LIMIT = 4_096
MAX_CANDIDATES = 8  # answers voted on per question: each one is a generation and an execution
Dialect = Literal["sqlite", "duckdb", "postgres", "mysql", "bigquery", "snowflake", "tsql", "spark"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


def one_schema_source(db_schema: str | None, database: str | None) -> None:
    """The rule every body that names a schema follows (/sql, /history, /feedback): pasted DDL or a registered
    database, exactly one of them."""
    if (db_schema is None) == (database is None):
        raise ValueError("give exactly one of `database` (a registered name) or `db_schema` (CREATE TABLE text)")


class SQLRequest(Request):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, examples=["How many restaurants are there?"])
    db_schema: str | None = Field(None, min_length=1, max_length=MAX_SCHEMA_CHARS,
                                  description="CREATE TABLE text; give this or `database`")
    database: str | None = Field(None, min_length=1, max_length=200, examples=["restaurants"],
                                 description="a registered database (GET /databases); give this or `db_schema`")
    execute: bool = Field(False, description="also run the SQL on `database` and return the rows")
    max_rows: int | None = Field(None, ge=1, le=MAX_ROWS_LIMIT, description="rows returned (default: server's)")
    max_new_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS_LIMIT,
                                       description="answer budget in tokens (default and upper bound: server's)")
    prune_schema: bool = Field(False, description="send the model only the tables the question seems to need")
    candidates: int = Field(1, ge=1, le=MAX_CANDIDATES, description="with vote: answers to sample (the greedy one "
                            "and candidates - 1 more)")
    vote: bool = Field(False, description="run every candidate on `database` and answer with the SQL whose result "
                       "most of them give (the greedy answer on a tie)")
    repair: bool = Field(False, description="an answer that does not run on `database` is rewritten to the table "
                         "and column names its schema has (sqlft.sql.repair); `repaired_from` then gives it as written")

    @model_validator(mode="after")
    def consistent(self) -> "SQLRequest":
        one_schema_source(self.db_schema, self.database)
        if self.execute and self.database is None:
            raise ValueError("`execute` needs `database`: pasted DDL has no rows to run the SQL on")
        if self.vote and (self.database is None or self.candidates < 2):
            raise ValueError("`vote` needs `database` (the candidates are run on it) and `candidates` of 2 or more")
        if self.repair and self.database is None:
            raise ValueError("`repair` needs `database`: an answer is repaired only when it does not run there")
        if self.candidates > 1 and not self.vote:
            raise ValueError("`candidates` above 1 is for voting: also send `vote: true`")
        return self


class ExecuteRequest(Request):
    database: str = Field(min_length=1, max_length=200, examples=["restaurants"])
    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS, examples=["SELECT COUNT(*) FROM restaurant"])
    max_rows: int | None = Field(None, ge=1, le=MAX_ROWS_LIMIT)
    dialect: Dialect | None = Field(None, description="the dialect `sql` is written in, transpiled to the "
                                    "database engine's (default: the model's, as for /sql)")


class ExecuteResponse(BaseModel):
    status: str = Field(description="ok | error | timeout | rejected (SQL that may not run)")
    columns: list[str] = []
    rows: list[list[Any]] = []
    truncated: bool = False
    error: str = ""
    elapsed_s: float = 0.0
    executed_sql: str | None = Field(None, description="the SQL as the database ran it, when transpiling from the "
                                     "model's dialect to the engine's changed it")


class Timings(BaseModel):
    generate_s: float  # queue wait + generation
    execute_s: float = 0.0
    total_s: float


class VoteInfo(BaseModel):
    candidates: int = Field(description="answers voted on (the greedy one first)")
    ran: int = Field(description="answers that ran on the database")
    votes: int = Field(description="answers that gave the chosen result")
    changed: bool = Field(description="the answer is not the greedy one's SQL")
    empty: int = Field(0, description="answers that ran but returned no rows: they do not vote while another "
                       "answer returns rows")
    greedy_sql: str = Field(description="the greedy answer's SQL")


class SQLResponse(BaseModel):
    sql: str = Field(description="the SQL taken from the model's text ('' if it wrote none)")
    valid: bool = Field(description="sqlglot parses it as one statement of the model's dialect")
    parse_error: str = ""
    raw: str = Field(description="the model's text as generated")
    prompt_tokens: int
    new_tokens: int
    batch_size: int = Field(description="prompts generated together with this one")
    kept_tables: list[str] | None = Field(None, description="with prune_schema: the tables the model was shown")
    timings: Timings
    result: ExecuteResponse | None = Field(None, description="with execute: the rows, or why there are none")
    executed_sql: str | None = Field(None, description="with a database: the SQL as its engine runs it, when "
                                     "transpiling from the model's dialect changed it")
    dialect: str | None = Field(None, description="the model's SQL dialect (its training data's), if known")
    engine: str | None = Field(None, description="with a database: sqlite | duckdb | postgres")
    vote: VoteInfo | None = Field(None, description="with vote: how the answer was chosen")
    repaired_from: str | None = Field(None, description="with repair: the answer's SQL as the model wrote it, when "
                                      "it did not run and was rewritten to the schema's names")


class DatabaseInfo(BaseModel):
    name: str
    tables: list[str]
    db_schema: str  # CREATE TABLE text, as the model sees it
    engine: str = Field(description="where its SQL runs: sqlite | duckdb | postgres (the rule `sqlft eval` follows)")


class ErrorDetail(BaseModel):
    code: str
    message: str
    detail: Any = None


class ErrorBody(BaseModel):
    """Every failure has this body, whatever its status (401, 404, 413, 422, 429, 503, 504, ...)."""
    error: ErrorDetail
