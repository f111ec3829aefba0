"""Server settings: ONE definition that `sqlft serve` flags, SQLFT_* environment variables and tests all fill.

    Settings(backend="fake", demo_databases=False, database=["restaurants"])   # in Python (tests)
    Settings.from_cli(["runs/smollm2-135m-lora-demo/merged", "--port", "8080", "--api-key", "KEY"])  # `sqlft serve`
    SQLFT_API_KEY=KEY sqlft serve                                                  # any field from the environment

pydantic-settings builds the flags from the fields: `max_rows` is `--max-rows`, a bool that defaults to True
is `--no-NAME`, a list is a repeatable flag. Defaults are safe for a laptop: loopback only, bounded
concurrency, rows, bytes, memory and time.
"""

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, CliPositionalArg, CliSuppress, SettingsConfigDict

from sqlft.sql.database import DEFOG_DATABASES as DEMO_DATABASES  # the defog-data databases, listed once
from sqlft.config import EMBEDDED_MODEL


def _seconds(name: str, default: float, help: str):  # noqa: A002 - the flag's help text
    """A float field whose flag drops the _s: request_timeout_s is --request-timeout (as documented)."""
    return Field(default, gt=0, validation_alias=AliasChoices(name, f"{name}_s"), description=help)


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SQLFT_", extra="forbid", populate_by_name=True, validate_default=True,
        cli_prog_name="sqlft serve", cli_kebab_case=True, cli_implicit_flags="toggle", cli_hide_none_type=True,
        cli_exit_on_error=True,
    )

    # ---------------------------------------------------------------------------------- model
    model: CliPositionalArg[str | None] = Field(
        None, description=f"merged folder, training run or base model (local backend; default {EMBEDDED_MODEL}); "
        "for --backend openai: an optional local folder giving the tokenizer and template")
    template: str | None = Field(None, description="prompt template (default: the one the model was trained with)")
    backend: Literal["local", "openai", "fake"] = Field(
        "local", description="local: the model in this process; openai: a vLLM/OpenAI-compatible server; "
        "fake: canned SQL, no model (tests, load tests, UI work)")
    openai_url: str = Field("http://127.0.0.1:8000/v1", description="openai backend: base URL with /v1")
    model_name: str = Field("sqlft", description="openai backend: the served model name")
    openai_api_key: CliSuppress[str | None] = Field(None, description="key sent to the remote server (env only)")
    torch_threads: int = Field(0, ge=0, validation_alias=AliasChoices("threads", "torch_threads"),
                               description="local backend: torch CPU threads (0: one per core that other processes leave free, "
                               "chosen again before each batch)")
    # Measured (benchmarks/serve_load.py --compare, benchmarks/RESULTS.md): threads that spin while they wait
    # made /sql 4-13x slower once other processes were busy on the same cores; sleeping threads cost little.
    spin_wait: bool = Field(False, description="local backend: let torch's OpenMP threads spin while they wait "
                            "(the library's default; a little faster on cores nobody else uses, several times "
                            "slower when other processes are busy on them). Default: OMP_WAIT_POLICY=PASSIVE, "
                            "unless the environment sets OMP_WAIT_POLICY")

    # ---------------------------------------------------------------------------------- listening
    host: str = Field("127.0.0.1", description="0.0.0.0 to listen on every interface")
    port: int = Field(8000, ge=0, le=65535)
    api_key: str | None = Field(None, description="key clients must send (X-API-Key or Bearer) on every route "
                                "but /healthz; also env SQLFT_API_KEY")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    data_dir: str = Field("sqlft-data", description="folder for the page's history (history.sqlite, last 200 "
                          "answers per API key) and answers marked right or wrong (feedback/up.jsonl: training "
                          "records for `sqlft train data.train=...`; feedback/down.jsonl)")

    # ---------------------------------------------------------------------------------- databases
    database: list[str] = Field([], description="register a database NAME=SOURCE (DuckDB/SQLite file, "
                                "PostgreSQL dump, defog name, or a PostgreSQL URL postgresql://USER@HOST:PORT/DB "
                                "whose password is in PGPASSWORD, ~/.pgpass or a service file); repeatable")
    databases: str | dict[str, str] | None = Field(
        None, description="YAML file with a `databases: {name: source}` mapping (in Python: the mapping)")
    demo_databases: bool = Field(True, description="register the defog-data demo databases "
                                 f"({', '.join(DEMO_DATABASES)})")
    dialect: Literal["sqlite", "duckdb", "postgres", "mysql", "bigquery", "snowflake", "tsql", "spark"] | None = \
        Field(None, description="the SQL dialect the model writes (default: the one its training data was written "
              "in, data.sql_dialect of the run; a base model: each database engine's own). SQL is transpiled "
              "from it to the engine's dialect")
    pool_size: int = Field(4, ge=1, description="connections per PostgreSQL database; when every one is busy for "
                           "--pool-wait seconds the answer is 429")
    pool_wait_s: float = _seconds("pool_wait", 1.0, "seconds a query waits for a PostgreSQL connection, else 429")
    allow_privileged_role: bool = Field(False, description="serve a PostgreSQL database whose role is superuser, "
                                        "holds pg_read_server_files/pg_write_server_files/pg_execute_server_program/"
                                        "pg_signal_backend or may write to a table (refused by default; a warning "
                                        "is printed at every start)")
    allow_fake_on_network: bool = Field(False, description="let --backend fake listen on a non-loopback --host "
                                        "(its canned SQL is for tests and load tests, not for users)")

    # ---------------------------------------------------------------------------------- bounds
    max_concurrency: int = Field(16, ge=1, description="/sql + /execute requests in flight; more get 429 at once")
    request_timeout_s: float = _seconds("request_timeout", 60.0, "seconds per request (queue + generation + "
                                        "execution), else 504")
    execute_timeout_s: float = _seconds("execute_timeout", 5.0, "seconds per SQL execution")
    header_timeout_s: float = _seconds("header_timeout", 10.0, "seconds a client may take to send the request "
                                       "line and headers; slower connections are closed")
    body_timeout_s: float = _seconds("body_timeout", 30.0, "seconds a client may take to send the body, else 408")
    max_rows: int = Field(1000, ge=1, description="most rows a request may get (and the default)")
    max_result_bytes: int = Field(16_000_000, ge=1000, description="most bytes of values in one result; a larger "
                                  "result is refused while it is fetched")
    memory_limit: str = Field("1GB", description="memory of one SQL execution (DuckDB memory_limit, and the cap "
                              "of the process that runs it)")
    max_new_tokens: int = Field(128, ge=1, description="answer budget in tokens, upper bound for requests")
    max_body_bytes: int = Field(1_000_000, ge=1, description="request bodies above this are refused (413) while "
                                "they are read")
    execute_workers: int = Field(4, ge=1, description="SQL executions at once (their own pool: pruning and "
                                 "generation cannot starve them)")
    prune_workers: int = Field(2, ge=1, description="schema prunings at once (their own pool)")

    # ---------------------------------------------------------------------------------- batching
    max_batch: int = Field(8, ge=1, description="prompts per generate call (micro-batching)")
    max_wait_ms: float = Field(20.0, ge=0, description="how long the first prompt of a batch waits for others")
    batching: bool = Field(True, description="micro-batching (--no-batching: one prompt per generate call)")

    @model_validator(mode="after")
    def _default_model(self) -> "Settings":
        if self.model is None:
            self.model = "" if self.backend == "openai" else EMBEDDED_MODEL
        return self

    @model_validator(mode="after")
    def _safe_listening(self) -> "Settings":
        if self.api_key is not None and not self.api_key.strip():
            # `--api-key "$KEY"` with KEY unset would otherwise turn authentication off without a word.
            raise ValueError("--api-key is empty (an unset shell variable?): give the key, or leave the flag (and "
                             "SQLFT_API_KEY) out to serve without one")
        if self.backend == "fake" and not self.allow_fake_on_network and not is_loopback(self.host):
            raise ValueError(f"--backend fake answers canned SQL, not a model: it listens on loopback only, not "
                             f"--host {self.host}. Pass --allow-fake-on-network for a load test across machines.")
        return self

    @classmethod
    def from_cli(cls, argv: list[str] | None = None) -> "Settings":
        """Flags (argv; None: sys.argv) over SQLFT_* environment variables over defaults."""
        import sys
        return cls(_cli_parse_args=sys.argv[1:] if argv is None else argv)

    def apply_wait_policy(self) -> None:
        """Set OpenMP's wait policy (see spin_wait) for the model this process will load: before torch is
        imported, since OpenMP reads it once, when it loads."""
        import os
        if self.backend == "local" and not self.spin_wait:
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    def sources(self) -> dict[str, str]:
        """name -> database source: the demo ones, then --databases FILE (or mapping), then each --database."""
        from serve.registry import parse_database_flag, read_databases_file

        found = {name: name for name in DEMO_DATABASES} if self.demo_databases else {}
        if isinstance(self.databases, dict):
            found.update(self.databases)
        elif self.databases:
            found.update(read_databases_file(Path(self.databases)))
        for flag in self.database:
            name, source = parse_database_flag(flag)
            if not name or not source:
                raise ValueError(f"--database {flag!r}: expected NAME=SOURCE")
            found[name] = source
        return found


class MCPSettings(Settings):
    """sqlft mcp: the registered databases as MCP tools (list_databases, describe_schema, question_to_sql,
    execute_sql) over stdio or streamable HTTP. The flags are `sqlft serve`'s, plus --transport."""
    model_config = SettingsConfigDict(cli_prog_name="sqlft mcp")

    transport: Literal["stdio", "http"] = Field(
        "stdio", description="stdio: the MCP client starts this process and talks over stdin/stdout; http: "
        "streamable HTTP on http://HOST:PORT/mcp (send --api-key as X-API-Key or Bearer)")
