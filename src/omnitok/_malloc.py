"""glibc malloc settings for the long CPU jobs (training, tokenising, evaluation).

By default glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
returns it with ``munmap`` when freed, so a training step that allocates the same large activations and
logits every step page-faults them in again, zero-filled, every step: on the quickstart's LM that was ~67,000
page faults a second and a third of the CPU time in the kernel. Serving them from the heap and not trimming it
keeps those pages (``M_MMAP_MAX = 0``, ``M_TRIM_THRESHOLD`` = 2 GiB); the process keeps its peak heap instead
of returning freed blocks to the system. Measured in ``benchmarks/malloc_lm.py``.

``OMNITOK_MALLOC=default`` leaves glibc as it is. Other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["tune_malloc"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM = 2**31 - 1  # the largest value mallopt takes (an int): 2 GiB of free heap kept


def tune_malloc() -> bool:
    """Apply the settings above to this process; True when they were applied."""
    if os.environ.get("OMNITOK_MALLOC", "").lower() == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM))
