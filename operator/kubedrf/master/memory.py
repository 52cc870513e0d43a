"""Keeping the master's resident memory near what it holds.

The master decodes lists and runs the allocator in worker threads, so that the event loop
never blocks, and glibc gives threads that allocate at once malloc arenas of their own.
Memory freed inside an arena goes back to the system only from the arena's top, so after a
relist (megabytes of JSON, decoded in a thread) each arena can keep its high-water mark.
Both measures are glibc's own: at most two arenas, and ``malloc_trim`` now and then, which
hands back every whole free page of every arena. Where the C library is not glibc (musl,
macOS) both are skipped.
"""

from __future__ import annotations

import ctypes
import sys
from functools import cache

#: ``mallopt``'s parameter for the most arenas (glibc's ``malloc.h``).
M_ARENA_MAX = -8
#: The main arena and one for the worker threads: they take turns with the GIL anyway.
ARENAS = 2
#: How often the master hands free memory back (a trim takes milliseconds).
TRIM_SECONDS = 30.0


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_arenas() -> bool:
    """Cap the malloc arenas, early, before worker threads make their own; say if it took."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(M_ARENA_MAX, ARENAS))


def trim() -> bool:
    """Hand every whole free page back to the system; say whether any was."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))
