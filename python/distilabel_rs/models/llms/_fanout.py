"""The bounded fan-out behind `AsyncLLM.generate`.

A pool of `max_concurrency` worker coroutines runs on the caller's event loop; each asks the
Rust scheduler (`_core.FanOutScheduler`) which request to run next, awaits the user's
`agenerate` for it and reports back. The scheduler decides order, retries, backoff and rate
limiting and keeps the progress counters; every call to it is synchronous and takes well
under a microsecond, so there is no Task, no thread hop and no GIL hand-off per request.
"""

import asyncio
import gc
import os
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

from distilabel_rs._core import FanOutScheduler, merge_responses

if TYPE_CHECKING:
    from distilabel_rs.models.llms.base import AsyncLLM
    from distilabel_rs.typing import FormattedInput, GenerateOutput

# The key under which the isolate error policy keeps each failed generation's error message.
ERROR_KEY = "error"
# How often progress is reported (seconds).
PROGRESS_INTERVAL = 0.1


class FanOutProgress(NamedTuple):
    """Counts of one `generate()` call, in requests (input x generation when the provider
    returns one generation per request)."""

    total: int
    done: int
    failed: int
    retried: int
    in_flight: int


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


# Tests replace these two with a virtual clock. (`time.monotonic` is what asyncio's loops
# use, without looking the loop up on every call.)
clock: Callable[[], float] = time.monotonic
sleep: Callable[[float], Any] = _sleep


def describe_error(error: BaseException) -> str:
    """The message kept under `error` for a request that failed for good."""
    return f"{type(error).__name__}: {error}"


async def fan_out(
    llm: "AsyncLLM",
    inputs: List["FormattedInput"],
    num_generations: int,
    kwargs: Dict[str, Any],
) -> List["GenerateOutput"]:
    """Runs `llm.agenerate` for every input (and generation, when the provider returns one
    generation per request) with at most `llm.max_concurrency` running at once.

    Returns:
        One output per input, in input order.
    """
    per_input = bool(llm._num_generations_param_supported)
    jobs = len(inputs) if per_input else len(inputs) * num_generations
    if jobs == 0:
        return []
    if per_input:
        kwargs = {"num_generations": num_generations, **kwargs}
    scheduler = FanOutScheduler(
        jobs,
        max_retries=llm.max_request_retries or 0,
        backoff_base=llm.retry_backoff_base,
        backoff_cap=llm.retry_backoff_max,
        requests_per_minute=llm.requests_per_minute,
        seed=llm._fanout_seed,
    )
    results: List[Any] = [None] * jobs
    errors: Dict[int, BaseException] = {}
    isolate = llm.error_policy == "isolate"
    agenerate = llm.agenerate
    group = 1 if per_input else num_generations

    now = clock
    next_job = scheduler.next_job
    succeeded_then_next = scheduler.succeeded_then_next

    async def worker() -> None:
        job = next_job(now())
        while job is not None:
            if type(job) is float:
                await sleep(job)
                job = next_job(now())
                continue
            try:
                output = await agenerate(input=inputs[job // group], **kwargs)
            except Exception as error:
                delay = scheduler.failed(
                    job, llm._is_retryable(error), llm._retry_after(error), now()
                )
                if delay is None:
                    if not isolate:
                        scheduler.abort()
                        raise
                    errors[job] = error
                job = next_job(now())
            else:
                results[job] = output
                # One call reports the result and takes the next job.
                job = succeeded_then_next(job, now())

    workers = jobs if llm.max_concurrency is None else min(llm.max_concurrency, jobs)
    reporter = ProgressReporter.create(llm, scheduler.progress)
    if reporter is not None:
        reporter.start()
    tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
    with _full_collections_deferred():
        try:
            await _run_workers(tasks)
        finally:
            if reporter is not None:
                await reporter.stop()
        if per_input:
            for job, error in errors.items():
                results[job] = failed_output(num_generations, describe_error(error))
            return results
        if not errors:
            return merge_responses(results, num_generations)
        return _merge_with_failures(results, errors, num_generations)


# Automatic full (oldest-generation) garbage collections are deferred while a fan-out runs.
# Each one walks every object of the process, and the results piling up during a large
# `generate()` trigger one after another, each walking a bigger heap: over 50k results they
# cost more than the requests themselves. Young generations are still collected as usual
# (short-lived cycles, such as exceptions of retried requests, go as before); the thresholds
# are restored when the last running fan-out ends, and the one full collection that is then
# due happens at the next allocation, as it would have.
_gc_guard = threading.Lock()
_gc_depth = 0
_gc_saved_threshold: Optional[Tuple[int, ...]] = None
_NO_AUTOMATIC_FULL_COLLECTION = 2**30


@contextmanager
def _full_collections_deferred() -> Iterator[None]:
    global _gc_depth, _gc_saved_threshold
    with _gc_guard:
        if _gc_depth == 0:
            threshold = gc.get_threshold()
            if len(threshold) == 3 and threshold[0] > 0:
                _gc_saved_threshold = threshold
                gc.set_threshold(threshold[0], threshold[1], _NO_AUTOMATIC_FULL_COLLECTION)
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_guard:
            _gc_depth -= 1
            if _gc_depth == 0:
                _restore_gc_threshold()


def _restore_gc_threshold() -> None:
    global _gc_saved_threshold
    if _gc_saved_threshold is not None:
        gc.set_threshold(*_gc_saved_threshold)
        _gc_saved_threshold = None


def _reset_gc_guard_in_child() -> None:
    # Forked from another thread mid-fan-out: no fan-out runs in the child.
    global _gc_guard, _gc_depth
    _gc_guard = threading.Lock()
    _gc_depth = 0
    _restore_gc_threshold()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_gc_guard_in_child)


async def _run_workers(tasks: List["asyncio.Future[None]"]) -> None:
    """Waits for the workers; on the first failure or on cancellation, cancels the rest."""
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        await _cancel(tasks)
        raise
    failed = [task for task in tasks if task in done and task.exception() is not None]
    if failed:
        await _cancel(tasks)
        raise failed[0].exception()  # type: ignore[misc]


async def _cancel(tasks: List["asyncio.Future[None]"]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def failed_output(num_generations: int, message: str) -> "GenerateOutput":
    return {  # type: ignore[typeddict-unknown-key]
        "generations": [None] * num_generations,
        "statistics": {},
        ERROR_KEY: [message] * num_generations,
    }


def _merge_with_failures(
    results: List[Any], errors: Dict[int, BaseException], n: int
) -> List["GenerateOutput"]:
    """Groups per input when some generations failed for good: a failed generation is
    `None`, with `None` for its statistics and extra keys (so they stay aligned with the
    generations), and its group gets an `error` list with the message of each failure."""
    template = next((r for i, r in enumerate(results) if i not in errors), None)
    placeholder: Dict[str, Any] = {"generations": [None], "statistics": {}}
    if template is not None:
        placeholder["statistics"] = {key: [None] for key in template["statistics"]}
        for key in template:
            if key not in ("generations", "statistics"):
                placeholder[key] = [None]
    for job in errors:
        results[job] = placeholder
    merged = merge_responses(results, n)
    for job, error in errors.items():
        group = merged[job // n]
        if ERROR_KEY not in group:
            group[ERROR_KEY] = [None] * len(group["generations"])
        group[ERROR_KEY][job % n] = describe_error(error)
    return merged


class ProgressReporter:
    """Reports progress counters about ten times a second (never per request) to the LLM's
    progress callback and, if enabled, a progress bar.

    `snapshot` returns `(total, done, failed, retried, in_flight)`; the counters live in
    Rust (the fan-out scheduler or the native client's batch)."""

    def __init__(
        self, snapshot: Callable[[], Tuple[int, ...]], callback: Optional[Callable], bar: Any
    ):
        self._snapshot = snapshot
        self._callback = callback
        self._bar = bar
        self._task: Optional[asyncio.Task] = None
        self._last = 0.0

    @classmethod
    def create(
        cls, llm: "AsyncLLM", snapshot: Callable[[], Tuple[int, ...]]
    ) -> Optional["ProgressReporter"]:
        """A reporter, or `None` when the LLM has neither a callback nor a bar."""
        callback = llm._progress_callback
        bar = _open_bar(snapshot()[0]) if llm.progress_bar else None
        if callback is None and bar is None:
            return None
        return cls(snapshot, callback, bar)

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
            self._bar.set_postfix(
                failed=progress.failed,
                retried=progress.retried,
                in_flight=progress.in_flight,
                refresh=False,
            )
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
