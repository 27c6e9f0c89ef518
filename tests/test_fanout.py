"""The bounded fan-out engine behind `AsyncLLM.generate` (issue: concurrent fan-out)."""

import asyncio
import random
import threading
from typing import Any, List, Optional

import pytest
from pydantic import PrivateAttr

from distilabel_rs import AsyncLLM
from distilabel_rs.models.llms import _fanout
from tests.conftest import run_python


class Flaky(Exception):
    """A retryable error, optionally with a retry-after hint."""

    def __init__(self, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            self.retry_after = retry_after


class Probe(AsyncLLM):
    """Records what the engine does: concurrency, attempts, cancellations."""

    per_request_n: bool = True
    delay: float = 0.0
    fail_first: int = 0  # attempts that fail with `Flaky` for every input
    fail_inputs: List[str] = []  # inputs that always fail with ValueError
    retry_after: Optional[float] = None

    _retryable_exceptions = (Flaky,)
    _in_flight: int = PrivateAttr(default=0)
    _peak: int = PrivateAttr(default=0)
    _attempts: dict = PrivateAttr(default_factory=dict)
    _cancelled: int = PrivateAttr(default=0)
    _starts: list = PrivateAttr(default_factory=list)

    def load(self) -> None:
        super().load()
        self._num_generations_param_supported = self.per_request_n

    @property
    def model_name(self) -> str:
        return "probe"

    async def agenerate(self, input: Any, num_generations: int = 1) -> Any:
        self._in_flight += 1
        self._peak = max(self._peak, self._in_flight)
        self._starts.append(_fanout.clock())
        attempt = self._attempts[input] = self._attempts.get(input, 0) + 1
        try:
            await asyncio.sleep(self.delay * random.random() if self.delay else 0)
            if input in self.fail_inputs:
                raise ValueError(f"bad input {input}")
            if attempt <= self.fail_first:
                raise Flaky(f"try again ({attempt})", retry_after=self.retry_after)
            return {
                "generations": [f"{input}/{i}" for i in range(num_generations)],
                "statistics": {"input_tokens": [attempt], "output_tokens": [len(input)]},
                "logprobs": [[[{"token": input, "logprob": -1.0}]]] * num_generations,
            }
        except asyncio.CancelledError:
            self._cancelled += 1
            raise
        finally:
            self._in_flight -= 1


def probe(**kwargs: Any) -> Probe:
    llm = Probe(**kwargs)
    llm._fanout_seed = 1234
    llm.load()
    return llm


class VirtualClock:
    """Replaces the engine's clock and sleep: waits take no real time and are recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: List[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def virtual_clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    clock = VirtualClock()
    monkeypatch.setattr(_fanout, "clock", clock.time)
    monkeypatch.setattr(_fanout, "sleep", clock.sleep)
    return clock


@pytest.mark.parametrize("per_request_n", [True, False])
def test_outputs_come_in_input_order(per_request_n: bool) -> None:
    llm = probe(per_request_n=per_request_n, delay=0.002, max_concurrency=7)
    inputs = [f"in{i}" for i in range(300)]
    outputs = llm.generate(inputs, num_generations=3)
    assert [o["generations"][0].split("/")[0] for o in outputs] == inputs
    assert all(len(o["generations"]) == 3 for o in outputs)
    if not per_request_n:  # one request per input and generation, grouped per input
        assert outputs[5]["statistics"] == {"input_tokens": [1, 2, 3], "output_tokens": [3] * 3}
        assert len(outputs[5]["logprobs"]) == 3


@pytest.mark.parametrize(("limit", "jobs"), [(1, 20), (5, 200), (64, 1000), (300, 100)])
def test_peak_in_flight_never_exceeds_the_limit(limit: int, jobs: int) -> None:
    llm = probe(delay=0.001, max_concurrency=limit)
    llm.generate([str(i) for i in range(jobs)])
    assert llm._peak == min(limit, jobs)  # measured inside agenerate


def test_no_limit_runs_everything_at_once() -> None:
    llm = probe(delay=0.01, max_concurrency=None)
    llm.generate([str(i) for i in range(500)])
    assert llm._peak == 500


def test_default_limit_is_bounded() -> None:
    llm = probe(delay=0.001)
    assert llm.max_concurrency == 64
    llm.generate([str(i) for i in range(1000)])
    assert llm._peak == 64


def test_retries_use_capped_exponential_backoff_with_full_jitter(
    virtual_clock: VirtualClock,
) -> None:
    llm = probe(
        fail_first=5,
        max_request_retries=5,
        retry_backoff_base=1.0,
        retry_backoff_max=6.0,
        max_concurrency=1,
    )
    progress: list = []
    llm.set_progress_callback(progress.append)
    outputs = llm.generate(["a"])
    assert outputs[0]["generations"] == ["a/0"]
    assert llm._attempts == {"a": 6}
    backoffs = virtual_clock.sleeps
    assert len(backoffs) == 5
    for retry, waited in enumerate(backoffs):
        assert 0 <= waited < min(6.0, 2.0**retry), (retry, waited)
    assert len(set(backoffs)) == 5  # jittered, not fixed
    assert progress[-1] == _fanout.FanOutProgress(total=1, done=1, failed=0, retried=5, in_flight=0)


def test_retry_after_hint_is_honoured(virtual_clock: VirtualClock) -> None:
    llm = probe(fail_first=2, retry_after=7.5, max_request_retries=3, max_concurrency=1)
    llm.generate(["a"])
    assert virtual_clock.sleeps == [7.5, 7.5]


def test_retry_after_from_http_response_headers() -> None:
    class Response:
        headers = {"retry-after-ms": "250", "retry-after": "9"}

    error = Flaky("429")
    error.response = Response()  # type: ignore[attr-defined]
    assert probe()._retry_after(error) == 0.25
    Response.headers = {"retry-after": "3"}
    assert probe()._retry_after(error) == 3.0
    assert probe()._retry_after(ValueError()) is None


def test_exhausted_retries_and_undeclared_errors_fail(virtual_clock: VirtualClock) -> None:
    llm = probe(fail_first=10, max_request_retries=2, max_concurrency=1)
    with pytest.raises(Flaky, match="try again"):
        llm.generate(["a"])
    assert llm._attempts == {"a": 3}
    llm = probe(fail_inputs=["b"], max_request_retries=5)
    with pytest.raises(ValueError, match="bad input b"):
        llm.generate(["a", "b"])
    assert llm._attempts["b"] == 1  # not declared retryable: never retried


def test_raise_policy_cancels_the_requests_in_flight() -> None:
    class FailsWhileOthersRun(Probe):
        async def agenerate(self, input: Any, num_generations: int = 1) -> Any:
            self.delay = 0.0 if input == "x" else 1000.0
            return await super().agenerate(input, num_generations)

    llm = FailsWhileOthersRun(fail_inputs=["x"], max_concurrency=10)
    llm.load()
    with pytest.raises(ValueError, match="bad input x"):
        llm.generate([str(i) for i in range(9)] + ["x", "never started"])
    assert llm._cancelled == 9 and llm._in_flight == 0
    assert "never started" not in llm._attempts


@pytest.mark.parametrize("per_request_n", [True, False])
def test_isolate_policy_keeps_every_other_result(per_request_n: bool) -> None:
    llm = probe(per_request_n=per_request_n, fail_inputs=["bad"], error_policy="isolate")
    outputs = llm.generate(["a", "bad", "c"], num_generations=2)
    assert outputs[0]["generations"] == ["a/0", "a/1"] if per_request_n else ["a/0", "a/0"]
    assert outputs[2]["generations"][0] == "c/0"
    assert "error" not in outputs[0] and "error" not in outputs[2]
    assert outputs[1]["generations"] == [None, None]
    assert outputs[1]["error"] == ["ValueError: bad input bad"] * 2


def test_isolate_keeps_partial_generations_aligned() -> None:
    class SometimesFails(Probe):
        async def agenerate(self, input: Any, num_generations: int = 1) -> Any:
            out = await super().agenerate(input, num_generations)
            if input == "b" and self._attempts["b"] == 2:
                raise RuntimeError("second generation of b failed")
            return out

    llm = SometimesFails(per_request_n=False, error_policy="isolate", max_concurrency=1)
    llm.load()
    outputs = llm.generate(["a", "b"], num_generations=3)
    assert outputs[1]["generations"] == ["b/0", None, "b/0"]
    assert outputs[1]["error"] == [None, "RuntimeError: second generation of b failed", None]
    assert outputs[1]["statistics"]["input_tokens"] == [1, None, 3]
    assert outputs[1]["logprobs"][1] is None
    assert "error" not in outputs[0]


def test_rate_limit_is_respected(virtual_clock: VirtualClock) -> None:
    llm = probe(requests_per_minute=120, max_concurrency=8)  # two per second, burst of two
    llm.generate([str(i) for i in range(20)])
    starts = sorted(llm._starts)
    for i, started in enumerate(starts):
        assert started >= (i - 1) / 2.0 - 1e-9, (i, started)
    assert starts[-1] >= 9.0 - 1e-9


def test_generate_inside_a_running_loop() -> None:
    llm = probe(delay=0.001)

    async def handler() -> list:
        return llm.generate(["a", "b"])  # what a notebook cell or a web handler does

    assert [o["generations"] for o in asyncio.run(handler())] == [["a/0"], ["b/0"]]
    assert llm.generate(["c"])[0]["generations"] == ["c/0"]  # and outside it again


def test_awaiting_inside_a_running_loop() -> None:
    llm = probe()
    outputs = asyncio.run(llm._agenerate(["a", "b"], num_generations=2))
    assert outputs[1]["generations"] == ["b/0", "b/1"]


def test_cancelling_the_awaiting_task_cancels_the_fan_out() -> None:
    llm = probe(delay=100.0, max_concurrency=5)

    async def main() -> None:
        task = asyncio.ensure_future(llm._agenerate([str(i) for i in range(20)]))
        while llm._in_flight < 5:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert llm._cancelled == 5 and llm._in_flight == 0
    assert len(llm._attempts) == 5  # nothing was started after the cancel


def test_generate_from_threads_sharing_one_llm() -> None:
    llm = probe(delay=0.001)
    results: dict = {}

    def run(name: str) -> None:
        results[name] = llm.generate([f"{name}{i}" for i in range(50)])

    threads = [threading.Thread(target=run, args=(f"t{j}-",)) for j in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == ["t0-", "t1-", "t2-", "t3-"]
    assert results["t2-"][49]["generations"] == ["t2-49/0"]


def test_progress_callback_is_throttled_not_per_request() -> None:
    llm = probe(delay=0.002, max_concurrency=4, fail_inputs=["5"], error_policy="isolate")
    calls: list = []
    llm.set_progress_callback(calls.append)
    llm.generate([str(i) for i in range(400)])
    assert 1 <= len(calls) < 100  # ~10 per second over a run of 400 requests
    assert calls[-1] == _fanout.FanOutProgress(
        total=400, done=399, failed=1, retried=0, in_flight=0
    )
    assert all(c.done + c.failed + c.in_flight <= c.total for c in calls)


def test_progress_bar(capsys: pytest.CaptureFixture) -> None:
    llm = probe(progress_bar=True)
    llm.generate([str(i) for i in range(30)])
    assert "30/30" in capsys.readouterr().err


def test_callback_and_loop_are_not_pickled() -> None:
    import pickle

    llm = probe()
    llm.set_progress_callback(lambda progress: None)
    llm.generate(["a"])
    copy = pickle.loads(pickle.dumps(llm))
    assert copy._progress_callback is None and copy._event_loop is None
    assert copy.generate(["b"])[0]["generations"] == ["b/0"]


def test_forked_child_uses_the_inherited_object_directly() -> None:
    result = run_python(
        """
        import os
        from tests.test_fanout import probe

        llm = probe(delay=0.001)
        llm.generate(["parent"])  # the parent's loop exists before the fork
        pid = os.fork()
        if pid == 0:
            out = llm.generate(["child"], num_generations=2)
            os._exit(0 if out[0]["generations"] == ["child/0", "child/1"] else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), llm.generate(["again"])[0]["generations"])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0 ['again/0']"


CTRL_C_SCRIPT = """
    import os, signal, threading, time
    from tests.test_fanout import probe

    llm = probe(delay=1000.0, max_concurrency=16)
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    started = time.monotonic()
    try:
        {call}
    except KeyboardInterrupt:
        late = round(time.monotonic() - started - 0.5, 3)
        print("interrupted", late, llm._cancelled, llm._in_flight)
"""


@pytest.mark.parametrize(
    "call",
    [
        "llm.generate([str(i) for i in range(100)])",
        # Inside a running loop: the fan-out runs in a helper thread.
        "import asyncio; asyncio.run(asyncio.sleep(0, llm.generate([str(i) for i in range(100)])))",
    ],
)
def test_ctrl_c_stops_generate_quickly_and_cancels_in_flight(call: str) -> None:
    result = run_python(CTRL_C_SCRIPT.format(call=call), timeout=60)
    assert result.returncode == 0, result.stderr
    word, seconds, cancelled, in_flight = result.stdout.split()
    assert word == "interrupted"
    assert float(seconds) < 1.0
    assert (int(cancelled), int(in_flight)) == (16, 0)


def test_interpreter_exit_with_work_in_flight_is_clean() -> None:
    for _ in range(5):
        result = run_python(
            """
            import threading, time
            from tests.test_fanout import probe

            llm = probe(delay=1000.0)
            inputs = [str(i) for i in range(200)]
            threading.Thread(target=llm.generate, args=(inputs,), daemon=True).start()
            time.sleep(0.2)
            print("bye")
            """
        )
        assert result.returncode == 0, result.stderr
        assert "Fatal Python error" not in result.stderr
        assert result.stdout.strip() == "bye"


def test_full_collections_are_deferred_only_while_fanning_out() -> None:
    import gc

    before = gc.get_threshold()
    seen: list = []

    class Watch(Probe):
        async def agenerate(self, input: Any, num_generations: int = 1) -> Any:
            seen.append(gc.get_threshold())
            return await super().agenerate(input, num_generations)

    llm = Watch(fail_inputs=["x"])
    llm.load()
    llm.generate(["a", "b"])
    assert seen[0][:2] == before[:2] and seen[0][2] > 10**6  # young generations untouched
    assert gc.get_threshold() == before
    with pytest.raises(ValueError):
        llm.generate(["a", "x"])
    assert gc.get_threshold() == before  # restored on failure too


@pytest.mark.parametrize("max_concurrency", [4, "auto"])
@pytest.mark.parametrize("per_request_n", [True, False])
def test_raw_results_are_freed_without_a_garbage_collection(
    max_concurrency: Any, per_request_n: bool
) -> None:
    # A reference cycle around the workers kept every raw result alive until the next full
    # collection: 400k objects for 20k inputs x 4, whose collection doubled the fan-out's time.
    import gc
    import weakref

    class Result(dict):  # a dict that can be weakly referenced
        pass

    alive: list = []

    class Tracked(Probe):
        async def agenerate(self, input: Any, num_generations: int = 1) -> Any:
            result = Result(await super().agenerate(input, num_generations))
            alive.append(weakref.ref(result))
            return result

    llm = Tracked(per_request_n=per_request_n, max_concurrency=max_concurrency)
    llm.load()
    gc.collect()
    gc.disable()
    try:
        outputs = llm.generate([str(i) for i in range(50)], num_generations=2)
        assert len(outputs) == 50 and len(alive) == (50 if per_request_n else 100)
        del outputs
        assert sum(ref() is not None for ref in alive) == 0
    finally:
        gc.enable()
