"""Memory ordering: the one fence, and the loads and stores of the words other processes read.

The ring shares memory between processes with no lock on the publish or read path, so it is
correct only because of the order in which one core's stores become visible to another and the
order in which loads are performed. This module is the one place that depends on the machine:
every other module loads and stores the shared words (the writer's cursor, ``tail``, ``end``,
the symbol count, the slot cursors, the states) through these functions, and each call site names
which of M1–M4 it relies on. (Slot fields read and changed only while holding the segment's lock,
``_shm.locked``, as attach, detach and retiring do, are plain loads and stores: the lock, a
system call, orders them.) A port to a weaker machine (ARM, POWER) changes this file only:
:func:`load_acquire` and :func:`store_release` become acquire/release atomics, :func:`full_fence`
a full barrier, and :func:`require_x86_64` lets that machine in.

The argument, for x86-64 (total store order, TSO):
  M1  Publish: the stores that fill a record (or a symbol-table entry, or a slot before it becomes
      ACTIVE, or a header before its magic) precede the :func:`store_release` that makes them
      reachable (the writer's ``cursor``, the symbol count, the slot state, the magic), and x86
      makes stores visible in program order. A reader that :func:`load_acquire`-s that word and
      sees the new value, then loads what it covers, sees it whole: x86 does not reorder loads
      with older loads. CPython cannot reorder them either: each is a separate call into numpy.
  M2  Release: a consumer's loads of a batch precede its :func:`store_release` of its slot cursor
      (x86 does not reorder a store before older loads), so once the writer sees the cursor
      move, the consumer is done with those records; the writer's later stores into them depend
      on that load.
  M3  Join (a new consumer appearing while the writer runs) is a store-then-load handshake on
      both sides, which TSO alone does not order (a store may wait in the store buffer while a
      later load is performed), so both sides put :func:`full_fence` between their store and
      their load: the writer stores ``tail``, fences, loads the slots; the joiner stores its
      slot, fences, loads ``tail``. Either the writer sees the joiner and gates on it, or the
      joiner sees the tail and starts above it.
  M4  8-byte aligned loads and stores (and 4-byte aligned ones) are single-copy atomic on
      x86-64: no torn cursor, sequence or state. Every shared word is aligned to its size.

The invariants these orderings protect (I1–I3) are stated in ``_writer``.
"""

from __future__ import annotations

import os
import platform
import threading
from typing import SupportsIndex

import numpy as np

_fence_lock = threading.Lock()


def require_x86_64() -> None:
    """Refuse to run where the memory-ordering argument of this module does not hold.

    Weaker architectures (ARM, POWER) would need real acquire/release atomics, which plain numpy
    stores are not. ``RINGBUFFER_UNSAFE_ARCH=1`` runs anyway (for tests on such machines).
    """
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64") and not os.environ.get("RINGBUFFER_UNSAFE_ARCH"):
        raise RuntimeError(
            f"ringbuffer needs x86-64 memory ordering; this machine is {machine!r}. "
            "Run on x86-64 (or port ringbuffer/_ordering.py to real atomics)."
        )


def full_fence() -> None:
    """A full memory barrier (M3): a LOCK-prefixed compare-and-swap, taken by acquiring a lock.

    On x86-64 every locked instruction orders all earlier loads and stores before all later
    ones; CPython's lock acquire and release are such atomic read-modify-writes.
    """
    _fence_lock.acquire()
    _fence_lock.release()


def load_acquire(words: np.ndarray, index: SupportsIndex) -> int:
    """Load the aligned word ``words[index]`` whole (M4); no later load is performed before it
    (M1's reading side: on x86-64 a plain load)."""
    return int(words[index])


def store_release(words: np.ndarray, index: SupportsIndex, value: int) -> None:
    """Store ``value`` into the aligned word ``words[index]`` whole (M4), visible only after every
    earlier load and store of this thread (M1's publishing side, M2: on x86-64 a plain store)."""
    words[index] = value


def load_each(words: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """A copy of ``words`` (or of ``words[where]``), each word loaded whole (M4) and in index
    order, each as :func:`load_acquire`; the copy is not one atomic snapshot of them all."""
    return words.copy() if where is None else words[where]
