"""Process-local state of an LLM, and running `generate` synchronously from anywhere.

`ProcessLocal` objects belong to the process that made them: a pickled or deep-copied LLM
(a pipeline worker, a Ray actor, a step deep-copied by a pipeline) gets empty ones and makes
its own on first use, and a forked child that inherited the object directly notices the
new process id and does the same.

`LoopOwner` is the one owner of an LLM's event loop and of the lock that makes `generate`
calls from several threads take turns:

- No event loop running in this thread (scripts, pipeline workers, plain threads): the
  coroutine runs on the LLM's own loop in this thread, as distilabel does, so clients the
  LLM created on that loop keep working across calls.
- A loop already running in this thread (Jupyter, an async web handler): that loop cannot
  be blocked into running ours, so the LLM's loop runs in a helper thread while this one
  waits. No nest_asyncio.
- Ctrl-C cancels the coroutine (every in-flight `agenerate` sees `CancelledError`) and then
  raises `KeyboardInterrupt`.
"""

import asyncio
import os
import signal
import threading
from typing import Any, Callable, Coroutine, Dict, Optional, TypeVar

__all__ = ["LoopOwner", "NativeSlot", "ProcessLocal"]

T = TypeVar("T")

# How long a cancelled coroutine may take to unwind before Ctrl-C is re-raised anyway.
_CANCEL_GRACE_SECONDS = 1.0


class ProcessLocal:
    """State that belongs to one process: pickles and deep-copies as a fresh, empty
    instance, and is reset when used from another process than the one that filled it."""

    def __init__(self) -> None:
        self._pid = os.getpid()

    def __reduce__(self) -> Any:
        return (type(self), ())

    def __deepcopy__(self, memo: Dict[int, Any]) -> "ProcessLocal":
        return type(self)()

    def _in_this_process(self) -> bool:
        """`False` (after resetting) when this object was inherited through `fork`."""
        if self._pid == os.getpid():
            return True
        # Inherited: its locks may be held by threads that do not exist here, its loop's
        # selector is the parent's file descriptors. Both are left untouched (not closed).
        type(self).__init__(self)
        return False


class NativeSlot(ProcessLocal):
    """Holds a native client (connections, runtime handles) built in this process, and the
    reporter of offline batch progress across polls."""

    def __init__(self) -> None:
        super().__init__()
        self.client: Any = None
        self.batch_reporter: Any = None

    def current(self) -> Any:
        """The client built in this process, if any."""
        self._in_this_process()
        return self.client

    def get(self, build: Callable[[], Any]) -> Any:
        """The client, built by `build` on first use in this process."""
        self._in_this_process()
        if self.client is None:
            self.client = build()
        return self.client


class LoopOwner(ProcessLocal):
    """An LLM's own event loop in this process and its `generate` lock."""

    def __init__(self) -> None:
        super().__init__()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._lock = threading.RLock()

    @property
    def created(self) -> bool:
        """Whether this owner created a loop (in this process)."""
        return self._loop is not None and self._pid == os.getpid()

    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, created on first use in this process (and again if it was closed)."""
        self._in_this_process()
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop

    def close(self) -> None:
        """Closes the loop if this process created it."""
        if self.created and self._loop is not None:
            if self._loop.is_running():
                self._loop.stop()
            self._loop.close()

    def run(self, make_coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Runs the coroutine made by `make_coroutine` to completion on the LLM's loop and
        returns its result; calls from several threads take turns."""
        self._in_this_process()
        with self._lock:
            loop = self.loop()
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                asyncio.set_event_loop(loop)
                return _run_here(loop, make_coroutine)
            return _run_in_helper_thread(loop, make_coroutine)


def _run_here(
    loop: asyncio.AbstractEventLoop, make_coroutine: Callable[[], Coroutine[Any, Any, T]]
) -> T:
    task = loop.create_task(make_coroutine())
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
        # Raised while the loop itself was busy: unwind the coroutine before re-raising.
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
    loop: asyncio.AbstractEventLoop, make_coroutine: Callable[[], Coroutine[Any, Any, T]]
) -> T:
    outcome: dict = {}
    started = threading.Event()
    task_holder: dict = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        task = loop.create_task(make_coroutine())
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
