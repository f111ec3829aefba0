"""Generation speed of `sqlft eval`'s decoding loop against transformers' generate(), side by side in one process.

    .venv/bin/python benchmarks/decoding_speed.py RUN [--data RUN/validation.jsonl] [--questions 64] [--offset 64]
        [--batch-size 64] [--rounds 2] [--variants hf concat now] [--dtype float32] [--out runs/benchmarks/decoding_speed.json]

The questions are the eval's own prompts (schema + question, sorted by text as `sqlft eval` batches them), taken
from --offset; every variant generates the same greedy answers in batches of --batch-size, and the script checks
that they are identical. Variants:
  hf      transformers' generate() on left-padded rows (the anchor: what a plain script does);
  concat  sqlft's loop (prefix caching, finished rows dropped) on transformers' DynamicCache, a finished row
          dropped at once: the loop as it was before the roomy cache (issue 11);
  now     sqlft.model.decoding as shipped.
Rounds alternate the variants so that a noisy shared CPU slows them alike; the median of the rounds is reported.
"""

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py
from machine import print_machine  # noqa: E402


@contextlib.contextmanager
def variant(name: str, model):
    """Patch sqlft.model.decoding into the named variant for the duration of one generation."""
    import sqlft.model.decoding as decoding
    from transformers import DynamicCache

    saved = decoding.new_cache, decoding.DROP_WHEN_DONE, decoding._grouped_query_attention_in_sdpa
    if name == "concat":
        decoding.new_cache = lambda config, room: DynamicCache(config=config)
        decoding.DROP_WHEN_DONE = 10 ** 9  # any finished row is dropped at once
        decoding._grouped_query_attention_in_sdpa = lambda device: contextlib.nullcontext()
    try:
        yield
    finally:
        decoding.new_cache, decoding.DROP_WHEN_DONE, decoding._grouped_query_attention_in_sdpa = saved


def generate(model, prompts: list[str], name: str, max_new_tokens: int, batch_size: int) -> list[list[int]]:
    from sqlft.config import GenerationConfig

    gen = GenerationConfig(batch_size=batch_size, max_new_tokens=max_new_tokens)
    new = []
    for start in range(0, len(prompts), batch_size):
        ids = [model.encode(p) for p in prompts[start:start + batch_size]]
        if name == "hf":
            new += model._hf_generate(ids, gen)
        else:
            with variant(name, model):
                new += model._decode(ids, gen)
    return new


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("--data", help="eval JSONL (default: RUN/validation.jsonl)")
    p.add_argument("--questions", type=int, default=64)
    p.add_argument("--offset", type=int, default=64, help="first question, in the eval's text order")
    p.add_argument("--batch-size", type=int, default=64, help="rows per batch, as `sqlft eval --batch-size`")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=["hf", "concat", "now"], choices=["hf", "concat", "now"])
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--out", default="runs/benchmarks/decoding_speed.json")
    args = p.parse_args()
    info = print_machine(args.dtype)

    from sqlft.data.examples import load_eval_set
    from sqlft.model.generate import InferenceModel

    model = InferenceModel.load(args.run, dtype=args.dtype)
    examples = load_eval_set(args.data or str(Path(args.run) / "validation.jsonl")).examples
    prompts = sorted(model.sql_prompt(e.db_schema, e.question) for e in examples)  # as `sqlft eval` batches them
    prompts = prompts[args.offset:args.offset + args.questions]

    seconds: dict[str, list[float]] = {name: [] for name in args.variants}
    reference, tokens = None, 0
    for round_ in range(args.rounds):
        for name in args.variants:
            start = time.perf_counter()
            new = generate(model, prompts, name, args.max_new_tokens, args.batch_size)
            seconds[name].append(time.perf_counter() - start)
            # transformers stops at a stop string after the token that completes it; sqlft's loop too: compare
            # the decoded answers, the same way eval cuts them
            answers = [model.tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]
            reference = reference or answers
            if answers != reference:
                differ = sum(a != b for a, b in zip(answers, reference))
                print(f"warning: {name} gave {differ} answers unlike the first variant's", flush=True)
            tokens = tokens or sum(len(row) for row in new)
            print(f"round {round_ + 1} {name}: {seconds[name][-1]:.1f} s", flush=True)
    base = statistics.median(seconds[args.variants[0]])
    rows = {}
    for name in args.variants:
        median = statistics.median(seconds[name])
        rows[name] = {"median_s": round(median, 1), "runs_s": [round(s, 1) for s in seconds[name]],
                      "new_tokens_per_s": round(tokens / median, 1), "speedup": round(base / median, 2)}
        print(f"{name:7} median {median:6.1f} s  {tokens / median:6.1f} new tokens/s  x{base / median:.2f} "
              f"vs {args.variants[0]}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "run": args.run, "questions": len(prompts), "offset": args.offset,
                               "batch_size": args.batch_size,
                               "new_tokens": tokens, "variants": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
