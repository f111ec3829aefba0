"""Loading models and tokenizers: base weights (embedded, local folder or hub id), quantized for QLoRA or not.

One path for every Llama-family model: the embedded SmolLM2 on a CPU and Llama-2-7B on a GPU differ only in the
config. GPU-only options asked for on a CPU fail early with a message saying what to change.
"""

import os
from pathlib import Path

import torch

from sqlft import precision
from sqlft.config import Config, ConfigError, ModelConfig
from sqlft.embedded import is_embedded, resolve_embedded

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
    """dtype of the non-quantized weights: `auto` is bf16/fp16 on a GPU and fp32 on a CPU (sqlft.precision)."""
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
    if problems:
        raise ConfigError("GPU-only options on a machine without a GPU:\n  " + "\n  ".join(problems))


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name))
    if tokenizer.pad_token is None:  # Llama-2 has none; padding positions are masked out, so EOS is safe
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


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


def load_base_model(model_cfg: ModelConfig, *, for_training: bool):
    """The base model, quantized when the method is qlora. Returns a model in train or eval mode."""
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(model_cfg.name)
    kwargs = dict(dtype=weights_dtype(model_cfg), attn_implementation=attention(model_cfg),
                  trust_remote_code=model_cfg.trust_remote_code)
    quant = quantization_config(model_cfg)
    if quant is not None:
        kwargs["quantization_config"] = quant
        # This process's GPU (under a launcher, set when sqlft.train built the training arguments). Under ZeRO-3
        # from_pretrained refuses a device_map, and FSDP places the shards itself: none is passed there.
        if has_gpu() and not shards_weights():
            kwargs["device_map"] = {"": torch.cuda.current_device()}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as err:
        hint = ("it is neither a local folder nor reachable on the hub (this machine may have no hub access: "
                "download it where online and point model.name at the folder)") if not Path(path).exists() else str(err)
        raise FileNotFoundError(f"cannot load model '{model_cfg.name}': {hint}") from err
    if quant is not None:
        fix_bnb_cpu_gradients(model)
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
            gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                      target_modules=config.lora.target_modules, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


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
