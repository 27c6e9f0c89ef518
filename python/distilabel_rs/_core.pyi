"""Type stubs of the native module `distilabel_rs._core` (built from `rust/python`)."""

from typing import Any, Iterator, Mapping, Sequence

__all__ = ["FanOutScheduler", "Grouper", "__version__", "merge_responses"]

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

class FanOutScheduler:
    """Decisions of one bounded fan-out: next job, retries with backoff, rate limit, counts.

    Times are seconds on the caller's monotonic clock.
    """

    def __new__(
        cls,
        jobs: int,
        *,
        max_retries: int = 0,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        requests_per_minute: float | None = None,
        seed: int | None = None,
    ) -> FanOutScheduler: ...
    def next_job(self, now: float) -> int | float | None:
        """A job index to run, seconds to wait before asking again, or `None` when done."""
    def succeeded(self, job: int) -> None: ...
    def succeeded_then_next(self, job: int, now: float) -> int | float | None:
        """`succeeded(job)` then `next_job(now)`, in one call."""
    def failed(
        self, job: int, retryable: bool, retry_after: float | None, now: float
    ) -> float | None:
        """Seconds until the job is retried, or `None` if it has failed for good."""
    def abort(self) -> None: ...
    def progress(self) -> tuple[int, int, int, int, int]:
        """`(total, done, failed, retried, in_flight)`."""
    @property
    def peak_in_flight(self) -> int: ...
