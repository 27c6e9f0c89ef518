"""The bounded fan-out behind `AsyncLLM.generate`.

A pool of `max_concurrency` worker coroutines runs on the caller's event loop; each asks the
Rust scheduler (`_core.FanOutScheduler`) which request to run next, awaits the user's
`agenerate` for it and reports back. The scheduler decides order, retries, backoff and rate
limiting and keeps the progress counters; every call to it is synchronous and takes well
under a microsecond, so there is no Task, no thread hop and no GIL hand-off per request.

Nothing here reads an LLM: `fan_out` gets the coroutine function, the error hooks and a
`FanOutSettings` value.
"""

import asyncio
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Optional, Sequence

from distilabel_rs._core import FanOutScheduler
from distilabel_rs.models.llms._gc import full_collections_deferred
from distilabel_rs.models.llms._outputs import describe_error, failed_output, merge_with_failures
from distilabel_rs.models.llms._progress import FanOutProgress, ProgressReporter

if TYPE_CHECKING:
    from distilabel_rs.typing import FormattedInput, GenerateOutput

__all__ = ["FanOutProgress", "FanOutSettings", "fan_out"]


class FanOutSettings(NamedTuple):
    """How one fan-out runs (built from an `AsyncLLM`'s runtime parameters)."""

    max_concurrency: Optional[int]
    max_retries: int
    backoff_base: float
    backoff_cap: float
    requests_per_minute: Optional[float]
    # `error_policy="isolate"`: failed requests become failed outputs.
    isolate: bool
    # Seed of the retry jitter; `None` seeds from the clock.
    seed: Optional[int]
    progress_callback: Optional[Callable[[FanOutProgress], Any]]
    progress_bar: bool


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


# Tests replace these two with a virtual clock. (`time.monotonic` is what asyncio's loops
# use, without looking the loop up on every call.)
clock: Callable[[], float] = time.monotonic
sleep: Callable[[float], Any] = _sleep


async def fan_out(
    agenerate: Callable[..., Any],
    inputs: List["FormattedInput"],
    num_generations: int,
    kwargs: Dict[str, Any],
    *,
    per_input: bool,
    settings: FanOutSettings,
    is_retryable: Callable[[BaseException], bool],
    retry_after: Callable[[BaseException], Optional[float]],
) -> List["GenerateOutput"]:
    """Runs `agenerate(input=..., **kwargs)` for every input (`per_input`: the provider
    returns `num_generations` per request) or every input and generation (else; the
    responses are then grouped per input), with at most `settings.max_concurrency` running
    at once.

    Returns:
        One output per input, in input order.
    """
    jobs = len(inputs) if per_input else len(inputs) * num_generations
    if jobs == 0:
        return []
    if per_input:
        kwargs = {"num_generations": num_generations, **kwargs}
    scheduler = FanOutScheduler(
        jobs,
        max_retries=settings.max_retries,
        backoff_base=settings.backoff_base,
        backoff_cap=settings.backoff_cap,
        requests_per_minute=settings.requests_per_minute,
        seed=settings.seed,
    )
    results: List[Any] = [None] * jobs
    errors: Dict[int, BaseException] = {}
    isolate = settings.isolate
    group = 1 if per_input else num_generations

    now = clock
    next_job = scheduler.next_job
    succeeded_then_next = scheduler.succeeded_then_next

    async def worker() -> None:
        job = next_job(now())
        while job is not None:
            if isinstance(job, float):
                await sleep(job)
                job = next_job(now())
                continue
            try:
                output = await agenerate(input=inputs[job // group], **kwargs)
            except Exception as error:
                delay = scheduler.failed(job, is_retryable(error), retry_after(error), now())
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

    limit = settings.max_concurrency
    workers = jobs if limit is None else min(limit, jobs)
    reporter = ProgressReporter.create(
        scheduler.progress, settings.progress_callback, settings.progress_bar
    )
    if reporter is not None:
        reporter.start()
    tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
    with full_collections_deferred():
        try:
            await _run_workers(tasks)
        finally:
            if reporter is not None:
                await reporter.stop()
        if per_input:
            for job, error in errors.items():
                results[job] = failed_output(num_generations, describe_error(error))
            return results
        messages = {job: describe_error(error) for job, error in errors.items()}
        return merge_with_failures(results, messages, num_generations)


async def _run_workers(tasks: Sequence["asyncio.Future[None]"]) -> None:
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


async def _cancel(tasks: Sequence["asyncio.Future[None]"]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
