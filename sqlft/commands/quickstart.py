"""The main job on the embedded default, end to end: train, merge, evaluate against the base model, ask.

    sqlft quickstart [CONFIG] [section.key=value ...]

Defaults to configs/smollm2-135m-lora-cpu.yaml (SmolLM2-135M-Instruct, LoRA, the demo questions over the
defog-data databases); about 15 minutes on a 2-core CPU. A rerun reuses a finished run and resumes a killed one.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from sqlft.config import Config, load_config
from sqlft.core.errors import SqlftError
from sqlft.config.run_folder import RunFolder

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "smollm2-135m-lora-cpu.yaml"  # sqlft/commands/ -> the repository
DEMO_QUESTION = ("How many authors are there?", "CREATE TABLE author (aid BIGINT, homepage VARCHAR, name VARCHAR, "
                 "oid BIGINT, PRIMARY KEY (aid));")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="sqlft quickstart", description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG))
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--eval-data", default="demo:eval", help="held-out eval set (default: the demo's)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        return quickstart(load_config(args.config, args.overrides), args.eval_data)
    except (SqlftError, FileNotFoundError) as err:
        sys.exit(f"sqlft quickstart: {err}")


def quickstart(config: Config, eval_data: str = "demo:eval") -> dict:
    """Train (or reuse) the run, merge it, evaluate base and merged model, ask one question; returns the figures."""
    from eval.run import eval_config, run as run_eval
    from sqlft.commands.ask import ask
    from sqlft.training.merge import merge
    from sqlft.commands.train import train

    run_dir = config.run_dir
    run = RunFolder(run_dir)
    timings = {}
    start = time.perf_counter()
    if run.trained:
        print(f"[quickstart] 1/4 train: {run_dir} is already trained, reusing it (delete it to train again)")
    else:
        print(f"[quickstart] 1/4 train {config.model.name} ({config.model.method}) -> {run_dir}")
        train(config, resume=run_dir.exists())  # a killed run resumes (or restarts if it saved no checkpoint)
    timings["train_s"] = time.perf_counter() - start

    start = time.perf_counter()
    print("[quickstart] 2/4 merge the adapter into a 16-bit model and verify it")
    merged = merge(run_dir)
    timings["merge_s"] = time.perf_counter() - start

    results = {}
    for label, model in (("base", config.model.name), ("fine-tuned", str(merged))):
        start = time.perf_counter()
        out = run.eval_dir("base" if label == "base" else "merged")
        print(f"[quickstart] 3/4 eval the {label} model on {eval_data} -> {out}")
        # The base model gets the run's template too, so that both see the very same prompts.
        results[label] = run_eval(eval_config({
            "model": model, "data": eval_data, "out": str(out), "template": config.data.template,
            "generation": {"max_new_tokens": config.generation.max_new_tokens}}))
        timings[f"eval_{label}_s"] = time.perf_counter() - start

    print("[quickstart] 4/4 ask the merged model a question")
    question, schema = DEMO_QUESTION
    sql = ask(str(merged), question, schema)
    print(sql)

    base_ex, tuned_ex = (results[k]["execution_accuracy"] for k in ("base", "fine-tuned"))
    print(f"\n[quickstart] execution accuracy on {eval_data} "
          f"({results['fine-tuned']['counts']['total']} questions, real defog-data databases):")
    print(f"  base       {config.model.name}: {100 * base_ex:.1f}%")
    print(f"  fine-tuned {merged}: {100 * tuned_ex:.1f}%")
    print(f"  question: {question}\n  answer:   {sql}")
    print("  timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    summary = {"base": base_ex, "fine_tuned": tuned_ex, "timings_s": timings, "merged": str(merged), "sql": sql}
    run.quickstart.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
