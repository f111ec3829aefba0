"""`sqlft eval`: a model answers an eval set, gold and predicted SQL run in a sandbox on the database's engine (SQLite,
DuckDB or PostgreSQL: sqlft.sql.engine), results are compared.

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
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from eval import report
from sqlft.core.errors import SqlftError
from sqlft.model.protocol import Backend
from sqlft.sql.compare import MODES
from sqlft.data.examples import EvalSet, Example, load_eval_set, load_predictions
from sqlft.sql.postgres import redact
from sqlft.scoring.execution import Scoring, flag_non_discriminating, prepare_instances, score_all
from sqlft.config import ConfigError, GenerationConfig, build_config, load_config
from sqlft.data.errors import DataError
from sqlft.core.progress import progress

DIALECTS = ("sqlite", "postgres", "duckdb")
ENGINES = ("auto", "sqlite", "duckdb")  # auto: sqlft.sql.engine.engine_for, the rule serve follows too


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
    mode: str = "spider"  # sqlft.sql.compare.MODES: spider strips DISTINCT as the official evaluation does
    float_tolerance: float = 0.0  # relative tolerance for floats (0: exact)
    out: str | None = None  # output folder (None: runs/eval/<model>-<data>)
    limit: int = 0  # first N examples only (0: all)
    template: str | None = None  # prompt template (None: the run's, or the model's own)
    instances: int = 3  # synthesized databases per schema-only example
    workers: int = 0  # scoring threads (0: one per core)
    dtype: str = "auto"  # weights for generation (auto: the GPU's native 16-bit type, float32 on a CPU)
    timeout_s: float = 5.0  # time limit per query in seconds, gold and pred alike
    allow_privileged_role: bool = False  # PostgreSQL: accept a role that may do more than read (warned)
    engine: str = "auto"  # where SQL runs: auto (sqlft.sql.engine's rule, serve's too), sqlite or duckdb (see --engine)
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
    if config.generation.candidates < 1 or (config.generation.vote and config.generation.candidates < 2):
        problems.append("--candidates must be at least 1, and --vote needs --candidates 2 or more (e.g. 4)")
    if config.generation.candidates > 1 and not config.generation.vote:
        problems.append(f"--candidates {config.generation.candidates} is for voting over executed results: add "
                        "--vote (execution-guided decoding, the first sample that runs, measured worse and was "
                        "removed)")
    if config.generation.vote and config.predictions:
        problems.append("--vote samples answers from a model: it cannot be used with --predictions")
    if config.generation.repair and config.predictions:
        problems.append("--repair needs each question's schema, which a predictions file does not carry: score the "
                        "eval set with a model (MODEL --data ... --repair)")
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
                   "official evaluation does; strict: keep it; set: BIRD's rule, the rows as a set (duplicates "
                   "and order ignored, columns in the gold's order)")
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
                   "16-bit type, float32 on a CPU; sqlft.model.precision)")
    p.add_argument("--no-prefix-cache", action="store_false", dest="generation.prefix_cache", help="read every "
                   "prompt whole (prefix caching off: slower, same answers; for measuring it)")
    p.add_argument("--candidates", type=int, dest="generation.candidates", help="with --vote: answers per question, "
                   "the greedy one and N-1 samples (generation.candidate_temperature)")
    p.add_argument("--vote", action="store_true", dest="generation.vote", help="with --candidates N: run every "
                   "answer on the question's database and keep the one whose result is the most common among those "
                   "that run (the greedy answer on a tie); the report says how often that changed the answer")
    p.add_argument("--repair", action="store_true", dest="generation.repair", help="an answer that does not run "
                   "on its database is rewritten to the table and column names its schema has (sqlft.sql.repair; an "
                   "answer that runs is never changed); the report says how many were and how many then match")
    p.add_argument("--timeout-s", type=float, help="time limit per query in seconds (default 5)")
    p.add_argument("--allow-privileged-role", action="store_true", help="PostgreSQL: score on a database whose "
                   "role is superuser, holds a server-file or signal role, or may write a table (refused by default: "
                   "the role is the last layer between model-written SQL and the server)")
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
        parser = argparse.ArgumentParser(prog="sqlft eval compare", description="two eval output folders side by "
                                         "side, with the examples that flipped")
        parser.add_argument("run_a", help="an --out folder of a finished sqlft eval")
        parser.add_argument("run_b", help="another one")
        args = parser.parse_args(argv[1:])
        try:
            print(report.compare_runs(Path(args.run_a), Path(args.run_b)))
        except FileNotFoundError as err:
            sys.exit(f"sqlft eval compare: {err}")
        return
    try:
        run(parse_args(argv))
    except (SqlftError, FileNotFoundError) as err:
        sys.exit(f"sqlft eval: {redact(str(err))}")


# ------------------------------------------------------------------ the recipe


def run(config: EvalConfig, load_model: Callable[..., Backend] | None = None) -> dict:
    """Load the eval set, generate what is missing, prepare databases, score in parallel, write the report; returns
    the report's summary (report.json).

    load_model(ref, template=None) returns a sqlft.model.protocol.Backend (default: the local model, or the
    OpenAI-compatible one with --openai-url; tests pass fakes).
    """
    check_before_loading(config)
    evalset = load_examples(config)
    dialect = config.dialect or evalset.dialect
    scoring = Scoring(dialect, config.mode, config.float_tolerance, config.timeout_s, config.generation.repair,
                      config.allow_privileged_role)
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


def check_before_loading(config: EvalConfig, model: bool = False) -> None:
    """Settings problems found before anything is read: --db-root (a folder, or a PostgreSQL URL libpq reads and
    that holds no password), the data or predictions file, and with `model` the model reference and template
    (checked before the model loads, once it is known that answers are missing). Raises ConfigError listing them."""
    from sqlft.config.preflight import db_root_problem, model_problems, template_problems

    problems = [p for p in [db_root_problem(config.db_root)] if p]
    for flag, path in (("--data", config.data), ("--predictions", config.predictions)):
        if path and not path.startswith("demo:") and not Path(path).expanduser().is_file():
            problems.append(f"{flag}: file not found: {path}")
    if model:
        if config.openai_url:  # the model is on the server; a --model-dir gives the template and tokenizer
            problems += model_problems(config.model_dir, config.template) if config.model_dir else \
                template_problems(config.template)
        else:
            problems += model_problems(config.model, config.template)
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) (no model was loaded):\n  " + "\n  ".join(problems))


def announce_databases(examples: list[Example]) -> None:
    """Say where the examples will run before anything is generated: real databases by engine, the examples that
    fall back to synthesized databases (and why), and the ones whose database cannot be found."""
    from sqlft.sql.engine import engine_for

    synthesized = [e for e in examples if not e.database and not e.database_error]
    missing = [e for e in examples if e.database_error]
    real = Counter()
    for e in examples:
        if e.database and not e.database_error:
            real[engine_for(e.database)] += 1
    parts = [f"{n} on {engine}" for engine, n in real.items()]
    if synthesized:
        parts.append(f"{len(synthesized)} on databases synthesized from their schema")
    if missing:
        parts.append(f"{len(missing)} with no usable database (gold errors)")
    print(f"examples: {', '.join(parts)}", file=sys.stderr)
    if synthesized and (real or missing):
        ids = ", ".join(e.db_id or e.source for e in synthesized[:5])
        print(f"note: {len(synthesized)} examples have no database of their own (no db_path, and their db_id is not "
              f"found under --db-root or among defog-data's): synthesized, e.g. {ids}", file=sys.stderr)
    for e in missing[:5]:
        print(f"no database for {e.source or e.id}: {redact(e.database_error)}", file=sys.stderr)


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
    if all(e.database_error for e in evalset.examples):
        raise DataError(f"no database found for any example: {redact(evalset.examples[0].database_error)}")
    announce_databases(evalset.examples)
    return evalset


def default_out(config: EvalConfig) -> str:
    if config.predictions:
        return f"runs/eval/{Path(config.predictions).stem}"
    model = Path(config.model.rstrip("/")).name.replace(":", "-")
    data = config.data.replace(":", "-") if config.data.startswith("demo:") else Path(config.data).stem
    return f"runs/eval/{model}-{data}"


# ------------------------------------------------------------------ generation (resumable)


class ResumeError(SqlftError, ValueError):
    """OUT already holds predictions made with another model, data or decoding."""


def fingerprint(config: EvalConfig, evalset: EvalSet) -> dict:
    """What decides the model's answers; batch_size and prefix_cache (speed only) are left out so that a resume
    may use others."""
    model = str(Path(config.model).resolve()) if Path(config.model).exists() else config.model
    decoding = {k: v for k, v in dataclasses.asdict(config.generation).items()
                if k not in ("batch_size", "prefix_cache", "repair")}
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


def remote_loader(config: EvalConfig) -> Callable[..., Backend]:
    """Generation on a serving engine (vLLM, TGI, ...) through its OpenAI-compatible completions endpoint: the
    same backend as `sqlft serve --backend openai`; prompts are still rendered by sqlft.prompts.templates."""
    from sqlft.model.remote import OpenAIBackend

    def load(ref: str, template: str | None = None):
        return OpenAIBackend(config.openai_url, ref, template=template, model_dir=config.model_dir)
    return load


def generate_predictions(config: EvalConfig, evalset: EvalSet, out: Path,
                         load_model: Callable[..., Backend] | None) -> tuple[dict[str, dict], str | None]:
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
    if load_model is None:
        check_before_loading(config, model=True)
    if load_model is None and config.openai_url:
        load_model = remote_loader(config)
    if load_model is None:
        from sqlft.model.generate import InferenceModel
        load_model = functools.partial(InferenceModel.load, dtype=config.dtype)
    print(f"loading {config.model}", file=sys.stderr)
    model = load_model(config.model, template=config.template)
    template = getattr(model, "template", config.template)
    meta_path.write_text(json.dumps({"fingerprint": wanted, "template": template}, indent=2))
    print(f"generating {len(todo)} answers ({len(done)} already in {pred_path})", file=sys.stderr)
    append_predictions(model, todo, config.generation, config.dialect or evalset.dialect, pred_path, done)
    return done, template


def append_predictions(model: Backend, todo: list[Example], gen: GenerationConfig, dialect: str, pred_path: Path,
                       done: dict[str, dict]) -> None:
    """Generate the answers of `todo` batch by batch, appending each batch to pred_path and to `done`."""
    prompts = {e.id: model.sql_prompt(e.db_schema, e.question) for e in todo}
    voting = gen.vote and gen.candidates > 1
    if voting:
        import torch
        torch.manual_seed(0)  # the same samples on a rerun
    sampling = dataclasses.replace(gen, do_sample=True, temperature=gen.candidate_temperature, num_beams=1)
    todo = sorted(todo, key=lambda e: prompts[e.id])  # text order: a batch shares its schema prefix (prefix_cache)
    drop_partial_line(pred_path)
    with open(pred_path, "a", encoding="utf-8") as f, progress(len(todo), "generating", "answer") as bar:
        for start in range(0, len(todo), gen.batch_size):
            batch = todo[start:start + gen.batch_size]
            began = time.perf_counter()
            batch_prompts = [prompts[e.id] for e in batch]
            # Answers are counted as they finish inside a batch: a batch of 64 takes minutes on a CPU.
            outputs = model.generate(batch_prompts, gen, on_answer=bar.update)
            # Voting: the samples are kept beside the greedy answer; scoring runs them all and picks (sqlft.sql.vote).
            samples = [model.generate(batch_prompts, sampling) for _ in range(gen.candidates - 1)] if voting else []
            seconds = time.perf_counter() - began
            for i, (example, output) in enumerate(zip(batch, outputs)):
                line = {"id": example.id, "raw": output.text, "prompt_tokens": output.prompt_tokens,
                        "new_tokens": output.new_tokens + sum(s[i].new_tokens for s in samples),
                        "seconds": seconds / len(batch)}
                if samples:
                    line["candidates"] = [s[i].text for s in samples]
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
                done[example.id] = line
            f.flush()  # a kill loses at most the batch being generated
            tokens = sum(o.new_tokens for o in outputs)
            bar.set_postfix_str(f"{tokens / seconds:.1f} new tokens/s", refresh=False)


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
            "tokens_per_s": round(new / seconds, 2) if seconds else 0.0}


if __name__ == "__main__":
    main()
