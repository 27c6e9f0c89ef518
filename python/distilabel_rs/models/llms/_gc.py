"""Automatic full garbage collections deferred while a fan-out runs.

Each full (oldest-generation) collection walks every object of the process, and the results
piling up during a large `generate()` trigger one after another, each walking a bigger
heap: over 50k results they cost more than the requests themselves. Young generations are
still collected as usual (short-lived cycles, such as exceptions of retried requests, go as
before); the thresholds are restored when the last running fan-out ends, and the one full
collection that is then due happens at the next allocation, as it would have.
"""

import gc
import os
import threading
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

__all__ = ["full_collections_deferred"]

_guard = threading.Lock()
_depth = 0
_saved_threshold: Optional[Tuple[int, ...]] = None
_NO_AUTOMATIC_FULL_COLLECTION = 2**30


@contextmanager
def full_collections_deferred() -> Iterator[None]:
    global _depth, _saved_threshold
    with _guard:
        if _depth == 0:
            threshold = gc.get_threshold()
            if len(threshold) == 3 and threshold[0] > 0:
                _saved_threshold = threshold
                gc.set_threshold(threshold[0], threshold[1], _NO_AUTOMATIC_FULL_COLLECTION)
        _depth += 1
    try:
        yield
    finally:
        with _guard:
            _depth -= 1
            if _depth == 0:
                _restore_threshold()


def _restore_threshold() -> None:
    global _saved_threshold
    if _saved_threshold is not None:
        gc.set_threshold(*_saved_threshold)
        _saved_threshold = None


def _reset_in_child() -> None:
    # Forked from another thread mid-fan-out: no fan-out runs in the child.
    global _guard, _depth
    _guard = threading.Lock()
    _depth = 0
    _restore_threshold()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
