"""Scoring one prediction as `sqlft eval` does: the example's database(s) prepared (a real database, or synthesized
instances for schema-only records), gold and predicted SQL run in the same hardened sandboxes, results compared
by the Spider test-suite rules; every failure is a status with a reason in plain words, never an exception.

Model-free: the eval command (eval.run) and the GRPO reward (sqlft.training.reward) score here; the answer to score
is chosen (extract -> repair -> vote) by sqlft.scoring.answer, with an executor over these sandboxes.
"""

import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from sqlglot import exp

from sqlft.sql.compare import _freeze_row, compare_results
from sqlft.sql.database import column_names, prepare_database
from sqlft.sql.engine import engine_for, open_sandbox, to_engine
from sqlft.sql.hardness import hardness_of
from sqlft.sql.gold_check import check_gold
from sqlft.data.examples import Example
from sqlft.sql.postgres import PostgresError, redact
from sqlft.sql.sandbox import ExecutionResult, Sandbox
from sqlft.sql.dialect import has_order_by, normalise, parse_sql, strip_distinct
from sqlft.sql.synth import synthesize
from sqlft.scoring.answer import Answer, AnswerOptions, choose_answer
from sqlft.core.progress import progress

PRED_STATUS = {"error": "pred_exec_error", "timeout": "pred_timeout", "rejected": "rejected"}


@dataclass
class Scoring:
    dialect: str  # dialect of the gold SQL (and of what the model is expected to write)
    mode: str  # sqlft.sql.compare.MODES
    float_tolerance: float
    timeout_s: float = 5.0  # per query, gold and pred alike
    repair: bool = False  # sqlft.sql.repair: an answer that does not run, rewritten to the names its schema has
    allow_privileged_role: bool = False  # PostgreSQL: a role that may do more than read is accepted (warned)


@dataclass
class Instances:
    """The database(s) one example is scored on: one real database, or several synthesized ones."""
    paths: list[Path | str]  # database files, or one PostgreSQL URL
    synthetic: bool
    engine: str = "duckdb"  # sqlft.sql.engine.ENGINES: SQL in another dialect is transpiled to the engine's
    columns: set[str] = field(default_factory=set)  # every column name: to_duckdb tells "x" strings from columns
    boxes: list[Sandbox] = field(default_factory=list)
    error: str = ""  # why there is no database: every example on it is a gold_error
    recent_golds: dict = field(default_factory=dict, repr=False)  # runnable gold SQL -> results (_gold_results)


@dataclass
class Score:
    status: str
    reason: str = ""
    valid_sql: bool = False
    exact_match: bool = False
    gold_varies: bool = False  # the (first runnable) gold result differs between synthesized instances


@dataclass
class Gold:
    """One gold alternative that ran on every instance."""
    sql: str  # as written in the data
    order_matters: bool
    results: list[ExecutionResult]  # one per instance


# ------------------------------------------------------------------ databases


def instance_key(example: Example) -> str:
    return f"db:{example.database}" if example.database else f"synth:{example.db_schema}"


def prepare_instances(examples: list[Example], dialect: str, n_instances: int, workers: int,
                      engine: str = "auto") -> dict[str, Instances]:
    """One Instances per database or per schema; synthesized instances hold rows planted for every gold query
    on that schema. A database that cannot be built becomes an error shared by its examples.

    engine (--engine): "auto" follows sqlft.sql.engine.engine_for, the rule serve follows too (SQLite files on
    SQLite, PostgreSQL URLs on the server, the rest on DuckDB); "sqlite" requires a SQLite file; "duckdb"
    copies every file database to DuckDB."""
    groups: dict[str, list[Example]] = {}
    for example in examples:
        if not example.database_error:
            groups.setdefault(instance_key(example), []).append(example)

    def prepare(key: str) -> Instances:
        group = groups[key]
        try:
            if key.startswith("db:"):
                source = group[0].database
                found = engine_for(source)
                if engine == "sqlite" and found != "sqlite":
                    return Instances([], False, error=f"--engine sqlite: {redact(source)} is not a SQLite file "
                                     "(use --engine auto or duckdb)")
                if engine == "duckdb" and found == "postgres":
                    return Instances([], False, error="--engine duckdb: a PostgreSQL URL runs on its server "
                                     "(use --engine auto)")
                if engine == "duckdb" or found == "duckdb":
                    return Instances([prepare_database(source)], synthetic=False)
                # What the official Spider evaluator sees on a SQLite file: SQLite's own semantics.
                return Instances([source if found == "postgres" else Path(source)], synthetic=False, engine=found)
            if engine == "sqlite":
                return Instances([], True, error="--engine sqlite: schema-only records are scored on synthesized "
                                 "DuckDB databases (use --engine auto or duckdb)")
            if not group[0].db_schema.strip():
                return Instances([], True, error="the record has no schema (context) to synthesize a database from")
            golds = [sql for e in group for sql in e.gold_sqls]
            return Instances(synthesize(group[0].db_schema, golds, dialect=dialect, instances=n_instances), True)
        except Exception as err:  # a bad dump or a schema the synthesizer cannot read: a harness problem
            return Instances([], key.startswith("synth:"), error=plain(redact(f"{type(err).__name__}: {err}")))

    with ThreadPoolExecutor(max_workers=workers) as pool, progress(len(groups), "databases", "db") as bar:
        prepared = dict(zip(groups, bar_over(pool.map(prepare, groups), bar)))
    for inst in prepared.values():
        if inst.paths and inst.engine == "duckdb":
            inst.columns = column_names(inst.paths[0])
    return prepared


def open_sandboxes(instances: dict[str, Instances], timeout_s: float, workers: int = 1,
                   allow_privileged_role: bool = False) -> None:
    """One sandbox per instance; a PostgreSQL database that cannot be opened becomes its examples' gold_error."""
    for inst in instances.values():
        try:
            # workers connections: scoring threads never wait for one (PoolBusy would only come after a minute).
            inst.boxes = [open_sandbox(path, inst.engine, timeout_s=timeout_s, pool_size=workers, pool_timeout_s=60,
                                       allow_privileged_role=allow_privileged_role) for path in inst.paths]
        except (PostgresError, OSError) as err:
            inst.error = plain(redact(str(err)))


# ------------------------------------------------------------------ scoring


PROCESS_MIN = 400  # examples from which scoring spreads over processes (each start costs ~0.5 s of imports)
CHUNK = 50  # examples per task sent to a scoring process


def score_all(examples: list[Example], raw: dict[str, dict], instances: dict[str, Instances],
              scoring: Scoring, workers: int) -> list[dict]:
    """One result row per example, in input order.

    Profiled on Spider-style pairs (benchmarks/scoring_speed.py): most of a worker thread's time is Python holding
    the GIL (sqlglot parses and generations, row fetching), so threads add little. From PROCESS_MIN examples on
    file databases, `workers` processes score chunks, each over sandboxes of its own; otherwise threads share one
    set of sandboxes (DuckDB, SQLite and psycopg release the GIL while a query runs).
    """
    files_only = all(inst.engine != "postgres" for inst in instances.values())
    if workers > 1 and len(examples) >= PROCESS_MIN and files_only:
        return _score_in_processes(examples, raw, instances, scoring, workers)
    open_sandboxes(instances, scoring.timeout_s, workers, scoring.allow_privileged_role)
    with ThreadPoolExecutor(max_workers=workers) as pool, progress(len(examples), "scoring", "pred") as bar:
        return list(bar_over(pool.map(lambda e: score_one(e, raw, instances, scoring), examples), bar))


def score_one(example: Example, raw: dict[str, dict], instances: dict[str, Instances], scoring: Scoring) -> dict:
    line = raw.get(example.id, {})
    text = line.get("raw", "")
    inst = instances.get(instance_key(example))
    usable = inst is not None and not inst.error and not example.database_error
    chosen = _choose(example, line, inst if usable else None, scoring)
    text, pred_sql = chosen.reply, chosen.sql
    # One parse of the first gold serves its hardness and (for a match) its normal form for exact match.
    gold = parse_sql(example.gold_sqls[0], scoring.dialect) if example.gold_sqls else None
    level = hardness_of(gold.tree) if gold and gold.ok else ""
    if example.database_error:
        score = Score("gold_error", example.database_error)
    elif inst is None or inst.error:
        score = Score("gold_error", f"no database: {inst.error if inst else 'not prepared'}")
    else:
        score = score_example(example, pred_sql, inst, scoring, gold.tree if gold else None)
    row = result_row(example, pred_sql, text, score, inst, level)
    if chosen.repaired_from is not None:
        row["repaired_from"] = chosen.repaired_from
    if chosen.vote is not None:
        row["vote"] = chosen.vote.to_dict()
        if chosen.vote.changed:
            row["greedy_raw"] = line.get("raw", "")
    return row


def _choose(example: Example, line: dict, inst: Instances | None, scoring: Scoring) -> Answer:
    """The answer scored (sqlft.scoring.answer): the greedy one, repaired with scoring.repair; with candidates, the
    vote's pick over all of them. On no usable database (inst None): the greedy answer as written."""
    voting = bool(line.get("candidates")) and inst is not None
    replies = [line.get("raw", "")] + (line["candidates"] if voting else [])
    # A predictions file's pred_sql is the greedy answer's SQL; voting reads every reply's SQL out of its text.
    written = [example.pred_sql] if example.pred_sql is not None and not voting else None
    options = AnswerOptions(repair=scoring.repair and inst is not None, vote=voting,
                            float_tolerance=scoring.float_tolerance)

    def execute(sql: str, probe: bool) -> list[ExecutionResult] | None:
        # repair's check runs on the first instance only; the vote compares results on every one
        return _run_everywhere(sql, inst, scoring, instances=1 if probe else None)

    return choose_answer(replies, scoring.dialect, example.db_schema, execute, options, written)


def bar_over(results, bar):
    """Yield results, counting each on the bar."""
    for result in results:
        bar.update(1)
        yield result


def _score_in_processes(examples: list[Example], raw: dict[str, dict], instances: dict[str, Instances],
                        scoring: Scoring, workers: int) -> list[dict]:
    # fork where no model is loaded (--predictions): a child then starts at once, where a spawned one imports the
    # eval stack again (~0.5 s of CPU each, a tenth of the whole command on 1,600 Spider pairs). spawn once torch
    # is imported: the parent may hold a loaded model with OpenMP threads, which a forked child inherits broken.
    # Each process gets the prepared databases once (paths only) and opens its own sandboxes.
    import dataclasses
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor

    closed = {key: dataclasses.replace(inst, boxes=[], recent_golds={}) for key, inst in instances.items()}
    chunks = [examples[i:i + CHUNK] for i in range(0, len(examples), CHUNK)]
    start = "spawn" if "torch" in sys.modules or "fork" not in multiprocessing.get_all_start_methods() else "fork"
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(start),
                             initializer=_start_scorer, initargs=(closed, scoring)) as pool, \
            progress(len(examples), "scoring", "pred") as bar:
        futures = [pool.submit(_score_chunk, chunk, {e.id: raw[e.id] for e in chunk if e.id in raw})
                   for chunk in chunks]
        # From here this process only waits: the report's chart library loads meanwhile (~0.5 s of CPU that
        # would otherwise follow the scoring). Only now: every child has forked (all at the first submit), so
        # none can inherit an import lock held mid-import.
        threading.Thread(target=_preload_chart, daemon=True).start()
        rows = []
        for chunk, future in zip(chunks, futures):
            rows += future.result()
            bar.update(len(chunk))
    return rows


def _preload_chart() -> None:
    try:
        import matplotlib.figure  # noqa: F401 - eval.report.plot's import, made while the scorers work
    except Exception:  # the report says what is wrong when it draws
        pass


_scorer: dict = {}  # in a scoring process: the instances (sandboxes opened on first use) and the scoring rules


def _start_scorer(instances: dict[str, Instances], scoring: Scoring) -> None:
    import atexit

    _scorer.update(instances=instances, scoring=scoring)
    atexit.register(lambda: [box.close() for inst in instances.values() for box in inst.boxes])


def _score_chunk(chunk: list[Example], raw: dict[str, dict]) -> list[dict]:
    instances, scoring = _scorer["instances"], _scorer["scoring"]
    for example in chunk:
        inst = instances.get(instance_key(example))
        if inst is not None and inst.paths and not inst.boxes and not inst.error:
            open_sandboxes({"": inst}, scoring.timeout_s, allow_privileged_role=scoring.allow_privileged_role)
    return [score_one(example, raw, instances, scoring) for example in chunk]


def _run_everywhere(sql: str, inst: Instances, scoring: Scoring, instances: int | None = None
                    ) -> list[ExecutionResult] | None:
    """The SQL's result on each instance (the first `instances` of them), None when it cannot be transpiled."""
    try:
        runnable = _runnable(sql, inst, scoring)
    except Exception:  # sqlglot cannot transpile it: it does not run
        return None
    return [box.execute(runnable) for box in inst.boxes[:instances]]


def result_row(example: Example, pred_sql: str, text: str, score: Score, inst: Instances | None,
               level: str) -> dict:
    gold = example.gold_sqls[0] if example.gold_sqls else ""
    row = {
        "id": example.id, "db_id": example.db_id, "question": example.question, "gold_sql": gold,
        "pred_sql": pred_sql, "raw": text, "status": score.status, "reason": score.reason,
        "hardness": level, "difficulty": example.difficulty,
        "category": example.category, "exact_match": score.exact_match, "valid_sql": score.valid_sql,
        "instances": len(inst.paths) if inst else 0, "synthetic": bool(inst and inst.synthetic),
        "engine": inst.engine if inst and inst.paths else "",
        # which database it ran on: the file or URL (password masked), or "synthesized" from the record's schema
        "database": "synthesized" if inst and inst.synthetic else redact(example.database),
        # Synthesized data only: a gold result that differs between instances depends on the data; the rest
        # are settled by flag_non_discriminating once the sandboxes are closed.
        "discriminating": score.gold_varies or None, "source": example.source,
    }
    if len(example.gold_sqls) > 1:
        row["gold_alternatives"] = len(example.gold_sqls)
    return row


def score_example(example: Example, pred_sql: str, inst: Instances, scoring: Scoring,
                  gold_tree: exp.Expression | None = None) -> Score:
    """Status and reason for one prediction; every failure is a status, never an exception."""
    golds, gold_failures = run_golds(example, inst, scoring)
    if not golds:
        return Score("gold_error", "the gold SQL does not run: " + " | ".join(dict.fromkeys(gold_failures)))
    score = score_pred(example, pred_sql, golds, inst, scoring, gold_tree)
    first = golds[0]
    score.gold_varies = inst.synthetic and any(not _same(first.results[0], r, first, scoring)
                                               for r in first.results[1:])
    return score


def run_golds(example: Example, inst: Instances, scoring: Scoring) -> tuple[list[Gold], list[str]]:
    """The gold alternatives that run on every instance, and why the others do not."""
    golds, failures = [], []
    for sql in example.gold_sqls:
        try:
            results = _gold_results(_runnable(sql, inst, scoring), inst)
        except Exception as err:  # sqlglot can fail on odd input with other errors than ParseError
            failures.append(f"cannot transpile: {plain(str(err))}")
            continue
        failed = next(((i, r) for i, r in enumerate(results) if r.status != "ok"), None)
        if failed:
            failures.append(f"{_where(failed[0], inst)}{failed[1].status}: {plain(failed[1].error)}")
            continue
        golds.append(Gold(sql, order_matters(sql, scoring), results))
    return golds, failures


RECENT_GOLDS = 4  # gold results remembered per database
_recent_lock = threading.Lock()


def _gold_results(runnable: str, inst: Instances) -> list[ExecutionResult]:
    """The gold's result on each instance, run once for consecutive questions that share it: Spider lists a
    question's paraphrases side by side with one gold SQL (40% of spider_train's questions repeat the one
    before), and the official evaluator runs that gold again for each. A timeout is not remembered: on a busy
    machine the next run may finish."""
    found = inst.recent_golds.get(runnable)
    if found is not None:
        return found
    results = [box.execute(runnable) for box in inst.boxes]
    if all(r.status in ("ok", "error") for r in results):
        with _recent_lock:
            while len(inst.recent_golds) >= RECENT_GOLDS:
                del inst.recent_golds[next(iter(inst.recent_golds))]  # the oldest
            inst.recent_golds[runnable] = results
    return results


def order_matters(gold_sql: str, scoring: Scoring) -> bool:
    """Spider mode copies the official rule ('order by' anywhere in the gold, a subquery's included) so that
    verdicts reproduce published numbers; the other modes look at the top-level ORDER BY only."""
    if scoring.mode == "spider":
        return "order by" in gold_sql.lower()
    return has_order_by(gold_sql, scoring.dialect)


def score_pred(example: Example, pred_sql: str, golds: list[Gold], inst: Instances, scoring: Scoring,
               gold_tree: exp.Expression | None = None) -> Score:
    """gold_tree: the parse of example.gold_sqls[0] when the caller has it (used up here)."""
    if not pred_sql.strip():
        return Score("pred_parse_error", "no SQL found in the model output")
    parsed = parse_sql(pred_sql, scoring.dialect)
    # Exact match (sqlft.sql.dialect.normalise on both sides) implies an execution match, so the normal forms, a parse and
    # a generation each, are only worth making for matches; elsewhere only the same text counts as exact.
    exact = any(_collapsed(g) == _collapsed(pred_sql) for g in example.gold_sqls)
    if not parsed.ok:
        return Score("pred_parse_error", f"not valid {scoring.dialect} SQL: {plain(parsed.error)}", False, exact)
    try:
        runnable = _runnable(pred_sql, inst, scoring)
    except Exception as err:
        return Score("pred_parse_error", f"cannot transpile to {inst.engine}: {plain(str(err))}", False, exact)

    pred_results = []
    for i, box in enumerate(inst.boxes):
        result = box.execute(runnable)
        if result.status != "ok":
            return Score(PRED_STATUS[result.status], f"{_where(i, inst)}{plain(result.error)}", True, exact)
        pred_results.append(result)

    # Correct when some gold alternative matches on every instance.
    for gold in golds:
        if all(_same(g, p, gold, scoring) for g, p in zip(gold.results, pred_results)):
            if not exact:
                pred_normal = normalise(pred_sql, scoring.dialect, tree=parsed.tree)
                exact = any(normalise(g, scoring.dialect, tree=gold_tree if i == 0 else None) == pred_normal
                            for i, g in enumerate(example.gold_sqls))
            return Score("match", "", True, exact)
    first = golds[0]
    i = next(i for i, (g, p) in enumerate(zip(first.results, pred_results)) if not _same(g, p, first, scoring))
    reason = _where(i, inst) + describe_mismatch(first.results[i], pred_results[i], first.order_matters)
    if len(golds) > 1:
        reason += f" (compared with the first of {len(golds)} accepted gold queries; none matched)"
    return Score("mismatch", reason, True, exact)


def _collapsed(sql: str) -> str:
    return " ".join(sql.strip().rstrip(";").split())


def _same(gold_result: ExecutionResult, other: ExecutionResult, gold: Gold, scoring: Scoring) -> bool:
    if scoring.mode == "set" and not scoring.float_tolerance and other.status == "ok" \
            and gold_result.truncated == other.truncated:
        # BIRD's own rule (its evaluation.py: set(predicted_res) == set(ground_truth_res)): rows as tuples, so
        # duplicates and row order never matter and the columns must come in the gold's order; values by ==.
        return set(map(_freeze_row, gold_result.rows)) == set(map(_freeze_row, other.rows))
    return compare_results(gold_result, other, order_matters=gold.order_matters, mode=scoring.mode,
                           float_tolerance=scoring.float_tolerance)


def flag_non_discriminating(rows: list[dict], examples: list[Example], instances: dict[str, Instances],
                            dialect: str, workers: int) -> None:
    """Settle `discriminating` for synthesized examples whose gold gave one result on every instance:
    sqlft.sql.gold_check.check_gold also runs it on an empty copy of the schema. Only after the sandboxes are closed:
    DuckDB refuses a second connection with other settings to an open file."""
    pending = [(row, example) for row, example in zip(rows, examples)
               if row["synthetic"] and row["discriminating"] is None and row["status"] != "gold_error"]

    def check(example: Example) -> bool:
        try:
            return check_gold(instances[instance_key(example)].paths, example.gold_sqls[0], dialect).discriminating
        except Exception:  # the gold ran during scoring; a failure here says nothing about the data
            return False

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for (row, _), found in zip(pending, pool.map(check, [example for _, example in pending])):
            row["discriminating"] = found


def _runnable(sql: str, inst: Instances, scoring: Scoring) -> str:
    """The SQL as executed: DISTINCT stripped in spider mode (the official evaluation drops every DISTINCT
    from both queries before running them: evaluation.py's eval_exec_match), then transpiled unless SQLite runs it."""
    if scoring.mode == "spider":
        sql = strip_distinct(sql, scoring.dialect)
    return to_engine(sql, scoring.dialect, inst.engine, inst.columns)


def plain(message: str, limit: int = 400) -> str:
    """An error message as one line of plain words: no ANSI colours (sqlglot underlines the bad token), no
    DuckDB caret diagram (the SQL is in the same result row)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", message).split("\nLINE ", 1)[0]
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _where(i: int, inst: Instances) -> str:
    return f"on synthesized instance {i + 1} of {len(inst.paths)}: " if inst.synthetic else ""


def describe_mismatch(gold: ExecutionResult, pred: ExecutionResult, order_matters: bool) -> str:
    """Plain words for how two results differ, with up to three rows found only on each side."""
    if gold.truncated != pred.truncated:
        which = "gold" if gold.truncated else "pred"
        return f"the {which} result has more rows than the row limit and the other does not"
    if gold.rows and pred.rows and len(gold.rows[0]) != len(pred.rows[0]):
        return (f"gold has {len(gold.rows[0])} columns ({', '.join(gold.columns)}), pred has {len(pred.rows[0])} "
                f"({', '.join(pred.columns)})")
    key = lambda row: tuple(sorted(map(repr, row)))  # noqa: E731 -- column order may differ
    gold_rows, pred_rows = Counter(map(key, gold.rows)), Counter(map(key, pred.rows))
    if gold_rows == pred_rows:
        if order_matters:
            return "same rows in another order (the gold query has ORDER BY)"
        return "the rows hold the same values but no column order makes them equal"
    # Each difference counted once (a Counter subtraction per row made this quadratic: minutes on 5,000 rows).
    gold_extra, pred_extra = gold_rows - pred_rows, pred_rows - gold_rows
    only_gold = list(islice((r for r in gold.rows if gold_extra[key(r)]), 3))
    only_pred = list(islice((r for r in pred.rows if pred_extra[key(r)]), 3))
    parts = [f"gold {len(gold.rows)} rows, pred {len(pred.rows)} rows"]
    if only_gold:
        parts.append("only in gold: " + ", ".join(_short_row(r) for r in only_gold))
    if only_pred:
        parts.append("only in pred: " + ", ".join(_short_row(r) for r in only_pred))
    return "; ".join(parts)


def _short_row(row: tuple) -> str:
    text = repr(tuple(row))
    return text if len(text) <= 80 else text[:77] + "..."
