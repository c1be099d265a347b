"""Start-up of the project's programs (``python -m engine``, ``python -m processor``)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn


class _NoPandas:  # a meta path finder (``importlib.abc`` costs 30 ms to import)
    def find_spec(self, name: str, path: Sequence[str] | None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("pandas is not used by this program", name=name)
        return None


def without_pandas() -> None:
    """Make ``import pandas`` fail in this process, as if pandas were not installed.

    pyarrow imports pandas, when it is installed, on its first numpy conversion (about 0.3 s
    and 30 MiB per process). The programs never use pandas; with this, pyarrow takes its
    pandas-free paths. Call before importing pyarrow.
    """
    if not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())


_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt() parameters


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the kernel.

    numpy and Arrow allocate and free megabytes per batch. By default glibc maps blocks above a
    (moving) threshold afresh and gives them back on free, and trims its heap: every batch then
    touches new pages, and a first touch costs microseconds in a VM (about 5 us here; a 1M-row
    replay took ~50,000 such faults in each program). Here blocks up to 32 MiB come from the
    heap, which grows 256 MiB at a time (address space; pages come on first touch), and up to
    1 GiB of free heap is kept. Returns False where this is not glibc.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return all([  # all three are tried
        mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1,  # glibc's maximum; a fixed value
        mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1,
        mallopt(_M_TOP_PAD, 256 << 20) == 1,  # the heap grows in big steps
    ])


def exit_quietly(code: int) -> NoReturn:
    """End the process with ``code`` once the program's work is done, skipping the interpreter's
    teardown.

    By then the programs have closed and released all they own (logs synced, the ring unmapped
    and, by its creator, removed; threads joined), so the teardown would only free memory the
    kernel reclaims anyway: 60-100 ms with a 1M-row table loaded, more with larger ones. Later
    SIGINT/SIGTERM are ignored: a second Ctrl-C must not turn a clean exit into -SIGINT.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing to keep
            stream.flush()
    os._exit(code)
