"""Chunking helpers. `grouper` runs in the Rust core (`distilabel_rs._core.Grouper`)."""

import operator
import sys
from typing import Any, Iterable, Iterator, Literal, Tuple, TypeVar

from distilabel_rs._core import Grouper

__all__ = ["batched", "grouper"]

T = TypeVar("T")

if sys.version_info >= (3, 12):
    from itertools import batched
else:
    from itertools import islice

    def batched(iterable: Iterable[T], n: int) -> Iterator[Tuple[T, ...]]:
        """Batches of `n` items; the last one may be shorter (backport of 3.12's)."""
        if n < 1:
            raise ValueError("n must be at least one")
        iterator = iter(iterable)
        while batch := tuple(islice(iterator, n)):
            yield batch


def grouper(
    iterable: Iterable[T],
    n: int,
    *,
    incomplete: Literal["fill", "strict", "ignore"] = "fill",
    fillvalue: Any = None,
) -> Iterator[Tuple[T, ...]]:
    """Collect data into non-overlapping fixed-length chunks or blocks.

    `incomplete` says what happens to a short last chunk: `"fill"` pads it with `fillvalue`,
    `"ignore"` drops it, `"strict"` raises `ValueError` when it is reached.
    """
    # Same failure order as distilabel: a non-iterable, a non-int `n`, then a bad policy.
    source = iter(iterable)
    # Multiplying an (empty) list raises distilabel's exact TypeError for a non-int `n`.
    _ = [] * n
    return Grouper(source, operator.index(n), incomplete, fillvalue)
