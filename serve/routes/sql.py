"""POST /sql (question -> SQL, optionally run) and POST /execute (SQL -> rows).

Slow work runs off the event loop on pools of its own (pruning, execution); each piece is tracked by the
request's concurrency slot, so the slot is free again only when that work has stopped. Execution gets the
smaller of --execute-timeout and what is left of --request-timeout: a query stops before its request times out.
"""

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from fastapi import APIRouter

from sqlft.scoring.answer import Answer, AnswerOptions, choose_answer
from sqlft.sql.dialect import parse_sql
from serve.batching import BatcherClosed, MicroBatcher, PromptTooLong, Result
from serve.deps import BatcherDep, DatabasesDep, ReadyDep, SettingsDep, SlotDep
from serve.errors import ApiError
from serve.execution import database_executor, engine_sql, execute_response, run_sql
from serve.pruning import prune_schema
from serve.registry import Database
from serve.schemas import ExecuteRequest, ExecuteResponse, SQLRequest, SQLResponse, Timings, VoteInfo
from serve.settings import Settings
from serve.state import Slot
from sqlft.config import GenerationConfig

log = logging.getLogger("sqlft.serve")
router = APIRouter(tags=["sql"])


@router.post("/sql")
async def sql(body: SQLRequest, state: ReadyDep, batcher: BatcherDep, databases: DatabasesDep,
              settings: SettingsDep, slot: SlotDep) -> SQLResponse:
    """Question + schema (DDL text or a registered database) -> SQL; with `execute`, also the rows; with `vote`,
    the SQL whose result most of `candidates` answers give on the database (sqlft.sql.vote)."""
    deadline = time.monotonic() + settings.request_timeout_s
    database = find_database(databases, body.database) if body.database else None
    max_rows = check_max_rows(body.max_rows, settings)
    max_new_tokens = body.max_new_tokens or settings.max_new_tokens
    if max_new_tokens > settings.max_new_tokens:
        raise ApiError(422, "invalid_request", f"max_new_tokens {max_new_tokens} is over this server's limit of "
                       f"{settings.max_new_tokens}.")

    async def answer() -> SQLResponse:
        start = time.perf_counter()
        db_schema = database.ddl if database else body.db_schema
        kept = None
        if body.prune_schema:  # sqlglot parsing of a big schema takes a while: off the event loop
            db_schema, kept = await run_on(state.prune_pool, slot, prune_schema, db_schema, body.question)
        prompt = batcher.backend.sql_prompt(db_schema, body.question)
        answers = await generate_answers(batcher, prompt, max_new_tokens, body.candidates, kept)
        generated = time.perf_counter()
        done = answers[0]
        raw = done.generation.text
        # The model writes its training data's dialect; unknown (a base model), the database engine's own.
        dialect = state.dialect or (database.engine if database else None)
        chosen = await choose(body, [a.generation.text for a in answers], database, dialect, settings, deadline,
                              state, slot)
        raw, sql = chosen.reply, chosen.sql
        parsed = parse_sql(sql, dialect or "duckdb") if sql else None
        executed = engine_sql(database, sql, dialect) if database and sql else ""
        result = None
        if body.execute:
            if sql:
                result = execute_response(await execute(state.execute_pool, slot, database, executed, max_rows,
                                                        settings, deadline), sql, executed)
            else:
                result = ExecuteResponse(status="error", error="The model wrote no SQL to run.")
        end = time.perf_counter()
        return SQLResponse(
            sql=sql, valid=bool(parsed and parsed.ok),
            parse_error=parsed.error if parsed else "the model wrote no SQL",
            raw=raw, prompt_tokens=done.generation.prompt_tokens,
            new_tokens=sum(a.generation.new_tokens for a in answers),
            batch_size=done.batch_size, kept_tables=kept,
            executed_sql=executed if executed and executed != sql else None, dialect=dialect,
            engine=database.engine if database else None,
            timings=Timings(generate_s=round(generated - start, 4),
                            execute_s=round(end - generated, 4) if body.execute else 0.0,
                            total_s=round(end - start, 4)),
            result=result, vote=vote_info(chosen), repaired_from=chosen.repaired_from)

    return await within_timeout(answer(), settings.request_timeout_s)


async def choose(body: SQLRequest, replies: list[str], database: Database | None, dialect: str | None,
                 settings: Settings, deadline: float, state: Any, slot: Slot) -> Answer:
    """sqlft.scoring.answer over the replies: with `repair`, each answer that does not run on `database` is rewritten
    to the schema's names; with `vote`, the one whose result most answers give wins. Otherwise the greedy answer as
    written."""
    options = AnswerOptions(repair=body.repair, vote=body.vote)
    if not (body.repair or body.vote):  # nothing to run: no trip to the execution pool
        return choose_answer(replies, dialect or "duckdb", "", None, options)

    def time_left() -> float:
        return max(0.1, min(settings.execute_timeout_s, deadline - time.monotonic()))

    execute = database_executor(database, dialect, max_rows=settings.max_rows, time_left=time_left)
    return await run_on(state.execute_pool, slot, choose_answer, replies, dialect or "duckdb", database.ddl, execute,
                        options)


def vote_info(chosen: Answer) -> VoteInfo | None:
    vote = chosen.vote
    if vote is None:
        return None
    return VoteInfo(candidates=vote.candidates, ran=vote.ran, votes=vote.votes, changed=vote.changed,
                    greedy_sql=chosen.written[0], empty=vote.empty)


async def generate_answers(batcher: MicroBatcher, prompt: str, max_new_tokens: int, candidates: int,
                           kept: list[str] | None) -> list[Result]:
    """The greedy answer, then candidates - 1 samples for voting; the backend's failures become API errors."""
    greedy = GenerationConfig(max_new_tokens=max_new_tokens, batch_size=1)
    # Voting: the samples go to the batcher together (one generate call when they fit in a batch).
    sampling = dataclasses.replace(greedy, do_sample=True, temperature=greedy.candidate_temperature)
    try:
        return await asyncio.gather(batcher.generate(prompt, greedy),
                                    *[batcher.generate(prompt, sampling) for _ in range(candidates - 1)])
    except PromptTooLong as e:
        raise context_too_long(e, kept) from None
    except BatcherClosed:
        raise ApiError(503, "shutting_down", "The server is shutting down; retry on another instance.") from None
    except Exception as e:
        log.exception("generation failed")
        raise ApiError(502, "backend_error", f"The model backend failed: {type(e).__name__}: {e}") from None


@router.post("/execute")
async def execute_sql(body: ExecuteRequest, state: ReadyDep, databases: DatabasesDep, settings: SettingsDep,
                      slot: SlotDep) -> ExecuteResponse:
    """Run one SELECT on a registered database in the sandbox (e.g. SQL edited on the page).

    SQL that fails or may not run is a 200 answer with status error | timeout | rejected and the reason."""
    deadline = time.monotonic() + settings.request_timeout_s
    database = find_database(databases, body.database)
    max_rows = check_max_rows(body.max_rows, settings)
    executed = engine_sql(database, body.sql, body.dialect or state.dialect)
    work = execute(state.execute_pool, slot, database, executed, max_rows, settings, deadline)
    return execute_response(await within_timeout(work, settings.request_timeout_s), body.sql, executed)


async def execute(pool: Executor, slot: Slot | None, database: Database, sql: str, max_rows: int,
                  settings: Settings, deadline: float):
    left = deadline - time.monotonic()
    if left <= 0:
        raise_timeout(settings.request_timeout_s)
    return await run_on(pool, slot, run_sql, database, sql, max_rows=max_rows,
                        timeout_s=min(settings.execute_timeout_s, left))


async def run_on(pool: Executor, slot: Slot | None, fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) on `pool`; the request's slot stays taken until it has returned."""
    work = pool.submit(fn, *args, **kwargs)  # a 504 cancels the await, not the work: the slot tracks the work
    if slot is not None:
        slot.track(work)
    return await asyncio.wrap_future(work)


def context_too_long(e: PromptTooLong, kept: list[str] | None) -> ApiError:
    over = e.prompt_tokens + e.max_new_tokens - e.max_context
    pruned = f" even with the schema pruned to {len(kept)} table(s)" if kept is not None else ""
    advice = ("send fewer tables or lower max_new_tokens" if kept is not None else
              "set prune_schema: true to send only the tables the question needs, send fewer tables, "
              "or lower max_new_tokens")
    return ApiError(
        413, "context_too_long",
        f"The prompt is {e.prompt_tokens} tokens{pruned}; with max_new_tokens {e.max_new_tokens} that is "
        f"{e.prompt_tokens + e.max_new_tokens}, over the model's context of {e.max_context} by {over}. "
        f"To fit: {advice}.",
        detail={"prompt_tokens": e.prompt_tokens, "max_new_tokens": e.max_new_tokens,
                "max_context": e.max_context, "over_by": over, "kept_tables": kept})


def find_database(databases: dict[str, Database], name: str) -> Database:
    if name in getattr(databases, "unavailable", {}):
        raise ApiError(503, "database_unavailable", f"Database {name!r} cannot be reached now; the server retries "
                       "it in the background. Retry shortly.", headers={"Retry-After": "5"})
    if name not in databases:
        known = ", ".join(databases) or "none"
        raise ApiError(404, "unknown_database", f"No database named {name!r}. Registered: {known} "
                       "(GET /databases lists them with their schemas).", detail={"databases": list(databases)})
    return databases[name]


def check_max_rows(max_rows: int | None, settings: Settings) -> int:
    if max_rows is None:
        return settings.max_rows
    if max_rows > settings.max_rows:
        raise ApiError(422, "invalid_request", f"max_rows {max_rows} is over this server's limit of "
                       f"{settings.max_rows}.")
    return max_rows


async def within_timeout(work, timeout_s: float):
    try:
        return await asyncio.wait_for(work, timeout_s)
    except TimeoutError:
        raise_timeout(timeout_s)


def raise_timeout(timeout_s: float):
    raise ApiError(504, "timeout", f"No answer within {timeout_s:g} s (the server's request timeout). "
                   "The server may be busy: retry, or ask with a smaller max_new_tokens.") from None
