"""Bad servers: each misbehaviour is a clear per-request error, retried or not as documented
on the core's `ApiError`, under both error policies and through the `distilabel-rs generate`
command; never a hang, a panic or an unbounded buffer."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from distilabel_rs import AnthropicLLM, OpenAILLM, _core
from tests.conftest import REPO

KEY = "sk-bad-servers-key"
LIMIT = 32 * 1024 * 1024  # the client's default limit on a response body

# directive -> (exception, words the message has, requests the server sees with max_retries=1)
FAULTS: Dict[str, Any] = {
    "reset_mid_body": (
        _core.APIConnectionError,
        "the connection broke while reading the response body",
        2,
    ),
    "trickle_ms=300": (_core.APITimeoutError, "timed out after 1", 2),
    "huge_mb=100": (_core.APIResponseValidationError, f"response larger than {LIMIT} bytes", 1),
    "invalid_utf8": (_core.APIResponseValidationError, "not valid UTF-8", 1),
    "malformed": (_core.APIResponseValidationError, "not valid JSON", 1),
    "error_200": (
        _core.APIResponseValidationError,
        "the API answered 200 with an error instead of a completion: ",
        1,
    ),
    # There and back (two requests), not retried.
    "redirect_loop": (_core.APIStatusError, "redirect loop: ", 2),
}


@pytest.fixture
def server() -> Any:
    mock = _core.MockServer()
    yield mock
    mock.stop()


def openai_llm(server: Any, **kwargs: Any) -> OpenAILLM:
    llm = OpenAILLM(model="m", base_url=server.base_url, api_key=KEY, **kwargs)
    llm.load()
    return llm


def anthropic_llm(server: Any, **kwargs: Any) -> AnthropicLLM:
    llm = AnthropicLLM(model="m", base_url=server.origin, api_key=KEY, **kwargs)
    llm.load()
    return llm


LLMS = {"openai": openai_llm, "anthropic": anthropic_llm}


def chat(text: str) -> List[Dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("llm_name", sorted(LLMS))
@pytest.mark.parametrize("directive", sorted(FAULTS))
def test_each_fault_raises_a_clear_error(server: Any, llm_name: str, directive: str) -> None:
    error_type, words, attempts = FAULTS[directive]
    llm = LLMS[llm_name](server, timeout=1, max_retries=1, retry_backoff_base=0.0)
    with pytest.raises(error_type) as info:
        llm.generate([chat(f"[[{directive}]] {llm_name}")])
    assert words in str(info.value), str(info.value)
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert server.requests == attempts  # retried once, or not at all


@pytest.mark.parametrize("llm_name", sorted(LLMS))
def test_isolate_keeps_the_other_results_and_names_each_fault(server: Any, llm_name: str) -> None:
    llm = LLMS[llm_name](
        server, timeout=1, max_retries=0, error_policy="isolate", max_concurrency=16
    )
    directives = sorted(FAULTS)
    out = llm.generate(
        [chat("fine")] + [chat(f"[[{d}]] {llm_name}") for d in directives] + [chat("also fine")]
    )
    assert out[0]["generations"] == ["echo: fine"]
    assert out[-1]["generations"] == ["echo: also fine"]
    for directive, result in zip(directives, out[1:-1], strict=True):
        error_type, words, _ = FAULTS[directive]
        assert result["generations"] == [None], directive
        (error,) = result["error"]
        assert error.startswith(f"{error_type.__name__}: "), error
        assert words in error, error


def test_the_providers_message_of_an_error_in_a_200(server: Any) -> None:
    with pytest.raises(_core.APIResponseValidationError) as info:
        anthropic_llm(server).generate([chat("[[error_200]] x")])
    assert str(info.value) == (
        "Invalid response from the API: the API answered 200 with an error instead of a"
        " completion: api_error: Scripted error in a 200 response"
    )
    with pytest.raises(_core.APIResponseValidationError, match="Scripted error in a 200"):
        openai_llm(server).generate([chat("[[error_200]] x")])


def test_a_redirect_loop_is_a_status_error_that_is_not_retried(server: Any) -> None:
    with pytest.raises(_core.APIStatusError) as info:
        openai_llm(server, max_retries=3).generate([chat("[[redirect_loop]] x")])
    assert info.value.status_code == 307
    assert "redirect loop" in info.value.message
    assert server.requests == 2  # there and back, once
    # A few same-host 307s are followed, with the body and the key.
    out = openai_llm(server).generate([chat("[[redirects=3]] there")])
    assert out[0]["generations"] == ["echo: [[redirects=3]] there"]


def test_faults_once_then_whole_answers_are_retried_to_success(server: Any) -> None:
    llm = openai_llm(server, timeout=1, max_retries=1, retry_backoff_base=0.0)
    out = llm.generate([chat("[[reset_mid_body times=1]] a"), chat("[[trickle_ms=300 times=1]] b")])
    assert [o["generations"] for o in out] == [
        ["echo: [[reset_mid_body times=1]] a"],
        ["echo: [[trickle_ms=300 times=1]] b"],
    ]
    assert server.requests == 4


ENV = {**os.environ, "DISTILABEL_RS_STANDALONE": "1", "BAD_SERVERS_KEY": KEY}


def generate_command(server: Any, source: Path, output: Path, *extra: str) -> List[str]:
    return [
        "generate",
        str(source),
        "-o",
        str(output),
        "--model",
        "m",
        "--base-url",
        server.base_url,
        "--api-key-env",
        "BAD_SERVERS_KEY",
        "--no-progress",
        *extra,
    ]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distilabel_rs", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=ENV,
    )


def test_the_command_writes_each_fault_as_a_failed_line_and_finishes(
    server: Any, tmp_path: Path
) -> None:
    directives = sorted(FAULTS)
    # The faults answer after the good lines (a connection error before any success would
    # stop the command as "cannot reach" the server).
    records = [{"messages": chat(f"fine {i}")} for i in range(3)] + [
        {"messages": chat(f"[[sleep_ms=500 {d}]] x")} for d in directives
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    output = tmp_path / "out.jsonl"
    result = cli(*generate_command(server, source, output, "--timeout", "2", "--max-retries", "0"))
    assert result.returncode == 1, result.stderr  # finished, with failed requests
    rows = {row["custom_id"]: row for row in map(json.loads, output.read_text().splitlines())}
    assert len(rows) == len(records)
    for i in range(3):
        assert rows[str(i + 1)]["response"]["status_code"] == 200
    codes = {
        "reset_mid_body": "connection_error",
        "trickle_ms=300": "timeout",
        "huge_mb=100": "invalid_response",
        "invalid_utf8": "invalid_response",
        "malformed": "invalid_response",
        "error_200": "invalid_response",
    }
    for number, directive in enumerate(directives, start=4):
        row = rows[str(number)]
        _, words, _ = FAULTS[directive]
        if directive == "redirect_loop":
            assert row["response"]["status_code"] == 307
            assert words in row["response"]["body"]["error"]["message"]
        else:
            assert row["response"] is None
            assert row["error"]["code"] == codes[directive], row
            if directive.startswith("trickle_ms"):
                words = "timed out after 2"  # the command's --timeout
            assert words in row["error"]["message"], row
    assert KEY not in output.read_text() and KEY not in result.stderr


def _peak_rss_kib(*args: str) -> int:
    # VmHWM of a fresh interpreter running the command (the server runs in this process).
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['distilabel-rs', *{list(args)!r}]\n"
        "try:\n    runpy.run_module('distilabel_rs', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "status = open('/proc/self/status').read().splitlines()\n"
        "print(next(l.split()[1] for l in status if l.startswith('VmHWM')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO, env=ENV
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


def test_memory_stays_bounded_by_the_limit_under_a_huge_body(server: Any, tmp_path: Path) -> None:
    peaks = {}
    for name, text in [("small", "hello"), ("huge", "[[huge_mb=1024]] hello")]:
        source = tmp_path / f"{name}.jsonl"
        source.write_text(json.dumps({"messages": chat(text)}) + "\n")
        output = tmp_path / f"{name}.out.jsonl"
        peaks[name] = _peak_rss_kib(*generate_command(server, source, output))
        (row,) = map(json.loads, output.read_text().splitlines())
        if name == "huge":
            assert row["error"]["code"] == "invalid_response"
            assert f"response larger than {LIMIT} bytes" in row["error"]["message"]
    # A 1 GiB answer costs at most the 32 MiB limit (and some slack), not the gigabyte.
    assert peaks["huge"] < peaks["small"] + 80 * 1024, peaks


def test_the_limit_is_the_clients_setting(server: Any) -> None:
    body = {"model": "m", "messages": chat("[[huge_mb=2]] x")}
    for limit, expected in [(None, "not valid JSON"), (1024 * 1024, "larger than 1048576")]:
        client = _core.NativeClient(
            "openai", server.base_url, api_key=KEY, max_response_bytes=limit
        )
        handle = client.start([("chat", body)])
        assert handle.wait(60)
        (error,) = handle.results()
        assert isinstance(error, _core.APIResponseValidationError)
        assert expected in str(error), str(error)
