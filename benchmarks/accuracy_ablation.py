"""Accuracy on a CPU budget (issue 6): execution accuracy, training tokens/s and generation seconds, one lever at a
time, each `sqlft eval` run in its own process on the same held-out questions.

    .venv/bin/python benchmarks/accuracy_ablation.py --run runs/smollm2-135m-spider --compact-run runs/spider-compact \
        --longer-run runs/spider-100 --data runs/smollm2-135m-spider/validation.jsonl --limit 200 \
        --out runs/ablation [--only NAME ...]
    .venv/bin/python benchmarks/accuracy_ablation.py --run runs/smollm2-135m-spider --longer-run runs/spider-100 \
        --suite defog --limit 0 --out runs/ablation --only base greedy long100

The spider suite scores whole databases of spider_train that neither run trained on (data.val_dbs), on 3
synthesized instances each; the defog suite scores Defog's SQLite-dialect questions on the real defog databases.
A variant whose OUT/NAME/report.json exists is read, not run again. Prints and writes OUT/<suite>.md.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: sqlft
from machine import print_machine  # noqa: E402

from sqlft.config.run_folder import RunFolder  # noqa: E402

DEFOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "defog" / "questions" / "questions_gen_sqlite.csv"
BASE = "embedded:smollm2-135m-instruct"


def variants(args) -> list[tuple[str, str, str, list[str]]]:
    """(name, lever, model, extra `sqlft eval` arguments)."""
    rows = [("base", "base model, zero-shot (full DDL)", BASE, ["--template", "chatml"]),
            ("greedy", "recipe: LoRA + packing, full DDL; greedy, prefix caching", args.run, [])]
    if args.longer_run:
        rows.append(("long100", "the recipe trained 100 steps instead of 55 (train.max_steps=100)", args.longer_run,
                     []))
    if args.compact_run:
        rows.append(("compact", "compact schema (data.schema_format=compact) instead of DDL", args.compact_run, []))
    rows += [
        ("no-prefix-cache", "prefix caching off (same answers)", args.run, ["--no-prefix-cache"]),
        # identifier-constrained and execution-guided decoding were measured here too (RESULTS.md), then removed
        ("vote4", "+ voting over executed results (4 candidates)", args.run, ["--candidates", "4", "--vote"]),
    ]
    return rows


def run_variant(name: str, model: str, extra: list[str], data: str, args) -> dict:
    out = Path(args.out) / args.suite / name
    report_path = out / "report.json"
    if not report_path.is_file():
        dialect = ["--dialect", "sqlite"] if args.suite == "defog" else []  # the SQLite-dialect golds, as Spider
        command = [sys.executable, "-m", "sqlft.cli", "eval", model, "--data", data, "--out", str(out),
                   "--limit", str(args.limit), "--batch-size", str(args.batch_size), *dialect, *extra]
        print("$ " + " ".join(command[2:]), flush=True)
        started = time.perf_counter()
        subprocess.run(command, check=True)
        (out / "wall_s.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    return json.loads(report_path.read_text())


def train_tokens_per_s(model: str) -> str:
    m = RunFolder(Path(model)).read_metrics()
    if not m:
        return "-"
    return f"{m['tokens_per_s']} ({m['train_runtime_s'] / 60:.1f} min)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="the recipe's training run")
    parser.add_argument("--longer-run", help="the same recipe trained longer (train.max_steps=100)")
    parser.add_argument("--compact-run", help="the same recipe trained with data.schema_format=compact")
    parser.add_argument("--suite", choices=("spider", "defog"), default="spider")
    parser.add_argument("--data", help="spider suite: the held-out records (RUN/validation.jsonl)")
    parser.add_argument("--limit", type=int, default=200, help="first N questions (0: all)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    args = parser.parse_args()
    print_machine("auto")  # figures name the machine they were measured on
    data = str(DEFOG) if args.suite == "defog" else args.data
    if not data:
        parser.error("--data is needed for the spider suite")

    lines = [f"| variant | EX | exact | valid SQL | statuses | train tokens/s (time) | generation s | "
             "new tokens/s | changed by voting |", "|---|---|---|---|---|---|---|---|---|"]
    base_ex = None
    for name, lever, model, extra in variants(args):
        if args.only and name not in args.only:
            continue
        r = run_variant(name, model, extra, data, args)
        g, c = r["generation"], r["counts"]
        base_ex = r["execution_accuracy"] if name == "base" else base_ex
        gain = f" ({100 * (r['execution_accuracy'] - base_ex):+.1f})" if base_ex is not None and name != "base" else ""
        statuses = ", ".join(f"{k} {v}" for k, v in c.items() if v and k != "total")
        lines.append(f"| {lever} | **{100 * r['execution_accuracy']:.1f}%**{gain} | {100 * r['exact_match']:.1f}% | "
                     f"{100 * r['valid_sql']:.1f}% | {statuses} | {train_tokens_per_s(model)} | {g['total_s']:.0f} | "
                     f"{g['tokens_per_s']} | {(r.get('voting') or {}).get('changed', 0)} |")
    table = "\n".join(lines)
    print(table)
    (Path(args.out) / f"{args.suite}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
