"""Type stubs of the native module `distilabel_rs._core` (built from `rust/python`)."""

from typing import Any, Iterator, Mapping, Sequence

__all__ = ["Grouper", "__version__", "merge_responses"]

__version__: str

def merge_responses(responses: Sequence[Mapping[str, Any]], n: int = 1) -> list[dict[str, Any]]:
    """Groups every `n` consecutive single-generation responses into one, in one pass."""

class Grouper(Iterator[tuple[Any, ...]]):
    """Lazy fixed-size chunks of an iterator, with `grouper`'s `incomplete` policies."""

    def __new__(
        cls, source: Iterator[Any], n: int, incomplete: str = "fill", fillvalue: Any = None
    ) -> Grouper: ...
    def __iter__(self) -> Grouper: ...
    def __next__(self) -> tuple[Any, ...]: ...
