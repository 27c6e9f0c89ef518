"""Progress of a `generate` call (or of offline batch jobs): counters read from Rust about
ten times a second, never per request, and reported to a callback and a tqdm bar."""

import asyncio
import time
from typing import Any, Callable, NamedTuple, Optional, Tuple

__all__ = ["PROGRESS_INTERVAL", "FanOutProgress", "ProgressReporter", "Snapshot"]

# `(total, done, failed, retried, in_flight[, limit])`, where `limit` may be `None`.
Snapshot = Callable[[], Tuple[Any, ...]]

# How often progress is reported (seconds).
PROGRESS_INTERVAL = 0.1


class _Counts(NamedTuple):
    total: int
    done: int
    failed: int
    retried: int
    in_flight: int


class FanOutProgress(_Counts):
    """Counts of one `generate()` call, in requests (input x generation when the provider
    returns one generation per request), and the concurrency limit in force.

    A 5-tuple `(total, done, failed, retried, in_flight)` as before (it unpacks and compares
    as one); `limit` is an attribute beside it: the limit in force (with
    `max_concurrency="auto"`, the current adaptive limit), or `None` for no limit or when
    unknown.
    """

    limit: Optional[int]

    def __new__(
        cls,
        total: int,
        done: int,
        failed: int,
        retried: int,
        in_flight: int,
        limit: Optional[int] = None,
    ) -> "FanOutProgress":
        progress = super().__new__(cls, total, done, failed, retried, in_flight)
        progress.limit = limit
        return progress

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, limit={self.limit!r})"

    def __reduce__(self) -> Any:
        return (type(self), (*self, self.limit))


class ProgressReporter:
    """Reports `(total, done, failed, retried, in_flight[, limit])` counters, as returned by
    `snapshot`, to a callback and, if enabled, a progress bar."""

    def __init__(self, snapshot: Snapshot, callback: Optional[Callable], bar: Any):
        self._snapshot = snapshot
        self._callback = callback
        self._bar = bar
        self._task: Optional[asyncio.Task] = None
        self._last = 0.0

    @classmethod
    def create(
        cls,
        snapshot: Snapshot,
        callback: Optional[Callable[[FanOutProgress], Any]],
        bar: bool,
    ) -> Optional["ProgressReporter"]:
        """A reporter, or `None` when there is neither a callback nor a bar."""
        opened = _open_bar(snapshot()[0]) if bar else None
        if callback is None and opened is None:
            return None
        return cls(snapshot, callback, opened)

    def start(self) -> "ProgressReporter":
        """Reports from a task on the running loop until `stop`."""
        self._task = asyncio.ensure_future(self._loop())
        return self

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            self.report()

    def tick(self) -> None:
        """Reports if the last report is older than the interval (for synchronous waits)."""
        if time.monotonic() - self._last >= PROGRESS_INTERVAL:
            self.report()

    def report(self) -> None:
        self._last = time.monotonic()
        progress = FanOutProgress(*self._snapshot())
        if self._bar is not None:
            self._bar.n = progress.done + progress.failed
            postfix = {
                "failed": progress.failed,
                "retried": progress.retried,
                "in_flight": progress.in_flight,
            }
            if progress.limit is not None:
                postfix["limit"] = progress.limit
            self._bar.set_postfix(postfix, refresh=False)
            self._bar.refresh()
        if self._callback is not None:
            self._callback(progress)

    def close(self) -> None:
        """The final report; closes the bar."""
        self.report()
        if self._bar is not None:
            self._bar.close()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.close()


def _open_bar(total: int) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError as e:
        raise ImportError(
            "`progress_bar=True` needs tqdm: `pip install 'distilabel-rs[progress]'`."
        ) from e
    return tqdm(total=total, unit="req", desc="Generating", dynamic_ncols=True)
