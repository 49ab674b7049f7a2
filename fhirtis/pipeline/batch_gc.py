"""Garbage-collector settings for evaluating many patients in one process.

An evaluation builds many short-lived containers (the parsed JSON, facts, notes, derived
resources) and no reference cycles: reference counting frees all of it. CPython's cyclic
collector still runs a pass every 700 new containers, and every tenth of those passes also walks
the older generation, which holds every long-lived object of the process (the imported modules,
the UCUM unit registry, the terminology). Those passes find nothing to free here.

:func:`batch_gc` is what a batch of evaluations runs under (each registry partition, on either
engine): the objects alive when it starts are frozen out of the collector's view
(:func:`gc.freeze`), and the youngest generation is collected after
:data:`BATCH_GEN0_THRESHOLD` new containers instead of 700. Garbage that does form cycles is still
collected, only in larger batches. The previous settings come back when the last batch of the
process ends (batches may overlap in threads).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BATCH_GEN0_THRESHOLD = 50_000
"""New containers between two collections of the youngest generation during a batch."""

_lock = threading.Lock()
_active = 0
_saved: tuple[int, int, int] | None = None
_froze = False  # this module froze (and so unfreezes) the objects alive at the first batch


@contextmanager
def batch_gc() -> Iterator[None]:
    """Run the body with the batch settings (see the module's docstring). Where something else
    in the process has already frozen objects (a server that freezes after start-up), that
    freeze is left as it is: the batch neither adds to it nor undoes it."""
    global _active, _saved, _froze  # noqa: PLW0603 - the process's collector is one, global state
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            _froze = gc.get_freeze_count() == 0
            if _froze:
                gc.freeze()
            gc.set_threshold(BATCH_GEN0_THRESHOLD, _saved[1], _saved[2])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                if _froze:
                    gc.unfreeze()
                _saved, _froze = None, False
