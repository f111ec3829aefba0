"""Training throughput: packing vs the seed tutorials' setup (no packing, every row padded to max_length).

    python benchmarks/train_throughput.py [--steps 12] [--rounds 2] [--records 400] [--out FILE.json]

Both variants train the default config (embedded SmolLM2-135M, QLoRA) on ../shared/data/spider_train for the same
number of steps, alternating A, B, A, B ... so that a noisy, shared machine slows both alike. Each run is a fresh
process (so peak RSS is its own). Reported: real (non-padding) tokens/s, peak memory, and the ratio.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPIDER = ROOT.parent / "shared" / "data" / "spider_train" / "spider_train.jsonl"
CONFIG = ROOT / "configs" / "smollm2-135m-qlora-cpu.yaml"

VARIANTS = {
    "packing": ["data.packing=true"],
    "padded_to_max_length": ["data.packing=false", "data.pad_to_max_length=true"],
}


def run_once(name: str, extra: list[str], args, workdir: Path, index: int) -> dict:
    out = workdir / f"{name}-{index}"
    cmd = [sys.executable, "-m", "sqlft.train", str(CONFIG),
           f"data.train=[{{path: {SPIDER}, max_records: {args.records}}}]", f"data.max_length={args.max_length}",
           "data.val_fraction=0", f"train.max_steps={args.steps}", f"train.batch_size={args.batch_size}",
           "train.eval_steps=0", f"train.save_steps={args.steps * 10}", "train.report_to=none",
           f"train.output_dir={out}", *extra]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = json.loads((out / "metrics.json").read_text())
    return {"tokens_per_s": metrics["tokens_per_s"], "peak_memory_mb": metrics["peak_memory_mb"],
            "tokens_seen": metrics["tokens_seen"], "runtime_s": metrics["train_runtime_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=768, help="Spider prompts hold the whole schema")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    if not SPIDER.is_file():
        sys.exit(f"{SPIDER} is absent: this benchmark needs ../shared/data")

    results = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for name, extra in VARIANTS.items():
                results[name].append(run_once(name, extra, args, Path(tmp), i))
                print(f"round {i + 1} {name}: {results[name][-1]}", flush=True)

    summary = {name: {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs),
                      "peak_memory_mb": max(r["peak_memory_mb"] for r in runs), "runs": runs}
               for name, runs in results.items()}
    ratio = summary["packing"]["tokens_per_s"] / summary["padded_to_max_length"]["tokens_per_s"]
    summary["ratio_packing_over_padded"] = round(ratio, 2)
    summary["settings"] = vars(args)
    print(f"\nreal tokens/s (median of {args.rounds}): packing {summary['packing']['tokens_per_s']:.1f}, "
          f"padded to max length {summary['padded_to_max_length']['tokens_per_s']:.1f} -> x{ratio:.2f}")
    print(f"peak memory: packing {summary['packing']['peak_memory_mb']:.0f} MiB, padded "
          f"{summary['padded_to_max_length']['peak_memory_mb']:.0f} MiB")
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
