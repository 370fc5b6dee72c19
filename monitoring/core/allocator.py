"""glibc's malloc kept to one arena once the pass starts threads: less memory, same speed.

glibc gives each new thread that allocates while another holds the main arena an arena of
its own (up to 8 per core), and memory freed into one arena serves only that arena's
later requests. The pass allocates each chunk's arrays in one thread (the reader, a
column task) and frees them in another, so every arena grows to hold a chunk or two of
its own. A 1,000,000-row fit and evaluation in one process peaked at 717-775 MiB of RSS
with glibc's default and 653-666 MiB with one arena from start-up, in the same time
(1.50-1.60 s against 1.51-1.81 s); set here, at the first pass, 690-700 MiB against
744-751 (pandas' import has made a second arena by then). The pass's threads allocate
large arrays that numpy fills without holding the lock, so sharing the arena costs them
no measurable wait.

The limit holds for the rest of the process: glibc fixes its arena limit the first time a
thread needs a new arena, and nothing can lift it afterwards. It is the setting that
`MALLOC_ARENA_MAX=1` gives at start-up. A process whose environment sets
`MALLOC_ARENA_MAX` (any value) keeps its own; so does any C library but glibc.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading

M_ARENA_MAX = -8  # glibc's malloc.h
_LOCK = threading.Lock()
_outcome: bool | None = None  # decided once per process


def keep_malloc_to_one_arena() -> bool:
    """Limit glibc's malloc to its main arena for the rest of the process, before the
    pass's first thread (see the module docstring). Whether the limit is set (now or by an
    earlier call): False where the C library is not glibc or `MALLOC_ARENA_MAX` is set."""
    global _outcome
    with _LOCK:
        if _outcome is None:
            _outcome = _set_arena_limit(1)
        return _outcome


def _set_arena_limit(arenas: int) -> bool:
    if "MALLOC_ARENA_MAX" in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_ARENA_MAX, arenas) == 1
