"""Give freed heap memory back to the operating system during CPU training.

Packed rows make every step's tensors a different size. glibc's malloc keeps what such tensors free in its arenas,
fragmented, rather than returning it, so a CPU run's resident memory grows step after step with no leak at all.
malloc_trim(0) after each optimizer step returns the free pages (it takes milliseconds).
"""

import ctypes
import ctypes.util
import os

from transformers import TrainerCallback


def _libc_malloc_trim():
    """glibc's malloc_trim, or None (another libc, or SQLFT_MALLOC_TRIM=0)."""
    if os.environ.get("SQLFT_MALLOC_TRIM", "1") == "0":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


class ReturnFreedMemory(TrainerCallback):
    """malloc_trim(0) after every optimizer step on a CPU (a no-op where the C library has no malloc_trim)."""

    def __init__(self) -> None:
        self._trim = _libc_malloc_trim()

    def on_step_end(self, args, state, control, **kwargs):
        if self._trim is not None:
            self._trim(0)
        return control
