"""Training throughput, variants side by side in one run, on ../shared/data/spider_train (or --data demo:train).

    python benchmarks/train_throughput.py [--compare packing|head|method|memory|microbatch|shapes|shared_prefix|recipe|
                                                    packing_in_recipe]
                                          [--steps 12]
                                          [--rounds 2]
                                          [--precision auto] [--data FILE|demo:train] [--out FILE.json]

--compare packing: packing vs the seed tutorials' setup (no packing, every row padded to max_length), on the
  default config (embedded SmolLM2-135M, LoRA).
--compare head: the Spider recipe (configs/smollm2-135m-spider-cpu.yaml: LoRA, 4 x 768 packed tokens per step, no
  activation checkpointing) as shipped (LM head on the answer positions only, sqlft.training.lm_head; 1 row per forward,
  4 accumulation steps) vs sqlft before issue 10 (TRL's head on every position plus its entropy/accuracy metrics,
  4 rows per forward).
--compare method: the quickstart config in LoRA vs QLoRA NF4 (use --data demo:train --max-length 384).
--compare memory: the Spider recipe (micro-batch 1 x 4 accumulation steps, LoRA dropout 0.05) vs no LoRA dropout,
  micro-batches of 2 x 2 and of 4.
--compare microbatch: the quickstart config with micro-batches of 4, 2 x 2 and 1 x 4 (--data demo:train).
--compare shapes: the Spider recipe with packed rows rounded up to a multiple of 64 tokens (shipped) vs their exact
  lengths (data.pad_packed_to_multiple_of=0); run it with --steps 16 or more, as the memory grows with the steps.
--compare shared_prefix: the Spider recipe with today's packing (TRL's, rows of --max-length tokens) vs shared-schema
  packing (data.packing=shared_prefix: the schema once per row, then many question -> answer blocks) in rows of the
  same length, and in rows of 1536 tokens (data.max_length=1536: rows and the longest record kept). One row per
  optimizer step (train.grad_accum=1): the figure is time per row, and records per row set records per hour. Run it
  with --records 2000 (the file's first 2000 records: ~40 whole databases, as many questions per schema as the
  whole set) --steps 2 --rounds 1 to stay near ten minutes on 2 cores.
--compare recipe: the Spider recipe as shipped (full fine-tuning, shared-schema rows of 1536 tokens, gradient
  checkpointing, attention by pieces) against the recipe before issue 25 (LoRA, TRL's packed rows of 768 tokens) and
  against itself with the dense block mask through SDPA, one row per step each; --records 2000 as shared_prefix.
--compare packing_in_recipe: the packing alone, inside the shipped recipe: TRL's packed rows against shared-schema
  rows, both full fine-tuning on 1536-token rows with gradient checkpointing, one row per step, and the recipe before
  issue 25 as a third variant; --records 2000 --steps 6 --rounds 3 (17 min on 2 cores).
The Spider comparisons run the recipe as they first measured it, a LoRA adapter (SPIDER_LORA below); the recipe now
fine-tunes all weights, which --compare shared_prefix_rows adds as its last variant.
Variants alternate A, B, A, B ... so that a noisy, shared machine slows both alike. Each run is a fresh process (so
peak RSS is its own). Reported: the machine, real (non-padding) tokens/s, s/step, peak RSS, and the ratios.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import print_machine

ROOT = Path(__file__).resolve().parents[1]
SPIDER = ROOT.parent / "shared" / "data" / "spider_train" / "spider_train.jsonl"
DEMO = ROOT / "configs" / "smollm2-135m-lora-cpu.yaml"
SPIDER_RECIPE = ROOT / "configs" / "smollm2-135m-spider-cpu.yaml"
# The Spider recipe as these comparisons measured it before it moved to full fine-tuning (issue 25): a LoRA adapter,
# lr 1e-3, 4 rows per optimizer step. Each variant's own overrides come after these and win.
SPIDER_LORA = ["model.method=lora", "train.lr=1e-3", "train.grad_accum=4"]
# The recipe before issue 25 (LoRA on TRL's packed rows), one row per step; and the recipe as shipped, whose rows
# run_once's defaults (768 tokens, no checkpointing) would otherwise override.
BEFORE_ISSUE_25 = [*SPIDER_LORA, "data.packing=true", "train.grad_accum=1"]
SHIPPED = ["data.max_length=1536", "train.gradient_checkpointing=true"]
COMPARISONS = {  # name -> (config, {variant: overrides}); the first variant is the baseline of the ratios
    "packing": (DEMO, {
        "packing": ["data.packing=true"],
        "padded_to_max_length": ["data.packing=false", "data.pad_to_max_length=true"]}),
    "head": (SPIDER_RECIPE, {
        "label_only_head": [*SPIDER_LORA, "train.token_metrics=false"],
        # sqlft before issue 10: TRL's head on every position with its token metrics, 4 rows per forward
        "before_full_head_microbatch_4": [*SPIDER_LORA, "train.token_metrics=true", "train.batch_size=4",
                                          "train.grad_accum=1"]}),
    # The quickstart's method: QLoRA dequantizes every 4-bit weight in each forward and backward, which on a CPU
    # costs more time than it saves memory for a 135M model (run with --data demo:train --max-length 384).
    "method": (DEMO, {
        "lora": ["model.method=lora"],
        "qlora_nf4": ["model.method=qlora"]}),
    # The Spider recipe's memory and speed: LoRA dropout keeps a dropped copy of every adapted layer's input for
    # backward; the micro-batch (rows per forward) sets how many activations are held; the optimizer step is 4 rows.
    "memory": (SPIDER_RECIPE, {
        "recipe": [*SPIDER_LORA],
        "lora_dropout_0": [*SPIDER_LORA, "lora.dropout=0"],
        "microbatch_2_accum_2": [*SPIDER_LORA, "train.batch_size=2", "train.grad_accum=2"],
        "microbatch_4": [*SPIDER_LORA, "train.batch_size=4", "train.grad_accum=1"]}),
    # The same micro-batch choice on the quickstart config (run with --data demo:train --max-length 384).
    "microbatch": (DEMO, {
        "microbatch_4": ["train.batch_size=4", "train.grad_accum=1"],
        "microbatch_2_accum_2": ["train.batch_size=2", "train.grad_accum=2"],
        "microbatch_1_accum_4": ["train.batch_size=1", "train.grad_accum=4"]}),
    # Resident memory over many steps: each distinct row length adds kernels to oneDNN's primitive cache on a CPU.
    "shapes": (SPIDER_RECIPE, {
        "rounded_to_64": [*SPIDER_LORA, "data.pad_packed_to_multiple_of=64"],
        "exact_lengths": [*SPIDER_LORA, "data.pad_packed_to_multiple_of=0"]}),
    # Records per hour: shared-schema packing reads each schema once per row instead of once per question.
    "shared_prefix": (SPIDER_RECIPE, {
        "packing": BEFORE_ISSUE_25,
        "shared_prefix": [*SPIDER_LORA, "data.packing=shared_prefix", "train.grad_accum=1"],
        "shared_prefix_rows_1536": [*SPIDER_LORA, "data.packing=shared_prefix", "train.grad_accum=1",
                                    "data.max_length=1536"]}),
    # Longer shared rows hold more records per schema; gradient checkpointing trades ~1/3 more compute for memory.
    "shared_prefix_rows": (SPIDER_RECIPE, {
        "packing": BEFORE_ISSUE_25,
        "shared_prefix": [*SPIDER_LORA, "data.packing=shared_prefix", "train.grad_accum=1"],
        "shared_prefix_rows_1024": [*SPIDER_LORA, "data.packing=shared_prefix", "train.grad_accum=1",
                                    "data.max_length=1024"],
        "shared_prefix_rows_1536_checkpointing": [*SPIDER_LORA, "data.packing=shared_prefix", "train.grad_accum=1",
                                                  "data.max_length=1536", "train.gradient_checkpointing=true"],
        # the recipe as shipped (full fine-tuning, 1 row a step; issue 25): only what run_once sets otherwise
        "shared_prefix_rows_1536_full": SHIPPED}),
    # Issue 25's question in one line: the Spider recipe as shipped against the recipe before it (LoRA on TRL's
    # packed rows of 768 tokens), time per row and records per row, so records per hour; and the shipped recipe
    # with the dense block mask through SDPA instead of its attention by pieces (sqlft.training.prefix_attention).
    "recipe": (SPIDER_RECIPE, {
        "before_issue_25": BEFORE_ISSUE_25,
        "shipped": SHIPPED,
        "shipped_dense_block_mask": [*SHIPPED, "model.attn_implementation=sdpa"]}),
    # The packing alone: the shipped recipe (full fine-tuning, 1536-token rows, checkpointing) on TRL's packed rows
    # (each record whole, its schema included) against the same recipe on shared-schema rows; nothing else differs.
    "packing_in_recipe": (SPIDER_RECIPE, {
        "ordinary_packing": [*SHIPPED, "data.packing=true"],
        "shipped": SHIPPED,
        "before_issue_25": BEFORE_ISSUE_25}),
}


def run_once(config: Path, name: str, extra: list[str], args, workdir: Path, index: int) -> dict:
    out = workdir / f"{name}-{index}"
    cmd = [sys.executable, "-m", "sqlft.commands.train", str(config),
           f"data.train=[{{path: {args.data}, max_records: {args.records}}}]", f"data.max_length={args.max_length}",
           "data.val_fraction=0", "data.val_dbs=[]", f"train.max_steps={args.steps}",
           f"train.precision={args.precision}", "train.eval_steps=0",
           f"train.save_steps={args.steps * 10}", "train.report_to=none", "train.gradient_checkpointing=false",
           f"train.output_dir={out}", *extra]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"{name} failed (exit {done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"tokens_per_s": metrics["tokens_per_s"], "peak_memory_mb": metrics["peak_memory_mb"],
            "s_per_step": round(metrics["train_runtime_s"] / metrics["global_step"], 1),
            "tokens_seen": metrics["tokens_seen"], "runtime_s": metrics["train_runtime_s"],
            # rows trained x records per row of the run's rows (TRL's packed rows or the shared-schema rows)
            "records_per_hour": metrics.get("records_per_hour"),
            "records_per_row": round(metrics["train_records"] / metrics["train_rows"], 2)
            if metrics.get("train_rows") else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", choices=sorted(COMPARISONS), default="packing")
    parser.add_argument("--precision", default="auto", help="train.precision of both variants (auto, bf16, fp32)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--max-length", type=int, default=768, help="Spider prompts hold the whole schema")
    parser.add_argument("--data", default=str(SPIDER), help="spider_train.jsonl (default: ../shared/data) or demo:train")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    if ":" not in args.data and not Path(args.data).is_file():
        sys.exit(f"{args.data} is absent: this benchmark needs ../shared/data (or --data)")

    machine = print_machine(args.precision)
    config, variants = COMPARISONS[args.compare]
    results = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for name, extra in variants.items():
                results[name].append(run_once(config, name, extra, args, Path(tmp), i))
                print(f"round {i + 1} {name}: {results[name][-1]}", flush=True)

    summary = {name: {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs),
                      "records_per_hour": statistics.median(r["records_per_hour"] or 0 for r in runs),
                      "records_per_row": runs[0]["records_per_row"],
                      "s_per_step": statistics.median(r["s_per_step"] for r in runs),
                      "peak_memory_mb": max(r["peak_memory_mb"] for r in runs), "runs": runs}
               for name, runs in results.items()}
    first, *others = variants
    for other in others:
        summary[f"ratio_{first}_over_{other}"] = round(summary[first]["tokens_per_s"] / summary[other]["tokens_per_s"], 2)
        if summary[first]["records_per_hour"]:
            summary[f"records_per_hour_{other}_over_{first}"] = round(
                summary[other]["records_per_hour"] / summary[first]["records_per_hour"], 2)
    summary["settings"] = {**vars(args), "config": str(config.relative_to(ROOT))}
    summary["machine"] = machine
    print(f"\n{config.name} on {args.data}, {args.steps} steps x {args.rounds} round(s), rows of <= "
          f"{args.max_length} tokens")
    for name in variants:
        print(f"  {name:30} {summary[name]['records_per_hour']:8.0f} records/h ({summary[name]['records_per_row']} "
              f"per row)  {summary[name]['tokens_per_s']:7.1f} real tokens/s  {summary[name]['s_per_step']:6.1f} "
              f"s/step  peak RSS {summary[name]['peak_memory_mb'] / 1024:5.2f} GiB")
    for other in others:
        print(f"  {first} / {other}: x{summary[f'ratio_{first}_over_{other}']:.2f} tokens/s", end="")
        key = f"records_per_hour_{other}_over_{first}"
        print(f"; {other} / {first}: x{summary[key]:.2f} records/h" if key in summary else "")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
