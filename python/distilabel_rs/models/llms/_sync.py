"""Running `AsyncLLM.generate` synchronously from anywhere.

- No event loop running in this thread (scripts, pipeline workers, plain threads): the
  coroutine runs on the LLM's own loop in this thread, as distilabel does, so clients the
  LLM created on that loop keep working across calls.
- A loop already running in this thread (Jupyter, an async web handler): that loop cannot
  be blocked into running ours, so the LLM's loop runs in a helper thread while this one
  waits. No nest_asyncio.
- Ctrl-C cancels the fan-out (every in-flight `agenerate` sees `CancelledError`) and then
  raises `KeyboardInterrupt`.
- The loop belongs to one process: a forked child that inherits the object makes its own.
"""

import asyncio
import os
import signal
import threading
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, TypeVar

if TYPE_CHECKING:
    from distilabel_rs.models.llms.base import AsyncLLM

T = TypeVar("T")

# How long a cancelled fan-out may take to unwind before Ctrl-C is re-raised anyway.
_CANCEL_GRACE_SECONDS = 1.0


def owned_loop(llm: "AsyncLLM") -> asyncio.AbstractEventLoop:
    """The LLM's own event loop in this process, created on first use."""
    loop: Optional[asyncio.AbstractEventLoop] = llm._event_loop
    reusable = (
        loop is not None
        and llm._new_event_loop
        and llm._event_loop_pid == os.getpid()
        and not loop.is_closed()
    )
    if not reusable:
        # An inherited loop is never closed here: its selector and self-pipe are the
        # parent's file descriptors as well.
        loop = asyncio.new_event_loop()
        llm._event_loop = loop
        llm._new_event_loop = True
        llm._event_loop_pid = os.getpid()
    return loop  # type: ignore[return-value]


_LOCK_CREATION = threading.Lock()


def _reset_lock_creation_in_child() -> None:
    # Forked while another thread held it: it would stay locked forever in the child.
    global _LOCK_CREATION
    _LOCK_CREATION = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_creation_in_child)


def _process_lock(llm: "AsyncLLM") -> Any:
    """The lock serializing `generate` calls on `llm` in this process (calls from several
    threads take turns on the LLM's one loop). A lock inherited through fork may be held by
    a thread that does not exist in the child, so each process makes its own."""
    with _LOCK_CREATION:
        if llm._generate_lock is None or llm._generate_lock_pid != os.getpid():
            llm._generate_lock = threading.RLock()
            llm._generate_lock_pid = os.getpid()
        return llm._generate_lock


def run_sync(llm: "AsyncLLM", make_coroutine: Callable[[], Awaitable[T]]) -> T:
    """Runs the coroutine made by `make_coroutine` to completion and returns its result."""
    with _process_lock(llm):
        loop = owned_loop(llm)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.set_event_loop(loop)
            return _run_here(loop, make_coroutine)
        return _run_in_helper_thread(loop, make_coroutine)


def _run_here(loop: asyncio.AbstractEventLoop, make_coroutine: Callable[[], Awaitable[T]]) -> T:
    task = loop.create_task(make_coroutine())  # type: ignore[arg-type]
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        interrupted.set()
        loop.call_soon_threadsafe(task.cancel)

    # Only where Python's default Ctrl-C handling is in place: pipeline workers install
    # their own SIGINT handler, which is left alone.
    previous = None
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        if interrupted.is_set():
            raise KeyboardInterrupt from None
        raise
    except KeyboardInterrupt:
        # Raised while the loop itself was busy: unwind the fan-out before re-raising.
        task.cancel()
        _drain(loop, task)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _drain(loop: asyncio.AbstractEventLoop, task: "asyncio.Task[Any]") -> None:
    if task.done():
        return
    try:
        loop.run_until_complete(asyncio.wait([task], timeout=_CANCEL_GRACE_SECONDS))
    except BaseException:
        pass


def _run_in_helper_thread(
    loop: asyncio.AbstractEventLoop, make_coroutine: Callable[[], Awaitable[T]]
) -> T:
    outcome: dict = {}
    started = threading.Event()
    task_holder: dict = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        task = loop.create_task(make_coroutine())  # type: ignore[arg-type]
        task_holder["task"] = task
        started.set()
        try:
            outcome["result"] = loop.run_until_complete(task)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, name="distilabel-rs-generate", daemon=True)
    thread.start()
    try:
        thread.join()
    except KeyboardInterrupt:
        started.wait()
        loop.call_soon_threadsafe(task_holder["task"].cancel)
        thread.join(_CANCEL_GRACE_SECONDS)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
