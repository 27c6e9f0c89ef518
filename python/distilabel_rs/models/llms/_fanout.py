"""The bounded fan-out behind `AsyncLLM.generate`.

A pool of `max_concurrency` worker coroutines runs on the caller's event loop; each asks the
Rust scheduler (`_core.FanOutScheduler`) which request to run next, awaits the user's
`agenerate` for it and reports back. The scheduler decides order, retries, backoff and rate
limiting and keeps the progress counters; every call to it is synchronous and takes well
under a microsecond, so there is no Task, no thread hop and no GIL hand-off per request.

With `max_concurrency="auto"` the limit is adaptive (decided in the Rust core from the
latencies and overload errors of the requests): a worker that asks for work while the limit
is reached ends, and a worker that finishes a request starts the workers the scheduler wants
when the limit has grown (`workers_wanted`).

Nothing here reads an LLM: `fan_out` gets the coroutine function, the error hooks and a
`FanOutSettings` value.
"""

import asyncio
import time
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Set,
    Union,
)

from distilabel_rs._core import FanOutScheduler
from distilabel_rs.models.llms._gc import full_collections_deferred
from distilabel_rs.models.llms._loop import ProcessLocal
from distilabel_rs.models.llms._outputs import describe_error, failed_output, merge_with_failures
from distilabel_rs.models.llms._progress import FanOutProgress, ProgressReporter

if TYPE_CHECKING:
    from distilabel_rs.typing import FormattedInput, GenerateOutput

__all__ = [
    "AUTO_DEFAULT_CEILING",
    "AdaptiveMemory",
    "FanOutProgress",
    "FanOutSettings",
    "combine_limits",
    "fan_out",
    "parse_max_concurrency",
    "pool_size",
]

# The ceiling of `max_concurrency="auto"` (`"auto:N"` sets another); the Rust core's
# `adaptive::DEFAULT_CEILING`.
AUTO_DEFAULT_CEILING = 1024

MaxConcurrency = Union[int, str, None]

_INVALID_MAX_CONCURRENCY = (
    'max_concurrency must be a positive integer, None (no limit), "auto" (adaptive, up to'
    f' {AUTO_DEFAULT_CEILING} requests in flight) or "auto:N" (adaptive, up to N, a positive'
    " integer); got {value!r}"
)


def parse_max_concurrency(value: Any) -> MaxConcurrency:
    """Normalizes a `max_concurrency` value: a positive `int`, `None`, `"auto"` or `"auto:N"`
    (a string of digits becomes an `int`).

    Raises:
        ValueError: naming the field and the accepted values.
    """
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        if value is not None and value <= 0:
            raise ValueError(_INVALID_MAX_CONCURRENCY.format(value=value))
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit() and int(text) > 0:
            return int(text)
        if text == "auto":
            return "auto"
        head, _, ceiling = text.partition(":")
        if head == "auto" and ceiling.strip().isdigit() and int(ceiling) > 0:
            return f"auto:{int(ceiling)}"
    raise ValueError(_INVALID_MAX_CONCURRENCY.format(value=value))


def _ceiling(value: MaxConcurrency) -> Optional[int]:
    """The most requests in flight `value` allows (`None`: no limit)."""
    if isinstance(value, str):
        _, _, ceiling = value.partition(":")
        return int(ceiling) if ceiling else AUTO_DEFAULT_CEILING
    return value


def pool_size(value: MaxConcurrency, unbounded: int = 256) -> int:
    """The connection pool size for `max_concurrency=value` (`unbounded` for `None`)."""
    ceiling = _ceiling(value)
    return unbounded if ceiling is None else ceiling


def combine_limits(value: MaxConcurrency, other: Optional[int]) -> MaxConcurrency:
    """`value` further bounded by a fixed `other` limit (`None`/0: no bound): the smaller
    number, or `"auto:N"` whose ceiling is the smaller one."""
    if not other:
        return value
    if value is None:
        return other
    if isinstance(value, str):
        return f"auto:{min(_ceiling(value) or other, other)}"
    return min(value, other)


class AdaptiveMemory(ProcessLocal):
    """The scheduler of an LLM's last fan-out, whose adaptive limit the next fan-out starts
    from (`max_concurrency="auto"` learns the provider once per process, not per batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduler: Optional[FanOutScheduler] = None

    def last(self) -> Optional[FanOutScheduler]:
        """The last scheduler in this process, if any."""
        self._in_this_process()
        return self.scheduler


class FanOutSettings(NamedTuple):
    """How one fan-out runs (built from an `AsyncLLM`'s runtime parameters)."""

    # A number, `None` (no limit), `"auto"` or `"auto:N"`.
    max_concurrency: MaxConcurrency
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
    # Where `auto` keeps what it learned between fan-outs (`None`: nowhere).
    adaptive_memory: Optional[AdaptiveMemory] = None


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
        max_concurrency=settings.max_concurrency,
        previous=memory.last() if (memory := settings.adaptive_memory) is not None else None,
    )
    if memory is not None:
        memory.scheduler = scheduler
    results: List[Any] = [None] * jobs
    errors: Dict[int, BaseException] = {}
    isolate = settings.isolate
    group = 1 if per_input else num_generations

    now = clock
    next_job = scheduler.next_job
    succeeded_then_next = scheduler.succeeded_then_next

    pool: Set[asyncio.Future[None]] = set()
    workers_wanted = scheduler.workers_wanted
    adaptive = isinstance(settings.max_concurrency, str)

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
                if adaptive:
                    # A grown limit: start the workers it allows.
                    for _ in range(workers_wanted() - len(pool)):
                        pool.add(asyncio.ensure_future(worker()))  # noqa: F821 (del at the end)

    reporter = ProgressReporter.create(
        scheduler.progress, settings.progress_callback, settings.progress_bar
    )
    if reporter is not None:
        reporter.start()
    pool.update(asyncio.ensure_future(worker()) for _ in range(workers_wanted()))
    with full_collections_deferred():
        try:
            if adaptive:
                await _run_pool(pool)
            else:
                await _run_workers(list(pool))
        finally:
            # `worker` refers to itself (it starts more workers): a cycle that would keep
            # every raw result alive until the next full collection.
            del worker
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


async def _run_pool(pool: Set["asyncio.Future[None]"]) -> None:
    """`_run_workers` for a pool that its workers grow: waits until every worker (also those
    started meanwhile) has ended; on the first failure or on cancellation, cancels the
    rest."""
    try:
        while pool:
            finished, _ = await asyncio.wait(pool, return_when=asyncio.FIRST_COMPLETED)
            pool.difference_update(finished)
            failed = [task for task in finished if task.exception() is not None]
            if failed:
                await _cancel(list(pool))
                raise failed[0].exception()  # type: ignore[misc]
    except asyncio.CancelledError:
        await _cancel(list(pool))
        raise


async def _cancel(tasks: Sequence["asyncio.Future[None]"]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
