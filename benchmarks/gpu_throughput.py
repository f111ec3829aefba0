"""Training throughput of sqlft's QLoRA / LoRA path: tokens/s, peak memory and MFU, sqlft's setup vs the seed tutorials'.

No downloaded weights: a Llama-2-7B-shaped model with random weights is built on the GPU and trained through sqlft's
own code (sqlft.model.loading quantization_config / add_lora, sqlft.training.sft.build_trainer -> TRL SFTTrainer) on synthetic
token data whose lengths follow Spider prompts under the sql template. `--small` runs a tiny Llama on the CPU.
    python benchmarks/gpu_throughput.py [--methods qlora,lora] [--seq-lens 512,2048] [--json out.json]
    python benchmarks/gpu_throughput.py --small            # CPU, ~2 minutes: keeps this script from rotting
"""

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Nothing to download; without this PEFT looks up a config.json on the hub for the random model (read at import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from sqlft.config import Config, ModelConfig, load_config  # noqa: E402
from sqlft.training.dataset import Example, TrainingData  # noqa: E402
from sqlft.model.loading import (add_lora, attention, fix_bnb_cpu_gradients, has_gpu, quantization_config,  # noqa: E402
                            weights_dtype)
from sqlft.training.sft import build_trainer  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py
from machine import print_machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = ROOT / "configs" / "llama2-7b-qlora.yaml"  # sqlft's GPU recipe: r=64, all-linear, bf16, checkpointing

LLAMA2_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096)
TINY = dict(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, vocab_size=2048, max_position_embeddings=4096)

# Token lengths of the 7,000 Spider training records (../shared/data/spider_train) rendered with sqlft's sql template
# and system text, 5-percentile steps from min to max, measured with the embedded SmolLM2 tokenizer (49k BPE; Llama-2's
# 32k tokenizer gives somewhat more tokens). Embedded so that the benchmark runs where ../shared is absent (GPU hosts).
SPIDER_TOTAL_QUANTILES = [94, 160, 180, 199, 213, 229, 246, 263, 277, 299, 327, 369, 433, 468, 512, 599, 698, 750,
                          859, 1061, 2423]
SPIDER_ANSWER_QUANTILES = [5, 9, 13, 14, 16, 18, 20, 22, 23, 26, 29, 33, 42, 48, 53, 57, 62, 68, 74, 88, 252]

# (name, overrides): sqlft's setup packed and unpacked, and the seed tutorials' (no packing, every row padded to
# max_length, paged AdamW 32-bit).
SETUPS = {
    "sqlft-packed": ["data.packing=true", "train.optim=paged_adamw_8bit"],
    "sqlft-unpacked": ["data.packing=false", "data.pad_to_max_length=false", "train.optim=paged_adamw_8bit"],
    "seed-tutorials": ["data.packing=false", "data.pad_to_max_length=true", "train.optim=paged_adamw_32bit"],
}
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}  # dense bf16
ANCHORS = [  # published single-GPU figures, different models/GPUs/settings: orders of magnitude, not targets
    "torchtune Llama-3.1-8B QLoRA, one RTX 4090: 2,413 tokens/s, 7.4 GiB peak",
    "litgpt Llama-2-7B QLoRA, A100-40GB: 14.1 GB peak memory",
]


@dataclass
class Result:
    method: str
    seq_len: int
    setup: str
    optim: str
    steps: int
    seconds: float
    tokens_per_s: float  # real (non-padding) tokens trained on per second
    processed_tokens_per_s: float  # tokens through the model per second, padding included
    padding_share: float  # share of processed tokens that were padding
    peak_memory_gib: float  # GPU: max allocated; CPU: process max RSS
    mfu: float | None  # model FLOPs (see flops_per_token) on real tokens / peak; None without a known peak
    loss: float | None


def sample_lengths(n: int, max_length: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(total, answer) token lengths drawn from Spider's quantiles; longer than max_length is redrawn, as
    sqlft drops over-long examples rather than cutting the SQL."""
    out = []
    while len(out) < n:
        q = rng.uniform(0, len(SPIDER_TOTAL_QUANTILES) - 1)
        total = int(np.interp(q, range(len(SPIDER_TOTAL_QUANTILES)), SPIDER_TOTAL_QUANTILES))
        answer = int(np.interp(rng.uniform(0, len(SPIDER_ANSWER_QUANTILES) - 1),
                               range(len(SPIDER_ANSWER_QUANTILES)), SPIDER_ANSWER_QUANTILES))
        if total <= max_length:
            out.append((total, min(answer, total - 1)))
    return out


def synthetic_data(n: int, max_length: int, vocab_size: int, seed: int = 0) -> TrainingData:
    """Random token ids with Spider-like lengths; the loss mask covers the answer tokens, as in sqlft.training.dataset."""
    rng = np.random.default_rng(seed)
    examples = []
    for total, answer in sample_lengths(n, max_length, rng):
        ids = rng.integers(4, vocab_size, size=total).tolist()  # 0-3 are the special tokens of the tokenizer below
        examples.append(Example(ids, [0] * (total - answer) + [1] * answer))
    return TrainingData(train=examples, validation=[], report=None, validation_report=None, mix_info={},
                        sample_prompts=[], validation_records=[])


def special_tokens_tokenizer():
    """A tokenizer with only <pad>/<s>/</s>/<unk>: the data is already token ids; TRL needs it for padding."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                   pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def build_base_model(arch: dict, model_cfg: ModelConfig, device: str):
    """Random-weight Llama built directly on `device`; for QLoRA quantized from those weights by from_pretrained with
    sqlft's BitsAndBytesConfig, as load_base_model does from files (4-bit NF4, bf16 storage on a bf16 GPU)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**arch)
    dtype = weights_dtype(model_cfg)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=dtype, attn_implementation=attention(model_cfg))
    quant = quantization_config(model_cfg)
    if quant is not None:
        state_dict = model.state_dict()
        del model
        model = LlamaForCausalLM.from_pretrained(  # None: the weights come from state_dict, not from files
            None, config=config, state_dict=state_dict, quantization_config=quant, dtype=dtype,
            attn_implementation=attention(model_cfg), device_map={"": device})
        del state_dict
        fix_bnb_cpu_gradients(model)
    model.train()
    free_memory()
    return model


def flops_per_token(model, method: str) -> float:
    """Model FLOPs per trained token (matmuls with weights; attention scores and gradient-checkpointing recompute
    are not counted). Full fine-tuning: 6N (forward 2N, backward 4N). LoRA/QLoRA: 4N for the frozen base (forward 2N,
    input gradients 2N, no weight gradients) + 6N_lora for the adapters. N: all base parameters (4-bit weights at
    their logical count); the input-embedding lookup is counted although it is no matmul (~2% for Llama-2-7B)."""
    n_total = n_lora = 0
    for param in model.parameters():
        n = param.numel() * (2 * param.element_size() if param.__class__.__name__ == "Params4bit" else 1)
        n_total += n
        if param.requires_grad:
            n_lora += n
    if method == "full":
        return 6.0 * n_total
    return 4.0 * (n_total - n_lora) + 6.0 * n_lora


class StepClock(TrainerCallback):
    """Wall time and real (non-padding) tokens seen at the end of every optimizer step (GPU synchronized)."""

    def __init__(self):
        self.marks: list[tuple[float, int]] = []

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.marks.append((time.perf_counter(), state.num_input_tokens_seen))


def run_case(base, config: Config, setup: str, warmup: int, steps: int, arch: dict, peak_tflops: float | None):
    """Adds LoRA to `base`, trains warmup + steps through sqlft's build_trainer, measures, and removes the adapter."""
    # Enough examples that no epoch ends inside the timed steps (packing puts several examples in a row).
    data = synthetic_data(n=2 * (warmup + steps) * config.train.batch_size * max(1, config.data.max_length // 150),
                          max_length=config.data.max_length, vocab_size=arch["vocab_size"])
    model = add_lora(base, config)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = build_trainer(config, model, special_tokens_tokenizer(), data, Path(run_dir))
        batch_tokens = []  # tokens through the model per batch, padding included, in the order batches are made
        collate = trainer.data_collator

        def counting_collate(features):
            batch = collate(features)
            batch_tokens.append(batch["input_ids"].numel())
            return batch

        trainer.data_collator = counting_collate
        clock = StepClock()
        trainer.add_callback(clock)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        (t0, real0), (t1, real1) = clock.marks[warmup - 1], clock.marks[-1]
        seconds, real = t1 - t0, real1 - real0
        # One batch per step (grad_accum=1); the dataloader runs a batch ahead, so count by index, not by time.
        proc = sum(batch_tokens[warmup:warmup + steps])
        flops = flops_per_token(model, config.model.method)
        peak = (torch.cuda.max_memory_allocated() if torch.cuda.is_available()
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30
        losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        result = Result(
            method=config.model.method, seq_len=config.data.max_length, setup=setup, optim=config.train.optim,
            steps=steps, seconds=round(seconds, 3), tokens_per_s=round(real / seconds, 1),
            processed_tokens_per_s=round(proc / seconds, 1), padding_share=round(1 - real / proc, 3) if proc else 0.0,
            peak_memory_gib=round(peak, 2),
            mfu=round(flops * real / seconds / (peak_tflops * 1e12), 4) if peak_tflops else None,
            loss=round(losses[-1], 4) if losses else None)
        del trainer
    base = model.unload()  # the same base model, LoRA layers removed, for the next case
    del model
    free_memory()
    return base, result


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def gpu_peak_tflops(override: float | None) -> float | None:
    if override or not torch.cuda.is_available():
        return override
    name = torch.cuda.get_device_name()
    return next((tflops for key, tflops in PEAK_TFLOPS.items() if key in name), None)


def case_config(method: str, seq_len: int, setup: str, args) -> Config:
    overrides = [f"model.method={method}", f"data.max_length={seq_len}", *SETUPS[setup],
                 f"train.batch_size={args.batch_size}", "train.grad_accum=1", f"train.max_steps={args.warmup + args.steps}",
                 "train.eval_steps=0", "train.save_steps=1000000", f"train.logging_steps={args.warmup + args.steps}",
                 "train.report_to=none", "train.warmup_ratio=0.0", "train.early_stopping_patience=0"]
    if args.small:  # CPU: no paged optimizers (they page GPU memory), fp32 weights, no autocast
        overrides = [o.replace("paged_adamw_8bit", "adamw_torch").replace("paged_adamw_32bit", "adamw_torch")
                     for o in overrides] + ["train.precision=fp32", "model.dtype=float32"]
    return load_config(BASE_CONFIG, overrides)


def print_table(results: list[Result], device: str) -> None:
    print(f"\n{device}\n")
    print("| method | seq len | setup | optimizer | tokens/s (real) | tokens/s (processed) | padding | peak GiB | MFU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        mfu = f"{100 * r.mfu:.1f}%" if r.mfu is not None else "n/a"
        print(f"| {r.method} | {r.seq_len} | {r.setup} | {r.optim} | {r.tokens_per_s:,.0f} | "
              f"{r.processed_tokens_per_s:,.0f} | {100 * r.padding_share:.0f}% | {r.peak_memory_gib:.2f} | {mfu} |")
    print("\nPublished anchors (other models/GPUs/settings):\n" + "\n".join(f"- {a}" for a in ANCHORS))


def main(argv=None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny Llama on the CPU, a few steps")
    parser.add_argument("--methods", default="qlora,lora")
    parser.add_argument("--seq-lens", default=None, help="default 512,2048 (GPU) or 256,512 (--small)")
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; 1 with --small)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10; 3 with --small)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="GPU dense bf16 peak (default: by GPU name)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads with --small")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    print_machine("auto")  # figures name the machine they were measured on
    args.warmup = args.warmup or (1 if args.small else 3)
    args.steps = args.steps or (3 if args.small else 10)
    if not args.small and not has_gpu():
        sys.exit("gpu_throughput: no GPU here. Run with --small for the CPU check of this script.")
    device = "cpu" if args.small else "cuda"
    if args.small:
        torch.set_num_threads(args.threads)
    arch = TINY if args.small else LLAMA2_7B
    seq_lens = [int(s) for s in (args.seq_lens or ("256,512" if args.small else "512,2048")).split(",")]
    peak_tflops = None if args.small else gpu_peak_tflops(args.peak_tflops)
    label = (f"CPU ({torch.get_num_threads()} threads), tiny Llama {arch}; peak = the process's max RSS so far"
             if args.small else
             f"{torch.cuda.get_device_name()}, Llama-2-7B architecture, random weights, peak {peak_tflops} TFLOP/s")

    results = []
    for method in args.methods.split(","):
        first = case_config(method, seq_lens[0], "sqlft-packed", args)
        start = time.perf_counter()
        base = build_base_model(arch, first.model, device)
        print(f"[bench] {method}: base model built in {time.perf_counter() - start:.0f} s", flush=True)
        for seq_len in seq_lens:
            for setup in args.setups.split(","):
                config = case_config(method, seq_len, setup, args)
                base, result = run_case(base, config, setup, args.warmup, args.steps, arch, peak_tflops)
                results.append(result)
                print(f"[bench] {json.dumps(asdict(result))}", flush=True)
        del base
        free_memory()
    print_table(results, label)
    if args.json:
        args.json.write_text(json.dumps({"device": label, "results": [asdict(r) for r in results],
                                         "anchors": ANCHORS}, indent=2))
    return results


if __name__ == "__main__":
    main()
