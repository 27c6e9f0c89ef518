"""The native `OllamaLLM` against the local mock server, next to distilabel's `OllamaLLM`
(on the ollama SDK): the same inputs through both, comparing outputs, request bodies, URLs
and headers."""

import asyncio
import copy
import http.server
import json
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from distilabel.models.llms import OllamaLLM as DistilabelOllamaLLM
from pydantic import BaseModel, ValidationError

from distilabel_rs import _core
from distilabel_rs.models.llms import OllamaLLM
from distilabel_rs.models.llms import ollama as ollama_module
from tests.conftest import FANOUT_FIELDS, REPO, without_fanout_fields

# distilabel's `validate_magpie_usage` returns `None` (ours returns the model).
pytestmark = pytest.mark.filterwarnings(
    "ignore:A custom validator is returning a value other than `self`:UserWarning"
)

CHAT = [{"role": "user", "content": "hello there"}]
SYSTEM_CHAT = [{"role": "system", "content": "be brief"}, *CHAT]
# An assistant turn with empty content: the SDK leaves the empty value out.
EMPTY_TURN = [
    {"role": "user", "content": "a"},
    {"role": "assistant", "content": ""},
    {"role": "user", "content": "b"},
]
# A tiny chat template (the tests build their own tokenizer: nothing is downloaded).
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(autouse=True)
def _no_ollama_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)


@pytest.fixture
def server() -> Iterator[Any]:
    mock = _core.MockServer(record=True)
    yield mock
    mock.stop()


@pytest.fixture
def reference() -> Iterator[Any]:
    mock = _core.MockServer(record=True)
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A word-level tokenizer with a chat template, saved as a Hub repository would be."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    model = tokenizers.models.WordLevel({"<unk>": 0, "hello": 1}, unk_token="<unk>")
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", chat_template=TEMPLATE
    )
    path = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(str(path))
    return str(path)


def ours(server: Any, **kwargs: Any) -> OllamaLLM:
    llm = OllamaLLM(model="test-model", host=server.origin, **kwargs)
    llm.load()
    return llm


def theirs(server: Any, **kwargs: Any) -> DistilabelOllamaLLM:
    llm = DistilabelOllamaLLM(model="test-model", host=server.origin, **kwargs)
    llm.load()
    return llm


def requests_of(server: Any) -> List[Dict[str, Any]]:
    """Method, path and JSON body of every request, in a stable order."""
    return sorted(
        (
            {"method": r["method"], "path": r["path"], "body": json.loads(r["body"])}
            for r in server.recorded_requests()
        ),
        key=lambda item: json.dumps(item, sort_keys=True),
    )


def headers_of(server: Any) -> List[Dict[str, str]]:
    return [dict(r["headers"]) for r in server.recorded_requests()]


@pytest.mark.parametrize(
    ("inputs", "kwargs"),
    [
        ([CHAT], {}),
        ([CHAT, SYSTEM_CHAT], {"num_generations": 3}),
        (
            [CHAT],
            {
                "format": "json",
                "options": {"temperature": 0.2, "num_predict": 5, "stop": ["\n"], "seed": 7},
                "keep_alive": True,
            },
        ),
        ([EMPTY_TURN], {"keep_alive": False, "options": {}, "format": ""}),
        # Coerced and filtered by the `Options` TypedDict as in distilabel.
        ([CHAT], {"options": {"top_k": "3", "not_an_option": 1, "stop": ("a", "b")}}),
        ([[]], {}),
    ],
)
def test_outputs_and_request_bodies_match_distilabel(
    inputs: list, kwargs: dict, server: Any, reference: Any
) -> None:
    expected = theirs(reference).generate(inputs, **kwargs)
    got = ours(server).generate(inputs, **kwargs)
    assert got == expected
    assert requests_of(server) == requests_of(reference)
    n = kwargs.get("num_generations", 1)
    assert server.requests == len(inputs) * n  # one request per generation


def test_statistics_and_fan_out() -> None:
    mock = _core.MockServer(record=True)
    try:
        out = ours(mock).generate([CHAT, SYSTEM_CHAT], num_generations=2)
    finally:
        mock.stop()
    assert out[0]["generations"] == ["echo: hello there"] * 2
    # One entry per request (merged), from `prompt_eval_count` and `eval_count`.
    assert out[0]["statistics"]["output_tokens"] == [3, 3]
    assert len(out[1]["statistics"]["input_tokens"]) == 2
    assert all(isinstance(v, int) and v > 0 for v in out[1]["statistics"]["input_tokens"])


def test_urls_and_headers_match_distilabel(
    server: Any, reference: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs(reference).generate([CHAT])
    ours(server).generate([CHAT])
    for headers in (headers_of(server)[0], headers_of(reference)[0]):
        assert headers["content-type"] == "application/json"
        assert headers["accept"] == "application/json"
        assert "authorization" not in headers
    assert [r["path"] for r in server.recorded_requests()] == ["/api/chat"]
    # Ollama's hosted API: the SDK sends OLLAMA_API_KEY as a bearer token, and so do we.
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama-secret")
    theirs(reference).generate([CHAT])
    llm = ours(server)
    llm.generate([CHAT])
    assert headers_of(server)[-1]["authorization"] == headers_of(reference)[-1]["authorization"]
    assert headers_of(server)[-1]["authorization"] == "Bearer ollama-secret"
    assert "ollama-secret" not in repr(llm) and "ollama-secret" not in str(llm.dump())


def test_tokenizer_path_sends_raw_prompts_like_distilabel(
    tokenizer_dir: str, server: Any, reference: Any
) -> None:
    inputs = [CHAT, SYSTEM_CHAT, []]
    kwargs = {"options": {"num_predict": 8}, "keep_alive": True}
    expected = theirs(reference, tokenizer_id=tokenizer_dir).generate(inputs, **kwargs)
    got = ours(server, tokenizer_id=tokenizer_dir).generate(inputs, **kwargs)
    assert got == expected
    assert requests_of(server) == requests_of(reference)
    first = next(r for r in requests_of(server) if r["body"]["prompt"].startswith("<|user|>"))
    assert first["path"] == "/api/generate"
    assert first["body"] == {
        "model": "test-model",
        "stream": False,
        "options": {"num_predict": 8},
        "keep_alive": 1.0,
        "prompt": "<|user|>hello there\n<|assistant|>",
        "raw": True,
    }
    assert got[0]["generations"] == ["echo: <|user|>hello there\n<|assistant|>"]


def test_magpie_pre_query_template_like_distilabel(
    tokenizer_dir: str, server: Any, reference: Any
) -> None:
    settings = {
        "tokenizer_id": tokenizer_dir,
        "use_magpie_template": True,
        "magpie_pre_query_template": "llama3",
    }
    # Ending with the assistant (or empty): the template asks the model for a user turn.
    inputs = [[{"role": "system", "content": "You are a chemist."}], [], CHAT]
    expected = theirs(reference, **settings).generate(inputs)
    got = ours(server, **settings).generate(inputs)
    assert got == expected
    assert requests_of(server) == requests_of(reference)
    prompts = {r["body"]["prompt"] for r in requests_of(server)}
    assert (
        "<|system|>You are a chemist.\n<|assistant|><|begin_of_text|><|start_header_id|>user"
        "<|end_header_id|>\n\n" in prompts
    )


def test_tokenizer_without_chat_template_fails_like_distilabel(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel({"<unk>": 0}, unk_token="<unk>"))
    transformers.PreTrainedTokenizerFast(tokenizer_object=backend).save_pretrained(str(tmp_path))
    with pytest.raises(ValueError) as mine:
        OllamaLLM(model="m", tokenizer_id=str(tmp_path)).load()
    with pytest.raises(ValueError) as reference:
        DistilabelOllamaLLM(model="m", tokenizer_id=str(tmp_path)).load()
    assert str(mine.value) == str(reference.value)


def test_tokenizer_id_without_transformers_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tokenizer_dir: str
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # an import of it fails
    with pytest.raises(ImportError, match=r"pip install 'distilabel-rs\[hf-transformers\]'"):
        OllamaLLM(model="m", tokenizer_id=tokenizer_dir).load()


def test_transformers_is_imported_only_for_tokenizer_id() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom distilabel_rs.models.llms import OllamaLLM\n"
            "OllamaLLM(model='m').load()\nprint('transformers' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "DISTILABEL_RS_STANDALONE": "1"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("inputs", "kwargs"),
    [
        ([CHAT], {"format": "xml"}),
        ([CHAT], {"options": {"temperature": "hot"}}),
        ([CHAT], {"keep_alive": "maybe"}),
        ([CHAT], {"bogus": 1}),
        ([[{"role": "tool", "content": "x"}]], {}),
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


@pytest.mark.parametrize(
    "kwargs",
    [
        {"use_magpie_template": True},
        {"use_magpie_template": True, "magpie_pre_query_template": "qwen2"},
        {"timeout": "soon"},
        {"host": 5},
    ],
)
def test_construction_errors_match_distilabel(kwargs: dict) -> None:
    with pytest.raises(ValidationError) as reference:
        DistilabelOllamaLLM(model="m", **kwargs)
    with pytest.raises(ValidationError) as mine:
        OllamaLLM(model="m", **kwargs)
    assert str(mine.value).replace("distilabel_rs", "distilabel") == str(reference.value)
    with pytest.raises(ValidationError):
        OllamaLLM()  # type: ignore[call-arg]


def test_fields_runtime_parameters_and_dump_match_distilabel() -> None:
    extra = [*FANOUT_FIELDS, "tokens_per_minute"]
    assert [f for f in OllamaLLM.model_fields if f not in extra] == list(
        DistilabelOllamaLLM.model_fields
    )
    for name, field in DistilabelOllamaLLM.model_fields.items():
        mine_field = OllamaLLM.model_fields[name]
        assert mine_field.description == field.description, name
        assert mine_field.default == field.default, name
    settings = {"model": "llama3", "host": "localhost:1234", "timeout": 30}
    mine, reference = OllamaLLM(**settings), DistilabelOllamaLLM(**settings)
    names = {k: v for k, v in mine.runtime_parameters_names.items() if k not in extra}
    assert names == reference.runtime_parameters_names
    assert names["generation_kwargs"] == {"format": True, "options": True, "keep_alive": True}
    info = [i for i in mine.get_runtime_parameters_info() if i["name"] not in extra]
    assert info == reference.get_runtime_parameters_info()
    dumped = without_fanout_fields(mine.dump())
    del dumped["tokens_per_minute"]
    expected = reference.dump()
    assert dumped.pop("type_info") == {
        "module": "distilabel_rs.models.llms.ollama",
        "name": "OllamaLLM",
    }
    del expected["type_info"]
    assert dumped == expected
    assert OllamaLLM.from_dict(mine.dump()).dump() == mine.dump()
    assert mine._num_generations_param_supported is False


def test_request_errors_are_clear_errors_where_distilabel_raises_unbound_local_error(
    server: Any, reference: Any
) -> None:
    failing = [[{"role": "user", "content": "[[status=404]] which model?"}]]
    with pytest.raises(UnboundLocalError):
        theirs(reference).generate(failing)
    with pytest.raises(_core.APIStatusError) as info:
        ours(server).generate(failing)
    assert info.value.status_code == 404
    assert info.value.message == "Scripted failure with status 404"  # the `error` field
    assert str(info.value) == "Error code: 404 - Scripted failure with status 404"
    assert server.requests == 1  # a 404 is not retried

    llm = ours(server, error_policy="isolate")
    out = llm.generate([CHAT, *failing, CHAT], num_generations=2)
    assert out[0]["generations"] == out[2]["generations"] == ["echo: hello there"] * 2
    assert out[1]["generations"] == [None, None]
    assert (
        out[1]["error"]
        == ["APIStatusError: Error code: 404 - Scripted failure with status 404"] * 2
    )


def test_an_unreachable_server(reference: Any) -> None:
    # A port nothing listens on: the mock server's, once stopped.
    closed = _core.MockServer()
    closed.stop()
    time.sleep(0.1)
    unreachable = type("Host", (), {"origin": closed.origin})()
    with pytest.raises(UnboundLocalError):
        theirs(unreachable).generate([CHAT])
    llm = ours(unreachable, max_request_retries=0)
    with pytest.raises(_core.APIConnectionError, match="Connection error"):
        llm.generate([CHAT])


def test_busy_server_is_retried_honouring_retry_after(server: Any) -> None:
    text = "[[status=503 times=2 retry_after=0.2]] hi"
    out = ours(server).generate([[{"role": "user", "content": text}]])
    assert out[0]["generations"] == [f"echo: {text}"]
    assert server.requests == 3
    with pytest.raises(_core.APIStatusError):
        ours(server, max_request_retries=0).generate(
            [[{"role": "user", "content": "[[status=503]] busy"}]]
        )


@pytest.mark.parametrize("directive", ["malformed", "truncated"])
def test_malformed_or_truncated_bodies_are_clear_errors(server: Any, directive: str) -> None:
    with pytest.raises(_core.APIResponseValidationError, match="Invalid response from the API"):
        ours(server).generate([[{"role": "user", "content": f"[[{directive}]] x"}]])


def test_timeouts(server: Any) -> None:
    llm = ours(server, timeout=1, max_request_retries=0)
    with pytest.raises(_core.APITimeoutError, match="timed out"):
        llm.generate([[{"role": "user", "content": "[[sleep_ms=3000]] slow"}]])
    assert server.requests == 1


def test_empty_content_is_a_generation_as_in_distilabel(server: Any, reference: Any) -> None:
    # `content=` with nothing after it: the answer's content is an empty string.
    inputs = [[{"role": "user", "content": "[[content=]] x"}]]
    expected = theirs(reference).generate(inputs)
    assert ours(server).generate(inputs) == expected
    assert expected[0]["generations"] == [""]


def test_agenerate_directly(server: Any) -> None:
    llm = ours(server)

    async def main() -> Any:
        return await llm.agenerate(input=CHAT, format="json", keep_alive=True)

    out = asyncio.run(main())
    assert out["generations"] == ["echo: hello there"]
    assert set(out["statistics"]) == {"input_tokens", "output_tokens"}
    body = json.loads(server.recorded_requests()[0]["body"])
    assert body["format"] == "json" and body["keep_alive"] == 1.0


class Person(BaseModel):
    name: str
    age: int


def test_structured_output_is_sent_as_format(server: Any, reference: Any) -> None:
    llm = ours(server, structured_output={"schema": Person})
    content = '[[content={"name":"Ada","age":36}]] who?'
    out = llm.generate([[{"role": "user", "content": content}]])
    assert json.loads(out[0]["generations"][0]) == {"name": "Ada", "age": 36}
    body = json.loads(server.recorded_requests()[0]["body"])
    assert body["format"] == Person.model_json_schema()
    assert llm.structured_output["schema"] == Person.model_json_schema()  # dumpable
    # distilabel declares the field and never uses it.
    theirs(reference, structured_output={"schema": Person}).generate([CHAT])
    assert "format" not in json.loads(reference.recorded_requests()[0]["body"])


def test_list_content_is_a_clear_error(server: Any) -> None:
    image_chat = [{"role": "user", "content": [{"type": "text", "text": "what is this"}]}]
    with pytest.raises(ValueError, match=r"input\[0\]\['content'\].*text content"):
        ours(server).generate([image_chat])
    assert server.requests == 0


def test_pickle_and_deepcopy_of_a_used_llm(server: Any, tokenizer_dir: str) -> None:
    for llm in (ours(server), ours(server, tokenizer_id=tokenizer_dir)):
        expected = llm.generate([CHAT])
        for copied in (pickle.loads(pickle.dumps(llm)), copy.deepcopy(llm)):
            assert copied.generate([CHAT]) == expected
        llm.unload()
        pickle.loads(pickle.dumps(llm))


@pytest.mark.parametrize("form", ["127.0.0.1:{port}", ":{port}", "http://127.0.0.1:{port}/"])
def test_ollama_host_is_resolved_like_the_sdk(
    form: str, server: Any, reference: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", form.format(port=reference.port))
    theirs_llm = DistilabelOllamaLLM(model="m")
    theirs_llm.load()
    theirs_llm.generate([CHAT])
    monkeypatch.setenv("OLLAMA_HOST", form.format(port=server.port))
    mine = OllamaLLM(model="m")
    assert mine.host is None  # the variable is read by the client, as in the SDK
    mine.load()
    mine.generate([CHAT])
    assert requests_of(server) == requests_of(reference)
    # The field wins over the variable.
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:1")
    explicit = OllamaLLM(model="m", host=f"127.0.0.1:{server.port}")
    explicit.load()
    explicit.generate([CHAT])
    assert server.requests == 2


def test_a_bad_ollama_host_fails_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "localhost:abc")
    with pytest.raises(ValueError, match="Port could not be cast"):
        DistilabelOllamaLLM(model="m").load()
    with pytest.raises(ValueError, match=r"OLLAMA_HOST.*port \"abc\" is not a number"):
        OllamaLLM(model="m").load()


class _Redirect(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(307)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_follow_redirects(server: Any) -> None:
    handler = type("Handler", (_Redirect,), {"target": server.origin})
    redirector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=redirector.serve_forever, daemon=True)
    thread.start()
    try:
        host = f"127.0.0.1:{redirector.server_address[1]}"
        followed = OllamaLLM(model="m", host=host)
        followed.load()
        assert followed.generate([CHAT])[0]["generations"] == ["echo: hello there"]
        assert server.requests == 1
        stopped = OllamaLLM(model="m", host=host, follow_redirects=False)
        stopped.load()
        with pytest.raises(_core.APIStatusError) as info:
            stopped.generate([CHAT])
        assert info.value.status_code == 307
        assert server.requests == 1
    finally:
        redirector.shutdown()
        redirector.server_close()


def test_the_mock_streams_unless_asked_not_to(server: Any) -> None:
    # As Ollama: without `"stream": false` the answer is NDJSON, which is why every body we
    # send says `"stream": false` (and a body without a model is a 400).
    import urllib.request

    def post(body: dict) -> Any:
        request = urllib.request.Request(
            f"{server.origin}/api/chat",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        return urllib.request.urlopen(request, timeout=10)

    with post({"model": "m", "messages": CHAT}) as response:
        lines = [json.loads(line) for line in response.read().decode().splitlines()]
    assert [line["done"] for line in lines] == [False, False, False, True]
    assert "".join(line["message"]["content"] for line in lines) == "echo: hello there"
    assert lines[-1]["eval_count"] == 3
    with pytest.raises(Exception) as info:
        post({"messages": CHAT})
    assert info.value.code == 400  # type: ignore[attr-defined]
    assert json.loads(info.value.read()) == {"error": "model is required"}  # type: ignore[attr-defined]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distilabel_rs", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "DISTILABEL_RS_STANDALONE": "1"},
    )


def test_cli_speaks_ollama(tmp_path: Path, server: Any) -> None:
    source = tmp_path / "in.jsonl"
    records = [
        {"messages": CHAT},
        {"prompt": "complete me", "options": {"num_predict": 3}},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    output = tmp_path / "out.jsonl"
    result = _cli(
        "generate", str(source), "-o", str(output), "--model", "llama3", "--provider", "ollama",
        "--base-url", f"127.0.0.1:{server.port}", "--max-tokens", "50", "--temperature", "0.5",
        "--num-generations", "3", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = {line["custom_id"]: line for line in map(json.loads, output.read_text().splitlines())}
    assert lines["1"]["response"]["body"]["message"]["content"] == "echo: hello there"
    assert lines["2"]["response"]["body"]["response"] == "echo: complete me"
    sent = {r["path"]: r["body"] for r in requests_of(server)}
    assert sent["/api/chat"] == {
        "messages": CHAT,
        "model": "llama3",
        "stream": False,
        "options": {"num_predict": 50, "temperature": 0.5},
    }
    assert sent["/api/generate"] == {
        "prompt": "complete me",
        "model": "llama3",
        "stream": False,
        "options": {"num_predict": 3, "temperature": 0.5},
    }
    mocked = _cli(
        "generate", str(source), "-o", str(tmp_path / "mocked.jsonl"), "--model", "llama3",
        "--provider", "ollama", "--mock", "--no-progress",
    )  # fmt: skip
    assert mocked.returncode == 0, mocked.stderr
    assert len((tmp_path / "mocked.jsonl").read_text().splitlines()) == 2


def test_options_are_distilabel_s() -> None:
    distilabel_options = sys.modules["distilabel.models.llms.ollama"].Options
    assert ollama_module.Options.__annotations__ == {
        name: hint for name, hint in distilabel_options.__annotations__.items()
    }
