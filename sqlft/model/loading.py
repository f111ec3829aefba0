"""Loading models and tokenizers: base weights (embedded, local folder or hub id), quantized for QLoRA or not.

One path for every Llama-family model: the embedded SmolLM2 on a CPU and Llama-2-7B on a GPU differ only in the
config. GPU-only options asked for on a CPU fail early with a message saying what to change.
"""

import os
from pathlib import Path

import torch

from sqlft.model import precision
from sqlft.config import Config, ConfigError, ModelConfig
from sqlft.config.embedded import is_embedded
from sqlft.model.embedded import resolve_embedded
from sqlft.config.run_folder import RunFolder

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def has_gpu() -> bool:
    return torch.cuda.is_available()


def resolve_model_path(name: str) -> str:
    """A local folder or hub id as is; `embedded:...` converted once and taken from the cache."""
    if is_embedded(name):
        return str(resolve_embedded(name))
    return name


def shards_weights() -> bool:
    """True under FSDP or DeepSpeed ZeRO-3 (`accelerate launch` says so in the environment): they place the
    weights on the GPUs themselves and need one dtype per shard (no fp32 upcasting of norms for QLoRA)."""
    env = os.environ
    return env.get("ACCELERATE_USE_FSDP", "").lower() == "true" or (
        env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true" and env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3")


def weights_dtype(model_cfg: ModelConfig) -> torch.dtype:
    """dtype of the non-quantized weights: `auto` is bf16/fp16 on a GPU and fp32 on a CPU (sqlft.model.precision)."""
    return precision.weights_dtype(model_cfg.dtype)


def attention(model_cfg: ModelConfig) -> str:
    """`auto`: FlashAttention-2 on a GPU where the flash-attn package is installed (fastest, and packed rows need
    no mask there), else PyTorch's SDPA."""
    if model_cfg.attn_implementation != "auto":
        return model_cfg.attn_implementation
    import importlib.util
    if has_gpu() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def check_device_options(config: Config) -> None:
    """GPU-only options on a machine without a GPU: one error listing each, with what to set instead."""
    if has_gpu():
        return
    problems = []
    if config.train.optim.startswith("paged_"):
        problems.append(f"train.optim={config.train.optim} needs a GPU (paged optimizers page GPU memory); "
                        "use train.optim=adamw_torch")
    if config.model.attn_implementation == "flash_attention_2":
        problems.append("model.attn_implementation=flash_attention_2 needs a GPU; use model.attn_implementation=sdpa")
    if config.train.precision == "fp16":
        problems.append("train.precision=fp16 needs a GPU; on a CPU use train.precision=auto (bf16 where the CPU "
                        "has it, else fp32)")
    if config.model.method == "qlora" and config.model.quant_bits == 8:
        problems.append("model.quant_bits=8 (LLM.int8) needs a GPU with bitsandbytes; use 4 on a CPU")
    if config.model.method == "qlora" and config.model.compute_dtype == "float16":
        problems.append("model.compute_dtype=float16 (4-bit matmuls in fp16, a T4-era GPU setting) needs a GPU; "
                        "use model.compute_dtype=auto")
    if config.train.deepspeed:
        problems.append(f"train.deepspeed={config.train.deepspeed} needs GPUs (and the deepspeed package); "
                        "set train.deepspeed='' on a CPU")
    if problems:
        raise ConfigError("GPU-only options on a machine without a GPU:\n  " + "\n  ".join(problems))


def load_tokenizer(name: str, model_cfg: ModelConfig | None = None, trust_remote_code: bool | None = None):
    """The tokenizer of a model, set up as model_cfg says (special and added tokens, from_pretrained arguments).

    Training saves the tokenizer so set up beside the adapter (or model), and merge and inference load it from
    there: they then see the tokens training added without being told again.
    """
    from transformers import AutoTokenizer

    model_cfg = model_cfg or ModelConfig(name=name)
    remote = model_cfg.trust_remote_code if trust_remote_code is None else trust_remote_code
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name), trust_remote_code=remote,
                                                  **model_cfg.tokenizer_kwargs)
    except ValueError as err:
        if "custom code" in str(err) and not remote:
            raise ConfigError(f"{name} ships its own tokenizer or model code (auto_map, as Yuan 2.0 does); read that "
                              "code, then set model.trust_remote_code=true (sqlft ask/eval of a plain base model: "
                              "--trust-remote-code) to run it") from None
        raise
    setup_tokenizer(tokenizer, model_cfg)
    if tokenizer.pad_token is None:  # Llama-2 has none; padding positions are masked out, so EOS is safe
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")


def setup_tokenizer(tokenizer, model_cfg: ModelConfig) -> int:
    """Set the special tokens (eos_token: <eod> for Yuan 2.0) and add model_cfg.added_tokens as special tokens
    (Yuan's <sep>, <pad>, ...; axolotl's special_tokens/tokens). Returns how many tokens are new to the vocabulary."""
    unknown = sorted(set(model_cfg.special_tokens) - set(SPECIAL_TOKEN_KEYS))
    if unknown:
        raise ConfigError(f"model.special_tokens has {', '.join(unknown)}; use {', '.join(SPECIAL_TOKEN_KEYS)} "
                          "(other tokens go in model.added_tokens)")
    before = len(tokenizer)
    special = {k: v for k, v in model_cfg.special_tokens.items() if v and getattr(tokenizer, k, None) != v}
    if special:
        tokenizer.add_special_tokens(special)
    if model_cfg.added_tokens:
        tokenizer.add_tokens(list(model_cfg.added_tokens), special_tokens=True)
    return len(tokenizer) - before


def fit_embeddings(model, tokenizer) -> list[int]:
    """Grow the embeddings when the tokenizer has more tokens than the model has rows (tokens added by
    setup_tokenizer). Returns the ids of the new rows, which LoRA then trains (add_lora)."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= rows:
        return []
    model.resize_token_embeddings(len(tokenizer))
    return list(range(rows, len(tokenizer)))


def model_context_length(model_cfg: ModelConfig) -> int | None:
    """The context length in the model's config.json (max_position_embeddings or its other names), if any."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_model_path(model_cfg.name), trust_remote_code=model_cfg.trust_remote_code)
    config = getattr(config, "text_config", None) or config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "model_max_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def resolve_max_length(config: Config) -> int:
    """data.max_length, or (0) the model's context length from its config, which is then written into the config."""
    if config.data.max_length == 0:
        length = model_context_length(config.model)
        if not length:
            raise ConfigError(f"data.max_length is 0 (the model's context length), but the config of "
                              f"{config.model.name} gives none; set data.max_length")
        config.data.max_length = length
        print(f"[sqlft] data.max_length: {length} tokens (the model's context length)")
    return config.data.max_length


def quantization_config(model_cfg: ModelConfig):
    from transformers import BitsAndBytesConfig

    if model_cfg.method != "qlora":
        return None
    if model_cfg.quant_bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    storage = weights_dtype(model_cfg)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=model_cfg.quant_type,
        bnb_4bit_use_double_quant=model_cfg.double_quant,
        bnb_4bit_compute_dtype=DTYPES[precision.resolve_dtype_name(model_cfg.compute_dtype)],
        # Storage dtype of the packed 4-bit weights: 16-bit (as the other weights) lets FSDP/ZeRO-3 shard them;
        # plain uint8 otherwise.
        bnb_4bit_quant_storage=storage if storage != torch.float32 else torch.uint8,
    )


def load_base_model(model_cfg: ModelConfig, *, for_training: bool, tokenizer=None):
    """The base model, quantized when the method is qlora. Returns a model in train or eval mode.

    With a tokenizer that has more tokens than the model (model.special_tokens/added_tokens), the embeddings grow
    to fit; the new ids are kept in model.sqlft_new_token_ids for add_lora."""
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(model_cfg.name)
    kwargs = dict(dtype=weights_dtype(model_cfg), attn_implementation=attention(model_cfg),
                  trust_remote_code=model_cfg.trust_remote_code)
    quant = quantization_config(model_cfg)
    if quant is not None:
        kwargs["quantization_config"] = quant
        # This process's GPU (under a launcher, set when the recipe built the training arguments). Under ZeRO-3
        # from_pretrained refuses a device_map, and FSDP places the shards itself: none is passed there.
        if has_gpu() and not shards_weights():
            kwargs["device_map"] = {"": torch.cuda.current_device()}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except ValueError as err:
        if "custom code" in str(err) and not model_cfg.trust_remote_code:
            raise ConfigError(f"{model_cfg.name} ships its own model code (auto_map in its config.json, as Yuan 2.0 "
                              "does); read that code, then set model.trust_remote_code=true to run it") from None
        raise
    except OSError as err:
        hint = ("it is neither a local folder nor reachable on the hub (this machine may have no hub access: "
                "download it where online and point model.name at the folder)") if not Path(path).exists() else str(err)
        raise FileNotFoundError(f"cannot load model '{model_cfg.name}': {hint}") from err
    if quant is not None:
        fix_bnb_cpu_gradients(model)
    model.sqlft_new_token_ids = fit_embeddings(model, tokenizer) if tokenizer is not None else []
    model.train(for_training)
    return model


def fix_bnb_cpu_gradients(model) -> int:
    """Turn off bitsandbytes' AVX512-BF16 repacking of 4-bit weights on CPU.

    On CPUs with AVX512-BF16 an eval-mode forward (generate, evaluation) repacks the weights, after which
    gradients stop flowing through the frozen layers with only a warning (LoRA grads ~10,000x smaller).
    Must run right after loading, before any forward. Returns the number of layers changed.
    """
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    changed = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


def add_lora(model, config: Config):
    """Wrap the base model with trainable LoRA adapters (qlora/lora); full fine-tuning returns it unchanged."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if config.model.method == "full":
        return model
    if config.model.method == "qlora" and not shards_weights():
        # Upcasts norms to fp32 and enables input grads so that checkpointed, frozen 4-bit layers pass gradients.
        # Not under FSDP/ZeRO-3: mixed dtypes cannot be sharded (TRL skips it there too); TRL's SFTTrainer then
        # enables input grads itself when gradient checkpointing is on.
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.train.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": config.train.use_reentrant})
    if config.model.adapter:  # continue an SFT run's adapter (its rank and targets, not config.lora's)
        from peft import PeftModel
        return PeftModel.from_pretrained(model, str(adapter_dir(config)), is_trainable=True)
    lora = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                      target_modules=config.lora.target_modules, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    if getattr(model.get_base_model(), "sqlft_new_token_ids", []):
        # Tokens added to the vocabulary start untrained: the input and output embeddings train with the adapter
        # (LLaMA-Factory's resize_vocab), and PEFT saves them in the adapter because the vocabulary grew.
        for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
            if layer is not None:
                layer.weight.requires_grad_(True)
    return model


def adapter_dir(config: Config) -> Path:
    """The adapter folder that model.adapter names (a run folder or the adapter itself). A run must have been
    trained on the same base, template, system text and schema format: its prompts are the ones it learnt."""
    run = RunFolder(Path(config.model.adapter))
    folder = run.adapter if run.has_adapter else run.path
    if not (folder / "adapter_config.json").is_file():
        if run.model.is_dir():  # a full fine-tuning run: its weights are a model to start from, not an adapter
            raise ConfigError(f"model.adapter={config.model.adapter}: that run fine-tuned all weights (model/), so "
                              f"there is no adapter to continue: set model.name={run.model} and leave model.adapter "
                              "empty (a new adapter trains on top of it)")
        raise ConfigError(f"model.adapter={config.model.adapter}: no LoRA adapter there (expected a training run "
                          "folder with adapter/, or a folder with adapter_config.json)")
    if run.is_run():
        check_same_prompts(config, run, f"model.adapter={config.model.adapter}", base=True)
    return folder


def check_training_start(config: Config) -> None:
    """model.name may be the model/ folder of a run that fine-tuned all weights (GRPO after the Spider recipe):
    training goes on from that run, so it must ask in the prompts that run learnt, as a continued adapter must."""
    if not config.model.name or config.model.adapter:  # a continued adapter is checked where it loads
        return
    folder = Path(config.model.name).expanduser()
    run = RunFolder(folder.parent)
    if folder.name == run.model.name and run.is_run():
        check_same_prompts(config, run, f"model.name={config.model.name}", base=False)


def check_same_prompts(config: Config, run: RunFolder, setting: str, *, base: bool) -> None:
    """Refuse a config whose prompts differ from the ones the run trained on (and, for an adapter, whose base
    model differs from the run's): what the weights learnt would be asked in a form they never saw."""
    trained = run.config()
    pairs = {"data.template": (config.data.template, trained.data.template),
             "data.system": (config.data.system, trained.data.system),
             "data.schema_format": (config.data.schema_format, trained.data.schema_format)}
    if base:
        pairs = {"model.name": (config.model.name, trained.model.name), **pairs}
    if trained.data.schema_format != "ddl":  # "ddl" renders the same in every version
        pairs["data.schema_format_version"] = (config.data.schema_format_version, trained.data.schema_format_version)
    differ = [f"{k}={theirs!r} (this config: {ours!r})" for k, (ours, theirs) in pairs.items() if ours != theirs]
    if differ:
        raise ConfigError(f"{setting}: that run was trained with " + ", ".join(differ)
                          + ": set the same values here, so that prompts are the ones its weights learnt")


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) parameters; 4-bit weights count as their logical size, not their packed bytes."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        if param.__class__.__name__ == "Params4bit":
            n *= param.element_size() * 2  # two 4-bit values per stored byte
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total


def memory_mb(model) -> float:
    """Bytes held by parameters and buffers (4-bit weights at their packed size), in MiB."""
    n = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    return n / 2**20
