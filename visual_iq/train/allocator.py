"""Keep freed host memory in the process instead of handing it back to the OS at once.

glibc's malloc serves large blocks (from 128 kB, a threshold it raises on its own up to 32 MB)
with fresh ``mmap`` pages and unmaps them on free, and it trims the heap's top, so the
batch-sized CPU tensors of every training step (a 32-row Pong batch is ~3.6 MB in fp32) are
faulted in again, page by page: 600-3,000 minor page faults per update were counted in
Lightning's loop. With two torch threads those faults contend on the kernel's memory lock;
``research/loop_ms.py 2 nature 200`` with and without ``--keep-freed-memory`` (6 alternating
pairs on the team's 2-core AMD EPYC, 2026-11-26) measured 46.0 ms vs 36.1 ms per update on average,
every pair faster, with ~2 faults per update instead of ~2,500. Cost: up to ~1 GB of freed heap
may stay resident.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to serve blocks under 32 MB from the heap and to trim it only past 1 GB.

    Returns whether it took effect (False where the C library is not glibc, e.g. macOS, musl).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(option, value) == 1 for option, value in (
        (M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20)))
