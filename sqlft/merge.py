"""Merge a run's LoRA adapter into its base model: one 16-bit folder that plain `transformers` (or vLLM) loads.

    sqlft merge RUN [--out DIR] [--dtype auto|bfloat16|float16|float32] [--no-verify]

The base is reloaded unquantized in 16-bit, the adapter merged (merge_and_unload), and the folder saved with its
tokenizer, generation config, sqlft.yaml (template, system text) and a model card. Then the merged model is loaded
back from disk and its greedy answers to sample prompts are compared with the adapter model's: any difference
fails the merge loudly.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import yaml

from sqlft.config import Config, GenerationConfig, to_dict
from sqlft.generate import InferenceModel, resolve_ref, stop_token_ids
from sqlft.modeling import DTYPES, fit_embeddings, has_gpu, load_tokenizer, resolve_model_path
from sqlft.progress import progress
from sqlft.run_folder import RunFolder, open_run, write_merged_meta


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="sqlft merge", description=__doc__.split("\n")[0])
    parser.add_argument("run", help="training run folder (holds config.yaml and adapter/)")
    parser.add_argument("--out", help="output folder (default: RUN/merged)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"],
                        help="auto: the base model's own 16-bit dtype (Llama-2: float16, Llama-3: bfloat16), "
                             "float16 for a base stored in float32 (finer than bfloat16, so greedy answers stay "
                             "those of the adapter)")
    parser.add_argument("--no-verify", action="store_true", help="skip the merged-equals-adapter check")
    return parser.parse_args(argv)


def main(argv=None) -> Path:
    args = parse_args(argv)
    try:
        return merge(Path(args.run), Path(args.out) if args.out else None, args.dtype, verify=not args.no_verify)
    except (FileNotFoundError, MergeMismatch) as err:
        sys.exit(f"sqlft merge: {err}")


class MergeMismatch(RuntimeError):
    pass


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
    dtype = base_dtype(ref.base, remote) if dtype == "auto" else dtype
    prompts = sample_prompts(run) if verify else []
    base = AutoModelForCausalLM.from_pretrained(resolve_model_path(ref.base), dtype=DTYPES[dtype],
                                                trust_remote_code=remote)
    fit_embeddings(base, load_tokenizer(ref.adapter, trust_remote_code=remote))  # tokens the run added
    adapter_model = PeftModel.from_pretrained(base, ref.adapter).to("cuda" if has_gpu() else "cpu").eval()
    # The adapter model's answers come from the very model object that is then merged: one base load, not two.
    expected = greedy_answers(InferenceModel(adapter_model, load_tokenizer(ref.adapter, trust_remote_code=remote),
                                             ref.template, ref.system, ref), prompts, "merge check: adapter") \
        if verify else []
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
        "schema_format": ref.schema_format, "sql_dialect": ref.sql_dialect, "method": config.model.method,
        "dtype": dtype, "trust_remote_code": remote, "run": str(run_dir.resolve())})
    (tmp / "README.md").write_text(model_card(run, config, dtype))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)

    if verify:
        verify_merge(expected, prompts, out, dtype)
    print(f"[sqlft] merged {run_dir} -> {out} ({dtype})")
    return out


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


def greedy_answers(model: InferenceModel, prompts: list[str], desc: str) -> list[str]:
    gen = GenerationConfig(max_new_tokens=48, batch_size=max(1, len(prompts)))
    with progress(len(prompts), desc, "answer") as bar:
        return [g.text for g in model.generate(prompts, gen, on_answer=bar.update)]


def verify_merge(expected: list[str], prompts: list[str], merged_dir: Path, dtype: str) -> None:
    """Greedy answers of the merged folder (loaded back from disk) must equal the adapter model's."""
    got = greedy_answers(InferenceModel.load(str(merged_dir), dtype=dtype), prompts, "merge check: merged")
    differ = [(e, g) for e, g in zip(expected, got) if e != g]
    if differ:
        e, g = differ[0]
        raise MergeMismatch(f"the merged model answers {len(differ)} of {len(prompts)} sample prompts differently "
                            f"from the adapter model (e.g. adapter: {e!r} vs merged: {g!r}). The merged folder "
                            f"{merged_dir} must not be used; try --dtype float32.")
    print(f"[sqlft] verified: merged == adapter on {len(prompts)} prompts (greedy, {dtype})")


def model_card(run: RunFolder, config: Config, dtype: str) -> str:
    metrics = run.read_metrics()
    metrics.pop("log_history", None)
    data = ", ".join(d.path for d in config.data.train)
    return f"""---
base_model: {config.model.name}
library_name: transformers
tags: [text-to-sql, sqlft, {config.model.method}]
---
# {config.name} (merged)

A {config.model.name} fine-tuned for text-to-SQL with sqlft ({config.model.method}, LoRA r={config.lora.r},
alpha={config.lora.alpha}), adapter merged into {dtype} weights.

- Training data: {data}
- Prompt template: `{config.data.template}` (see sqlft.templates); system text: "{config.data.system}"
- Schema in prompts: `{config.data.schema_format}` (see sqlft.schema; prompts must write it the same way)
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
