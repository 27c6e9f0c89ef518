"""The native `OpenAILLM` against the local mock server, next to distilabel's `OpenAILLM`."""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List

import pytest
from distilabel.models.llms import OpenAILLM as DistilabelOpenAILLM
from pydantic import BaseModel, ValidationError

from distilabel_rs import OpenAILLM, _core
from tests.conftest import (
    FANOUT_FIELDS,
    REPO,
    run_python,
    without_fanout_fields,
)

KEY = "sk-secret-test-key"
CHAT = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def server() -> Any:
    mock = _core.MockServer(record=True)
    yield mock
    mock.stop()


def ours(server: Any, **kwargs: Any) -> OpenAILLM:
    llm = OpenAILLM(model="test-model", base_url=server.base_url, api_key=KEY, **kwargs)
    llm.load()
    return llm


def theirs(server: Any, **kwargs: Any) -> DistilabelOpenAILLM:
    llm = DistilabelOpenAILLM(model="test-model", base_url=server.base_url, api_key=KEY, **kwargs)
    llm.load()
    return llm


def bodies(server: Any) -> List[Any]:
    return sorted(
        ((path, json.loads(body)) for path, body, _ in server.recorded()),
        key=lambda item: json.dumps(item, sort_keys=True),
    )


IMAGE_CHAT = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    }
]


@pytest.mark.parametrize(
    ("inputs", "kwargs"),
    [
        ([CHAT], {}),
        ([CHAT, [{"role": "system", "content": "be brief"}, *CHAT]], {"num_generations": 3}),
        ([CHAT], {"logprobs": True, "top_logprobs": 2, "temperature": 0.2, "stop": ["\n"]}),
        ([CHAT], {"response_format": {"type": "json_object"}, "extra_body": {"seed": 7}}),
        (["complete this"], {"top_logprobs": 2, "echo": True, "max_new_tokens": 5}),
        (["a prompt", "another"], {"num_generations": 2, "stop": "x"}),
        ([IMAGE_CHAT], {"stop": ["."]}),
    ],
)
def test_outputs_and_request_bodies_match_distilabel(
    inputs: list, kwargs: dict, server: Any
) -> None:
    reference = _core.MockServer(record=True)
    try:
        expected = theirs(reference).generate(inputs, **kwargs)
        got = ours(server).generate(inputs, **kwargs)
        assert got == expected
        assert bodies(server) == bodies(reference)
    finally:
        reference.stop()
    assert all(auth == f"Bearer {KEY}" for _, _, auth in server.recorded())


def test_fields_runtime_parameters_and_dump_match_distilabel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:1234/v1")
    extra = [*FANOUT_FIELDS, "tokens_per_minute"]
    assert [f for f in OpenAILLM.model_fields if f not in extra] == list(
        DistilabelOpenAILLM.model_fields
    )
    for name, field in DistilabelOpenAILLM.model_fields.items():
        assert OpenAILLM.model_fields[name].description == field.description, name
    mine, reference = OpenAILLM(model="gpt"), DistilabelOpenAILLM(model="gpt")
    assert mine.base_url == "http://localhost:1234/v1"
    assert mine.api_key.get_secret_value() == KEY
    names = {k: v for k, v in mine.runtime_parameters_names.items() if k not in extra}
    assert names == reference.runtime_parameters_names
    info = [i for i in mine.get_runtime_parameters_info() if i["name"] not in extra]
    assert info == reference.get_runtime_parameters_info()
    dumped = without_fanout_fields(mine.dump())
    del dumped["tokens_per_minute"]
    expected = reference.dump()
    assert {k: v for k, v in dumped.items() if k != "type_info"} == {
        k: v for k, v in expected.items() if k != "type_info"
    }
    assert "api_key" not in mine.dump()
    assert KEY not in repr(mine) and KEY not in str(mine.dump())


def test_load_without_a_key_fails_like_distilabel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError) as mine:
        OpenAILLM(model="m").load()
    with pytest.raises(ValueError) as reference:
        DistilabelOpenAILLM(model="m").load()
    assert str(mine.value) == str(reference.value)


@pytest.mark.parametrize(
    ("inputs", "kwargs"),
    [
        ([CHAT], {"max_new_tokens": -1}),
        ([CHAT], {"temperature": "hot"}),
        ([CHAT], {"bogus": 1}),
        ([123], {}),
    ],
)
def test_validation_errors_match_distilabel(inputs: list, kwargs: dict, server: Any) -> None:
    with pytest.raises(ValidationError) as reference:
        theirs(server).generate(inputs, **kwargs)
    with pytest.raises(ValidationError) as mine:
        ours(server).generate(inputs, **kwargs)
    assert str(mine.value) == str(reference.value)
    assert server.requests == 0


def test_retry_after_is_honoured(server: Any) -> None:
    llm = ours(server)
    started = time.monotonic()
    out = llm.generate([[{"role": "user", "content": "[[status=429 times=2 retry_after=0.3]] hi"}]])
    assert time.monotonic() - started >= 0.6
    assert out[0]["generations"] == ["echo: [[status=429 times=2 retry_after=0.3]] hi"]
    assert server.requests == 3


def test_other_4xx_are_not_retried_and_errors_carry_status_and_message(server: Any) -> None:
    llm = ours(server)
    with pytest.raises(_core.APIStatusError) as info:
        llm.generate([[{"role": "user", "content": "[[status=403]] no"}]])
    assert info.value.status_code == 403
    assert info.value.message == "Scripted failure with status 403"
    assert str(info.value) == "Error code: 403 - Scripted failure with status 403"
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert server.requests == 1
    with pytest.raises(_core.RateLimitError):
        ours(server, max_retries=0).generate([[{"role": "user", "content": "[[status=429]] x"}]])


def test_timeouts(server: Any) -> None:
    llm = ours(server, timeout=1, max_retries=1, retry_backoff_base=0.0)
    started = time.monotonic()
    with pytest.raises(_core.APITimeoutError, match="timed out"):
        llm.generate([[{"role": "user", "content": "[[sleep_ms=5000]] slow"}]])
    assert 2.0 <= time.monotonic() - started < 4.5  # two attempts of one second
    assert server.requests == 2


@pytest.mark.parametrize("directive", ["malformed", "truncated"])
def test_malformed_or_truncated_json_is_a_clear_error(server: Any, directive: str) -> None:
    with pytest.raises(_core.APIResponseValidationError, match="Invalid response from the API"):
        ours(server).generate([[{"role": "user", "content": f"[[{directive}]] x"}]])


def test_isolate_keeps_other_results(server: Any) -> None:
    llm = ours(server, error_policy="isolate", max_retries=0)
    out = llm.generate(
        [CHAT, [{"role": "user", "content": "[[status=500]] broken"}], CHAT], num_generations=2
    )
    assert out[0]["generations"] == ["echo: hello there"] * 2
    assert out[2]["generations"] == ["echo: hello there"] * 2
    assert out[1]["generations"] == [None, None]
    assert (
        out[1]["error"]
        == ["APIStatusError: Error code: 500 - Scripted failure with status 500"] * 2
    )


def test_raise_policy_cancels_the_rest(server: Any) -> None:
    llm = ours(server, max_concurrency=4)
    inputs = [[{"role": "user", "content": "[[status=400]] bad"}]] + [
        [{"role": "user", "content": f"[[sleep_ms=5000]] {i}"}] for i in range(20)
    ]
    started = time.monotonic()
    with pytest.raises(_core.APIStatusError):
        llm.generate(inputs)
    assert time.monotonic() - started < 3


def test_max_concurrency_is_respected(server: Any) -> None:
    llm = ours(server, max_concurrency=7)
    llm.generate([[{"role": "user", "content": f"[[sleep_ms=20]] {i}"}] for i in range(60)])
    assert server.peak_in_flight == 7


def test_requests_per_minute_are_respected(server: Any) -> None:
    llm = ours(server, requests_per_minute=600)  # 10 per second, at most 10 at once
    started = time.monotonic()
    llm.generate([[{"role": "user", "content": str(i)}] for i in range(25)])
    assert time.monotonic() - started >= 1.45  # 10 at once, then 15 more at 10/s


def test_tokens_per_minute_are_respected(server: Any) -> None:
    # Each request reserves its prompt estimate plus max_tokens=1000 until its usage is
    # known: with 6000 tokens per minute at most 5 can be in flight at once.
    llm = ours(server, tokens_per_minute=6000)
    inputs = [[{"role": "user", "content": f"[[sleep_ms=100]] {i}"}] for i in range(20)]
    out = llm.generate(inputs, max_new_tokens=1000)
    assert len(out) == 20 and server.requests == 20
    assert 1 <= server.peak_in_flight <= 5


class Person(BaseModel):
    name: str
    age: int


def test_structured_output_is_sent_as_json_schema(server: Any) -> None:
    llm = ours(server, structured_output={"schema": Person})
    content = '[[content={"name":"Ada","age":36}]] who?'
    out = llm.generate([[{"role": "user", "content": content}]])
    assert json.loads(out[0]["generations"][0]) == {"name": "Ada", "age": 36}
    body = json.loads(server.recorded()[0][1])
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Person", "schema": Person.model_json_schema()},
    }
    assert llm.structured_output["schema"] == Person.model_json_schema()  # dumpable
    per_input = {"schema": {"title": "Other", "type": "object", "properties": {}}}
    llm.generate([([{"role": "user", "content": "x"}], per_input)])
    assert json.loads(server.recorded()[1][1])["response_format"]["json_schema"]["name"] == "Other"


def test_agenerate_and_async_batches(server: Any) -> None:
    import asyncio

    llm = ours(server)

    async def main() -> Any:
        one = await llm.agenerate(input=CHAT, num_generations=2)
        many = await llm._agenerate([CHAT, ["no"][0]], num_generations=1)
        return one, many

    one, many = asyncio.run(main())
    assert one["generations"] == ["echo: hello there"] * 2
    assert many[1]["generations"] == [" echo: no"]


def test_unload_and_pickle(server: Any) -> None:
    import pickle

    llm = ours(server, default_headers={"x": "1"})
    llm.generate([CHAT])
    copy = pickle.loads(pickle.dumps(llm))  # used, loaded: still picklable
    copy.load()
    assert copy.generate([CHAT])[0]["generations"] == ["echo: hello there"]
    llm.unload()
    assert llm.default_headers is None and llm._client is None  # as distilabel
    pickle.loads(pickle.dumps(llm))


def test_forked_child_builds_its_own_client() -> None:
    result = run_python(
        """
        import os
        from distilabel_rs import OpenAILLM, _core
        server = _core.MockServer()
        llm = OpenAILLM(model="m", base_url=server.base_url, api_key="k")
        llm.load()
        llm.generate([[{"role": "user", "content": "parent"}]])
        pid = os.fork()
        if pid == 0:
            out = llm.generate([[{"role": "user", "content": "child"}]])
            os._exit(0 if out[0]["generations"] == ["echo: child"] else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        """
    )
    # The child may not use the parent's runtime (no threads after fork): it must make its
    # own, or this would hang until the timeout.
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_ctrl_c_cancels_the_batch_quickly() -> None:
    result = run_python(
        """
        import os, signal, threading, time
        from distilabel_rs import OpenAILLM, _core
        server = _core.MockServer()
        llm = OpenAILLM(model="m", base_url=server.base_url, api_key="k")
        llm.load()
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        inputs = [[{"role": "user", "content": f"[[sleep_ms=60000]] {i}"}] for i in range(50)]
        try:
            llm.generate(inputs)
        except KeyboardInterrupt:
            print("interrupted", round(time.monotonic() - started - 0.5, 2))
        """
    )
    assert result.returncode == 0, result.stderr
    word, late = result.stdout.split()
    assert word == "interrupted" and float(late) < 1.0


def test_ten_thousand_requests_in_flight() -> None:
    # The server runs in its own process: 10k sockets on each side.
    server = subprocess.Popen(
        [
            sys.executable,
            "-W",
            "ignore",
            "-c",
            "import sys, time\nfrom distilabel_rs import _core\ns = _core.MockServer()\n"
            "print(s.base_url, flush=True)\nsys.stdin.read()\nprint(s.peak_in_flight, flush=True)",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        base_url = server.stdout.readline().strip()
        llm = OpenAILLM(model="m", base_url=base_url, api_key="k", max_concurrency=None, timeout=60)
        llm.load()
        # Each answer waits until all 10,000 requests are in flight (the test does not depend
        # on how fast the machine opens connections); with a limit they never would be.
        inputs = [[{"role": "user", "content": f"[[hold=10000]] {i}"}] for i in range(10_000)]
        out = llm.generate(inputs)
        assert [o["generations"][0] for o in out[:3]] == [
            f"echo: [[hold=10000]] {i}" for i in range(3)
        ]
        assert all(o["generations"][0].endswith(f" {i}") for i, o in enumerate(out))
        server.stdin.close()
        peak = int(server.stdout.readline())
        assert peak == 10_000  # all were in flight at once
    finally:
        server.kill()
        server.wait()


def test_tls_with_a_self_signed_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
        check=True,
        capture_output=True,
    )
    server = _core.MockServer(tls_certificate_pem=cert.read_bytes(), tls_key_pem=key.read_bytes())
    try:
        assert server.base_url.startswith("https://127.0.0.1:")
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        untrusted = ours(server, max_retries=0)
        with pytest.raises(_core.APIConnectionError, match="(?i)certificate"):
            untrusted.generate([CHAT])
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        trusted = ours(server)
        assert trusted.generate([CHAT])[0]["generations"] == ["echo: hello there"]
    finally:
        server.stop()


def test_progress_is_reported_for_native_batches(server: Any) -> None:
    llm = ours(server, max_concurrency=4, error_policy="isolate", max_retries=0)
    calls: list = []
    llm.set_progress_callback(calls.append)
    inputs = [[{"role": "user", "content": f"[[sleep_ms=10]] {i}"}] for i in range(100)]
    inputs.append([{"role": "user", "content": "[[status=500]] x"}])
    llm.generate(inputs)
    assert 1 <= len(calls) < 50  # about ten a second, not one per request
    assert calls[-1] == (101, 100, 1, 0, 0)


def test_cancelling_an_awaiting_task_cancels_the_native_batch(server: Any) -> None:
    import asyncio

    llm = ours(server)

    async def main() -> None:
        inputs = [[{"role": "user", "content": f"[[sleep_ms=30000]] {i}"}] for i in range(10)]
        task = asyncio.ensure_future(llm._agenerate(inputs))
        while server.requests < 10:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 1.0

    asyncio.run(main())
