"""`max_concurrency="auto"`: the field, the progress it reports, and the adaptive limit of
the fan-out engine and of the native client against a provider of limited capacity
(issue 15)."""

import asyncio
import pickle
from typing import Any, Iterator, List

import pytest
from pydantic import PrivateAttr, ValidationError

from distilabel_rs import AsyncLLM, OpenAILLM, _core
from distilabel_rs.models.llms import _fanout
from distilabel_rs.models.llms._progress import FanOutProgress


class Overloaded(Exception):
    """What a rate-limited provider raises (retryable, with a retry-after hint)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("429: at capacity")
        self.retry_after = retry_after


class CapacityProbe(AsyncLLM):
    """A provider of limited capacity inside `agenerate`: up to `capacity` requests take
    `latency` s, more share the capacity (each takes longer, as queued requests would),
    and beyond twice the capacity requests fail at once with `Overloaded`."""

    capacity: int = 8
    latency: float = 0.01

    _retryable_exceptions = (Overloaded,)
    _in_flight: int = PrivateAttr(default=0)
    _peak: int = PrivateAttr(default=0)
    _rejected: int = PrivateAttr(default=0)

    @property
    def model_name(self) -> str:
        return "capacity-probe"

    async def agenerate(self, input: Any, num_generations: int = 1) -> Any:
        if self._in_flight >= 2 * self.capacity:
            self._rejected += 1
            raise Overloaded(retry_after=self.latency)
        self._in_flight += 1
        self._peak = max(self._peak, self._in_flight)
        try:
            await asyncio.sleep(self.latency * max(1.0, self._in_flight / self.capacity))
            return {"generations": [input] * num_generations, "statistics": {}}
        finally:
            self._in_flight -= 1


def capacity_probe(**kwargs: Any) -> CapacityProbe:
    llm = CapacityProbe(**kwargs)
    llm._fanout_seed = 7
    llm.load()
    return llm


# ---- the field ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [("auto", "auto"), ("auto:512", "auto:512"), (" AUTO:32 ", "auto:32"), ("16", 16), (5, 5)],
)
def test_max_concurrency_accepts_auto_with_an_optional_ceiling(given: Any, stored: Any) -> None:
    assert CapacityProbe(max_concurrency=given).max_concurrency == stored


@pytest.mark.parametrize("bad", ["fast", "auto:0", "auto:", "auto:-1", "auto:2.5", 0, -3, 1.5])
def test_a_bad_max_concurrency_names_the_field_and_the_accepted_values(bad: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        CapacityProbe(max_concurrency=bad)
    message = str(raised.value)
    assert "max_concurrency" in message
    assert '"auto"' in message and '"auto:N"' in message


def test_auto_dumps_loads_and_lists_as_a_runtime_parameter() -> None:
    llm = CapacityProbe(max_concurrency="auto:256")
    dump = llm.dump()
    assert dump["max_concurrency"] == "auto:256"
    assert CapacityProbe.from_dict(dump).max_concurrency == "auto:256"
    info = {p["name"]: p for p in llm.get_runtime_parameters_info()}
    assert '"auto"' in info["max_concurrency"]["description"]
    assert llm.runtime_parameters_names["max_concurrency"] is True
    llm.set_runtime_parameters({"max_concurrency": "auto"})
    assert llm.max_concurrency == "auto"
    # The default is unchanged.
    assert CapacityProbe().max_concurrency == 64


def test_progress_stays_a_five_tuple_with_the_limit_beside_it() -> None:
    progress = FanOutProgress(10, 4, 1, 2, 3, 16)
    assert progress == FanOutProgress(total=10, done=4, failed=1, retried=2, in_flight=3)
    total, done, failed, retried, in_flight = progress
    assert (total, in_flight, progress.limit) == (10, 3, 16)
    assert "limit=16" in repr(progress)
    assert pickle.loads(pickle.dumps(progress)).limit == 16
    assert FanOutProgress(1, 1, 0, 0, 0).limit is None


# ---- the fan-out engine (Python `agenerate`s) ----------------------------------------------


def test_auto_grows_past_the_initial_limit_while_latency_is_flat() -> None:
    llm = capacity_probe(capacity=1000, latency=0.02, max_concurrency="auto")
    limits: List[Any] = []
    llm.set_progress_callback(lambda p: limits.append(p.limit))
    outputs = llm.generate([str(i) for i in range(2000)])
    assert [o["generations"][0] for o in outputs] == [str(i) for i in range(2000)]
    assert llm._rejected == 0
    assert llm._peak > 64  # started at 16, doubled while nothing got slower
    assert max(limits) > 64


def test_auto_backs_off_on_overload_and_loses_nothing() -> None:
    llm = capacity_probe(capacity=6, latency=0.01, max_concurrency="auto:200")
    limits: List[Any] = []
    llm.set_progress_callback(lambda p: limits.append(p.limit))
    outputs = llm.generate([str(i) for i in range(600)])
    assert all(o["generations"] == [str(i)] for i, o in enumerate(outputs))
    # A fixed 200 would have 188 of its first 200 requests rejected; auto keeps them rare.
    assert llm._rejected < 60
    assert limits[-1] <= 4 * 6


def test_a_fixed_limit_above_the_capacity_storms() -> None:
    # The bound above can fail: the probe does reject.
    llm = capacity_probe(capacity=6, latency=0.01, max_concurrency=200, error_policy="isolate")
    llm.generate([str(i) for i in range(600)])
    assert llm._rejected > 150


def test_auto_carries_what_it_learned_to_the_next_generate_call() -> None:
    llm = capacity_probe(capacity=1000, latency=0.05, max_concurrency="auto")
    llm.generate([str(i) for i in range(600)])
    first: List[Any] = []
    llm.set_progress_callback(lambda p: first.append(p.limit))
    llm.generate([str(i) for i in range(50)])
    assert first[0] > 16
    # A copy (a pipeline worker) starts afresh.
    copy = pickle.loads(pickle.dumps(llm))
    assert copy._adaptive_memory.last() is None


def test_a_fixed_limit_reports_itself_as_the_limit() -> None:
    llm = capacity_probe(capacity=1000, max_concurrency=7)
    calls: List[Any] = []
    llm.set_progress_callback(calls.append)
    llm.generate([str(i) for i in range(30)])
    assert calls[-1].limit == 7 and llm._peak == 7


# ---- the native client against the capacity model of the mock ------------------------------


@pytest.fixture
def capacity_server() -> Iterator[Any]:
    server = _core.MockServer(capacity=8, base_latency_ms=50)
    yield server
    server.stop()


def test_the_mock_serves_within_its_capacity() -> None:
    # A long latency, so that all 40 requests arrive before the first is answered.
    server = _core.MockServer(capacity=8, base_latency_ms=1000)
    llm = OpenAILLM(
        model="m",
        base_url=server.base_url,
        api_key="k",
        max_concurrency=40,
        error_policy="isolate",
        max_retries=0,
    )
    llm.load()
    outputs = llm.generate([[{"role": "user", "content": str(i)}] for i in range(40)])
    failed = [o for o in outputs if o["generations"][0] is None]
    # 16 in the server (8 served, 8 queued), the other 24 refused at once.
    assert server.rejected == len(failed) == 24
    assert "429" in failed[0]["error"][0]
    server.stop()


def test_native_auto_finds_the_capacity_without_a_429_storm(capacity_server: Any) -> None:
    llm = OpenAILLM(
        model="m",
        base_url=capacity_server.base_url,
        api_key="k",
        max_concurrency="auto",
        error_policy="isolate",
    )
    llm.load()
    limits: List[Any] = []
    llm.set_progress_callback(lambda p: limits.append(p.limit))
    inputs = [[{"role": "user", "content": str(i)}] for i in range(400)]
    outputs = llm.generate(inputs)
    assert [o["generations"][0] for o in outputs] == [f"echo: {i}" for i in range(400)]
    # A fixed 256 would have 240 of its first 256 requests refused (and more on retries).
    # Auto may overshoot once while slow start doubles past the queue: 45 runs here, idle
    # and with both cores loaded, refused 0-30.
    assert capacity_server.rejected <= 48
    assert limits[-1] is not None and 8 <= max(limits) <= 64


def test_native_auto_rejects_a_bad_value_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        _core.NativeClient("openai", "http://127.0.0.1:9/v1").start([], max_concurrency="quick")


def test_mistral_combines_auto_with_its_own_limit() -> None:
    assert _fanout.combine_limits("auto", 32) == "auto:32"
    assert _fanout.combine_limits("auto:16", 32) == "auto:16"
    assert _fanout.combine_limits(64, 32) == 32
    assert _fanout.combine_limits(None, 32) == 32
    assert _fanout.combine_limits("auto", None) == "auto"
    assert _fanout.pool_size("auto") == _fanout.AUTO_DEFAULT_CEILING
    assert _fanout.pool_size(None) == 256
