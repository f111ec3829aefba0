"""`sqlft config import FILE`: a sqlft run config from an axolotl YAML, or a LLaMA-Factory YAML or command line.

    sqlft config import axolotl.yml --out configs/mine.yaml
    sqlft config import llamafactory.yaml --dataset-info LLaMA-Factory/data/dataset_info.json
    sqlft config import train.sh --dataset-info data/dataset_info.json --deepspeed ds_z2.json

Every key of the input is accounted for, in the printed table and in the comments at the top of the written YAML:
`mapped` (the sqlft key it became), `implied` (what sqlft does anyway, said how), `empty` (no value given), or
`not mapped` with the reason. Nothing is dropped silently. Where the source tool's own default for a setting the file
leaves out differs from sqlft's (validation split, warmup, gradient clipping, checkpoints kept, deduplication, ...),
the default is written into the config explicitly and listed as `default` ("default of axolotl: ..."). The written config is loaded back through sqlft.config,
so it is valid as written; paths, model names and hub ids are kept as the input gave them.
"""

import argparse
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sqlft.config import ConfigError, load_config
from sqlft.core.errors import SqlftError

# Yuan 2.0's tokenizer setup (IEIT-Yuan/Yuan-2.0 docs): eos is <eod>, these tokens are added as special tokens.
YUAN_ADDED_TOKENS = ["<sep>", "<pad>", "<mask>", "<predict>", "<FIM_SUFFIX>", "<FIM_PREFIX>", "<FIM_MIDDLE>",
                     "<commit_before>", "<commit_msg>", "<commit_after>", "<jupyter_start>", "<jupyter_text>",
                     "<jupyter_code>", "<jupyter_output>", "<empty_output>"]
YUAN_TOKENIZER = {"special_tokens": {"eos_token": "<eod>"}, "added_tokens": YUAN_ADDED_TOKENS,
                  "tokenizer_kwargs": {"add_bos_token": False, "add_eos_token": False}}


@dataclass
class Line:
    key: str
    value: object
    status: str  # mapped, implied, empty, not mapped
    note: str  # the sqlft key(s) it became, or why not


@dataclass
class Imported:
    kind: str  # axolotl, llamafactory
    config: dict = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)
    # A LLaMA-Factory command line through src/train_bash.py: the tool as it was before 0.7 (2024-05), whose `yuan`
    # template (to 0.9.1) wrote each answer as "{answer}<eod>" and "\n" before the next question (data.template
    # yuan_2024); today's writes "{answer}<eod>\n" (data.template yuan).
    llamafactory_before_07: bool = False

    def set(self, key: str, value) -> None:
        node = self.config
        *sections, name = key.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value

    def get(self, key: str, default=None):
        node = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def mapped(self, key, value, *targets_values) -> None:
        """mapped(source_key, source_value, "sqlft.key", value, ...)."""
        pairs = list(zip(targets_values[::2], targets_values[1::2]))
        for target, target_value in pairs:
            self.set(target, target_value)
        self.lines.append(Line(key, value, "mapped", ", ".join(f"{t}={_show(v)}" for t, v in pairs)))

    def note(self, key, value, status: str, why: str) -> None:
        self.lines.append(Line(key, value, status, why))

    def report(self) -> str:
        width = max([len(line.key) for line in self.lines] + [8])
        rows = [f"{line.key:<{width}}  {line.status:<10}  {line.note}" for line in self.lines]
        counts = {s: sum(1 for line in self.lines if line.status == s) for s in ("mapped", "implied", "empty",
                                                                                 "not mapped", "default")}
        keys = sum(1 for line in self.lines if line.status != "default")
        head = (f"{keys} {self.kind} keys: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n and s != "default"))
        if counts["default"]:
            head += f"; {counts['default']} default(s) of {self.kind} written where sqlft's differ"
        return "\n".join([head, *rows])


def _show(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _empty(value) -> bool:
    return value is None or value == "" or value == [] or value == {}


# ---------------------------------------------------------------- the source tool's defaults

# What the source tool does for a setting its config leaves out, where sqlft's default differs: written into the
# imported config explicitly (so the run does what the tool would) and listed as "default of <tool>".
# (sqlft key, the tool's value, the tool's setting, the keys of the imported config that already decide it)
TOOL_DEFAULTS = {
    "axolotl": [
        ("data.val_fraction", 0.0, "val_set_size: 0.0 (no validation split)", ()),
        ("train.max_grad_norm", 1.0, "max_grad_norm unset: transformers' 1.0", ()),
        ("train.save_total_limit", 0, "save_total_limit unset: every checkpoint is kept", ()),
        ("data.dedupe", False, "dataset_exact_deduplication: false", ()),
    ],
    "llamafactory": [
        ("data.val_fraction", 0.0, "val_size: 0 (no validation split)", ()),
        ("train.warmup_ratio", 0.0, "warmup_steps 0 / warmup_ratio 0.0 (transformers)", ("train.warmup_steps",)),
        ("train.max_grad_norm", 1.0, "max_grad_norm: transformers' 1.0", ()),
        ("train.save_total_limit", 0, "save_total_limit: None, every checkpoint is kept (transformers)", ()),
        ("data.dedupe", False, "no deduplication", ()),
        ("train.scheduler", "linear", "lr_scheduler_type: transformers' linear", ()),
        ("train.lr", 5e-5, "learning_rate: transformers' 5e-5", ()),
        ("train.batch_size", 8, "per_device_train_batch_size: transformers' 8", ()),
        ("train.epochs", 3.0, "num_train_epochs: transformers' 3.0", ("train.max_steps",)),
        ("train.logging_steps", 500, "logging_steps: transformers' 500", ()),
        ("train.save_steps", 500, "save_steps: transformers' 500", ()),
        ("train.eval_strategy", "no", "eval_strategy: transformers' no", ()),
        ("data.max_length", 1024, "cutoff_len: 1024", ()),
        ("data.overlong", "truncate", "cutoff_len truncates longer examples", ()),
    ],
}
# LoRA defaults of LLaMA-Factory (lora_rank 8, lora_alpha 2 x rank, lora_dropout 0), when it trains an adapter.
LLAMAFACTORY_LORA = [("lora.r", 8, "lora_rank: 8"), ("lora.alpha", None, "lora_alpha: None, 2 x lora_rank"),
                     ("lora.dropout", 0.0, "lora_dropout: 0.0")]


def write_tool_defaults(out: "Imported", tool: str) -> None:
    from sqlft.config import Config

    sqlft = Config()
    rows = list(TOOL_DEFAULTS[tool])
    if tool == "llamafactory" and out.get("model.method") in ("lora", "qlora"):
        rank = out.get("lora.r") or 8
        rows += [(key, 2 * rank if key == "lora.alpha" else value, setting, ()) for key, value, setting in
                 LLAMAFACTORY_LORA]
    for key, value, setting, deciders in rows:
        if out.get(key) is not None or any(out.get(d) is not None for d in deciders):
            continue  # the source config sets it (or what decides it)
        section, name = key.split(".")
        ours = getattr(getattr(sqlft, section), name)
        if ours == value:
            continue
        out.set(key, value)
        out.note(f"({key})", value, "default", f"default of {tool}: {setting} -> {key}={_show(value)} (sqlft's own "
                                               f"default is {_show(ours)})")


# ---------------------------------------------------------------- axolotl


def import_axolotl(raw: dict, source: Path) -> Imported:
    out = Imported("axolotl")
    out.set("name", Path(str(raw.get("output_dir") or source.stem)).name.strip("./") or source.stem)
    adapter = raw.get("adapter")
    for key, value in raw.items():
        handler = AXOLOTL.get(key)
        if handler is None:
            out.note(key, value, "not mapped", "not an axolotl key sqlft knows; check its spelling or set the "
                                               "sqlft equivalent by hand")
        elif _empty(value) and key not in ("save_steps", "lora_target_modules"):
            out.note(key, value, "empty", "no value given: axolotl's default, and sqlft's, apply")
        else:
            handler(out, key, value, raw, adapter)
    write_tool_defaults(out, "axolotl")
    return out


def _ax_model(out, key, value, raw, adapter):
    out.mapped(key, value, "model.name", value)


def _ax_same_model(out, key, value, raw, adapter):
    if value == raw.get("base_model"):
        out.note(key, value, "implied", "same as base_model: sqlft reads the model's config from model.name")
    else:
        out.note(key, value, "not mapped", "a config from another model than base_model is not supported; "
                                           "sqlft reads the config beside model.name's weights")


def _ax_auto_class(out, key, value, raw, adapter):
    out.note(key, value, "implied", "sqlft loads the model and tokenizer with transformers' Auto classes, which "
                                    "read the class from the model's own config")


def _ax_quant(out, key, value, raw, adapter):
    bits = 4 if key == "load_in_4bit" else 8
    if value:
        out.mapped(key, value, "model.method", "qlora", "model.quant_bits", bits)
    else:
        out.note(key, value, "implied", f"no {bits}-bit load: model.method says how the base is loaded")


def _ax_adapter(out, key, value, raw, adapter):
    method = {"qlora": "qlora", "lora": "lora"}.get(value)
    if method is None:
        out.note(key, value, "not mapped", f"adapter '{value}' is not supported (sqlft: qlora, lora or full)")
        return
    if method == "qlora" and out.get("model.quant_bits") is None:
        out.set("model.quant_bits", 4)
    out.mapped(key, value, "model.method", method)


def _ax_datasets(out, key, value, raw, adapter):
    specs, notes = [], []
    for i, entry in enumerate(value if isinstance(value, list) else [value]):
        entry = dict(entry or {})
        spec = {"path": entry.pop("path", "")}
        kind = entry.pop("type", None)
        if kind in ("context_qa.load_v2", "context_qa"):
            spec["format"] = "know_sql"
            out.set("data.template", "context_qa")
            notes.append(f"[{i}].type {kind} -> format=know_sql, data.template=context_qa")
        elif kind in ("alpaca", "sharegpt", "completion"):
            spec["format"] = {"alpaca": "alpaca", "sharegpt": "sharegpt", "completion": "text"}[kind]
            notes.append(f"[{i}].type {kind} -> format={spec['format']}")
        elif kind is not None:
            notes.append(f"[{i}].type {kind}: NOT MAPPED (no sqlft format; set format: by hand)")
        split = entry.pop("train_on_split", None) or entry.pop("split", None)
        if split:
            spec["split"] = split
            notes.append(f"[{i}].train_on_split {split} -> split")
        for rest, rest_value in entry.items():
            notes.append(f"[{i}].{rest}: NOT MAPPED (no sqlft key)")
        specs.append(spec)
    out.set("data.train", specs)
    status = "not mapped" if any("NOT MAPPED" in n for n in notes) else "mapped"
    out.note(key, value, status, "data.train (" + "; ".join(notes) + ")")


def _ax_prepared(out, key, value, raw, adapter):
    out.note(key, value, "not mapped", "sqlft keeps no prepared-dataset cache: it validates and tokenizes the data "
                                       "at the start of every run (seconds before the model loads)")


def _ax_strict(out, key, value, raw, adapter):
    out.note(key, value, "not mapped", "axolotl's tolerance of unknown keys; sqlft always rejects unknown keys, "
                                       "with the closest valid one")


def _ax_target_linear(out, key, value, raw, adapter):
    if value:
        out.mapped(key, value, "lora.target_modules", "all-linear")
    else:
        out.note(key, value, "implied", "off: lora_target_modules gives the modules")


def _ax_target_modules(out, key, value, raw, adapter):
    if _empty(value):
        if raw.get("lora_target_linear"):
            out.note(key, value, "empty", "none listed: lora_target_linear (all-linear) applies")
        else:
            out.note(key, value, "empty", "none listed: sqlft's lora.target_modules default (all-linear) applies")
        return
    out.mapped(key, value, "lora.target_modules", value)


def _ax_train_on_inputs(out, key, value, raw, adapter):
    out.mapped(key, value, "data.loss", "full_text" if value else "completion")


def _ax_precision(out, key, value, raw, adapter):
    if value is True or value == "auto":
        name = {"bf16": "bf16", "fp16": "fp16"}[key]
        out.mapped(key, value, "train.precision", name if value is True else "auto")
    else:
        out.note(key, value, "implied", f"{key} off: train.precision comes from the other precision keys")


def _ax_tf32(out, key, value, raw, adapter):
    if value:
        out.note(key, value, "not mapped", "sqlft does not switch on TF32 matmuls (GPU-only, Ampere+); PyTorch's "
                                           "default applies")
    else:
        out.note(key, value, "implied", "off, as PyTorch's default")


def _ax_flash(out, key, value, raw, adapter):
    if value:
        out.mapped(key, value, "model.attn_implementation", "flash_attention_2")
    else:
        out.note(key, value, "implied", "off: model.attn_implementation auto (SDPA, or FlashAttention-2 where "
                                        "installed on a GPU)")


def _ax_xformers(out, key, value, raw, adapter):
    out.note(key, value, "not mapped", "xformers attention is not offered; model.attn_implementation: sdpa or "
                                       "flash_attention_2")


def _ax_save_steps(out, key, value, raw, adapter):
    if _empty(value):
        out.set("train.save_strategy", "epoch")
        out.note(key, value, "mapped", "train.save_strategy=epoch (axolotl saves once per epoch when save_steps "
                                       "and saves_per_epoch are unset)")
    else:
        out.mapped(key, value, "train.save_steps", value)


def _ax_eval_table(out, key, value, raw, adapter):
    out.note(key, value, "not mapped", "axolotl logs a W&B table of sample generations at each evaluation; sqlft "
                                       "has none: run `sqlft eval RUN --data RUN/validation.jsonl` after training")


def _ax_special_tokens(out, key, value, raw, adapter):
    out.mapped(key, value, "model.special_tokens", dict(value))


def _ax_tokens(out, key, value, raw, adapter):
    out.mapped(key, value, "model.added_tokens", list(value))


def _ax_resume(out, key, value, raw, adapter):
    out.note(key, value, "not mapped", "use `sqlft train CONFIG --resume` (the newest complete checkpoint of the "
                                       "run folder)")


def _ax_launcher(out, key, value, raw, adapter):
    out.note(key, value, "not mapped", "set by the launcher (accelerate/torchrun), not the run config")


def _ax_deepspeed(out, key, value, raw, adapter):
    out.mapped(key, value, "train.deepspeed", value)


def _ax_fsdp(out, key, value, raw, adapter):
    out.note(key, value, "not mapped", "FSDP is chosen at launch: accelerate launch --config_file "
                                       "configs/accelerate/fsdp.yaml -m sqlft.commands.train CONFIG")


def _ax_wandb(out, key, value, raw, adapter):
    if key == "wandb_project":
        out.mapped(key, value, "train.report_to", "wandb", "train.wandb_project", value)
    else:
        out.note(key, value, "not mapped", "W&B settings beyond the project go in the environment (WANDB_ENTITY, "
                                           "WANDB_RUN_ID, WANDB_LOG_MODEL, WANDB_WATCH)")


def _ax_debug(out, key, value, raw, adapter):
    out.note(key, value, "not mapped", "axolotl's debug printing of tokenized samples; sqlft prints the data "
                                       "report, and `python -m sqlft.prompts.templates` shows every template")


def _ax_lora_model_dir(out, key, value, raw, adapter):
    out.note(key, value, "not mapped", "starting from an existing adapter is not supported; --resume continues a "
                                       "sqlft run")


def _ax_fan_in_fan_out(out, key, value, raw, adapter):
    out.note(key, value, "not mapped" if value else "implied",
             "needed only for GPT-2-style Conv1D layers; Llama-family layers are plain Linear")


def _simple(target: str, convert=lambda v: v):
    def handler(out, key, value, raw, adapter):
        out.mapped(key, value, target, convert(value))
    return handler


AXOLOTL = {
    "base_model": _ax_model, "base_model_config": _ax_same_model, "model_type": _ax_auto_class,
    "tokenizer_type": _ax_auto_class,
    "is_llama_derived_model": lambda out, k, v, r, a: out.note(k, v, "implied", "sqlft treats every model through "
                                                                                "transformers' Auto classes"),
    "trust_remote_code": _simple("model.trust_remote_code"),
    "load_in_8bit": _ax_quant, "load_in_4bit": _ax_quant, "strict": _ax_strict, "datasets": _ax_datasets,
    "dataset_prepared_path": _ax_prepared, "val_set_size": _simple("data.val_fraction", float),
    "output_dir": _simple("train.output_dir"), "adapter": _ax_adapter, "lora_model_dir": _ax_lora_model_dir,
    "sequence_len": _simple("data.max_length", int), "sample_packing": _simple("data.packing", bool),
    "pad_to_sequence_len": _simple("data.pad_to_max_length", bool), "lora_r": _simple("lora.r", int),
    "lora_alpha": _simple("lora.alpha", int), "lora_dropout": _simple("lora.dropout", float),
    "lora_target_modules": _ax_target_modules, "lora_target_linear": _ax_target_linear,
    "lora_fan_in_fan_out": _ax_fan_in_fan_out,
    "wandb_project": _ax_wandb, "wandb_entity": _ax_wandb, "wandb_watch": _ax_wandb, "wandb_run_id": _ax_wandb,
    "wandb_log_model": _ax_wandb, "wandb_name": _ax_wandb,
    "gradient_accumulation_steps": _simple("train.grad_accum", int), "micro_batch_size": _simple("train.batch_size", int),
    "eval_batch_size": _simple("train.eval_batch_size", int),
    "num_epochs": _simple("train.epochs", float), "max_steps": _simple("train.max_steps", int),
    "optimizer": _simple("train.optim"), "lr_scheduler": _simple("train.scheduler"),
    "learning_rate": _simple("train.lr", float), "train_on_inputs": _ax_train_on_inputs,
    "group_by_length": _simple("train.group_by_length", bool), "bf16": _ax_precision, "fp16": _ax_precision,
    "tf32": _ax_tf32, "gradient_checkpointing": _simple("train.gradient_checkpointing", bool),
    "early_stopping_patience": _simple("train.early_stopping_patience", int), "resume_from_checkpoint": _ax_resume,
    "local_rank": _ax_launcher, "logging_steps": _simple("train.logging_steps", int),
    "xformers_attention": _ax_xformers, "flash_attention": _ax_flash, "sdp_attention": _ax_flash,
    "warmup_steps": _simple("train.warmup_steps", int), "warmup_ratio": _simple("train.warmup_ratio", float),
    "eval_steps": _simple("train.eval_steps", int), "eval_table_size": _ax_eval_table, "save_steps": _ax_save_steps,
    "save_total_limit": _simple("train.save_total_limit", int), "debug": _ax_debug, "deepspeed": _ax_deepspeed,
    "weight_decay": _simple("train.weight_decay", float), "max_grad_norm": _simple("train.max_grad_norm", float),
    "fsdp": _ax_fsdp, "fsdp_config": _ax_fsdp, "special_tokens": _ax_special_tokens, "tokens": _ax_tokens,
    "seed": _simple("train.seed", int), "hub_model_id": _simple("train.hub_model_id"),
}


# ---------------------------------------------------------------- LLaMA-Factory


def parse_command_line(text: str) -> tuple[list[str], dict]:
    """(the launcher: every word up to the training script, {option: value}) of a shell command line; a flag
    without a value is True. Backslash-continued lines are joined; comments are dropped."""
    words = shlex.split(text.replace("\\\n", " "), comments=True)
    script = next((i for i, w in enumerate(words) if w.endswith(".py") or (w == "train" and i and
                                                                          words[i - 1] == "llamafactory-cli")), -1)
    launcher, words = words[:script + 1], words[script + 1:]
    options, i = {}, 0
    while i < len(words):
        word = words[i]
        if not word.startswith("--"):
            options.setdefault("(stray words)", []).append(word)  # kept visible in the report
            i += 1
            continue
        name, _, inline = word[2:].partition("=")
        if inline:
            options[name], i = _value(inline), i + 1
        elif i + 1 < len(words) and not words[i + 1].startswith("--"):
            options[name], i = _value(words[i + 1]), i + 2
        else:
            options[name], i = True, i + 1
    return launcher, options


def _value(word: str):
    """A command-line value as LLaMA-Factory's argument parser would read it: bools and numbers, else text."""
    if word in ("True", "true", "False", "false"):
        return word.lower() == "true"
    try:
        return int(word)
    except ValueError:
        try:
            return float(word)
        except ValueError:
            return word


def import_llamafactory(options: dict, source: Path, launcher: list[str], dataset_info: Path | None,
                        deepspeed_json: Path | None) -> Imported:
    out = Imported("llamafactory", llamafactory_before_07=any(w.endswith("train_bash.py") for w in launcher))
    out.set("name", Path(str(options.get("output_dir") or source.stem)).name or source.stem)
    if launcher:
        out.note("(launcher)", " ".join(launcher), "not mapped",
                 "how the run starts, not what it trains: `deepspeed --num_gpus N --module sqlft.commands.train CONFIG` (or "
                 "torchrun --nproc_per_node N -m sqlft.commands.train, or accelerate launch) starts sqlft.commands.train the same way")
    quant = options.get("quantization_bit")
    for key, value in options.items():
        handler = LLAMAFACTORY.get(key)
        if handler is None:
            out.note(key, value, "not mapped", "not a LLaMA-Factory argument sqlft knows; set the sqlft equivalent "
                                               "by hand")
        else:
            handler(out, key, value, options, quant)
    if "template" not in options:
        out.set("data.template", "tokenizer")
        out.note("(template)", None, "implied", "no --template: LLaMA-Factory then reads the tokenizer's chat "
                                                "template, as data.template=tokenizer does")
    if "finetuning_type" not in options:
        out.set("model.method", "qlora" if quant else "lora")  # LLaMA-Factory's default finetuning_type is lora
        out.note("(finetuning_type)", None, "implied", "not given: LLaMA-Factory's default is lora -> "
                                                       f"model.method={out.get('model.method')}")
    if "mask_history" not in options and "train_on_prompt" not in options:
        out.set("data.loss", "assistant_turns")
        out.note("(mask_history)", None, "implied", "LLaMA-Factory's default puts the loss on every assistant turn "
                                                    "of a conversation -> data.loss=assistant_turns")
    out.set("model.trust_remote_code", True)
    out.note("(trust_remote_code)", None, "implied", "LLaMA-Factory loads with trust_remote_code=True -> "
                                                     "model.trust_remote_code=true")
    _lf_datasets(out, options, dataset_info)
    if deepspeed_json is not None or options.get("deepspeed"):
        _lf_deepspeed_json(out, options, source, deepspeed_json)
    write_tool_defaults(out, "llamafactory")
    return out


def _lf_datasets(out: Imported, options: dict, dataset_info: Path | None) -> None:
    names = [n.strip() for n in str(options.get("dataset", "")).split(",") if n.strip()]
    registry = dataset_info or Path(str(options.get("dataset_dir", "data"))) / "dataset_info.json"
    specs = [{"path": name, "registry": str(registry)} for name in names]
    max_samples = options.get("max_samples")
    if max_samples:
        for spec in specs:
            spec["max_records"] = int(max_samples)
    if specs:
        out.set("data.train", specs)
    if dataset_info is not None and dataset_info.exists():
        from sqlft.data.registry import read_registry
        info = read_registry(str(dataset_info))
        for name in names:
            entry = info.get(name)
            if entry is None:
                out.note(f"dataset_info[{name}]", None, "not mapped",
                         f"'{name}' is not in {dataset_info} (it has {', '.join(sorted(info))}); add its entry "
                         "there or point --dataset-info at LLaMA-Factory's own data/dataset_info.json")
                continue
            for key, value in entry.items():
                status, why = _registry_key(key, value, entry)
                out.note(f"dataset_info[{name}].{key}", value, status, why)


def _registry_key(key: str, value, entry: dict | None = None) -> tuple[str, str]:
    from sqlft.data.registry import COLUMNS, HUB_MIRRORS, UNSUPPORTED_COLUMNS, UNSUPPORTED_KEYS

    if key in HUB_MIRRORS and entry and (entry.get("file_name") or entry.get("hf_hub_url")):
        return "implied", ("another hub's copy, which LLaMA-Factory reads only when told to (USE_MODELSCOPE_HUB, "
                           "USE_OPENMIND_HUB); sqlft reads file_name or hf_hub_url")

    if key in ("file_name", "hf_hub_url", "split"):
        return "mapped", "read through the registry (data.train[].registry): the dataset's file or hub id"
    if key == "formatting":
        return ("mapped", f"format={value}") if value in COLUMNS else ("not mapped", f"formatting {value}")
    if key == "columns":
        bad = [c for c in value if c in UNSUPPORTED_COLUMNS]
        return ("not mapped", f"columns {bad} are not supported") if bad else ("mapped", "data.train[].columns")
    if key == "tags":
        return "mapped", "data.train[].tags (speaker names and turn keys)"
    if key in UNSUPPORTED_KEYS:
        return "not mapped", UNSUPPORTED_KEYS[key]
    return "not mapped", "not a registry key sqlft reads"


def _lf_deepspeed_json(out: Imported, options: dict, source: Path, given: Path | None) -> None:
    named = options.get("deepspeed")
    path = given or (source.parent / str(named))
    if given is not None:
        out.set("train.deepspeed", str(given))
        out.note("(--deepspeed FILE)", str(given), "mapped", f"train.deepspeed={given} (the file the command line "
                                                             f"names as {named})")
    if not path.is_file():
        out.note("deepspeed (file)", str(path), "not mapped", "the DeepSpeed JSON is not there: pass --deepspeed "
                                                             "FILE to account for its keys")
        return
    ds = json.loads(path.read_text())
    for key, value in ds.items():
        if key == "zero_optimization":
            why = f"ZeRO stage {value.get('stage')}, read by DeepSpeed from train.deepspeed"
        elif isinstance(value, str) and value == "auto":
            why = "'auto': filled in by transformers from train.batch_size, grad_accum and max_grad_norm"
        elif key in ("bf16", "fp16"):
            why = f"{key}.enabled {value.get('enabled')!r}: 'auto' follows train.precision"
        else:
            why = "passed to DeepSpeed as written (train.deepspeed is this file)"
        out.note(f"deepspeed.{key}", value if not isinstance(value, dict) else "{...}", "mapped", why)


def _lf_simple(target: str, convert=lambda v: v):
    def handler(out, key, value, options, quant):
        out.mapped(key, value, target, convert(value))
    return handler


def _lf_implied(why: str):
    def handler(out, key, value, options, quant):
        out.note(key, value, "implied", why)
    return handler


def _lf_not(why: str):
    def handler(out, key, value, options, quant):
        out.note(key, value, "not mapped", why)
    return handler


def _lf_stage(out, key, value, options, quant):
    if value == "sft":
        out.note(key, value, "implied", "supervised fine-tuning is what sqlft train does")
    else:
        out.note(key, value, "not mapped", f"stage {value} is not supervised fine-tuning; sqlft trains SFT")


def _lf_finetuning(out, key, value, options, quant):
    method = {"full": "full", "lora": "qlora" if quant else "lora"}.get(value)
    if method is None:
        out.note(key, value, "not mapped", f"finetuning_type {value} is not supported (full or lora)")
    else:
        out.mapped(key, value, "model.method", method)


def _lf_quant(out, key, value, options, quant):
    if int(value) not in (4, 8):
        out.note(key, value, "not mapped", "sqlft quantizes to 4 or 8 bits")
    else:
        out.mapped(key, value, "model.method", "qlora", "model.quant_bits", int(value))


def _lf_template(out, key, value, options, quant):
    from sqlft.prompts.templates import TEMPLATES

    if value == "yuan":
        for name, setting in YUAN_TOKENIZER.items():
            out.set(f"model.{name}", setting)
        if out.llamafactory_before_07:
            out.mapped(key, value, "data.template", "yuan_2024")
            out.lines[-1].note += (" (src/train_bash.py is LLaMA-Factory before 0.7: its yuan template wrote "
                                   "'{answer}<eod>', today's writes '{answer}<eod>\\n', data.template=yuan)")
        else:
            out.mapped(key, value, "data.template", "yuan")
        out.note("(template yuan)", None, "implied", "Yuan 2.0's tokenizer setup: model.special_tokens "
                                                     "{eos_token: <eod>}, model.added_tokens (<sep>, <pad>, ...)")
    elif value in TEMPLATES:
        out.mapped(key, value, "data.template", value)
    elif value == "default" or value == "empty":
        out.mapped(key, value, "data.template", "tokenizer")
    else:
        out.note(key, value, "not mapped", f"LLaMA-Factory template '{value}' has no sqlft template; use one of "
                                           f"{', '.join(TEMPLATES)}")


def _lf_cutoff(out, key, value, options, quant):
    out.mapped(key, value, "data.max_length", int(value), "data.overlong", "truncate")


def _lf_precision(out, key, value, options, quant):
    if value:
        out.mapped(key, value, "train.precision", key)
    else:
        out.note(key, value, "implied", "off")


def _lf_mask_history(out, key, value, options, quant):
    out.mapped(key, value, "data.loss", "completion" if value else "assistant_turns")


def _lf_train_on_prompt(out, key, value, options, quant):
    if value:
        out.mapped(key, value, "data.loss", "full_text")
    else:
        out.note(key, value, "implied", "off: the loss is on the answers (data.loss)")


def _lf_eval_strategy(out, key, value, options, quant):
    out.mapped(key, value, "train.eval_strategy", str(value))


def _lf_lora_target(out, key, value, options, quant):
    target = "all-linear" if value in ("all", True) else [m.strip() for m in str(value).split(",")]
    out.mapped(key, value, "lora.target_modules", target)


def _lf_report_to(out, key, value, options, quant):
    if value in ("tensorboard", "wandb", "none"):
        out.mapped(key, value, "train.report_to", value)
    else:
        out.note(key, value, "not mapped", f"report_to {value}: sqlft offers tensorboard, wandb or none")


LLAMAFACTORY = {
    "stage": _lf_stage, "do_train": _lf_implied("sqlft train trains"),
    "model_name_or_path": _lf_simple("model.name"),
    "dataset": _lf_implied("data.train: each name read through the registry (data.train[].registry)"),
    "dataset_dir": _lf_implied("data.train[].registry: its dataset_info.json"),
    "max_samples": _lf_implied("data.train[].max_records"),
    "finetuning_type": _lf_finetuning, "quantization_bit": _lf_quant, "output_dir": _lf_simple("train.output_dir"),
    "overwrite_cache": _lf_not("sqlft keeps no dataset cache: the data is tokenized at the start of every run"),
    "per_device_train_batch_size": _lf_simple("train.batch_size", int),
    "per_device_eval_batch_size": _lf_simple("train.eval_batch_size", int),
    "gradient_accumulation_steps": _lf_simple("train.grad_accum", int),
    "preprocessing_num_workers": _lf_simple("data.preprocessing_workers", int),
    "lr_scheduler_type": _lf_simple("train.scheduler"), "logging_steps": _lf_simple("train.logging_steps", int),
    "save_steps": _lf_simple("train.save_steps", int), "save_strategy": _lf_simple("train.save_strategy"),
    "save_total_limit": _lf_simple("train.save_total_limit", int),
    "learning_rate": _lf_simple("train.lr", float), "max_grad_norm": _lf_simple("train.max_grad_norm", float),
    "num_train_epochs": _lf_simple("train.epochs", float), "max_steps": _lf_simple("train.max_steps", int),
    "evaluation_strategy": _lf_eval_strategy, "eval_strategy": _lf_eval_strategy,
    "eval_steps": _lf_simple("train.eval_steps", int), "val_size": _lf_simple("data.val_fraction", float),
    "bf16": _lf_precision, "fp16": _lf_precision, "deepspeed": _lf_simple("train.deepspeed"),
    "template": _lf_template,
    "overwrite_output_dir": _lf_not("sqlft never overwrites a run folder: choose a new name= or continue with "
                                    "--resume"),
    "cutoff_len": _lf_cutoff, "sft_packing": _lf_simple("data.packing", bool), "packing": _lf_simple("data.packing", bool),
    "gradient_checkpointing": _lf_simple("train.gradient_checkpointing", bool),
    "lora_rank": _lf_simple("lora.r", int), "lora_alpha": _lf_simple("lora.alpha", int),
    "lora_dropout": _lf_simple("lora.dropout", float), "lora_target": _lf_lora_target,
    "warmup_steps": _lf_simple("train.warmup_steps", int), "warmup_ratio": _lf_simple("train.warmup_ratio", float),
    "weight_decay": _lf_simple("train.weight_decay", float), "seed": _lf_simple("train.seed", int),
    "report_to": _lf_report_to, "mask_history": _lf_mask_history, "train_on_prompt": _lf_train_on_prompt,
    "trust_remote_code": _lf_simple("model.trust_remote_code", bool),
    "flash_attn": _lf_not("set model.attn_implementation (auto, sdpa, eager, flash_attention_2)"),
    "plot_loss": _lf_implied("sqlft always writes loss.png"),
    "ddp_timeout": _lf_not("the process-group timeout is left at torch's default"),
    "push_to_hub": _lf_simple("train.push_to_hub", bool), "hub_model_id": _lf_simple("train.hub_model_id"),
    "optim": _lf_simple("train.optim"),
}


# ---------------------------------------------------------------- command


def import_registry(path: Path) -> Imported:
    """A LLaMA-Factory dataset_info.json on its own: data.train names every entry it has."""
    from sqlft.data.registry import read_registry

    out = Imported("dataset_info.json")
    out.set("name", path.parent.name or "llamafactory-data")
    specs = []
    for name, entry in read_registry(str(path)).items():
        specs.append({"path": name, "registry": str(path)})
        for key, value in (entry or {}).items():
            status, why = _registry_key(key, value, entry)
            out.note(f"{name}.{key}", value, status, why)
    out.set("data.train", specs)
    return out


def import_file(path: Path, dataset_info: Path | None = None, deepspeed_json: Path | None = None) -> Imported:
    text = path.read_text()
    if path.name == "dataset_info.json":
        return import_registry(path)
    if path.suffix in (".yml", ".yaml"):
        raw = yaml.safe_load(text) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a YAML mapping")
        if "base_model" in raw or "datasets" in raw:
            imported = import_axolotl(raw, path)
        elif "model_name_or_path" in raw or "stage" in raw:
            imported = import_llamafactory(raw, path, [], dataset_info, deepspeed_json)
        else:
            raise ConfigError(f"{path} is neither an axolotl config (base_model:, datasets:) nor a LLaMA-Factory one "
                              "(model_name_or_path:, stage:)")
    else:
        launcher, options = parse_command_line(text)
        if not options:
            raise ConfigError(f"{path}: no --options found; expected a LLaMA-Factory command line "
                              "(... src/train_bash.py --stage sft --model_name_or_path ...)")
        imported = import_llamafactory(options, path, launcher, dataset_info, deepspeed_json)
    return imported


def write(imported: Imported, out: Path, source: Path) -> None:
    header = [f"# Imported by `sqlft config import {source}` from {imported.kind}. Every key of the input:"]
    header += [f"#   {line}" for line in imported.report().splitlines()]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(header) + "\n" + yaml.safe_dump(imported.config, sort_keys=False, allow_unicode=True))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="sqlft config", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import", help="write a sqlft config from an axolotl or LLaMA-Factory config")
    imp.add_argument("file", help="axolotl YAML, LLaMA-Factory YAML, or a LLaMA-Factory command line (.sh)")
    imp.add_argument("--out", help="where to write the sqlft config (default: print it)")
    imp.add_argument("--dataset-info", help="LLaMA-Factory's dataset_info.json (or its folder) for --dataset names")
    imp.add_argument("--deepspeed", help="the DeepSpeed JSON the command line names, if it is not where it says")
    return parser.parse_args(argv)


def main(argv=None) -> Path | None:
    args = parse_args(argv)
    source = Path(args.file)
    if not source.is_file():
        sys.exit(f"sqlft config import: file not found: {source}")
    info = Path(args.dataset_info) if args.dataset_info else None
    if info is not None and info.is_dir():
        info = info / "dataset_info.json"
    try:
        imported = import_file(source, info, Path(args.deepspeed) if args.deepspeed else None)
    except SqlftError as err:  # a ConfigError, or a DataError from a LLaMA-Factory dataset_info.json
        sys.exit(f"sqlft config import: {err}")
    print(imported.report(), file=sys.stderr)
    if not args.out:
        print(yaml.safe_dump(imported.config, sort_keys=False, allow_unicode=True))
        return None
    out = Path(args.out)
    write(imported, out, source)
    try:
        load_config(out)
    except ConfigError as err:
        print(f"sqlft config import: the written config does not load yet: {err}", file=sys.stderr)
    print(f"[sqlft] wrote {out}", file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
