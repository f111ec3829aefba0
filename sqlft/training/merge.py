"""Merge a run's LoRA adapter into its base model: one 16-bit folder that plain `transformers` (or vLLM) loads.

    sqlft merge RUN [--out DIR] [--dtype auto|bfloat16|float16|float32] [--no-verify]

The base is reloaded unquantized in 16-bit, the adapter merged (merge_and_unload), and the folder saved with its
tokenizer, generation config, sqlft.yaml (template, system text) and a model card. Then the merged model is loaded
back from disk and checked against the adapter model along the adapter's greedy answers to sample prompts: at every
answer token the merged model must pick the same next token, and its logits must stay within 16-bit rounding of
the adapter's. Anything else fails the merge loudly.

Why not compare generated text: in 16 bits two candidate tokens are often tied or nearly so (bf16 logits step by
1/16 at magnitude 16), and any change in rounding (W + BA rounded once instead of apart, another batch shape while
decoding) can flip a greedy choice and everything after it. A correct merge failed a `sqlft quickstart` that way
(1 of 4 prompts on an AVX512-BF16 CPU; followed token by token, the same merge agreed everywhere). A choice that
differs where the adapter's own margin is within the measured deviation is such a tie; a wrong merge moves logits
by whole units.
"""

import argparse
import dataclasses
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from sqlft.core.errors import SqlftError
from sqlft.config import Config, to_dict
from sqlft.model.generate import InferenceModel, resolve_ref, stop_token_ids
from sqlft.model.loading import DTYPES, fit_embeddings, has_gpu, load_tokenizer, resolve_model_path
from sqlft.core.progress import progress
from sqlft.config.run_folder import RunFolder, open_run, write_merged_meta


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="sqlft merge", description=__doc__.split("\n")[0])
    parser.add_argument("run", help="training run folder (holds config.yaml and adapter/)")
    parser.add_argument("--out", help="output folder (default: RUN/merged)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"],
                        help="auto: the 16-bit type the run trained in (bfloat16 for train.precision bf16 or a "
                             "4-bit compute_dtype bfloat16, float16 for fp16); after fp32 training, the base model's "
                             "own 16-bit dtype (Llama-2: float16, Llama-3: bfloat16), float16 for a base stored in "
                             "float32 (finer than bfloat16, so greedy answers stay those of the adapter)")
    parser.add_argument("--no-verify", action="store_true", help="skip the merged-equals-adapter check")
    return parser.parse_args(argv)


def main(argv=None) -> Path:
    args = parse_args(argv)
    try:
        return merge(Path(args.run), Path(args.out) if args.out else None, args.dtype, verify=not args.no_verify)
    except (SqlftError, FileNotFoundError) as err:  # FileNotFoundError: a full fine-tune has no adapter
        sys.exit(f"sqlft merge: {err}")


class MergeMismatch(SqlftError, RuntimeError):
    """The merge cannot be verified, or the merged model does not answer as the adapter did: the message says how."""


def merge(run_dir: Path, out: Path | None = None, dtype: str = "auto", verify: bool = True) -> Path:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from transformers import GenerationConfig as HFGenerationConfig

    run = open_run(run_dir)  # NotARunError (a FileNotFoundError) says what a run folder holds
    if not run.has_adapter:
        raise FileNotFoundError(f"{run_dir} is a full fine-tune: its model/ folder is already a plain model, "
                                "there is no adapter to merge")
    ref = resolve_ref(str(run_dir))
    out = out or run.merged
    remote = ref.trust_remote_code  # the model's own code (Yuan 2.0, ...) runs here as it did in training
    dtype = merge_dtype(run.config(), ref.base, remote) if dtype == "auto" else dtype
    prompts = sample_prompts(run) if verify else []
    base = AutoModelForCausalLM.from_pretrained(resolve_model_path(ref.base), dtype=DTYPES[dtype],
                                                trust_remote_code=remote)
    fit_embeddings(base, load_tokenizer(ref.adapter, trust_remote_code=remote))  # tokens the run added
    adapter_model = PeftModel.from_pretrained(base, ref.adapter).to("cuda" if has_gpu() else "cpu").eval()
    # The adapter model's answers come from the very model object that is then merged: one base load, not two.
    expected = reference_answers(InferenceModel(adapter_model, load_tokenizer(ref.adapter, trust_remote_code=remote),
                                                ref.template, ref.system, ref), prompts) if verify else []
    merged = adapter_model.merge_and_unload()

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    tokenizer = load_tokenizer(ref.adapter, trust_remote_code=remote)  # as trained (InferenceModel switches its own copy to left padding)
    tokenizer.save_pretrained(tmp)
    HFGenerationConfig(eos_token_id=stop_token_ids(ref.template, tokenizer), pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, do_sample=False).save_pretrained(tmp)
    config = run.config()
    write_merged_meta(tmp, {
        "base_model": config.model.name, "template": ref.template, "system": ref.system,
        "schema_format": ref.schema_format, "schema_format_version": ref.schema_format_version,
        "sql_dialect": ref.sql_dialect, "method": config.model.method,
        "dtype": dtype, "trust_remote_code": remote, "run": str(run_dir.resolve()),
        "generation": dataclasses.asdict(config.generation)})  # `sqlft ask MERGED` decodes as the run says
    (tmp / "README.md").write_text(model_card(run, config, dtype))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)

    if verify:
        verify_merge(expected, out, dtype)
    print(f"[sqlft] merged {run_dir} -> {out} ({dtype})")
    return out


def merge_dtype(config: Config, base: str, trust_remote_code: bool = False) -> str:
    """`--dtype auto`: the 16-bit type the adapter was trained against, so that the merged weights compute as the
    training did (OVH's and the Llama-3 tutorial's bf16 merges after bf16 compute); after fp32 training, the base's."""
    compute = config.model.compute_dtype if config.model.method == "qlora" else ""
    if config.train.precision == "bf16" or compute == "bfloat16":
        return "bfloat16"
    if config.train.precision == "fp16" or compute == "float16":
        return "float16"
    return base_dtype(base, trust_remote_code)


def base_dtype(base: str, trust_remote_code: bool = False) -> str:
    """The base model's 16-bit dtype from its config.json, float16 when it is stored in 32 bits."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_model_path(base), trust_remote_code=trust_remote_code)
    stored = str(getattr(config, "dtype", "") or "")
    return "bfloat16" if "bfloat16" in stored else "float16"


def sample_prompts(run: RunFolder) -> list[str]:
    prompts = run.read_sample_prompts()
    if not prompts:
        raise MergeMismatch(f"{run.sample_prompts} is missing: cannot verify; rerun with --no-verify to skip the "
                            "check")
    return prompts


MAX_ANSWER_TOKENS = 48  # per sample prompt: enough to cover a typical SQL answer
MAX_MEAN_DEVIATION = 0.05  # of the adapter logits' spread: 16-bit rounding measured ~0.01, a wrong merge ~1


@dataclass
class Reference:
    """The adapter model's greedy answer to one sample prompt, as token ids, and its logits along the answer."""
    prompt_ids: list[int]
    answer_ids: list[int]
    logits: torch.Tensor  # [len(answer_ids), vocab]: row i predicts answer_ids[i]


def teacher_forced_logits(model, prompt_ids: list[int], answer_ids: list[int]) -> torch.Tensor:
    """The model's logits for each answer token given the prompt and the answer before it (fp32, on the CPU)."""
    with torch.inference_mode():
        ids = torch.tensor([prompt_ids + answer_ids], device=model.device)
        return model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float().cpu()


def reference_answers(model: InferenceModel, prompts: list[str]) -> list[Reference]:
    with progress(len(prompts), "merge check: adapter", "answer") as bar:
        answers = model.greedy_ids(prompts, MAX_ANSWER_TOKENS)
        bar.update(len(prompts))
    return [Reference(ids, answer, teacher_forced_logits(model.model, ids, answer))
            for ids, answer in zip((model.encode(p) for p in prompts), answers)]


def verify_merge(expected: list[Reference], merged_dir: Path, dtype: str) -> None:
    """The merged folder, loaded back from disk, follows the adapter model's greedy answers: the same next token at
    every step, except ties within 16-bit rounding, and logits within rounding of the adapter's."""
    merged = InferenceModel.load(str(merged_dir), dtype=dtype)
    tokens = ties = 0
    deviations, spreads, wrong = [], [], []
    with progress(len(expected), "merge check: merged", "answer") as bar:
        for n, ref in enumerate(expected):
            got = teacher_forced_logits(merged.model, ref.prompt_ids, ref.answer_ids)
            if got.shape != ref.logits.shape:
                raise MergeMismatch(f"the merged model's vocabulary ({got.shape[-1]}) differs from the adapter "
                                    f"model's ({ref.logits.shape[-1]})")
            deviation = (got - ref.logits).abs().amax(dim=-1)  # per answer token
            target, choice = torch.tensor(ref.answer_ids, dtype=torch.long), got.argmax(dim=-1)
            for i in (choice != target).nonzero().flatten().tolist():
                margin = ref.logits[i, target[i]] - ref.logits[i, choice[i]]  # the adapter's preference for its token
                if margin <= 2 * deviation[i]:
                    ties += 1
                else:
                    decode = merged.tokenizer.decode
                    wrong.append((n, i, decode([int(target[i])]), decode([int(choice[i])]), float(margin)))
            tokens += len(ref.answer_ids)
            deviations.append(deviation)
            spreads.append(ref.logits.std(dim=-1))
            bar.update(1)
    mean_deviation = float(torch.cat(deviations).mean()) if tokens else 0.0
    spread = float(torch.cat(spreads).mean()) if tokens else 1.0
    if wrong or mean_deviation > MAX_MEAN_DEVIATION * spread:
        where = (f"at token {wrong[0][1]} of sample prompt {wrong[0][0]} the adapter model writes {wrong[0][2]!r} "
                 f"and the merged one {wrong[0][3]!r}, though the adapter preferred its token by {wrong[0][4]:.2f}; "
                 if wrong else "")
        raise MergeMismatch(f"the merged model does not follow the adapter model on {len(expected)} sample prompts: "
                            f"{where}{len(wrong)} token(s) chosen differently beyond rounding, logits off by "
                            f"{mean_deviation:.3f} on average ({mean_deviation / spread:.1%} of their spread). The "
                            f"merged folder {merged_dir} must not be used; try --dtype float32.")
    print(f"[sqlft] verified: merged == adapter on {len(expected)} prompts ({tokens} greedy answer tokens, {dtype}; "
          f"{ties} tie(s) within 16-bit rounding; logits off by {mean_deviation:.3f} on average)")


def hub_id(name: str) -> str | None:
    """The Hugging Face hub id a run started from: the model an embedded GGUF was converted from, a hub id as given,
    a merged folder's own base; None for a local folder with no such record (the card then names none)."""
    from sqlft.config.embedded import EMBEDDED_PREFIX, HUB_IDS
    from sqlft.config.run_folder import read_merged_meta

    if name.startswith(EMBEDDED_PREFIX):
        return HUB_IDS.get(name[len(EMBEDDED_PREFIX):])
    if Path(name).expanduser().exists():
        meta = read_merged_meta(Path(name).expanduser())
        return hub_id(str(meta["base_model"])) if meta and meta.get("base_model") else None
    return name if re.fullmatch(r"[\w.-]+/[\w.-]+", name) else None


def model_card(run: RunFolder, config: Config, dtype: str) -> str:
    metrics = run.read_metrics()
    metrics.pop("log_history", None)
    data = ", ".join(d.path for d in config.data.train)
    base = hub_id(config.model.name)
    front = f"base_model: {base}\n" if base else ""  # the hub requires a hub id there, or no key at all
    return f"""---
{front}library_name: transformers
tags: [text-to-sql, sqlft, {config.model.method}]
---
# {config.name} (merged)

A {config.model.name} fine-tuned for text-to-SQL with sqlft ({config.model.method}, LoRA r={config.lora.r},
alpha={config.lora.alpha}), adapter merged into {dtype} weights.

- Training data: {data}
- Prompt template: `{config.data.template}` (see sqlft.prompts.templates); system text: "{config.data.system}"
- Schema in prompts: `{config.data.schema_format}` (see sqlft.sql.schema; prompts must write it the same way)
- Max length: {config.data.max_length} tokens; packing: {config.data.packing}

## Training metrics
```json
{json.dumps(metrics, indent=2)}
```

## Full config
```yaml
{yaml.safe_dump(to_dict(config), sort_keys=False)}```

## Use
```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("PATH")
tokenizer = AutoTokenizer.from_pretrained("PATH")
```
or `sqlft ask PATH --schema schema.sql "question"`, which applies the same prompt template and schema format as
training.
"""


if __name__ == "__main__":
    main()
