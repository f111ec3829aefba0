"""Scoring speed: sqlft's parallel scorer (shared sandboxes, a thread pool) against a plain sequential loop that
opens a DuckDB connection per query, as common evaluation scripts do (Spider's exec_on_db opens one per query).

    .venv/bin/python benchmarks/eval_speed.py [--spider 150] [--workers N] [--out runs/benchmarks/eval_speed.json]

Predictions: every gold query of demo:eval (real defog-data databases) and of the first --spider Spider train
records (schema-only: 3 synthesized instances each), plus two perturbations of each (a changed result, a
broken column). Both scorers get the same prepared databases and transpiled SQL; only execution differs.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import duckdb
from sqlglot import exp

from sqlft.sql.compare import compare_results
from sqlft.data.examples import Example, load_eval_set
from sqlft.scoring.execution import Scoring, instance_key, prepare_instances, score_all
from sqlft.sql.sandbox import ExecutionResult
from sqlft.sql.dialect import has_order_by, parse_sql, strip_distinct, to_duckdb
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py
from machine import print_machine  # noqa: E402

SPIDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "spider_train" / "spider_train.jsonl"


def perturbations(example: Example, dialect: str) -> list[tuple[str, str]]:
    """(kind, pred_sql): the gold itself, the gold with its result changed, the gold with a wrong column."""
    gold = example.gold_sqls[0]
    variants = [("gold", gold)]
    tree = parse_sql(gold, dialect).tree
    if tree is None:
        return variants
    changed = tree.copy()
    if changed.args.get("where"):
        changed.set("where", None)
    else:
        changed.set("limit", exp.Limit(expression=exp.Literal.number(1)))
    variants.append(("changed", changed.sql(dialect=dialect)))
    broken = tree.copy()
    column = next(broken.find_all(exp.Column), None)
    if column is not None:
        column.set("this", exp.to_identifier(column.name + "_nope"))
        variants.append(("broken", broken.sql(dialect=dialect)))
    return variants


def build(spider_n: int) -> list[tuple[list[Example], str]]:
    """(examples with pred_sql set, dialect) per data set."""
    sets = [load_eval_set("demo:eval")]
    if spider_n and SPIDER.is_file():
        sets.append(load_eval_set(str(SPIDER), limit=spider_n))
    built = []
    for evalset in sets:
        examples = [dataclasses.replace(e, id=f"{e.id}-{kind}", pred_sql=sql)
                    for e in evalset.examples for kind, sql in perturbations(e, evalset.dialect)]
        built.append((examples, evalset.dialect))
    return built


def run_once(db_path: Path, sql: str) -> ExecutionResult:
    """A fresh connection per query, as Spider's exec_on_db does with sqlite3."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        cursor = con.execute(sql)
        return ExecutionResult("ok", [d[0] for d in cursor.description or []], cursor.fetchall())
    except duckdb.Error as err:
        return ExecutionResult("error", error=str(err))
    finally:
        con.close()


def score_sequential(examples: list[Example], instances: dict, scoring: Scoring) -> list[bool]:
    verdicts = []
    for example in examples:
        inst = instances[instance_key(example)]
        gold, pred = example.gold_sqls[0], example.pred_sql or ""
        gold_sql = to_duckdb(strip_distinct(gold, scoring.dialect), scoring.dialect, inst.columns)
        pred_sql = to_duckdb(strip_distinct(pred, scoring.dialect), scoring.dialect, inst.columns)
        order = has_order_by(gold, scoring.dialect)
        ok = True
        for path in inst.paths:
            g, p = run_once(path, gold_sql), run_once(path, pred_sql)
            if g.status != "ok" or not compare_results(g, p, order_matters=order, mode=scoring.mode):
                ok = False
                break
        verdicts.append(ok)
    return verdicts


def score_parallel(examples: list[Example], instances: dict, scoring: Scoring, workers: int) -> list[bool]:
    try:
        rows = score_all(examples, {}, instances, scoring, workers)
    finally:
        for inst in instances.values():
            for box in inst.boxes:
                box.close()
            inst.boxes = []
    return [row["status"] == "match" for row in rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spider", type=int, default=150, help="Spider train records to add (0: demo only)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default="runs/benchmarks/eval_speed.json")
    args = parser.parse_args(argv)
    machine = print_machine("fp32")  # figures name the machine they were measured on

    figures = []
    for examples, dialect in build(args.spider):
        scoring = Scoring(dialect, "spider", 0.0)
        instances = prepare_instances(examples, dialect, 3, args.workers)  # cached: not timed
        queries = sum(2 * len(instances[instance_key(e)].paths) for e in examples)
        timings, verdicts = {}, {}
        scorers = (("sequential, connection per query", lambda: score_sequential(examples, instances, scoring)),
                   ("sqlft scorer, 1 worker", lambda: score_parallel(examples, instances, scoring, 1)),
                   (f"sqlft scorer, {args.workers} workers",
                    lambda: score_parallel(examples, instances, scoring, args.workers)))
        for name, score in scorers:
            start = time.perf_counter()
            verdicts[name] = score()
            timings[name] = time.perf_counter() - start
        names = list(timings)
        differ = [e.id for e, a, b in zip(examples, verdicts[names[0]], verdicts[names[-1]]) if a != b]
        agree = len(examples) - len(differ)
        synthetic = any(inst.synthetic for inst in instances.values())
        figure = {"data": "spider train (synthesized x3)" if synthetic else "demo:eval (defog-data databases)",
                  "predictions": len(examples), "queries": queries, "cpu_count": os.cpu_count(),
                  "seconds": {k: round(v, 3) for k, v in timings.items()},
                  "predictions_per_s": {k: round(len(examples) / v, 1) for k, v in timings.items()},
                  "speedup_vs_sequential": {k: round(timings[names[0]] / v, 2) for k, v in timings.items()},
                  "verdicts_agree": f"{agree}/{len(examples)}", "verdicts_differ": differ[:20],
                  "matches": sum(verdicts[names[-1]]), "machine": machine}
        figures.append(figure)
        print(f"\n{figure['data']}: {figure['predictions']} predictions, {queries} query executions, "
              f"{figure['matches']} matches, verdicts agree {figure['verdicts_agree']} {differ[:5] or ''}")
        for name in names:
            print(f"  {name:36} {timings[name]:7.2f} s  {len(examples) / timings[name]:7.1f} pred/s  "
                  f"x{timings[names[0]] / timings[name]:.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2))
    print(f"\nwritten to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
