"""Converting the embedded default model (sqlft.config.embedded names and locates it) into a normal Hugging Face
folder under the cache, once: every later run loads that folder like any other model."""

import os
import shutil
import tempfile
from pathlib import Path

from sqlft.config.embedded import EMBEDDED_MODELS, EMBEDDED_PREFIX, ModelNotFound, gguf_path
from sqlft.core.paths import cache_dir


def resolve_embedded(name: str) -> Path:
    """Path of the converted HF folder for `embedded:<key>`, converting the GGUF on first use."""
    key = name[len(EMBEDDED_PREFIX):]
    if key not in EMBEDDED_MODELS:
        raise ModelNotFound(f"unknown embedded model '{name}'; available: "
                            + ", ".join(EMBEDDED_PREFIX + k for k in EMBEDDED_MODELS))
    target = cache_dir("models") / key
    if (target / "config.json").is_file():
        return target
    source = gguf_path(key)
    print(f"[sqlft] converting {source.name} to a Hugging Face folder at {target} (once)")
    _convert(source, target)
    return target


def _convert(gguf_file: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    # dequantize=True loads plain float weights; without it save_pretrained refuses the GGUF-backed model.
    quant = GgufConfig(gguf_file=str(gguf_file), dequantize=True)
    folder, name = str(gguf_file.parent), gguf_file.name
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, quantization_config=quant,
                                                 dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model.config.quantization_config = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Build beside the target and rename: a killed conversion leaves no half-written model behind.
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
