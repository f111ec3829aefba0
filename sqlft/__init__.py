"""sqlft: fine-tune, evaluate and serve Llama-family models for text-to-SQL."""

import logging

__version__ = "0.1.0"


class _OfflineKernelNotice(logging.Filter):
    """bitsandbytes on an AVX512-BF16 CPU tries, when it is imported (peft imports it for every run, LoRA ones
    too), to fetch a faster 4-bit kernel from the Hugging Face hub through the `kernels` package, and warns when it
    cannot. sqlft runs without a hub; bitsandbytes then uses its own CPU kernel, so the warning says nothing to act
    on. Only that message is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "kernels-community" not in record.getMessage()


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_OfflineKernelNotice())
