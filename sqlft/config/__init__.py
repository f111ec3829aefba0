"""Typed run configuration: YAML sections mirror these dataclasses; `section.key=value` overrides from the CLI.

Every problem in a config (unknown key, wrong type, bad value) is collected and raised once, each with the key
that is wrong and, for a misspelt key, the closest valid one. The resolved config is saved as config.yaml in the
run folder and read back by merge, eval, ask and serve.
"""

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sqlft.core.errors import SqlftError
from sqlft.prompts.record import SQL_SYSTEM
from sqlft.sql.schema import SCHEMA_FORMAT_VERSION, SCHEMA_FORMAT_VERSIONS, SCHEMA_FORMATS
from sqlft.prompts.templates import TEMPLATES

EMBEDDED_MODEL = "embedded:smollm2-135m-instruct"


@dataclass
class ModelConfig:
    name: str = EMBEDDED_MODEL  # hub id, local HF folder, or embedded:smollm2-135m-instruct (offline, from PyPI)
    method: str = "qlora"  # qlora (quantized frozen base + LoRA), lora, or full
    quant_bits: int = 4  # qlora only: 4 (NF4/FP4) or 8 (LLM.int8)
    quant_type: str = "nf4"  # 4-bit data type: nf4 or fp4
    double_quant: bool = True  # also quantize the quantization constants (~0.4 bit/param saved)
    compute_dtype: str = "auto"  # dtype of 4-bit matmuls: auto (train.precision's), bfloat16, float16, float32
    dtype: str = "auto"  # dtype of non-quantized weights: auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16
    attn_implementation: str = "auto"  # auto (flash_attention_2 on a GPU where flash-attn is installed, else sdpa), sdpa, eager, flash_attention_2
    trust_remote_code: bool = False  # run the model's own code (auto_map: Yuan 2.0, ...) in training, merge and inference
    special_tokens: dict = field(default_factory=dict)  # bos_token/eos_token/unk_token/pad_token to set (axolotl's special_tokens)
    added_tokens: list[str] = field(default_factory=list)  # special tokens added to the tokenizer (Yuan: <sep>, ...)
    tokenizer_kwargs: dict = field(default_factory=dict)  # passed to AutoTokenizer.from_pretrained (add_bos_token: false)
    adapter: str = ""  # continue training this LoRA adapter: an SFT run folder (its adapter/) or an adapter folder


@dataclass
class LoraConfig:
    r: int = 16  # adapter rank
    alpha: int = 32  # scaling numerator: updates are scaled by alpha / r
    dropout: float = 0.05  # dropout on the adapter input
    target_modules: typing.Any = "all-linear"  # "all-linear" or a list of module names (q_proj, v_proj, ...)


@dataclass
class DatasetSpec:
    path: str = ""  # local .jsonl/.json/.csv/.parquet file, or a hub dataset id (needs the hub)
    format: str = "auto"  # auto, know_sql, spider, alpaca, dolly, sharegpt, messages, guanaco, llama2_text, text
    weight: float = 1.0  # share of the mixture relative to the other datasets (1.0 each: proportional to size)
    split: str = "train"  # split of a hub dataset
    max_records: int = 0  # 0: all records
    columns: dict = field(default_factory=dict)  # our field -> the file's column, e.g. {text: content, conversations: chats}
    tags: dict = field(default_factory=dict)  # turn keys and role names of conversations (LLaMA-Factory's tags)
    registry: str = ""  # a LLaMA-Factory dataset_info.json (or its folder): path is then a dataset name in it


@dataclass
class DataConfig:
    train: list[DatasetSpec] = field(default_factory=list)  # datasets mixed for training
    validation: list[DatasetSpec] = field(default_factory=list)  # empty: split val_fraction off train
    template: str = "chatml"  # prompt template (sqlft.prompts.templates): sql, alpaca, llama2, llama3, chatml, yuan, context_qa, tokenizer
    loss: str = "completion"  # tokens with loss: completion (the last answer), assistant_turns (every answer), full_text (all)
    system: str = SQL_SYSTEM  # system text for SQL records (records that carry their own keep it)
    schema_format: str = "ddl"  # schema in SQL prompts (sqlft.sql.schema): ddl (as given) or compact (a line per table)
    # How that format renders (sqlft.sql.schema.SCHEMA_FORMAT_VERSION): new runs record the current one; a run's
    # config.yaml without it is from before versions, read as 1 (sqlft.config.run_folder), so it is asked as trained
    schema_format_version: int = SCHEMA_FORMAT_VERSION
    sql_dialect: str = "auto"  # of the training SQL (serve transpiles from it); auto: duckdb for demo:*, else sqlite
    max_length: int = 0  # tokens per example (prompt + answer); 0: the model's context length (its config.json)
    overlong: str = "drop"  # examples over max_length: drop (reported), fail, or truncate (instructions only: SQL is dropped)
    preprocessing_workers: int = 0  # processes for the dataset passes of the trainer (0: in this process)
    dedupe: bool = True  # drop exact duplicate (prompt, answer) pairs
    val_fraction: float = 0.1  # validation share when no validation set is given
    split_by_db: bool = True  # split so that no database is in both train and validation
    val_dbs: list[str] = field(default_factory=list)  # hold out exactly these databases (a fixed test set)
    # false: one padded row per example; true: several examples per row (TRL's packing); shared_prefix: the records
    # with the same system text + schema in one row, the schema once, each question -> answer block seeing only it
    # (sqlft.training.shared_prefix; SFT with data.loss=completion, else ordinary packing with a message)
    packing: typing.Any = False
    pad_to_max_length: bool = False  # unpacked rows padded to max_length (the seed tutorials' way) not the longest
    # Packed rows' lengths rounded up to a multiple of this (0: not rounded). On a CPU every new input shape adds
    # kernels to oneDNN's primitive cache, which keeps them: with exact lengths resident memory grew ~30 MB a step
    # (Spider recipe); rounded to 64, ~4 MB and no slower (benchmarks/RESULTS.md, issue 10).
    pad_packed_to_multiple_of: int = 64
    num_records: int = 0  # total training records after mixing (0: all)
    seed: int = 0  # for mixing and splitting


@dataclass
class TrainConfig:
    stage: str = "sft"  # sft (supervised, on the answers) or grpo (reinforcement, on executed answers: grpo section)
    output_dir: str = "runs/{name}"  # run folder ({name}: the config's name)
    epochs: float = 1.0  # passes over the training set (ignored when max_steps > 0)
    max_steps: int = 0  # 0: run epochs
    batch_size: int = 4  # examples per device per step
    grad_accum: int = 1  # steps accumulated per optimizer update
    lr: float = 2e-4  # peak learning rate
    scheduler: str = "cosine"  # transformers scheduler name: cosine, linear, constant_with_warmup, ...
    warmup_ratio: float = 0.03  # share of the steps spent warming up (< 1; ignored when warmup_steps is set)
    warmup_steps: int = 0  # warm up for exactly this many steps instead (0: use warmup_ratio)
    weight_decay: float = 0.0
    max_grad_norm: float = 0.3  # gradient clipping (QLoRA paper value)
    optim: str = "adamw_torch"  # transformers optimizer name; paged_adamw_8bit on GPU for QLoRA
    precision: str = "auto"  # autocast: auto (what the hardware computes natively, sqlft.model.precision), bf16, fp16, fp32
    gradient_checkpointing: bool = True  # recompute activations in backward: less memory, ~30% slower
    token_metrics: bool = False  # log TRL's entropy and token accuracy: its LM head then scores every position
    use_reentrant: bool = False  # torch's reentrant checkpointing (some custom model code needs it)
    group_by_length: bool = False  # batch examples of similar length together (less padding)
    eval_strategy: str = "steps"  # validation loss every eval_steps (steps), after each epoch (epoch), or never (no)
    eval_steps: int = 50  # validation loss every N steps (0: never)
    eval_batch_size: int = 0  # examples per device per validation step (0: batch_size)
    save_strategy: str = "steps"  # checkpoint every save_steps (steps) or after each epoch (epoch)
    save_steps: int = 50  # checkpoint every N steps
    save_total_limit: int = 2  # checkpoints kept (oldest deleted)
    early_stopping_patience: int = 0  # stop after N evaluations without improvement (0: off)
    logging_steps: int = 5
    seed: int = 42
    num_threads: int = 0  # torch CPU threads (0: all cores)
    report_to: str = "tensorboard"  # tensorboard, wandb (pip install wandb) or none
    wandb_project: str = ""  # W&B project (report_to: wandb)
    push_to_hub: bool = False  # upload checkpoints and the result to the Hugging Face hub (needs hub access and a login)
    hub_model_id: str = ""  # hub repository for push_to_hub (default: the run name)
    deepspeed: str = ""  # DeepSpeed JSON config (GPU + the deepspeed package); or launch with configs/accelerate/


@dataclass
class RewardConfig:
    match: float = 1.0  # reward of an answer whose result matches the gold's
    runs: float = 0.1  # reward of an answer that runs but gives another result (anything else: 0)
    overlong_penalty: float = 0.0  # subtracted from an answer that fills max_completion_length without ending
    malformed_penalty: float = 0.0  # subtracted from an answer with no readable SQL in it
    mode: str = "spider"  # result comparison, as `sqlft eval --mode`: spider, strict or set
    timeout_s: float = 5.0  # per query: a runaway answer is stopped and earns 0
    instances: int = 3  # synthesized databases per schema-only record (an answer must match on every one)
    db_root: str = ""  # folder of real databases by db_id (<db_id>/<db_id>.sqlite or <db_id>.duckdb); "" none


@dataclass
class GRPOSection:
    num_generations: int = 4  # answers sampled per prompt; train.batch_size x grad_accum must be a multiple of it
    max_completion_length: int = 128  # tokens per sampled answer
    temperature: float = 1.0  # sampling temperature of the answers
    top_p: float = 1.0
    beta: float = 0.0  # KL penalty towards the starting model (0: no reference model is kept: less memory)
    epsilon: float = 0.2  # clipping of the policy ratio
    loss_type: str = "dapo"  # TRL loss normalisation: dapo, grpo, dr_grpo, bnpo
    scale_rewards: str = "group"  # advantages divided by the std of the group (group), of the batch, or none
    use_vllm: bool = False  # sample with vLLM (GPU; pip install vllm) through TRL's integration
    vllm_mode: str = "colocate"  # colocate (vLLM in the training process) or server (`trl vllm-serve` running)
    vllm_server_url: str = ""  # server mode: base URL of `trl vllm-serve` (e.g. http://127.0.0.1:8000)
    vllm_gpu_memory_utilization: float = 0.3  # colocate mode: share of GPU memory vLLM may take
    log_completions: bool = False  # print a table of sampled answers and rewards at every logging step
    reward: RewardConfig = field(default_factory=RewardConfig)


@dataclass
class GenerationConfig:
    max_new_tokens: int = 128  # answer budget per question
    do_sample: bool = False  # greedy by default (reproducible evaluation)
    temperature: float = 1.0  # sampling only
    top_p: float = 1.0  # sampling only
    num_beams: int = 1
    repetition_penalty: float = 1.0
    batch_size: int = 8  # prompts per generate call (left padded)
    prefix_cache: bool = True  # read a batch's shared prompt prefix (system text + schema) once, not once per row
    candidates: int = 1  # with vote (eval, serve): answers per question, the greedy one and N-1 samples
    vote: bool = False  # answer with the SQL whose executed result most candidates give (the greedy one on a tie)
    candidate_temperature: float = 0.7  # sampling temperature of the extra answers
    # sqlft.sql.repair: an answer that does not run on its database is rewritten to the table and column names the
    # schema has (17.0% -> 24.5% on 200 held-out Spider questions; an answer that runs is never changed)
    repair: bool = False


@dataclass
class Config:
    name: str = "sqlft-run"  # run name: names the run folder
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    grpo: GRPOSection = field(default_factory=GRPOSection)  # used when train.stage is grpo

    @property
    def run_dir(self) -> Path:
        return Path(self.train.output_dir.format(name=self.name))


CHOICES = {
    "model.method": ("qlora", "lora", "full"),
    "model.quant_bits": (4, 8),
    "model.quant_type": ("nf4", "fp4"),
    "model.compute_dtype": ("auto", "bfloat16", "float16", "float32"),
    "model.dtype": ("auto", "float32", "bfloat16", "float16"),
    "model.attn_implementation": ("auto", "sdpa", "eager", "flash_attention_2"),
    "data.overlong": ("drop", "fail", "truncate"),
    "data.packing": (False, True, "shared_prefix"),
    "data.loss": ("completion", "assistant_turns", "full_text"),
    "data.schema_format": SCHEMA_FORMATS,
    "data.schema_format_version": SCHEMA_FORMAT_VERSIONS,
    "data.sql_dialect": ("auto", "sqlite", "duckdb", "postgres", "mysql", "bigquery", "snowflake", "tsql", "spark"),
    "data.template": tuple(TEMPLATES),
    "data.train[].format": ("auto", "know_sql", "spider", "bird", "alpaca", "dolly", "sharegpt", "messages", "guanaco",
                            "llama2_text", "text"),
    "train.precision": ("auto", "bf16", "fp16", "fp32"),
    "train.report_to": ("tensorboard", "wandb", "none"),
    "train.eval_strategy": ("steps", "epoch", "no"),
    "train.save_strategy": ("steps", "epoch"),
    "train.stage": ("sft", "grpo"),
    "grpo.loss_type": ("dapo", "grpo", "dr_grpo", "bnpo"),
    "grpo.scale_rewards": ("group", "batch", "none"),
    "grpo.vllm_mode": ("colocate", "server"),
    "grpo.reward.mode": ("spider", "strict", "set"),
}
# Keys that were renamed: the error names the new key rather than guessing a look-alike.
RENAMED = {"train.bf16": "train.precision (auto, bf16, fp16 or fp32; auto picks bf16 where it is native)",
           "train.fp16": "train.precision (auto, bf16, fp16 or fp32; auto picks fp16 on GPUs without bf16)"}


class ConfigError(SqlftError, ValueError):
    """All problems found in a config, one per line."""


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or the defaults), apply `a.b=value` overrides, check everything, raise once."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path} (the configs shipped with sqlft are in configs/)")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {err}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (model:, data:, train:, ...)")
    return config_from_raw(raw, overrides, where=f" in {path}" if path else "")


def config_from_raw(raw: dict, overrides: typing.Sequence[str] = (), where: str = "") -> Config:
    """The checked Config of a raw mapping (a YAML file's, or a run's saved config.yaml: sqlft.config.run_folder)."""
    config = build_config(Config, raw, overrides, CHOICES, _check_values, where=where)
    if config.data.sql_dialect == "auto":  # the run's saved config.yaml records the dialect itself
        config.data.sql_dialect = training_dialect(config.data.train)
    train_raw = raw.get("train") if isinstance(raw.get("train"), dict) else {}  # overrides applied
    if config.train.warmup_steps > 0:
        if train_raw.get("warmup_ratio"):
            raise ConfigError(f"1 problem(s): 'train.warmup_steps' ({config.train.warmup_steps}) and "
                              f"'train.warmup_ratio' ({config.train.warmup_ratio:g}) are both set; keep one")
        config.train.warmup_ratio = 0.0  # the resolved config says which one was used
    return config


T = typing.TypeVar("T")


def build_config(cls: type[T], raw: dict, overrides: typing.Sequence[str] = (), choices: dict | None = None,
                 check: typing.Callable[[T], list[str]] | None = None, where: str = "") -> T:
    """A `cls` dataclass from a raw mapping (YAML, or flags) and `a.b=value` overrides. Every problem (unknown key
    with the closest valid one, wrong type, value not among `choices`, what `check` finds) is collected and raised
    once. Training (Config) and the eval command (eval.run.EvalConfig) are both read this way."""
    problems: list[str] = []
    for override in overrides:
        apply_override(raw, override, problems)
    config = _build(cls, raw, "", problems)
    if not problems:
        problems += _check_choices(config, choices or {})
    if not problems and check:
        problems += check(config)
    if problems:
        raise ConfigError(f"{len(problems)} problem(s){where}:\n  " + "\n  ".join(problems))
    return config


def training_dialect(datasets: list) -> str:
    """The SQL dialect of training data as far as its source tells: sqlft's demo sets are written for DuckDB
    (sqlft/data/demo/README.md); know_sql / sql-create-context and Spider data are SQLite."""
    paths = [spec["path"] if isinstance(spec, dict) else spec.path for spec in datasets]
    return "duckdb" if paths and all(str(p).startswith("demo:") for p in paths) else "sqlite"


def apply_override(raw: dict, override: str, problems: list[str]) -> None:
    """`train.lr=1e-4` -> raw["train"]["lr"] = 1e-4 (the value is parsed as YAML: numbers, bools, lists)."""
    if "=" not in override:
        problems.append(f"override '{override}' must look like section.key=value (e.g. train.max_steps=10)")
        return
    key, value = override.split("=", 1)
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            problems.append(f"override '{override}': '{part}' is not a section")
            return
    try:
        node[parts[-1]] = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        node[parts[-1]] = value


def _build(cls, raw, prefix: str, problems: list[str]):
    if not isinstance(raw, dict):
        problems.append(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(raw).__name__}")
        return cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        if key not in fields and f"{prefix}{key}" in RENAMED:
            problems.append(f"'{prefix}{key}' is now {RENAMED[prefix + str(key)]}")
            continue
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else f" Valid keys: {', '.join(fields)}"
            problems.append(f"unknown key '{prefix}{key}'.{hint}")
            continue
        values[key] = _convert(hints[key], value, f"{prefix}{key}", problems)
    return cls(**values)


def _convert(hint, value, key: str, problems: list[str]):
    if dataclasses.is_dataclass(hint):
        if hint is DatasetSpec and isinstance(value, str):  # data.train=FILE: a dataset given by its path alone
            value = {"path": value}
        return _build(hint, value, key + ".", problems)
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, dict) or not isinstance(value, list):
            value = [value]  # a single dataset may be given without a list
        return [_convert(item, v, f"{key}[{i}]", problems) for i, v in enumerate(value)]
    if hint is typing.Any:
        return value
    if isinstance(hint, types.UnionType):  # `str | None`: None stays None, anything else is the other type
        if value is None:
            return None
        (hint,) = [h for h in typing.get_args(hint) if h is not type(None)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        problems.append(f"'{key}' must be {hint.__name__}, got {value!r} ({type(value).__name__})")
        return None
    return value


def _check_choices(config, choices: dict) -> list[str]:
    """Values outside their allowed set, with the closest allowed one. Keys are dotted paths; `data.train[]` is
    every dataset of data.train and data.validation."""
    problems = []
    for key, allowed in choices.items():
        if key.startswith("data.train[]"):
            values = [(f"data.train[{i}].format", s.format) for i, s in enumerate(config.data.train)]
            values += [(f"data.validation[{i}].format", s.format) for i, s in enumerate(config.data.validation)]
        else:
            node = config
            for part in key.split("."):
                node = getattr(node, part)
            values = [(key, node)]
        for where, value in values:
            if value not in allowed:
                close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                problems.append(f"'{where}' is {value!r}.{hint} Choose one of: {', '.join(map(str, allowed))}")
    return problems


def _check_values(config: Config) -> list[str]:
    problems = []
    for i, spec in enumerate(config.data.train + config.data.validation):
        if not spec.path:
            problems.append(f"data dataset #{i} has no path")
        if spec.weight <= 0:
            problems.append(f"data dataset '{spec.path}' has weight {spec.weight}; weights must be > 0")
    if not 0 <= config.data.val_fraction < 1:
        problems.append(f"'data.val_fraction' is {config.data.val_fraction}; it must be in [0, 1)")
    if config.data.max_length != 0 and config.data.max_length < 16:
        problems.append(f"'data.max_length' is {config.data.max_length}; it must be at least 16 tokens (or 0: the "
                        "model's context length)")
    t = config.train
    if not 0 <= t.warmup_ratio < 1:
        hint = f"; for {t.warmup_ratio:g} steps set train.warmup_steps={int(t.warmup_ratio)}" if t.warmup_ratio >= 1 else ""
        problems.append(f"'train.warmup_ratio' is {t.warmup_ratio:g}; a ratio is a share of the steps in [0, 1){hint}")
    if t.warmup_steps < 0:
        problems.append(f"'train.warmup_steps' is {t.warmup_steps}; it must be >= 0")
    if t.eval_batch_size < 0 or config.data.preprocessing_workers < 0:
        problems.append("'train.eval_batch_size' and 'data.preprocessing_workers' must be >= 0")
    if config.data.pad_packed_to_multiple_of < 0:
        problems.append(f"'data.pad_packed_to_multiple_of' is {config.data.pad_packed_to_multiple_of}; it must be "
                        ">= 0 (0: packed rows keep their exact length)")
    if config.train.batch_size < 1 or config.train.grad_accum < 1:
        problems.append("'train.batch_size' and 'train.grad_accum' must be >= 1")
    if config.model.adapter and config.model.method == "full":
        problems.append("'model.adapter' continues a LoRA adapter: use model.method=lora or qlora, or, to fine-tune "
                        "all weights from an SFT run, merge it (sqlft merge RUN) and set model.name=RUN/merged")
    if config.train.stage == "grpo":
        problems += _check_grpo(config)
    return problems


def _check_grpo(config: Config) -> list[str]:
    g, problems = config.grpo, []
    completions = config.train.batch_size * config.train.grad_accum
    if g.num_generations < 2:
        problems.append(f"'grpo.num_generations' is {g.num_generations}; GRPO compares answers to one prompt, so it "
                        "needs at least 2")
    elif completions % g.num_generations:
        problems.append(f"train.batch_size x train.grad_accum ({completions}) answers per step must be a multiple "
                        f"of grpo.num_generations ({g.num_generations}): e.g. train.batch_size={g.num_generations}")
    if g.max_completion_length < 1 or g.temperature <= 0 or not 0 < g.top_p <= 1:
        problems.append("'grpo.max_completion_length' must be >= 1, 'grpo.temperature' > 0, 'grpo.top_p' in (0, 1]")
    if g.reward.timeout_s <= 0 or g.reward.instances < 1:
        problems.append("'grpo.reward.timeout_s' must be > 0 and 'grpo.reward.instances' >= 1")
    if g.vllm_mode == "server" and g.use_vllm and not g.vllm_server_url:
        problems.append("'grpo.vllm_mode' is server: set grpo.vllm_server_url to the `trl vllm-serve` address")
    return problems


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def save_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
