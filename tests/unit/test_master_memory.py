"""The master hands memory that its worker threads freed back to the system (see
``kubedrf.master.memory``): a relist decoded in a thread no longer leaves its high-water
mark in the master's RSS."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kubedrf.master import memory

OPERATOR = Path(__file__).resolve().parents[2] / "operator"

#: A worker thread allocates 240 MB in blocks malloc serves (pymalloc keeps small objects),
#: and a few scattered ones survive, so the arena cannot shrink from its top by itself.
SCRIPT = textwrap.dedent(
    """
    import os, sys, threading
    from kubedrf.master import memory

    def rss_mb():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    limited = memory.limit_arenas()
    kept = []

    def work():
        blocks = [bytearray(4096) for _ in range(60_000)]
        kept.extend(blocks[::64])

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    before = rss_mb()
    trimmed = memory.trim()
    print(limited, trimmed, before, rss_mb())
    """
)


@pytest.mark.skipif(memory._glibc() is None, reason="glibc's malloc only")
def test_memory_freed_by_a_worker_thread_is_handed_back() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(OPERATOR)},
    ).stdout.split()
    limited, trimmed, before, after = out[0], out[1], float(out[2]), float(out[3])
    assert (limited, trimmed) == ("True", "True")
    assert before > 200  # the blocks were resident, and freeing them kept them so
    assert after < before - 150, (before, after)
