"""The SDK-wrapping LLMs (LiteLLM, VertexAILLM, CohereLLM) and MixtureOfAgentsLLM, next to
distilabel 1.5.3's, without network.

LiteLLM and VertexAILLM run, with distilabel's classes, against the same local fake of their
SDK (`tests.fakes`), and once each on the real SDK (in the test extra): litellm against the
mock server, google-cloud-aiplatform over REST against a local `generateContent` server.
CohereLLM runs on the real `cohere` SDK against a local HTTP server that speaks Cohere's v1
API. Calls made and outputs are compared.
"""

import asyncio
import json
import pickle
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Tuple

import distilabel.models.llms as dl
import pytest
from pydantic import ValidationError

import distilabel_rs.models.llms as rs
from distilabel_rs import _core
from tests.fakes import Recorder, fake_litellm, fake_vertexai, install

KEY = "secret-test-key-0123"
CHAT = [{"role": "user", "content": "hello there"}]
CHAT2 = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "and you"}]


def by_repr(calls: List[Dict[str, Any]]) -> List[str]:
    """Calls in a stable order (the two libraries may start concurrent requests in a
    different order)."""
    return sorted(repr(sorted(call.items())) for call in calls)


# -- LiteLLM -------------------------------------------------------------------------------


def litellm_pair(
    monkeypatch: pytest.MonkeyPatch, choices_per_call: Any = None, **kwargs: Any
) -> Tuple[Any, Any, Recorder, Recorder]:
    """Our LiteLLM and distilabel's, each loaded on its own recording fake."""
    ours_recorder, their_recorder = Recorder(), Recorder()
    install(monkeypatch, fake_litellm(their_recorder, choices_per_call))
    theirs = dl.LiteLLM(model="openai/some-model", **kwargs)
    theirs.load()
    install(monkeypatch, fake_litellm(ours_recorder, choices_per_call))
    ours = rs.LiteLLM(model="openai/some-model", **kwargs)
    ours.load()
    return ours, theirs, ours_recorder, their_recorder


@pytest.mark.parametrize(
    ("inputs", "num_generations", "kwargs", "choices_per_call"),
    [
        ([CHAT], 1, {}, None),
        ([CHAT, CHAT2], 3, {"temperature": 0.2, "max_tokens": 9, "stop": ["\n"]}, None),
        ([CHAT], 2, {"user": "u1", "metadata": {"k": "v"}, "top_p": 0.5}, None),
        # A provider returning one choice per call: asked again until there are `n`.
        ([CHAT, CHAT2], 3, {}, 1),
    ],
)
def test_litellm_calls_and_outputs_match_distilabel(
    monkeypatch: pytest.MonkeyPatch,
    inputs: list,
    num_generations: int,
    kwargs: dict,
    choices_per_call: Any,
) -> None:
    ours, theirs, mine, reference = litellm_pair(monkeypatch, choices_per_call)
    # `agenerate` imports litellm on each call (as distilabel's does): each its own fake.
    install(monkeypatch, fake_litellm(reference, choices_per_call))
    expected = theirs.generate(inputs, num_generations=num_generations, **kwargs)
    install(monkeypatch, fake_litellm(mine, choices_per_call))
    got = ours.generate(inputs, num_generations=num_generations, **kwargs)
    assert got == expected
    assert by_repr(mine.calls) == by_repr(reference.calls)
    assert len(mine.calls) == len(inputs) * (num_generations if choices_per_call else 1)
    assert got[0]["statistics"]["input_tokens"] == [2] * num_generations


def test_litellm_retries_without_unsupported_parameters_like_distilabel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = Recorder()
    modules = fake_litellm(recorder)
    install(monkeypatch, modules)
    litellm = modules["litellm"]
    recorder.fail = {0: litellm.APIError("openai does not support parameters: ['user']")}
    llm = rs.LiteLLM(model="m", max_request_retries=0)
    llm.load()
    output = llm.generate([CHAT], user="u")
    assert output[0]["generations"] == ["litellm 0: hello there"]
    assert len(recorder.calls) == 2 and litellm.drop_params is True


def test_litellm_rate_limits_are_retried_other_errors_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = Recorder()
    modules = fake_litellm(recorder)
    install(monkeypatch, modules)
    litellm = modules["litellm"]
    llm = rs.LiteLLM(model="m", retry_backoff_base=0.0, max_request_retries=2)
    llm.load()
    recorder.fail = {0: litellm.RateLimitError(), 1: litellm.Timeout()}
    assert llm.generate([CHAT])[0]["generations"] == ["litellm 0: hello there"]
    assert len(recorder.calls) == 3

    recorder.calls.clear()
    recorder.fail = {0: litellm.BadRequestError("invalid model")}
    with pytest.raises(litellm.BadRequestError, match="invalid model"):
        llm.generate([CHAT])
    assert len(recorder.calls) == 1


def test_litellm_isolate_keeps_the_other_results(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    modules = fake_litellm(recorder)
    install(monkeypatch, modules)
    llm = rs.LiteLLM(model="m", error_policy="isolate", max_concurrency=1)
    llm.load()
    recorder.fail = {1: modules["litellm"].BadRequestError("content policy")}
    outputs = llm.generate([CHAT, CHAT2, CHAT])
    assert [o["generations"] for o in outputs] == [
        ["litellm 0: hello there"],
        [None],
        ["litellm 0: hello there"],
    ]
    assert outputs[1]["error"] == ["BadRequestError: content policy"]


def test_litellm_load_silences_litellm(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    modules = fake_litellm(Recorder())
    install(monkeypatch, modules)
    logging.getLogger("LiteLLM.test").setLevel(logging.INFO)
    rs.LiteLLM(model="m").load()
    assert modules["litellm"].telemetry is False
    assert modules["litellm"].suppress_debug_info is True
    assert logging.getLogger("LiteLLM.test").level == logging.CRITICAL


def test_litellm_validation_errors_match_distilabel(monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs, _, _ = litellm_pair(monkeypatch)
    for kwargs in ({"temperature": "hot"}, {"bogus": 1}, {"max_tokens": "many"}):
        with pytest.raises(ValidationError) as mine:
            ours.generate([CHAT], **kwargs)
        with pytest.raises(ValidationError) as reference:
            theirs.generate([CHAT], **kwargs)
        assert str(mine.value) == str(reference.value)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
# litellm's background logging task outlives the event loops it was started on.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_litellm_against_the_local_openai_compatible_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real litellm (pinned in the test extra), through its `openai/` provider, against
    the project's mock server; calls match distilabel's. No network: litellm reads the
    model cost map it ships instead of fetching it when imported, and counts tokens with
    the tiktoken files it ships."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm  # noqa: F401  (imported here, after the variable is set)
    from litellm.litellm_core_utils.get_model_cost_map import get_model_cost_map_source_info

    assert get_model_cost_map_source_info()["source"] == "local"
    server, reference = _core.MockServer(record=True), _core.MockServer(record=True)
    try:
        kwargs = {"api_base": None, "api_key": KEY, "max_tokens": 7, "temperature": 0.5}
        ours = rs.LiteLLM(model="openai/test-model")
        ours.load()
        theirs = dl.LiteLLM(model="openai/test-model")
        theirs.load()
        got = ours.generate(
            [CHAT, CHAT2], num_generations=2, **{**kwargs, "api_base": server.base_url}
        )
        expected = theirs.generate(
            [CHAT, CHAT2], num_generations=2, **{**kwargs, "api_base": reference.base_url}
        )
        assert got == expected
        assert got[0]["generations"] == ["echo: hello there"] * 2
        bodies = [sorted(json.loads(body)) for _, body, _ in server.recorded()]
        assert bodies == [sorted(json.loads(body)) for _, body, _ in reference.recorded()]
        assert all(auth == f"Bearer {KEY}" for _, _, auth in server.recorded())
    finally:
        server.stop()
        reference.stop()


# -- VertexAILLM ---------------------------------------------------------------------------

VERTEX_CHAT = [
    {"role": "user", "content": "hi there"},
    {"role": "model", "content": "hello"},
    {"role": "user", "content": "tell me more"},
]


def test_vertexai_calls_and_outputs_match_distilabel(monkeypatch: pytest.MonkeyPatch) -> None:
    mine, reference = Recorder(), Recorder()
    kwargs = {"temperature": 0.3, "top_k": 4, "max_output_tokens": 20, "stop_sequences": ["x"]}
    inputs = [VERTEX_CHAT, [{"role": "user", "content": "one"}]]
    install(monkeypatch, fake_vertexai(reference))
    theirs = dl.VertexAILLM(model="gemini-1.5-pro")
    theirs.load()
    expected = theirs.generate(inputs, num_generations=2, **kwargs)
    install(monkeypatch, fake_vertexai(mine))
    ours = rs.VertexAILLM(model="gemini-1.5-pro")
    ours.load()
    got = ours.generate(inputs, num_generations=2, **kwargs)
    assert got == expected
    assert got[0] == {
        "generations": ["gemini: tell me more"] * 2,
        "statistics": {"input_tokens": [6, 6], "output_tokens": [4, 4]},
    }
    # One request per generation, one candidate each (the fan-out groups them).
    assert len(mine.calls) == 4
    assert by_repr(mine.calls) == by_repr(reference.calls)
    assert mine.calls[0]["generation_config"].kwargs["candidate_count"] == 1


def test_vertexai_blocked_response_is_none_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    modules = fake_vertexai(recorder, blocked=lambda text: "unsafe" in text)
    install(monkeypatch, modules)
    llm = rs.VertexAILLM(model="gemini-pro", retry_backoff_base=0.0)
    llm.load()
    outputs = llm.generate([[{"role": "user", "content": "unsafe words"}]])
    assert outputs[0]["generations"] == [None]

    # The roles are validated by `agenerate`'s signature (`VertexChatType`).
    with pytest.raises(ValidationError, match="input.0.role"):
        llm.generate([[{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]])

    errors = modules["google.api_core.exceptions"]
    recorder.calls.clear()
    recorder.fail = {0: errors.ResourceExhausted("quota")}
    assert llm.generate([VERTEX_CHAT])[0]["generations"] == ["gemini: tell me more"]
    assert len(recorder.calls) == 2
    recorder.calls.clear()
    recorder.fail = {0: errors.InvalidArgument("bad")}
    with pytest.raises(errors.InvalidArgument):
        llm.generate([VERTEX_CHAT])
    assert len(recorder.calls) == 1


def test_vertexai_only_gemini_models(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, fake_vertexai(Recorder()))
    with pytest.raises(NotImplementedError) as mine:
        rs.VertexAILLM(model="text-bison").load()
    with pytest.raises(NotImplementedError) as reference:
        dl.VertexAILLM(model="text-bison").load()
    assert str(mine.value) == str(reference.value)


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 (a random free port) answering through the
    handler class `_handler()` builds; `stop()` shuts it down."""

    def _serve(self) -> None:
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _handler(self) -> type:
        raise NotImplementedError

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class GeminiServer(LocalServer):
    """Vertex AI's REST `generateContent` on 127.0.0.1: answers "gemini: <last text>", with
    the words of the conversation and of the answer as the token counts; records each
    request's path and JSON body."""

    def __init__(self) -> None:
        self.requests: List[Tuple[str, Any]] = []
        self._serve()

    def take(self) -> List[Tuple[str, Any]]:
        """The requests received since the last call."""
        with self.lock:
            taken, self.requests = self.requests, []
        return taken

    def _handler(self) -> type:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with server.lock:
                    server.requests.append((self.path, body))
                texts = [part["text"] for c in body["contents"] for part in c["parts"]]
                answer = f"gemini: {texts[-1]}"
                prompt_tokens = sum(len(text.split()) for text in texts)
                reply = {
                    "candidates": [
                        {
                            "content": {"role": "model", "parts": [{"text": answer}]},
                            "finishReason": "STOP",
                        }
                    ],
                    "usageMetadata": {
                        "promptTokenCount": prompt_tokens,
                        "candidatesTokenCount": len(answer.split()),
                        "totalTokenCount": prompt_tokens + len(answer.split()),
                    },
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


# The SDK warns that `vertexai.generative_models` is deprecated (distilabel 1.5.3 uses it).
@pytest.mark.filterwarnings("ignore:This feature is deprecated:UserWarning")
def test_vertexai_against_a_local_generate_content_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real google-cloud-aiplatform SDK (in the test extra), over REST with anonymous
    credentials, against a local `generateContent` server; requests and outputs match
    distilabel's VertexAILLM."""
    from google.auth.aio.credentials import AnonymousCredentials as AsyncAnonymousCredentials
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform import initializer

    server = GeminiServer()
    try:
        # The SDK's settings are global: this test's go away with it.
        monkeypatch.setattr(initializer, "global_config", initializer._Config())
        initializer.global_config.init(
            project="test-project",
            location="us-central1",
            api_endpoint=server.url,  # with `http://`: the REST transports keep the scheme
            api_transport="rest",
            credentials=AnonymousCredentials(),
        )
        # `generate_content_async` over REST needs async credentials, which only this
        # private hook sets (without them the SDK falls back to gRPC).
        initializer._set_async_rest_credentials(AsyncAnonymousCredentials())
        kwargs = {"temperature": 0.3, "top_k": 4, "max_output_tokens": 20, "stop_sequences": ["x"]}
        inputs = [VERTEX_CHAT, [{"role": "user", "content": "one"}]]

        ours = rs.VertexAILLM(model="gemini-1.5-pro")
        ours.load()
        got = ours.generate(inputs, num_generations=2, **kwargs)
        our_requests = server.take()
        theirs = dl.VertexAILLM(model="gemini-1.5-pro")
        theirs.load()
        expected = theirs.generate(inputs, num_generations=2, **kwargs)
        their_requests = server.take()
    finally:
        server.stop()
    assert got == expected
    assert got == [
        {
            "generations": ["gemini: tell me more"] * 2,
            "statistics": {"input_tokens": [6, 6], "output_tokens": [4, 4]},
        },
        {
            "generations": ["gemini: one"] * 2,
            "statistics": {"input_tokens": [1, 1], "output_tokens": [2, 2]},
        },
    ]
    # One request per generation, one candidate each, the same bodies as distilabel's.
    assert len(our_requests) == 4
    assert sorted(map(repr, our_requests)) == sorted(map(repr, their_requests))
    path, body = our_requests[0]
    assert path.startswith(
        "/v1/projects/test-project/locations/us-central1/publishers/google/models/"
        "gemini-1.5-pro:generateContent"
    )
    assert body["generationConfig"] == {
        "candidateCount": 1,
        "temperature": 0.3,
        "topK": 4,
        "maxOutputTokens": 20,
        "stopSequences": ["x"],
    }


# -- missing SDKs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "blocked", "extra"),
    [
        ("LiteLLM", {"model": "m"}, ["litellm"], "litellm"),
        (
            "VertexAILLM",
            {"model": "gemini-pro"},
            ["vertexai", "vertexai.generative_models"],
            "vertexai",
        ),
        ("CohereLLM", {"model": "m", "api_key": KEY}, ["cohere"], "cohere"),
    ],
)
def test_missing_sdk_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, name: str, kwargs: dict, blocked: list, extra: str
) -> None:
    install(monkeypatch, {module: None for module in blocked})
    with pytest.raises(ImportError) as error:
        getattr(rs, name)(**kwargs).load()
    assert f"pip install 'distilabel-rs[{extra}]'" in str(error.value)
    assert KEY not in str(error.value)


# -- CohereLLM on the real SDK, against a local server --------------------------------------


class CohereServer(LocalServer):
    """Cohere's v1 API on 127.0.0.1: `GET /v1/models/{model}` (pointing at a tokenizer it
    serves), `POST /v1/chat` (answers "cohere: <message>"). A message containing
    `[[429xN]]` is answered 429 (with `retry-after-ms: 1`) N times first; `[[empty]]` gets
    an empty text."""

    def __init__(self) -> None:
        from tokenizers import Tokenizer, models, pre_tokenizers

        tokenizer = Tokenizer(models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        self.tokenizer_json = tokenizer.to_str().encode()
        self.requests: List[Tuple[str, str, Dict[str, str], Any]] = []
        self.failures: Dict[str, int] = {}
        self._serve()

    def chats(self) -> List[Any]:
        return [body for method, path, _, body in self.requests if path == "/v1/chat"]

    def _handler(self) -> type:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: Dict[str, str]) -> None:
                self.send_response(status)
                for key, value in {"content-type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _record(self, body: Any) -> None:
                with server.lock:
                    server.requests.append((self.command, self.path, dict(self.headers), body))

            def do_HEAD(self) -> None:
                self._send(200, server.tokenizer_json, {})

            def do_GET(self) -> None:
                self._record(None)
                if self.path == "/tokenizer.json":
                    return self._send(200, server.tokenizer_json, {})
                if self.path.startswith("/v1/models/"):
                    model = self.path.rsplit("/", 1)[-1]
                    body = {
                        "name": model,
                        "endpoints": ["chat"],
                        "finetuned": False,
                        "context_length": 4096,
                        "tokenizer_url": f"{server.url}/tokenizer.json",
                    }
                    return self._send(200, json.dumps(body).encode(), {})
                self._send(404, b'{"message": "not found"}', {})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                self._record(body)
                message = body["message"]
                if "[[429x" in message:
                    wanted = int(message.split("[[429x", 1)[1].split("]]", 1)[0])
                    with server.lock:
                        seen = server.failures.get(message, 0)
                        server.failures[message] = seen + 1
                    if seen < wanted:
                        return self._send(429, b'{"message": "slow down"}', {"retry-after-ms": "1"})
                text = "" if "[[empty]]" in message else f"cohere: {message}"
                answer = {
                    "text": text,
                    "generation_id": "g-1",
                    "finish_reason": "COMPLETE",
                    "meta": {"billed_units": {"input_tokens": 1, "output_tokens": 2}},
                }
                self._send(200, json.dumps(answer).encode(), {})

        return Handler


@pytest.fixture
def cohere_server() -> Iterator[CohereServer]:
    pytest.importorskip("cohere")
    server = CohereServer()
    yield server
    server.stop()


def cohere_llm(server: CohereServer, **kwargs: Any) -> Any:
    llm = rs.CohereLLM(model="command-r", base_url=server.url, api_key=KEY, **kwargs)
    llm.load()
    return llm


COHERE_HISTORY = [
    {"role": "system", "content": "be kind"},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "first answer"},
    {"role": "user", "content": "second question please"},
]


@pytest.mark.parametrize(
    ("inputs", "kwargs"),
    [
        ([CHAT], {}),
        ([COHERE_HISTORY, CHAT], {"num_generations": 2}),
        ([CHAT], {"temperature": 0.2, "max_tokens": 10, "k": 3, "p": 0.9, "seed": 7.0}),
        ([CHAT], {"stop_sequences": ["\n"], "frequency_penalty": 0.1, "raw_prompting": True}),
    ],
)
def test_cohere_requests_and_outputs_match_distilabel(
    monkeypatch: pytest.MonkeyPatch, inputs: list, kwargs: dict
) -> None:
    import cohere
    from cohere.manually_maintained import tokenizers

    mine, reference = CohereServer(), CohereServer()
    try:
        got = cohere_llm(mine).generate(inputs, **kwargs)
        theirs = dl.CohereLLM(model="command-r", base_url=reference.url, api_key=KEY)
        # distilabel 1.5.3 hands its AsyncClient to cohere's synchronous tokenizer helper,
        # which fails with current cohere (a coroutine has no `tokenizer_url`): give it a
        # synchronous client, as ours does.
        helper = tokenizers.get_hf_tokenizer
        monkeypatch.setattr(
            tokenizers,
            "get_hf_tokenizer",
            lambda client, model: helper(cohere.Client(api_key=KEY, base_url=reference.url), model),
        )
        theirs.load()
        expected = theirs.generate(inputs, **kwargs)
    finally:
        mine.stop()
        reference.stop()
    assert got == expected
    assert sorted(map(json.dumps, mine.chats())) == sorted(map(json.dumps, reference.chats()))
    assert {chat["model"] for chat in mine.chats()} == {"command-r"}
    if inputs[0] is COHERE_HISTORY:
        # Requests run concurrently: find the conversation's among them.
        first = next(c for c in mine.chats() if c["message"] == "second question please")
        assert first["preamble"] == "be kind"
        assert first["chat_history"] == [
            {"role": "USER", "message": "first question"},
            {"role": "CHATBOT", "message": "first answer"},
        ]
        assert got[0]["statistics"] == {"input_tokens": [9, 9], "output_tokens": [4, 4]}


def test_cohere_sends_the_key_and_client_name(cohere_server: CohereServer) -> None:
    llm = cohere_llm(cohere_server, client_name="my-app")
    assert llm.generate([CHAT])[0]["generations"] == ["cohere: hello there"]
    headers = {k.lower(): v for k, v in cohere_server.requests[-1][2].items()}
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["x-client-name"] == "my-app"
    assert KEY not in repr(llm) and KEY not in json.dumps(llm.dump())


def test_cohere_rate_limits_are_retried_by_the_engine(cohere_server: CohereServer) -> None:
    # The SDK itself makes 3 attempts; the 4th request is the engine's retry.
    llm = cohere_llm(cohere_server, max_request_retries=1)
    message = [{"role": "user", "content": "busy [[429x3]]"}]
    assert llm.generate([message])[0]["generations"] == ["cohere: busy [[429x3]]"]
    assert len(cohere_server.chats()) == 4

    from cohere.errors import TooManyRequestsError

    no_retries = cohere_llm(cohere_server, max_request_retries=0)
    with pytest.raises(TooManyRequestsError):
        no_retries.generate([[{"role": "user", "content": "again [[429x3]]"}]])


def test_cohere_empty_text_and_bad_conversations(cohere_server: CohereServer) -> None:
    llm = cohere_llm(cohere_server)
    output = llm.generate([[{"role": "user", "content": "[[empty]]"}]])
    assert output[0]["generations"] == [None]
    assert output[0]["statistics"] == {"input_tokens": [1], "output_tokens": [0]}
    with pytest.raises(ValueError, match="must end with a user message"):
        llm.generate([[{"role": "system", "content": "x"}]])
    with pytest.raises(ValueError, match="preceded by a user message"):
        llm.generate([[{"role": "assistant", "content": "x"}]])


def test_cohere_without_a_key_names_the_field_and_variable(
    monkeypatch: pytest.MonkeyPatch, cohere_server: CohereServer
) -> None:
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    with pytest.raises(ValueError, match="`api_key`.*`COHERE_API_KEY`"):
        rs.CohereLLM(model="m", base_url=cohere_server.url).load()


# -- MixtureOfAgentsLLM --------------------------------------------------------------------


def recording_llm(base: type, name: str) -> Any:
    """A Python `AsyncLLM` (on `base`, distilabel's or ours) answering "<name>: <last
    message>" and recording the conversations it receives."""

    class Recording(base):  # type: ignore[misc,valid-type]
        model: str = name
        fail_on: str = ""
        seen: List[Any] = []

        def load(self) -> None:
            super().load()

        @property
        def model_name(self) -> str:
            return self.model

        async def agenerate(self, input: Any, num_generations: int = 1) -> Any:
            self.seen.append(json.loads(json.dumps(input)))
            if self.fail_on and self.fail_on in input[-1]["content"]:
                raise RuntimeError(f"{self.model} failed")
            await asyncio.sleep(0)
            return {
                "generations": [f"{self.model}: {input[-1]['content']}"] * num_generations,
                "statistics": {"input_tokens": [1], "output_tokens": [1]},
            }

    Recording.__name__ = f"Recording{name.title()}"
    return Recording


def moa(library: Any, base: type, rounds: int = 1) -> Tuple[Any, List[Any], Any]:
    proposers = [recording_llm(base, "alpha")(), recording_llm(base, "beta")()]
    aggregator = recording_llm(base, "agg")()
    llm = library.MixtureOfAgentsLLM(
        aggregator_llm=aggregator, proposers_llms=proposers, rounds=rounds
    )
    llm.load()
    return llm, proposers, aggregator


def test_moa_aggregator_sees_the_proposals_distilabel_passes_dict_keys() -> None:
    inputs = [[{"role": "user", "content": "what is up"}]]
    ours, _, our_aggregator = moa(rs, rs.AsyncLLM)
    theirs, _, their_aggregator = moa(dl, dl.AsyncLLM)
    assert ours.generate([list(m) for m in inputs]) == theirs.generate([list(m) for m in inputs])
    assert ours.generate(inputs)[0]["generations"] == ["agg: what is up"]
    system = our_aggregator.seen[0][0]
    assert system["role"] == "system"
    assert system["content"].startswith(rs.moa.MOA_SYSTEM_PROMPT)
    assert system["content"].endswith("\n1. alpha: what is up\n2. beta: what is up")
    # distilabel 1.5.3 chains the output dicts themselves: the aggregator gets their keys
    # (COMPATIBILITY: fixed here).
    assert their_aggregator.seen[0][0]["content"].endswith(
        "\n1. generations\n2. statistics\n3. generations\n4. statistics"
    )
    assert inputs == [[{"role": "user", "content": "what is up"}]]  # not modified


def test_moa_rounds_feed_the_previous_round() -> None:
    original = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "q"}]
    llm, proposers, aggregator = moa(rs, rs.AsyncLLM, rounds=2)
    llm.generate([original])
    first_round, second_round = proposers[0].seen[0], proposers[0].seen[1]
    assert first_round == original
    assert second_round[0]["content"] == (
        f"{rs.moa.MOA_SYSTEM_PROMPT}\n1. alpha: q\n2. beta: q\n\nbe nice"
    )
    assert aggregator.seen[0][0]["content"] == second_round[0]["content"]
    assert original[0]["content"] == "be nice"


def test_moa_mixes_native_python_and_distilabel_members() -> None:
    server = _core.MockServer(record=True)
    try:
        native = rs.OpenAILLM(model="native", base_url=server.base_url, api_key=KEY)
        python_member = recording_llm(rs.AsyncLLM, "python")()
        distilabel_member = recording_llm(dl.AsyncLLM, "classic")()
        aggregator = recording_llm(rs.AsyncLLM, "agg")()
        llm = rs.MixtureOfAgentsLLM(
            aggregator_llm=aggregator,
            proposers_llms=[native, python_member, distilabel_member],
        )
        llm.load()
        outputs = llm.generate(
            [CHAT, CHAT2],
            num_generations=2,
            proposers_llms=[{"max_new_tokens": 5}, {}, {}],
        )
    finally:
        server.stop()
    assert [o["generations"] for o in outputs] == [
        ["agg: hello there"] * 2,
        ["agg: and you"] * 2,
    ]
    assert aggregator.seen[0][0]["content"].endswith(
        "\n1. echo: hello there\n2. python: hello there\n3. classic: hello there"
    )
    bodies = [json.loads(body) for _, body, _ in server.recorded()]
    assert len(bodies) == 2 and {b["max_tokens"] for b in bodies} == {5}
    assert llm.model_name == "moa-agg-native-python-classic"


def test_moa_failures_propagate_or_are_isolated_per_member() -> None:
    llm, proposers, _ = moa(rs, rs.AsyncLLM)
    proposers[1].fail_on = "boom"
    with pytest.raises(RuntimeError, match="beta failed"):
        llm.generate([[{"role": "user", "content": "boom"}]])

    isolated = recording_llm(rs.AsyncLLM, "beta")(fail_on="boom", error_policy="isolate")
    aggregator = recording_llm(rs.AsyncLLM, "agg")()
    llm = rs.MixtureOfAgentsLLM(
        aggregator_llm=aggregator, proposers_llms=[recording_llm(rs.AsyncLLM, "alpha")(), isolated]
    )
    llm.load()
    outputs = llm.generate([[{"role": "user", "content": "boom"}], CHAT])
    assert [o["generations"] for o in outputs] == [["agg: boom"], ["agg: hello there"]]
    # The failed proposal is left out of the prompt.
    assert aggregator.seen[0][0]["content"].endswith("\n1. alpha: boom")


def test_moa_runtime_parameters_dump_load_and_pickle() -> None:
    llm = rs.MixtureOfAgentsLLM(
        aggregator_llm=rs.OpenAILLM(model="agg", api_key=KEY),
        proposers_llms=[rs.OpenAILLM(model="p", api_key=KEY)],
    )
    assert "generation_kwargs" not in llm.runtime_parameters_names
    assert llm.get_generation_kwargs() == {"aggregator_llm": {}, "proposers_llms": [{}]}
    dumped = llm.dump()
    assert dumped["aggregator_llm"]["type_info"]["name"] == "OpenAILLM"
    assert KEY not in json.dumps(dumped)
    # distilabel's quirk (kept): a list of sub-models dumps as {"0": ...}.
    assert list(dumped["proposers_llms"]) == ["0"]
    alone = rs.MixtureOfAgentsLLM(aggregator_llm=rs.OpenAILLM(model="agg"), rounds=3)
    loaded = rs.MixtureOfAgentsLLM.from_dict(json.loads(json.dumps(alone.dump())))
    assert loaded.aggregator_llm.model == "agg" and loaded.rounds == 3
    copy = pickle.loads(pickle.dumps(llm))
    assert copy.aggregator_llm.api_key.get_secret_value() == KEY


# -- dump, load and pickle of every class --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("LiteLLM", {"model": "m", "verbose": True}),
        ("VertexAILLM", {"model": "gemini-pro"}),
        ("CohereLLM", {"model": "m", "api_key": KEY, "timeout": 30}),
    ],
)
def test_dump_load_and_pickle(name: str, kwargs: dict) -> None:
    llm = getattr(rs, name)(**kwargs, max_concurrency=8)
    dumped = llm.dump()
    assert KEY not in json.dumps(dumped) and KEY not in repr(llm)
    loaded = getattr(rs, name).from_dict(json.loads(json.dumps(dumped)))
    assert type(loaded) is type(llm) and loaded.max_concurrency == 8
    copy = pickle.loads(pickle.dumps(llm))
    assert copy.model_dump() == llm.model_dump()
