"""The OpenAI-compatible family on the provider seam — `AzureOpenAILLM`, `TogetherLLM`,
`AnyscaleLLM`, `GroqLLM`, `ClientvLLM`, `MistralLLM` — next to distilabel's classes, against
the same local mock server: URLs, query strings, headers, request bodies, outputs, errors,
fields, and offline batch generation where the provider has an OpenAI-format Batch API."""

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import distilabel.models.llms as dl
import pytest
from pydantic import ValidationError

import distilabel_rs.models.llms as rs
from distilabel_rs import _core
from distilabel_rs.exceptions import DistilabelOfflineBatchGenerationNotFinishedException
from tests.conftest import FANOUT_FIELDS

KEY = "sk-compatible-secret"
CHAT = [{"role": "user", "content": "hello there"}]
SYSTEM_CHAT = [{"role": "system", "content": "be brief"}, *CHAT]
OURS_ONLY = {*FANOUT_FIELDS, "tokens_per_minute"}


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


def requests_of(server: Any) -> List[Dict[str, Any]]:
    """What the server received, comparable across clients: method, path, query, the
    headers that carry meaning, and the JSON body; sorted (clients may reorder)."""
    meaningful = {"api-key", "authorization"}
    requests = [
        {
            "method": r["method"],
            "path": r["path"],
            "query": r["query"],
            "headers": sorted((k, v) for k, v in r["headers"] if k in meaningful),
            "body": json.loads(r["body"]) if r["body"] else None,
        }
        for r in server.recorded_requests()
    ]
    return sorted(requests, key=lambda r: json.dumps(r, sort_keys=True))


def same_fields(ours: type, theirs: type, **kwargs: Any) -> None:
    """Field names (in order), descriptions, defaults and runtime parameters as distilabel's,
    ignoring the fields distilabel_rs adds."""
    assert [f for f in ours.model_fields if f not in OURS_ONLY] == list(theirs.model_fields)
    for name, field in theirs.model_fields.items():
        mine = ours.model_fields[name]
        assert mine.description == field.description, name
        assert mine.get_default(call_default_factory=True) == field.get_default(
            call_default_factory=True
        ), name
    mine, their = ours(**kwargs), theirs(**kwargs)
    names = {k: v for k, v in mine.runtime_parameters_names.items() if k not in OURS_ONLY}
    assert names == their.runtime_parameters_names
    info = [i for i in mine.get_runtime_parameters_info() if i["name"] not in OURS_ONLY]
    assert info == their.get_runtime_parameters_info()
    assert "api_key" not in mine.dump()


# ---- AzureOpenAILLM ----------------------------------------------------------------------


def azure_pair(server: Any, reference: Any, **kwargs: Any) -> Tuple[Any, Any]:
    import distilabel.models
    import distilabel.models.llms.openai

    # distilabel 1.5.3's `load()` patches `distilabel.models.openai…`, a module path that does
    # not exist (it fails with AttributeError, issues #1125/#1130): give it the path, so that
    # its request path can serve as the oracle. Ours needs nothing of the sort.
    distilabel.models.openai = distilabel.models.llms.openai  # type: ignore[attr-defined]
    common = {"model": "my-deployment", "api_key": KEY, "api_version": "2024-10-21", **kwargs}
    theirs = dl.AzureOpenAILLM(base_url=reference.origin, **common)
    theirs.load()
    ours = rs.AzureOpenAILLM(base_url=server.origin, **common)
    ours.load()
    return ours, theirs


@pytest.mark.parametrize(
    ("inputs", "kwargs"),
    [
        ([CHAT], {}),
        ([CHAT, SYSTEM_CHAT], {"num_generations": 2, "temperature": 0.3, "stop": ["\n"]}),
        ([CHAT], {"logprobs": True, "top_logprobs": 2}),
        (["complete this"], {"max_new_tokens": 5}),
    ],
)
def test_azure_requests_and_outputs_match_distilabel(
    server: Any, reference: Any, inputs: list, kwargs: dict
) -> None:
    ours, theirs = azure_pair(server, reference)
    assert ours.generate(inputs, **kwargs) == theirs.generate(inputs, **kwargs)
    got, expected = requests_of(server), requests_of(reference)
    assert got == expected
    assert got[0]["path"].startswith("/openai/deployments/my-deployment/")
    assert got[0]["query"] == "api-version=2024-10-21"
    assert got[0]["headers"] == [("api-key", KEY)]


def test_azure_fields_and_load_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "OPENAI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    same_fields(rs.AzureOpenAILLM, dl.AzureOpenAILLM, model="d")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
    with pytest.raises(ValueError, match="`AZURE_OPENAI_API_KEY`"):
        rs.AzureOpenAILLM(model="d").load()
    monkeypatch.delenv("OPENAI_API_VERSION")
    with pytest.raises(ValueError, match="`OPENAI_API_VERSION`"):
        rs.AzureOpenAILLM(model="d", api_key="k").load()


def test_azure_offline_batch_uses_the_global_batch_api(server: Any) -> None:
    llm = rs.AzureOpenAILLM(
        model="my-deployment",
        base_url=server.origin,
        api_key=KEY,
        api_version="2024-10-21",
        use_offline_batch_generation=True,
        offline_batch_generation_block_until_done=0,
    )
    llm.load()
    outputs = llm.generate_outputs(inputs=[CHAT, SYSTEM_CHAT], num_generations=2)
    assert [o["generations"] for o in outputs] == [["echo: hello there"] * 2] * 2
    recorded = server.recorded_requests()
    paths = [r["path"] for r in recorded]
    assert paths[:4] == [
        "/openai/files",
        "/openai/files/file_0",
        "/openai/files/file_0",
        "/openai/batches",
    ]
    assert all(r["query"] == "api-version=2024-10-21" for r in recorded)
    created = json.loads(recorded[3]["body"])
    assert created["endpoint"] == "/chat/completions"
    assert '"url":"/chat/completions"' in recorded[0]["body"]
    assert '"model":"my-deployment"' in recorded[0]["body"]


# ---- TogetherLLM and AnyscaleLLM ----------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs", "path", "env"),
    [
        (rs.TogetherLLM, dl.TogetherLLM, "/together/v1", "TOGETHER"),
        (rs.AnyscaleLLM, dl.AnyscaleLLM, "/v1", "ANYSCALE"),
    ],
)
def test_together_and_anyscale_match_distilabel(
    server: Any,
    reference: Any,
    ours: type,
    theirs: type,
    path: str,
    env: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(f"{env}_BASE_URL", raising=False)
    monkeypatch.delenv(f"{env}_API_KEY", raising=False)
    same_fields(ours, theirs, model="m")
    monkeypatch.setenv(f"{env}_API_KEY", KEY)
    monkeypatch.setenv(f"{env}_BASE_URL", server.origin + path)
    mine = ours(model="m")
    mine.load()
    monkeypatch.setenv(f"{env}_BASE_URL", reference.origin + path)
    their = theirs(model="m")
    their.load()
    inputs = [CHAT, SYSTEM_CHAT]
    # Under /together/ the mock answers with Together's `finish_reason: "eos"`.
    assert mine.generate(inputs, num_generations=2) == their.generate(inputs, num_generations=2)
    assert requests_of(server) == requests_of(reference)
    assert requests_of(server)[0]["headers"] == [("authorization", f"Bearer {KEY}")]
    # Neither API runs OpenAI-format batch jobs: a clear error, nothing sent.
    requests = server.requests
    with pytest.raises(ValueError, match="has no batch API"):
        mine.offline_batch_generate(inputs)
    assert server.requests == requests


# ---- GroqLLM ---------------------------------------------------------------------------


def groq_pair(server: Any, reference: Any, **kwargs: Any) -> Tuple[Any, Any]:
    ours = rs.GroqLLM(model="llama", base_url=server.origin, api_key=KEY, **kwargs)
    ours.load()
    theirs = dl.GroqLLM(model="llama", base_url=reference.origin, api_key=KEY, **kwargs)
    theirs.load()
    return ours, theirs


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"num_generations": 3, "seed": 7, "stop": "\n", "temperature": 0.2, "max_new_tokens": 9}],
)
def test_groq_matches_distilabel(server: Any, reference: Any, kwargs: dict) -> None:
    ours, theirs = groq_pair(server, reference)
    inputs = [CHAT, SYSTEM_CHAT]
    got = ours.generate(inputs, **kwargs)
    assert got == theirs.generate(inputs, **kwargs)
    # No `n` at Groq: one request per generation, grouped per input (statistics per call).
    n = kwargs.get("num_generations", 1)
    assert got[0]["statistics"]["input_tokens"] == [got[0]["statistics"]["input_tokens"][0]] * n
    assert requests_of(server) == requests_of(reference)
    assert all(r["path"] == "/openai/v1/chat/completions" for r in requests_of(server))
    assert server.requests == 2 * n


def test_groq_fields_and_validation_match_distilabel(
    server: Any, reference: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GROQ_BASE_URL", raising=False)
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    same_fields(rs.GroqLLM, dl.GroqLLM, model="m")
    ours, theirs = groq_pair(server, reference)
    for bad in ({"seed": "x"}, {"stop": ["a", "b"]}, {"bogus": 1}):
        with pytest.raises(ValidationError) as expected:
            theirs.generate([CHAT], **bad)
        with pytest.raises(ValidationError) as got:
            ours.generate([CHAT], **bad)
        assert str(got.value) == str(expected.value)
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    with pytest.raises(ValueError) as got_error:
        rs.GroqLLM(model="m").load()
    with pytest.raises(ValueError) as expected_error:
        dl.GroqLLM(model="m").load()
    assert str(got_error.value) == str(expected_error.value)


def test_groq_retries_and_isolates_per_generation(server: Any) -> None:
    llm = rs.GroqLLM(
        model="llama", base_url=server.origin, api_key=KEY, max_retries=0, error_policy="isolate"
    )
    llm.load()
    broken = [{"role": "user", "content": "[[status=500]] broken"}]
    out = llm.generate([CHAT, broken], num_generations=2)
    assert out[0]["generations"] == ["echo: hello there"] * 2
    assert out[1]["generations"] == [None, None]
    assert (
        out[1]["error"]
        == ["APIStatusError: Error code: 500 - Scripted failure with status 500"] * 2
    )


def test_groq_offline_batch_with_several_generations(server: Any) -> None:
    llm = rs.GroqLLM(model="llama", base_url=server.origin, api_key=KEY)
    llm.load()
    with pytest.raises(DistilabelOfflineBatchGenerationNotFinishedException):
        llm.offline_batch_generate([CHAT, SYSTEM_CHAT], num_generations=2, temperature=0.5)
    jobs_ids = llm.jobs_ids
    upload = server.recorded_requests()[0]
    assert upload["path"] == "/openai/v1/files"
    rows = [json.loads(line) for line in upload["body"].splitlines() if line.startswith("{")]
    assert [row["custom_id"] for row in rows] == ["0-0", "0-1", "1-0", "1-1"]
    assert all("n" not in row["body"] and row["body"]["temperature"] == 0.5 for row in rows)
    # Collected from the job ids alone, by a new object.
    fresh = rs.GroqLLM(model="llama", base_url=server.origin, api_key=KEY, jobs_ids=jobs_ids)
    fresh.load()
    outputs = None
    for _ in range(10):
        try:
            outputs = fresh.offline_batch_generate(num_generations=2)
            break
        except DistilabelOfflineBatchGenerationNotFinishedException:
            continue
    assert outputs is not None and len(outputs) == 2
    assert outputs[0]["generations"] == ["echo: hello there"] * 2
    assert len(outputs[1]["statistics"]["input_tokens"]) == 2


# ---- MistralLLM --------------------------------------------------------------------------


def test_mistral_matches_distilabel_where_distilabel_works(
    server: Any, reference: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    same_fields(rs.MistralLLM, dl.MistralLLM, model="m")
    from mistralai import Mistral

    theirs = dl.MistralLLM(model="mistral-small", api_key=KEY)
    # distilabel 1.5.3's load() fails with mistralai >= 1.0 (it passes `endpoint=`); its
    # request path is used as the oracle with a client built the way mistralai 1.x wants.
    with pytest.raises(TypeError, match="endpoint"):
        theirs.load()
    theirs._aclient = Mistral(api_key=KEY, server_url=reference.origin)
    ours = rs.MistralLLM(model="mistral-small", api_key=KEY, endpoint=server.origin)
    ours.load()
    for kwargs in ({}, {"max_new_tokens": 5, "temperature": 0.3, "top_p": 0.9}):
        assert ours.generate([CHAT], num_generations=2, **kwargs) == theirs.generate(
            [CHAT], num_generations=2, **kwargs
        )
    got, expected = requests_of(server), requests_of(reference)
    assert [r["body"] for r in got] == [r["body"] for r in expected]
    assert all(r["path"] == "/v1/chat/completions" for r in got + expected)
    assert got[0]["headers"] == [("authorization", f"Bearer {KEY}")]


def test_mistral_concurrency_is_capped_by_max_concurrent_requests(server: Any) -> None:
    llm = rs.MistralLLM(model="m", api_key=KEY, endpoint=server.origin, max_concurrent_requests=3)
    llm.load()
    inputs = [[{"role": "user", "content": f"[[sleep_ms=100]] {i}"}] for i in range(12)]
    assert len(llm.generate(inputs)) == 12
    assert server.peak_in_flight == 3


# ---- ClientvLLM --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny tokenizer with a chat template, built here (nothing downloaded)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "user", "assistant", "system", "hello", "there"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    path = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save_pretrained(path)
    return path


def test_client_vllm_matches_distilabel(
    server: Any, reference: Any, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    same_fields(rs.ClientvLLM, dl.ClientvLLM)
    kwargs = {
        "tokenizer": str(tokenizer_dir),
        "use_magpie_template": True,
        "magpie_pre_query_template": "llama3",
    }
    ours = rs.ClientvLLM(base_url=server.base_url, **kwargs)
    ours.load()
    theirs = dl.ClientvLLM(base_url=reference.base_url, **kwargs)
    theirs.load()
    assert ours.model_name == theirs.model_name == "mock-served-model"
    # The last turn is the assistant's: the Magpie template is appended.
    inputs = [CHAT, [*CHAT, {"role": "assistant", "content": "hi"}]]
    options = {"num_generations": 2, "max_new_tokens": 7, "logit_bias": {"3": 1}}
    assert ours.generate(inputs, **options) == theirs.generate(inputs, **options)
    got, expected = requests_of(server), requests_of(reference)
    assert [(r["method"], r["path"], r["body"]) for r in got] == [
        (r["method"], r["path"], r["body"]) for r in expected
    ]
    prompts = sorted(r["body"]["prompt"] for r in got if r["body"])
    assert prompts[1].endswith("<|start_header_id|>user<|end_header_id|>\n\n")
    assert {r["path"] for r in got} == {"/v1/models", "/v1/completions"}


def test_client_vllm_without_transformers_names_the_extra(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_transformers(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "transformers":
            raise ImportError("no transformers")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    with pytest.raises(ImportError, match=r"distilabel-rs\[hf-transformers\]"):
        rs.ClientvLLM(base_url=server.base_url, tokenizer="x").load()


# ---- every class of the family ----------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda s: rs.AzureOpenAILLM(
            model="d", base_url=s.origin, api_key=KEY, api_version="2024-10-21"
        ),
        lambda s: rs.TogetherLLM(model="m", base_url=s.origin + "/together/v1", api_key=KEY),
        lambda s: rs.AnyscaleLLM(model="m", base_url=s.base_url, api_key=KEY),
        lambda s: rs.GroqLLM(model="m", base_url=s.origin, api_key=KEY),
        lambda s: rs.MistralLLM(model="m", endpoint=s.origin, api_key=KEY),
    ],
)
def test_used_llms_pickle_and_deep_copy_and_the_copies_work(server: Any, make: Any) -> None:
    import copy
    import pickle

    llm = make(server)
    llm.load()
    assert llm.generate([CHAT])[0]["generations"] == ["echo: hello there"]
    for clone in (pickle.loads(pickle.dumps(llm)), copy.deepcopy(llm), llm.model_copy(deep=True)):
        clone.load()
        assert clone.generate([CHAT])[0]["generations"] == ["echo: hello there"]
    assert KEY not in repr(llm) and KEY not in str(llm.dump())
