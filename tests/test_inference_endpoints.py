"""The native `InferenceEndpointsLLM` against the local mock server (TGI's Messages API at
`{base}/v1/chat/completions`, its generate API at `POST {base}`), next to distilabel's
`InferenceEndpointsLLM` on the installed huggingface_hub.

distilabel 1.5.3's generate path passes `stop_sequences=` to `text_generation`, a keyword
huggingface_hub has since renamed to `stop` (with the installed 2.x it is a TypeError,
swallowed into `None` generations): `with_stop_sequences` renames it back, so that the rest
of distilabel's generate path is compared as it was written (test_distilabel_generate_path
_is_broken_with_the_installed_hub shows the unpatched behaviour).
"""

import asyncio
import copy
import json
import logging
import pickle
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Tuple

import pytest
from distilabel.models.llms import InferenceEndpointsLLM as DistilabelInferenceEndpointsLLM
from pydantic import BaseModel, ValidationError

from distilabel_rs import _core
from distilabel_rs.models import InferenceEndpointsLLM as FromModels
from distilabel_rs.models.base_clients import inference_endpoints as base_client
from distilabel_rs.models.llms import InferenceEndpointsLLM
from distilabel_rs.models.llms.huggingface import InferenceEndpointsLLM as FromHuggingface
from distilabel_rs.models.llms.huggingface.inference_endpoints import (
    InferenceEndpointsLLM as FromModule,
)
from tests.conftest import FANOUT_FIELDS, REPO, without_fanout_fields

KEY = "hf_secret-test-token"
CHAT = [{"role": "user", "content": "hello there"}]
SYSTEM_CHAT = [{"role": "system", "content": "be brief"}, *CHAT]
EXTRA_FIELDS = [*FANOUT_FIELDS, "tokens_per_minute"]


@pytest.fixture
def server() -> Any:
    mock = _core.MockServer(record=True)
    yield mock
    mock.stop()


@pytest.fixture
def reference() -> Any:
    mock = _core.MockServer(record=True)
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small tokenizer with a chat template, saved locally (nothing is downloaded)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "<s>", "</s>", "hello", "there", "be", "brief"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    path = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save_pretrained(str(path))
    return str(path)


def tgi_url(server: Any) -> str:
    return f"{server.origin}/tgi"


def ours(server: Any, **kwargs: Any) -> InferenceEndpointsLLM:
    kwargs.setdefault("base_url", tgi_url(server))
    llm = InferenceEndpointsLLM(api_key=KEY, **kwargs)
    llm.load()
    return llm


def with_stop_sequences(llm: Any) -> Any:
    """distilabel's client, with `text_generation` taking `stop_sequences=` (see above)."""
    client = llm._aclient
    original = client.text_generation

    async def text_generation(*args: Any, stop_sequences: Any = None, **kwargs: Any) -> Any:
        return await original(*args, stop=stop_sequences, **kwargs)

    client.text_generation = text_generation
    return llm


def theirs(server: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("base_url", tgi_url(server))
    llm = DistilabelInferenceEndpointsLLM(api_key=KEY, **kwargs)
    llm.load()
    return with_stop_sequences(llm)


def sent(server: Any) -> List[Tuple[Any, ...]]:
    """Every request as (method, path, query, authorization, content type, body without its
    seed), sorted; checks that each carried a random 63-bit seed."""
    requests = []
    for request in server.recorded_requests():
        body = json.loads(request["body"])
        holder = body if "messages" in body else body["parameters"]
        seed = holder.pop("seed")
        assert isinstance(seed, int) and 0 <= seed <= sys.maxsize
        headers = dict(request["headers"])
        requests.append(
            (
                request["method"],
                request["path"],
                request["query"],
                headers["authorization"],
                headers["content-type"],
                body,
            )
        )
    return sorted(requests, key=lambda item: json.dumps(item, sort_keys=True))


TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": None, "parameters": {"type": "object"}},
    }
]


@pytest.mark.parametrize(
    ("inputs", "kwargs"),
    [
        ([CHAT], {}),
        ([CHAT, SYSTEM_CHAT], {"num_generations": 3}),
        (
            [CHAT],
            {
                "logprobs": True,
                "top_logprobs": 2,
                "temperature": 0.2,
                "stop_sequences": ["\n"],
                "frequency_penalty": 0.5,
                "presence_penalty": -1.0,
                "top_p": 0.9,
                "max_new_tokens": 12,
            },
        ),
        (
            [CHAT],
            {"tools": TOOLS, "tool_choice": "auto", "tool_prompt": "use it", "logit_bias": [0.5]},
        ),
        (["complete this"], {}),
        (
            ["a prompt", "another"],
            {
                "num_generations": 2,
                "top_n_tokens": 2,
                "do_sample": True,
                "top_k": 5,
                "typical_p": 0.9,
                "repetition_penalty": 1.1,
                "watermark": True,
                "stop_sequences": ["x"],
                "frequency_penalty": 0.1,
            },
        ),
        (["the prompt"], {"return_full_text": True, "seed": 3}),
    ],
)
def test_outputs_and_requests_match_distilabel(
    inputs: list, kwargs: dict, server: Any, reference: Any
) -> None:
    expected = theirs(reference).generate(inputs, **kwargs)
    got = ours(server).generate(inputs, **kwargs)
    assert got == expected
    assert sent(server) == sent(reference)
    assert len(sent(server)) == len(inputs) * kwargs.get("num_generations", 1)


def test_both_apis_and_their_urls(server: Any) -> None:
    llm = ours(server, base_url=server.origin)  # TGI at the root, as a TGI server is
    # (One call per API: distilabel's grouping takes extra keys such as `logprobs` from the
    # first output of a call.)
    [chat] = llm.generate([CHAT], top_n_tokens=1)
    [prompt] = llm.generate(["complete"], top_n_tokens=1)
    assert chat == {
        "generations": ["echo: hello there"],
        "statistics": {"input_tokens": [2], "output_tokens": [3]},
    }
    assert prompt["generations"] == ["echo: complete"]
    # No tokenizer: the prompt's tokens are unknown (-1), as distilabel reports them.
    assert prompt["statistics"] == {"input_tokens": [-1], "output_tokens": [2]}
    assert prompt["logprobs"] == [
        [[{"token": "echo:", "logprob": -0.1}], [{"token": "complete", "logprob": -0.1}]]
    ]
    paths = sorted(r["path"] for r in server.recorded_requests())
    assert paths == ["/", "/v1/chat/completions"]


def test_a_random_seed_per_request_unless_given(server: Any) -> None:
    llm = ours(server)
    llm.generate([CHAT, "p"], num_generations=3)
    bodies = [json.loads(body) for _, body, _ in server.recorded()]
    seeds = [b["seed"] if "messages" in b else b["parameters"]["seed"] for b in bodies]
    assert len(set(seeds)) == 6
    llm.generate([CHAT, "p"], seed=11)
    bodies = [json.loads(body) for _, body, _ in server.recorded()][6:]
    assert [b["seed"] if "messages" in b else b["parameters"]["seed"] for b in bodies] == [11, 11]


class Person(BaseModel):
    name: str
    age: int


def test_tokenizer_chat_template_and_magpie_match_distilabel(
    tokenizer_dir: str, server: Any, reference: Any
) -> None:
    kwargs = {"tokenizer_id": tokenizer_dir}
    expected = theirs(reference, **kwargs).generate([CHAT, SYSTEM_CHAT], top_n_tokens=2)
    got = ours(server, **kwargs).generate([CHAT, SYSTEM_CHAT], top_n_tokens=2)
    assert got == expected
    assert got[0]["statistics"]["input_tokens"] == [8]  # counted by the tokenizer
    assert sent(server) == sent(reference)
    body = json.loads(server.recorded()[0][1])
    assert body["inputs"].startswith("<|") and body["inputs"].endswith("<|assistant|>")

    magpie = {**kwargs, "use_magpie_template": True, "magpie_pre_query_template": "llama3"}
    question = [{"role": "system", "content": "you answer"}]
    assert ours(server, **magpie).generate([question]) == theirs(reference, **magpie).generate(
        [question]
    )
    assert sent(server) == sent(reference)
    magpie_body = json.loads(server.recorded()[-1][1])
    assert magpie_body["inputs"].endswith("<|start_header_id|>user<|end_header_id|>\n\n")


@pytest.mark.parametrize(
    "structured_output",
    [
        {"format": "json", "schema": Person.model_json_schema()},
        {"format": "json", "schema": Person},
        {"format": "regex", "schema": r"\d+"},
    ],
)
def test_structured_output_is_sent_as_grammar_like_distilabel(
    structured_output: dict, tokenizer_dir: str, server: Any, reference: Any
) -> None:
    kwargs = {"tokenizer_id": tokenizer_dir, "structured_output": structured_output}
    per_input = (
        [{"role": "user", "content": "[[content=42]] n?"}],
        {"format": "regex", "schema": "4."},
    )
    inputs = [CHAT, per_input]
    expected = theirs(reference, **kwargs).generate(inputs)
    got = ours(server, **kwargs).generate(inputs)
    assert got == expected
    assert got[1]["generations"] == ["42"]
    assert sent(server) == sent(reference)
    grammars = sorted(
        (json.loads(body)["parameters"]["grammar"] for _, body, _ in server.recorded()),
        key=json.dumps,
    )
    schema = structured_output["schema"]
    if schema is Person:
        schema = Person.model_json_schema()
    assert grammars == sorted(
        [{"type": structured_output["format"], "value": schema}, {"type": "regex", "value": "4."}],
        key=json.dumps,
    )


def test_structured_output_on_the_messages_api(server: Any) -> None:
    # distilabel 1.5.3 drops `structured_output` without a tokenizer (and sends a per-input
    # one as a malformed conversation); TGI's Messages API takes it as `response_format`.
    llm = ours(server, structured_output={"format": "json", "schema": Person})
    content = '[[content={"name":"Ada","age":36}]] who?'
    out = llm.generate(
        [[{"role": "user", "content": content}], (CHAT, {"format": "regex", "schema": "a+"})]
    )
    assert json.loads(out[0]["generations"][0]) == {"name": "Ada", "age": 36}
    formats = [json.loads(body)["response_format"] for _, body, _ in server.recorded()]
    assert sorted(formats, key=json.dumps) == sorted(
        [{"type": "json", "value": Person.model_json_schema()}, {"type": "regex", "value": "a+"}],
        key=json.dumps,
    )
    bodies = [json.loads(body) for _, body, _ in server.recorded()]
    assert all(
        isinstance(b["messages"], list) and b["messages"][0]["role"] == "user" for b in bodies
    )


def test_structured_output_without_format_fails_like_distilabel(
    tokenizer_dir: str, server: Any, reference: Any
) -> None:
    kwargs = {"tokenizer_id": tokenizer_dir, "structured_output": {"schema": Person}}
    with pytest.raises(ValueError) as expected:
        theirs(reference, **kwargs).generate([CHAT])
    with pytest.raises(ValueError) as got:
        ours(server, **kwargs).generate([CHAT])
    assert str(got.value) == str(expected.value)
    assert server.requests == 0


def test_too_many_stop_sequences_warn_and_are_cut_like_distilabel(
    server: Any, reference: Any
) -> None:
    stops = ["a", "b", "c", "d", "e"]
    with pytest.warns(UserWarning, match="Only up to 4 stop sequences"):
        expected = theirs(reference).generate([CHAT], stop_sequences=stops)
    with pytest.warns(UserWarning, match="Only up to 4 stop sequences"):
        got = ours(server).generate([CHAT], stop_sequences=stops)
    assert got == expected
    assert sent(server) == sent(reference)
    assert sent(server)[0][-1]["stop"] == ["a", "b", "c", "d"]


def test_distilabel_generate_path_is_broken_with_the_installed_hub(
    server: Any, reference: Any
) -> None:
    # Unpatched, distilabel's `stop_sequences=` is a TypeError in huggingface_hub 2.x,
    # swallowed into a `None` generation before anything is sent; ours sends the request.
    llm = DistilabelInferenceEndpointsLLM(base_url=tgi_url(reference), api_key=KEY)
    llm.load()
    assert llm.generate(["a prompt"])[0]["generations"] == [None]
    assert reference.requests == 0
    assert ours(server).generate(["a prompt"])[0]["generations"] == ["echo: a prompt"]


# ---- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "kwargs"),
    [
        ([CHAT], {"frequency_penalty": 3.0}),
        ([CHAT], {"top_n_tokens": 0}),
        ([CHAT], {"temperature": "hot"}),
        ([CHAT], {"tool_choice": "none"}),
        ([CHAT], {"bogus": 1}),
        ([123], {}),
        ([CHAT, "fine", [{"role": "user"}]], {}),  # the third input is invalid
    ],
)
def test_generation_parameter_errors_match_distilabel(
    inputs: list, kwargs: dict, server: Any
) -> None:
    with pytest.raises(ValidationError) as expected:
        theirs(server).generate(inputs, **kwargs)
    with pytest.raises(ValidationError) as got:
        ours(server).generate(inputs, **kwargs)
    assert str(got.value) == str(expected.value)
    assert server.requests == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "http://x", "use_magpie_template": True, "magpie_pre_query_template": "qwen2"},
        {"base_url": "http://x", "tokenizer_id": "t", "use_magpie_template": True},
    ],
)
def test_constructor_errors_match_distilabel(kwargs: dict) -> None:
    with pytest.raises(ValidationError) as expected:
        DistilabelInferenceEndpointsLLM(**kwargs)
    with pytest.raises(ValidationError) as got:
        InferenceEndpointsLLM(**kwargs)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"model_id": "m", "endpoint_name": "e"},
        {"model_id": "m", "endpoint_name": "e", "base_url": "http://x"},
    ],
)
def test_exclusivity_errors_name_the_fields(kwargs: dict) -> None:
    # distilabel 1.5.3 means to raise this message but builds a pydantic `ValidationError`
    # by hand, which is a TypeError ("ValidationError.__new__() missing ... line_errors"),
    # unless its `base_url` warning fails first (AttributeError on its unset logger).
    with pytest.raises((TypeError, AttributeError), match="line_errors|warning"):
        DistilabelInferenceEndpointsLLM(**kwargs)
    with pytest.raises(ValidationError) as got:
        InferenceEndpointsLLM(**kwargs)
    message = str(got.value)
    assert "Only one of `model_id` or `endpoint_name` must be provided." in message
    found = f"`model_id`={kwargs.get('model_id')}, `endpoint_name`={kwargs.get('endpoint_name')}"
    assert f"Found {found}" in message


def test_base_url_with_model_id_warns(caplog: pytest.LogCaptureFixture) -> None:
    # distilabel 1.5.3 logs through `self._logger`, still `None` during validation
    # (AttributeError); ours logs the warning distilabel means.
    with pytest.raises(AttributeError):
        DistilabelInferenceEndpointsLLM(base_url="http://x", model_id="org/m")
    with caplog.at_level(logging.WARNING):
        llm = InferenceEndpointsLLM(base_url="http://x", model_id="org/m")
    assert llm.model_id == "org/m"
    assert "the `base_url` will either be ignored or overwritten" in caplog.text


def test_model_id_with_structured_output_uses_its_tokenizer() -> None:
    so = {"format": "json", "schema": {"type": "object"}}
    mine = InferenceEndpointsLLM(model_id="org/m", structured_output=so)
    reference = DistilabelInferenceEndpointsLLM(model_id="org/m", structured_output=so)
    assert mine.tokenizer_id == reference.tokenizer_id == "org/m"


# ---- fields, dump, keys --------------------------------------------------------------------


def test_paths_fields_runtime_parameters_and_dump_match_distilabel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert InferenceEndpointsLLM is FromModels is FromHuggingface is FromModule
    assert InferenceEndpointsLLM.__module__ == (
        "distilabel_rs.models.llms.huggingface.inference_endpoints"
    )
    monkeypatch.setenv("HF_TOKEN", KEY)
    fields = [f for f in InferenceEndpointsLLM.model_fields if f not in EXTRA_FIELDS]
    assert fields == list(DistilabelInferenceEndpointsLLM.model_fields)
    for name, field in DistilabelInferenceEndpointsLLM.model_fields.items():
        mine_field = InferenceEndpointsLLM.model_fields[name]
        assert mine_field.description == field.description, name
        assert mine_field.default == field.default, name
    mine = InferenceEndpointsLLM(base_url="http://tgi:8080")
    reference = DistilabelInferenceEndpointsLLM(base_url="http://tgi:8080")
    assert mine.api_key.get_secret_value() == KEY
    assert mine.model_name == reference.model_name == "http://tgi:8080"
    names = {k: v for k, v in mine.runtime_parameters_names.items() if k not in EXTRA_FIELDS}
    assert names == reference.runtime_parameters_names
    info = [i for i in mine.get_runtime_parameters_info() if i["name"] not in EXTRA_FIELDS]
    assert info == reference.get_runtime_parameters_info()
    dumped = without_fanout_fields(mine.dump())
    del dumped["tokens_per_minute"]
    expected = reference.dump()
    assert {k: v for k, v in dumped.items() if k != "type_info"} == {
        k: v for k, v in expected.items() if k != "type_info"
    }
    assert dumped["type_info"] == {
        "module": "distilabel_rs.models.llms.huggingface.inference_endpoints",
        "name": "InferenceEndpointsLLM",
    }
    assert "api_key" not in mine.dump()
    assert KEY not in repr(mine) and KEY not in str(mine.dump())
    # distilabel's failures are `None` generations: so are ours by default.
    assert mine.error_policy == "isolate"
    assert InferenceEndpointsLLM(base_url="x", error_policy="raise").error_policy == "raise"


def test_key_from_the_token_file_or_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
    with pytest.raises(ValueError) as expected:
        DistilabelInferenceEndpointsLLM(base_url="http://x").load()
    with pytest.raises(ValueError) as got:
        InferenceEndpointsLLM(base_url="http://x").load()
    assert str(got.value) == str(expected.value)
    (tmp_path / "token").write_text(f"{KEY}\n")
    llm = InferenceEndpointsLLM(base_url="http://x")
    llm.load()
    assert llm.api_key.get_secret_value() == KEY
    other = tmp_path / "elsewhere"
    other.write_text("hf_other")
    monkeypatch.setenv("HF_TOKEN_PATH", str(other))
    llm = InferenceEndpointsLLM(base_url="http://x")
    llm.load()
    assert llm.api_key.get_secret_value() == "hf_other"


def test_used_llm_pickles_and_deep_copies(tokenizer_dir: str, server: Any) -> None:
    for kwargs in ({}, {"tokenizer_id": tokenizer_dir}):
        llm = ours(server, **kwargs)
        first = llm.generate([CHAT])
        for clone in (pickle.loads(pickle.dumps(llm)), copy.deepcopy(llm)):
            assert KEY not in repr(clone)
            clone.load()
            assert clone.generate([CHAT]) == first
        llm.unload()
        pickle.loads(pickle.dumps(llm))


def test_key_never_in_errors(server: Any) -> None:
    llm = ours(server, error_policy="raise")
    with pytest.raises(_core.APIStatusError) as info:
        llm.generate([[{"role": "user", "content": "[[status=401]] who"}]])
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    out = ours(server).generate([[{"role": "user", "content": "[[status=401]] who"}]])
    assert KEY not in json.dumps(out)


# ---- retries and failures ------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("text", [False, True])
def test_429_and_503_are_retried_honouring_retry_after(
    status: int, text: bool, server: Any, reference: Any
) -> None:
    content = f"[[status={status} times=2 retry_after=0.3]] hi"
    item: Any = content if text else [{"role": "user", "content": content}]
    started = time.monotonic()
    out = ours(server, retry_backoff_base=30.0, retry_backoff_max=30.0).generate([item])
    waited = time.monotonic() - started
    # Twice the 0.3 s the server asked for, not the backoff (up to 30 s each).
    assert 0.6 <= waited < 20
    assert out[0]["generations"] == [f"echo: {content}"]
    assert server.requests == 3
    # huggingface_hub 2.x does not retry: distilabel returns `None`.
    assert theirs(reference).generate([item])[0]["generations"] == [None]


@pytest.mark.parametrize("text", [False, True])
def test_failures_become_none_generations_like_distilabel(
    text: bool, server: Any, reference: Any, caplog: pytest.LogCaptureFixture
) -> None:
    content = "[[status=400]] bad request"
    item: Any = content if text else [{"role": "user", "content": content}]
    inputs = [CHAT, item]
    expected = theirs(reference).generate(inputs)
    with caplog.at_level(logging.WARNING):
        got = ours(server).generate(inputs)
    assert got[0] == expected[0]
    assert got[1]["generations"] == expected[1]["generations"] == [None]
    assert got[1]["error"] == ["APIStatusError: Error code: 400 - Scripted failure with status 400"]
    # The statistics of a failed request: distilabel reports empty lists (chat) or -1 and 0
    # (generate); here `None` per statistic, aligned with the generations (the
    # `error_policy="isolate"` rule of every AsyncLLM).
    assert got[1]["statistics"] == {"input_tokens": [None], "output_tokens": [None]}
    assert expected[1]["statistics"] == (
        {"input_tokens": [-1], "output_tokens": [0]}
        if text
        else {"input_tokens": [], "output_tokens": []}
    )
    assert (
        "⚠️ Received no response using Inference Client (model: "
        f"'{tgi_url(server)}'). Finish reason was: Error code: 400" in caplog.text
    )
    assert server.requests == 2  # a 400 is not retried


def test_failed_generations_stay_aligned(server: Any) -> None:
    llm = ours(server, max_request_retries=0)
    out = llm.generate(
        [[{"role": "user", "content": "[[status=500 times=1]] flaky"}]], num_generations=2
    )
    assert sorted(out[0]["generations"], key=str) == [None, "echo: [[status=500 times=1]] flaky"]
    assert len(out[0]["statistics"]["input_tokens"]) == 2
    assert out[0]["error"].count(None) == 1


@pytest.mark.parametrize("directive", ["malformed", "truncated"])
def test_malformed_answers_become_none_generations(directive: str, server: Any) -> None:
    for item in ([{"role": "user", "content": f"[[{directive}]] x"}], f"[[{directive}]] x"):
        out = ours(server).generate([item])
        assert out[0]["generations"] == [None]
        assert out[0]["error"][0].startswith("APIResponseValidationError: Invalid response")


def test_raise_policy_raises(server: Any) -> None:
    llm = ours(server, error_policy="raise", max_request_retries=0)
    with pytest.raises(_core.RateLimitError):
        llm.generate([[{"role": "user", "content": "[[status=429]] x"}]])
    with pytest.raises(_core.APIStatusError, match="Scripted failure with status 422"):
        llm.generate(["[[status=422]] x"])


def test_agenerate_and_async_batches(server: Any) -> None:
    llm = ours(server)

    async def main() -> Any:
        one = await llm.agenerate(input=CHAT)
        many = await llm._agenerate([CHAT, "p"], num_generations=2)
        return one, many

    one, many = asyncio.run(main())
    assert one["generations"] == ["echo: hello there"]
    # One request is one generation, failed or not (as distilabel's `agenerate`).
    failed = asyncio.run(
        llm.agenerate(input=[{"role": "user", "content": "[[status=400]] x"}], num_generations=3)
    )
    assert failed["generations"] == [None]
    assert many[0]["generations"] == ["echo: hello there"] * 2
    assert many[1]["statistics"]["input_tokens"] == [-1, -1]


# ---- model_id and endpoint_name ----------------------------------------------------------


def fake_model_info(mappings: List[Dict[str, str]]) -> Any:
    calls: List[Any] = []

    def model_info(model_id: str, **kwargs: Any) -> Any:
        calls.append((model_id, kwargs))
        return SimpleNamespace(
            id=model_id,
            inference_provider_mapping=[SimpleNamespace(**m) for m in mappings],
        )

    model_info.calls = calls  # type: ignore[attr-defined]
    return model_info


def test_model_id_goes_through_the_router(monkeypatch: pytest.MonkeyPatch, server: Any) -> None:
    import huggingface_hub

    info = fake_model_info(
        [
            {"provider": "together", "status": "live", "task": "conversational"},
            {"provider": "hf-inference", "status": "live", "task": "text-generation"},
        ]
    )
    monkeypatch.setattr(huggingface_hub, "model_info", info)
    monkeypatch.setattr(base_client, "HF_ROUTER_URL", server.origin)
    llm = InferenceEndpointsLLM(model_id="org/model", api_key=KEY)
    llm.load()
    assert info.calls == [("org/model", {"expand": ["inferenceProviderMapping"], "token": KEY})]
    assert llm.base_url == f"{server.origin}/hf-inference/models/org/model"
    assert llm.model_name == "org/model"
    chat, prompt = llm.generate([CHAT, "complete"])
    assert chat["generations"] == ["echo: hello there"]
    assert prompt["generations"] == ["echo: complete"]
    requests = {r["path"]: json.loads(r["body"]) for r in server.recorded_requests()}
    assert requests["/v1/chat/completions"]["model"] == "org/model"
    assert "inputs" in requests["/hf-inference/models/org/model"]


def test_model_id_not_served_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.setattr(
        huggingface_hub,
        "model_info",
        fake_model_info([{"provider": "x", "status": "error", "task": "conversational"}]),
    )
    with pytest.raises(ValueError, match="Model org/m is not currently deployed"):
        InferenceEndpointsLLM(model_id="org/m", api_key=KEY).load()
    monkeypatch.setattr(
        huggingface_hub,
        "model_info",
        fake_model_info([{"provider": "together", "status": "live", "task": "conversational"}]),
    )
    llm = InferenceEndpointsLLM(model_id="org/m", api_key=KEY, tokenizer_id="org/m")
    with pytest.raises(ValueError, match="not served by HF Inference for text generation"):
        llm.load()


def test_distilabel_model_id_is_broken_with_the_installed_hub() -> None:
    llm = DistilabelInferenceEndpointsLLM(model_id="org/m", api_key=KEY)
    with pytest.raises(AttributeError, match="get_model_status"):
        llm.load()


@pytest.mark.parametrize("status", ["paused", "scaledToZero", "initializing", "running"])
def test_endpoint_name_is_resumed_and_resolved(
    status: str, monkeypatch: pytest.MonkeyPatch, server: Any
) -> None:
    import huggingface_hub

    calls: List[Any] = []

    class Endpoint:
        def __init__(self) -> None:
            self.status = status
            self.url = tgi_url(server)
            self.repository = "org/served-model"

        def resume(self) -> "Endpoint":
            calls.append("resume")
            return self

        def wait(self, timeout: int) -> "Endpoint":
            calls.append(("wait", timeout))
            return self

    def get_inference_endpoint(**kwargs: Any) -> Endpoint:
        calls.append(kwargs)
        return Endpoint()

    monkeypatch.setattr(huggingface_hub, "get_inference_endpoint", get_inference_endpoint)
    llm = InferenceEndpointsLLM(endpoint_name="my-endpoint", endpoint_namespace="org", api_key=KEY)
    llm.load()
    expected_calls: List[Any] = [{"name": "my-endpoint", "namespace": "org", "token": KEY}]
    if status in ("paused", "scaledToZero"):
        expected_calls += ["resume", ("wait", 300)]
    elif status == "initializing":
        expected_calls += [("wait", 300)]
    assert calls == expected_calls
    assert llm.base_url == tgi_url(server)
    assert llm.model_name == "org/served-model"
    assert llm.generate([CHAT])[0]["generations"] == ["echo: hello there"]
    body = json.loads(server.recorded()[0][1])
    assert body["model"] == "dummy"


# ---- the command ---------------------------------------------------------------------------


def test_the_command_speaks_tgi(tmp_path: Path) -> None:
    import os
    import subprocess

    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hello"}]})
        + "\n"
        + json.dumps({"prompt": "complete me", "max_tokens": 5, "seed": 4})
        + "\n"
    )
    output = tmp_path / "out.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "distilabel_rs",
            "generate",
            str(source),
            "-o",
            str(output),
            "--model",
            "org/model",
            "--provider",
            "inference-endpoints",
            "--mock",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "DISTILABEL_RS_STANDALONE": "1"},
    )
    assert result.returncode == 0, result.stderr
    lines = {line["custom_id"]: line for line in map(json.loads, output.read_text().splitlines())}
    chat = lines["1"]["response"]["body"]
    assert chat["choices"][0]["message"]["content"] == "echo: hello"
    generated = lines["2"]["response"]["body"]
    # `prompt` became `inputs`, `seed` a parameter, and `details` was asked for.
    assert generated[0]["generated_text"] == "echo: complete me"
    assert generated[0]["details"]["seed"] == 4
    assert generated[0]["details"]["generated_tokens"] == 3
