"""`sqlft eval`: a model answers an eval set, gold and predicted SQL run in a DuckDB sandbox, results are compared.

    sqlft eval MODEL --data demo:eval [--format auto] [--db-root DIR] [--dialect sqlite|postgres|duckdb]
               [--mode spider|strict|set] [--float-tolerance X] [--out DIR] [--limit N] [--config CONFIG]
               [--template T] [--instances 3] [--workers N] [--max-new-tokens N] [--timeout-s 5] [key=value ...]
    sqlft eval --predictions preds.jsonl --db-root DIR --dialect sqlite --out OUT   (no model: score a file)
    sqlft eval compare RUN_A RUN_B                                                   (two OUT folders)

Every flag is a field of EvalConfig (below) and may also be given as key=value (mode=strict,
generation.max_new_tokens=64); a mistyped key is an error naming the closest one. Python callers build an
EvalConfig (eval_config) and call run(), which returns the report's summary.
OUT holds predictions.jsonl (appended per batch: a killed eval resumes), results.jsonl, report.{json,md,png}.
"""

import argparse
import dataclasses
import functools
import json
import os
import re
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from eval import report
from eval.compare import MODES, compare_results
from eval.database import DatabaseError, column_names, prepare_database
from eval.engine import AnySandbox, engine_for, open_sandbox, to_engine
from eval.guided import ExecutionGuide
from eval.hardness import hardness
from eval.inputs import EvalSet, Example, load_eval_set, load_predictions
from eval.gold_check import check_gold
from eval.postgres import PostgresError, redact
from eval.sandbox import ExecutionResult
from eval.sql import extract_sql, has_order_by, normalise, parse_sql, strip_distinct
from eval.synth import synthesize
from sqlft.config import ConfigError, GenerationConfig, build_config, load_config
from sqlft.formats import DataError

DIALECTS = ("sqlite", "postgres", "duckdb")
ENGINES = ("auto", "sqlite", "duckdb")  # auto: eval.engine.engine_for, the rule serve follows too
PRED_STATUS = {"error": "pred_exec_error", "timeout": "pred_timeout", "rejected": "rejected"}


@dataclass
class Scoring:
    dialect: str  # dialect of the gold SQL (and of what the model is expected to write)
    mode: str  # eval.compare.MODES
    float_tolerance: float
    timeout_s: float = 5.0  # per query, gold and pred alike


@dataclass
class Instances:
    """The database(s) one example is scored on: one real database, or several synthesized ones."""
    paths: list[Path | str]  # database files, or one PostgreSQL URL
    synthetic: bool
    engine: str = "duckdb"  # eval.engine.ENGINES: SQL in another dialect is transpiled to the engine's
    columns: set[str] = field(default_factory=set)  # every column name: to_duckdb tells "x" strings from columns
    boxes: list[AnySandbox] = field(default_factory=list)
    error: str = ""  # why there is no database: every example on it is a gold_error


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


# ------------------------------------------------------------------ command line


@dataclass
class EvalConfig:
    """What `sqlft eval` does; every flag is a field, and any field may also be set as `key=value`
    (`mode=strict`, `generation.max_new_tokens=64`), checked like a training config."""
    model: str | None = None  # base model, training run folder or merged folder (the served name with openai_url)
    data: str | None = None  # eval set: a record file (know_sql, Spider, ...), Defog's CSV, or demo:eval
    predictions: str | None = None  # JSONL of id, db_id, gold_sql, pred_sql: score it without a model
    format: str = "auto"  # record format of data (default: detected)
    db_root: str | None = None  # folder of databases (<db_id>/<db_id>.sqlite, <db_id>.duckdb) or a PostgreSQL URL
    dialect: str | None = None  # of the gold SQL; None: postgres for Defog's CSV, duckdb for demo sets, else sqlite
    mode: str = "spider"  # eval.compare.MODES: spider strips DISTINCT as the official evaluation does
    float_tolerance: float = 0.0  # relative tolerance for floats (0: exact)
    out: str | None = None  # output folder (None: runs/eval/<model>-<data>)
    limit: int = 0  # first N examples only (0: all)
    template: str | None = None  # prompt template (None: the run's, or the model's own)
    instances: int = 3  # synthesized databases per schema-only example
    workers: int = 0  # scoring threads (0: one per core)
    dtype: str = "auto"  # weights for generation (auto: the GPU's native 16-bit type, float32 on a CPU)
    timeout_s: float = 5.0  # time limit per query in seconds, gold and pred alike
    engine: str = "auto"  # where SQL runs: auto (eval.engine's rule, serve's too), sqlite or duckdb (see --engine)
    openai_url: str | None = None  # generate through an OpenAI-compatible server (e.g. vLLM)
    model_dir: str | None = None  # with openai_url: the merged folder (template, tokenizer, context)
    generation: GenerationConfig = field(default_factory=GenerationConfig)  # decoding (--config reads a run's)


EVAL_CHOICES = {"mode": MODES, "dialect": (None, *DIALECTS), "engine": ENGINES,
                "dtype": ("auto", "float32", "bfloat16", "float16")}


def _check(config: EvalConfig) -> list[str]:
    problems = []
    if config.predictions and (config.model or config.data):
        problems.append("give either MODEL --data (generate, then score) or --predictions (score a file), not both")
    if not config.predictions and not (config.model and config.data):
        problems.append("give MODEL and --data DATA (e.g. sqlft eval embedded:smollm2-135m-instruct --data "
                        "demo:eval), or --predictions FILE")
    if config.workers < 0 or config.instances < 1:
        problems.append("--workers must be at least 0 (0: one per core) and --instances at least 1")
    return problems


def eval_config(raw: dict | None = None, overrides: list[str] = ()) -> EvalConfig:
    """An EvalConfig from a mapping of fields (flags, or a caller's dict) and `key=value` overrides; raises
    ConfigError listing every problem."""
    return build_config(EvalConfig, dict(raw or {}), overrides, EVAL_CHOICES, _check, where=" in the eval settings")


def _parser() -> argparse.ArgumentParser:
    """The flags; each one's dest is an EvalConfig field (generation.* for decoding), defaults come from there."""
    p = argparse.ArgumentParser(prog="sqlft eval", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__,
                                argument_default=argparse.SUPPRESS)
    p.add_argument("model", nargs="?", help="base model, training run folder or merged folder")
    p.add_argument("overrides", nargs="*", default=[], help="key=value settings (mode=strict, "
                   "generation.max_new_tokens=64): any field of eval.run.EvalConfig")
    p.add_argument("--data", help="eval set: a record file (know_sql, Spider, ...), Defog's CSV, or demo:eval")
    p.add_argument("--predictions", help="JSONL of id, db_id, gold_sql, pred_sql: score it without a model")
    p.add_argument("--format", help="record format of --data (default: detected)")
    p.add_argument("--db-root", help="folder of databases: <db_id>/<db_id>.sqlite (Spider) or <db_id>.duckdb; or a "
                   "PostgreSQL server URL (postgresql://user@host:5432/): each db_id is a database there")
    p.add_argument("--dialect", choices=DIALECTS, help="dialect of the gold SQL (default: postgres for Defog's "
                   "CSV, duckdb for the demo sets, else sqlite)")
    p.add_argument("--mode", choices=MODES, help="spider (default): strip DISTINCT from gold and pred as the "
                   "official evaluation does; strict: keep it; set: ignore duplicate rows")
    p.add_argument("--float-tolerance", type=float, help="relative tolerance for floats (default 0: exact)")
    p.add_argument("--out", help="output folder (default runs/eval/<model>-<data>)")
    p.add_argument("--limit", type=int, help="first N examples only (default 0: all)")
    p.add_argument("--config", help="YAML config whose generation section sets the decoding")
    p.add_argument("--template", help="prompt template (default: the run's, or the model's own)")
    p.add_argument("--instances", type=int, help="synthesized databases per schema-only example (default 3)")
    p.add_argument("--workers", type=int, help="scoring threads (default: one per core)")
    p.add_argument("--max-new-tokens", type=int, dest="generation.max_new_tokens",
                   help="answer budget (overrides the config)")
    p.add_argument("--batch-size", type=int, dest="generation.batch_size",
                   help="prompts per generation batch (overrides the config)")
    p.add_argument("--dtype", choices=EVAL_CHOICES["dtype"], help="weights for generation (auto: the GPU's native "
                   "16-bit type, float32 on a CPU; sqlft.precision)")
    p.add_argument("--no-prefix-cache", action="store_false", dest="generation.prefix_cache", help="read every "
                   "prompt whole (prefix caching off: slower, same answers; for measuring it)")
    p.add_argument("--candidates", type=int, dest="generation.candidates", help="execution-guided decoding: when "
                   "the greedy answer does not run on the empty schema, sample up to N-1 more and keep the first "
                   "that runs")
    p.add_argument("--timeout-s", type=float, help="time limit per query in seconds (default 5)")
    p.add_argument("--engine", choices=ENGINES, help="where SQL runs. auto (default; the rule serve follows too): "
                   "SQLite files on SQLite itself (what the official Spider evaluator does), PostgreSQL URLs on the "
                   "server, DuckDB files, dumps and defog names on DuckDB; SQL is transpiled when --dialect is not "
                   "the engine's. sqlite: always SQLite (an example whose database is not a SQLite file is a "
                   "gold_error); duckdb: always DuckDB")
    p.add_argument("--openai-url", help="generate through an OpenAI-compatible server (e.g. vLLM serving the "
                   "merged folder: http://127.0.0.1:8000/v1); MODEL is then the served model name")
    p.add_argument("--model-dir", help="with --openai-url: the merged folder (template, tokenizer, context)")
    return p


def parse_args(argv: list[str]) -> EvalConfig:
    """Flags and key=value overrides -> EvalConfig. A positional holding '=' is an override, the other the model."""
    parser = _parser()
    flags = vars(parser.parse_intermixed_args(argv))  # MODEL, flags and key=value in any order
    positionals = ([flags.pop("model")] if "model" in flags else []) + flags.pop("overrides", [])
    overrides = [p for p in positionals if "=" in p]
    models = [p for p in positionals if "=" not in p]
    if len(models) > 1:
        parser.error(f"one MODEL only, got {models} (settings are written key=value)")
    raw: dict = {"model": models[0]} if models else {}
    try:
        generation = dataclasses.asdict(load_config(flags.pop("config")).generation) if "config" in flags else {}
        for key, value in flags.items():
            if key.startswith("generation."):
                generation[key.split(".", 1)[1]] = value
            else:
                raw[key] = value
        if generation:
            raw["generation"] = generation
        return eval_config(raw, overrides)
    except ConfigError as err:
        parser.error(str(err))


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "compare":
        if len(argv) != 3:
            sys.exit("usage: sqlft eval compare RUN_A RUN_B (two eval output folders)")
        try:
            print(report.compare_runs(Path(argv[1]), Path(argv[2])))
        except FileNotFoundError as err:
            sys.exit(f"sqlft eval compare: {err}")
        return
    try:
        run(parse_args(argv))
    except (DataError, ConfigError, DatabaseError, PostgresError, ResumeError, FileNotFoundError) as err:
        sys.exit(f"sqlft eval: {redact(str(err))}")


# ------------------------------------------------------------------ the recipe


def run(config: EvalConfig, load_model: Callable[..., Any] | None = None) -> dict:
    """Load the eval set, generate what is missing, prepare databases, score in parallel, write the report; returns
    the report's summary (report.json).

    load_model(ref, template=None) returns an object with InferenceModel's sql_prompt/generate (tests pass fakes).
    """
    evalset = load_examples(config)
    dialect = config.dialect or evalset.dialect
    scoring = Scoring(dialect, config.mode, config.float_tolerance, config.timeout_s)
    workers = config.workers or os.cpu_count() or 1
    out = Path(config.out or default_out(config))
    out.mkdir(parents=True, exist_ok=True)

    generation = {}
    if config.predictions:
        raw = {e.id: {"raw": e.pred_sql or ""} for e in evalset.examples}
    else:
        raw, template = generate_predictions(config, evalset, out, load_model)
        generation = {**generation_stats(raw, evalset.examples), "template": template}

    start = time.perf_counter()
    instances = prepare_instances(evalset.examples, dialect, config.instances, workers, config.engine)
    try:
        rows = score_all(evalset.examples, raw, instances, scoring, workers)
    finally:
        for inst in instances.values():
            for box in inst.boxes:
                box.close()
    flag_non_discriminating(rows, evalset.examples, instances, dialect, workers)
    scoring_s = time.perf_counter() - start

    with open(out / "results.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    settings = {
        "model": None if config.predictions else config.model, "data": config.predictions or config.data,
        "data_path": evalset.path, "data_sha256": evalset.sha256, "data_kind": evalset.kind, "dialect": dialect,
        "mode": config.mode, "float_tolerance": config.float_tolerance, "timeout_s": config.timeout_s,
        "engine": config.engine,
        "instances": config.instances,
        "workers": workers, "limit": config.limit, "scoring_seconds": round(scoring_s, 3),
        "decoding": None if config.predictions else {**dataclasses.asdict(config.generation),
                                                     "template": generation.get("template")},
        "skipped_rows": len(evalset.problems),
    }
    summary = report.write_report(out, rows, settings, generation)
    print(report.summary_line(summary, out))
    return summary


def load_examples(config: EvalConfig) -> EvalSet:
    """The eval set (or the predictions file), with skipped rows reported; raises DataError when nothing can be
    scored."""
    if config.predictions:
        evalset = load_predictions(config.predictions, config.db_root)
        evalset.examples = evalset.examples[:config.limit or None]
    else:
        evalset = load_eval_set(config.data, fmt=config.format, db_root=config.db_root, limit=config.limit)
    for problem in evalset.problems[:10]:
        print(f"skipped {problem}", file=sys.stderr)
    if len(evalset.problems) > 10:
        print(f"... and {len(evalset.problems) - 10} more skipped rows", file=sys.stderr)
    if not evalset.examples:
        raise DataError(f"{evalset.path}: no usable examples")
    if evalset.kind in ("predictions", "spider") and all(e.database_error for e in evalset.examples):
        raise DataError(f"no database found for any example: {evalset.examples[0].database_error}")
    return evalset


def default_out(config: EvalConfig) -> str:
    if config.predictions:
        return f"runs/eval/{Path(config.predictions).stem}"
    model = Path(config.model.rstrip("/")).name.replace(":", "-")
    data = config.data.replace(":", "-") if config.data.startswith("demo:") else Path(config.data).stem
    return f"runs/eval/{model}-{data}"


# ------------------------------------------------------------------ generation (resumable)


class ResumeError(ValueError):
    """OUT already holds predictions made with another model, data or decoding."""


def fingerprint(config: EvalConfig, evalset: EvalSet) -> dict:
    """What decides the model's answers; batch_size and prefix_cache (speed only) are left out so that a resume
    may use others."""
    model = str(Path(config.model).resolve()) if Path(config.model).exists() else config.model
    decoding = {k: v for k, v in dataclasses.asdict(config.generation).items()
                if k not in ("batch_size", "prefix_cache")}
    return {"model": model, "template": config.template, "data_sha256": evalset.sha256, "decoding": decoding,
            **({"dtype": config.dtype} if config.dtype != "auto" else {})}


def read_predictions(path: Path) -> dict[str, dict]:
    """id -> prediction line; a line cut short by a kill (the last one) is ignored and made again."""
    done: dict[str, dict] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").split("\n"):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "id" in row:
            done[str(row["id"])] = row
    return done


def remote_loader(config: EvalConfig) -> Callable[..., Any]:
    """Generation on a serving engine (vLLM, TGI, ...) through its OpenAI-compatible completions endpoint: the
    same backend as `sqlft serve --backend openai`; prompts are still rendered by sqlft.templates."""
    from sqlft.remote import OpenAIBackend

    def load(ref: str, template: str | None = None):
        return OpenAIBackend(config.openai_url, ref, template=template, model_dir=config.model_dir)
    return load


def generate_predictions(config: EvalConfig, evalset: EvalSet, out: Path,
                         load_model: Callable[..., Any] | None) -> tuple[dict[str, dict], str | None]:
    """Model output for every example, reading what OUT/predictions.jsonl already holds and generating the rest
    in batches of generation.batch_size, each appended and flushed as soon as it is made. Also returns the
    template."""
    pred_path, meta_path = out / "predictions.jsonl", out / "generation.json"
    wanted = fingerprint(config, evalset)
    done = read_predictions(pred_path)
    if done:
        found = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        if found.get("fingerprint") != wanted:
            diff = [f"{k}: {found.get('fingerprint', {}).get(k)!r} there, {v!r} now" for k, v in wanted.items()
                    if found.get("fingerprint", {}).get(k) != v]
            raise ResumeError(f"{pred_path} holds {len(done)} predictions made with other settings ("
                              f"{'; '.join(diff) or 'no generation.json beside it'}). Use a new --out, or delete "
                              "that file to generate again")
    todo = [e for e in evalset.examples if e.id not in done]
    template = json.loads(meta_path.read_text()).get("template") if meta_path.is_file() else None
    if not todo:
        return done, template
    if load_model is None and config.openai_url:
        load_model = remote_loader(config)
    if load_model is None:
        from sqlft.generate import InferenceModel
        load_model = functools.partial(InferenceModel.load, dtype=config.dtype)
    print(f"loading {config.model}", file=sys.stderr)
    model = load_model(config.model, template=config.template)
    template = getattr(model, "template", config.template)
    meta_path.write_text(json.dumps({"fingerprint": wanted, "template": template}, indent=2))
    print(f"generating {len(todo)} answers ({len(done)} already in {pred_path})", file=sys.stderr)
    append_predictions(model, todo, config.generation, config.dialect or evalset.dialect, pred_path, done)
    return done, template


def append_predictions(model, todo: list[Example], gen: GenerationConfig, dialect: str, pred_path: Path,
                       done: dict[str, dict]) -> None:
    """Generate the answers of `todo` batch by batch, appending each batch to pred_path and to `done`."""
    prompts = {e.id: model.sql_prompt(e.db_schema, e.question) for e in todo}
    guide = ExecutionGuide(dialect, gen.candidates, gen.candidate_temperature) if gen.candidates > 1 else None
    todo = sorted(todo, key=lambda e: prompts[e.id])  # text order: a batch shares its schema prefix (prefix_cache)
    drop_partial_line(pred_path)
    with open(pred_path, "a", encoding="utf-8") as f:
        for start in range(0, len(todo), gen.batch_size):
            batch = todo[start:start + gen.batch_size]
            began = time.perf_counter()
            batch_prompts, schemas = [prompts[e.id] for e in batch], [e.db_schema for e in batch]
            outputs = greedy = model.generate(batch_prompts, gen)
            if guide:
                outputs = guide.improve(model, batch_prompts, schemas, greedy, gen)
            seconds = time.perf_counter() - began
            for i, (example, output) in enumerate(zip(batch, outputs)):
                line = {"id": example.id, "raw": output.text, "prompt_tokens": output.prompt_tokens,
                        "new_tokens": output.new_tokens, "seconds": seconds / len(batch)}
                if output is not greedy[i]:
                    line["guided_from"] = greedy[i].text  # the greedy answer, which did not run
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
                done[example.id] = line
            f.flush()  # a kill loses at most the batch being generated
            made = start + len(batch)
            tokens = sum(o.new_tokens for o in outputs)
            print(f"  {made}/{len(todo)} ({tokens / seconds:.1f} new tokens/s)", file=sys.stderr)
    if guide:
        print(f"execution-guided: {guide.replaced} answers replaced by one of {guide.sampled} samples",
              file=sys.stderr)
        guide.close()


def drop_partial_line(path: Path) -> None:
    """Cut a last line that a kill left without its newline, so appended lines start on a line of their own."""
    if not path.is_file():
        return
    text = path.read_bytes()
    if text and not text.endswith(b"\n"):
        path.write_bytes(text[:text.rfind(b"\n") + 1])


def generation_stats(raw: dict[str, dict], examples: list[Example]) -> dict:
    lines = [raw[e.id] for e in examples if e.id in raw]
    seconds = sum(line.get("seconds", 0.0) for line in lines)
    new = sum(line.get("new_tokens", 0) for line in lines)
    return {"examples": len(lines), "total_s": round(seconds, 3),
            "per_example_s": round(seconds / len(lines), 3) if lines else 0.0,
            "new_tokens": new, "prompt_tokens": sum(line.get("prompt_tokens", 0) for line in lines),
            "guided_replaced": sum(1 for line in lines if "guided_from" in line),
            "tokens_per_s": round(new / seconds, 2) if seconds else 0.0}


# ------------------------------------------------------------------ databases


def instance_key(example: Example) -> str:
    return f"db:{example.database}" if example.database else f"synth:{example.db_schema}"


def prepare_instances(examples: list[Example], dialect: str, n_instances: int, workers: int,
                      engine: str = "auto") -> dict[str, Instances]:
    """One Instances per database or per schema; synthesized instances hold rows planted for every gold query
    on that schema. A database that cannot be built becomes an error shared by its examples.

    engine (--engine): "auto" follows eval.engine.engine_for, the rule serve follows too (SQLite files on
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

    with ThreadPoolExecutor(max_workers=workers) as pool:
        prepared = dict(zip(groups, pool.map(prepare, groups)))
    for inst in prepared.values():
        if inst.paths and inst.engine == "duckdb":
            inst.columns = column_names(inst.paths[0])
    return prepared


def open_sandboxes(instances: dict[str, Instances], timeout_s: float, workers: int = 1) -> None:
    """One sandbox per instance; a PostgreSQL database that cannot be opened becomes its examples' gold_error."""
    for inst in instances.values():
        try:
            # workers connections: scoring threads never wait for one (PoolBusy would only come after a minute).
            inst.boxes = [open_sandbox(path, inst.engine, timeout_s=timeout_s, pool_size=workers, pool_timeout_s=60)
                          for path in inst.paths]
        except (PostgresError, OSError) as err:
            inst.error = plain(redact(str(err)))


# ------------------------------------------------------------------ scoring


def score_all(examples: list[Example], raw: dict[str, dict], instances: dict[str, Instances],
              scoring: Scoring, workers: int) -> list[dict]:
    """One result row per example, in input order; examples run in a thread pool over shared sandboxes
    (DuckDB releases the GIL while a query runs; each execute() has its own cursor)."""
    open_sandboxes(instances, scoring.timeout_s, workers)

    def one(example: Example) -> dict:
        text = raw.get(example.id, {}).get("raw", "")
        pred_sql = example.pred_sql if example.pred_sql is not None else extract_sql(text, scoring.dialect)
        inst = instances.get(instance_key(example))
        if example.database_error:
            score = Score("gold_error", example.database_error)
        elif inst is None or inst.error:
            score = Score("gold_error", f"no database: {inst.error if inst else 'not prepared'}")
        else:
            score = score_example(example, pred_sql, inst, scoring)
        return result_row(example, pred_sql, text, score, inst, scoring.dialect)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, examples))


def result_row(example: Example, pred_sql: str, text: str, score: Score, inst: Instances | None,
               dialect: str) -> dict:
    gold = example.gold_sqls[0] if example.gold_sqls else ""
    row = {
        "id": example.id, "db_id": example.db_id, "question": example.question, "gold_sql": gold,
        "pred_sql": pred_sql, "raw": text, "status": score.status, "reason": score.reason,
        "hardness": hardness(gold, dialect) if gold else "", "difficulty": example.difficulty,
        "category": example.category, "exact_match": score.exact_match, "valid_sql": score.valid_sql,
        "instances": len(inst.paths) if inst else 0, "synthetic": bool(inst and inst.synthetic),
        "engine": inst.engine if inst and inst.paths else "",
        # Synthesized data only: a gold result that differs between instances depends on the data; the rest
        # are settled by flag_non_discriminating once the sandboxes are closed.
        "discriminating": score.gold_varies or None, "source": example.source,
    }
    if len(example.gold_sqls) > 1:
        row["gold_alternatives"] = len(example.gold_sqls)
    return row


def score_example(example: Example, pred_sql: str, inst: Instances, scoring: Scoring) -> Score:
    """Status and reason for one prediction; every failure is a status, never an exception."""
    golds, gold_failures = run_golds(example, inst, scoring)
    if not golds:
        return Score("gold_error", "the gold SQL does not run: " + " | ".join(dict.fromkeys(gold_failures)))
    score = score_pred(example, pred_sql, golds, inst, scoring)
    first = golds[0]
    score.gold_varies = inst.synthetic and any(not _same(first.results[0], r, first, scoring)
                                               for r in first.results[1:])
    return score


def run_golds(example: Example, inst: Instances, scoring: Scoring) -> tuple[list[Gold], list[str]]:
    """The gold alternatives that run on every instance, and why the others do not."""
    golds, failures = [], []
    for sql in example.gold_sqls:
        try:
            runnable = _runnable(sql, inst, scoring)
            results = [box.execute(runnable) for box in inst.boxes]
        except Exception as err:  # sqlglot can fail on odd input with other errors than ParseError
            failures.append(f"cannot transpile: {plain(str(err))}")
            continue
        failed = next(((i, r) for i, r in enumerate(results) if r.status != "ok"), None)
        if failed:
            failures.append(f"{_where(failed[0], inst)}{failed[1].status}: {plain(failed[1].error)}")
            continue
        golds.append(Gold(sql, order_matters(sql, scoring), results))
    return golds, failures


def order_matters(gold_sql: str, scoring: Scoring) -> bool:
    """Spider mode copies the official rule ('order by' anywhere in the gold, a subquery's included) so that
    verdicts reproduce published numbers; the other modes look at the top-level ORDER BY only."""
    if scoring.mode == "spider":
        return "order by" in gold_sql.lower()
    return has_order_by(gold_sql, scoring.dialect)


def score_pred(example: Example, pred_sql: str, golds: list[Gold], inst: Instances, scoring: Scoring) -> Score:
    if not pred_sql.strip():
        return Score("pred_parse_error", "no SQL found in the model output")
    parsed = parse_sql(pred_sql, scoring.dialect)
    pred_normal = normalise(pred_sql, scoring.dialect)  # eval.sql.exact_match, with the pred normalised once
    exact = any(normalise(g, scoring.dialect) == pred_normal for g in example.gold_sqls)
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
            return Score("match", "", True, exact)
    first = golds[0]
    i = next(i for i, (g, p) in enumerate(zip(first.results, pred_results)) if not _same(g, p, first, scoring))
    reason = _where(i, inst) + describe_mismatch(first.results[i], pred_results[i], first.order_matters)
    if len(golds) > 1:
        reason += f" (compared with the first of {len(golds)} accepted gold queries; none matched)"
    return Score("mismatch", reason, True, exact)


def _same(gold_result: ExecutionResult, other: ExecutionResult, gold: Gold, scoring: Scoring) -> bool:
    return compare_results(gold_result, other, order_matters=gold.order_matters, mode=scoring.mode,
                           float_tolerance=scoring.float_tolerance)


def flag_non_discriminating(rows: list[dict], examples: list[Example], instances: dict[str, Instances],
                            dialect: str, workers: int) -> None:
    """Settle `discriminating` for synthesized examples whose gold gave one result on every instance:
    eval.gold_check.check_gold also runs it on an empty copy of the schema. Only after the sandboxes are closed:
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
    from both queries before running them, DESIGN.md), then transpiled unless SQLite runs it."""
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
    only_gold = [r for r in gold.rows if (gold_rows - pred_rows)[key(r)]][:3]
    only_pred = [r for r in pred.rows if (pred_rows - gold_rows)[key(r)]][:3]
    parts = [f"gold {len(gold.rows)} rows, pred {len(pred.rows)} rows"]
    if only_gold:
        parts.append("only in gold: " + ", ".join(_short_row(r) for r in only_gold))
    if only_pred:
        parts.append("only in pred: " + ", ".join(_short_row(r) for r in only_pred))
    return "; ".join(parts)


def _short_row(row: tuple) -> str:
    text = repr(tuple(row))
    return text if len(text) <= 80 else text[:77] + "..."


if __name__ == "__main__":
    main()
