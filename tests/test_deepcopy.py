"""Deep copies behave like pickles: a loaded, used LLM of every native class, CohereLLM on
the real cohere SDK, a MixtureOfAgentsLLM of native members, and a user's `AsyncLLM`
holding an SDK client, deep-copies (`copy.deepcopy`, `model_copy(deep=True)`)
and both the copy and the original keep working; a distilabel pipeline whose task holds an
LLM already used in the driver returns every row (distilabel deep-copies each step before
it starts its worker)."""

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

import distilabel_rs.models.llms as llms
from distilabel_rs import _core
from tests.conftest import REPO
from tests.sdk_llm import SDKClientLLM

CHAT = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def server() -> Any:
    mock = _core.MockServer()
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny tokenizer with a chat template (nothing downloaded), for ClientvLLM."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "user", "assistant", "hello", "there"]
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
    return str(path)


# The native classes, each pointed at the mock (OllamaLLM joins once merged).
NATIVE: Dict[str, Callable[[Any, str], Dict[str, Any]]] = {
    "OpenAILLM": lambda s, t: {"model": "m", "base_url": s.base_url, "api_key": "k"},
    "AzureOpenAILLM": lambda s, t: {
        "model": "m",
        "base_url": s.origin,
        "api_key": "k",
        "api_version": "2024-10-21",
    },
    "TogetherLLM": lambda s, t: {"model": "m", "base_url": s.base_url, "api_key": "k"},
    "AnyscaleLLM": lambda s, t: {"model": "m", "base_url": s.base_url, "api_key": "k"},
    "GroqLLM": lambda s, t: {"model": "m", "base_url": s.origin, "api_key": "k"},
    "MistralLLM": lambda s, t: {"model": "m", "endpoint": s.origin, "api_key": "k"},
    "ClientvLLM": lambda s, t: {"base_url": s.base_url, "tokenizer": t},
    "AnthropicLLM": lambda s, t: {"model": "m", "base_url": s.origin, "api_key": "k"},
    "InferenceEndpointsLLM": lambda s, t: {"base_url": f"{s.origin}/tgi", "api_key": "k"},
    "OllamaLLM": lambda s, t: {"model": "m", "host": s.origin},
}


def copies(llm: Any) -> Dict[str, Any]:
    return {"deepcopy": copy.deepcopy(llm), "model_copy": llm.model_copy(deep=True)}


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_a_used_native_llm_deep_copies_and_both_work(
    name: str, server: Any, tokenizer_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cls = getattr(llms, name, None)
    if cls is None:
        pytest.skip(f"{name} is not in this build yet")
    llm = cls(**NATIVE[name](server, tokenizer_dir))
    llm.load()
    llm.set_progress_callback(lambda progress: None)
    expected = llm.generate([CHAT])
    assert expected[0]["generations"][0] is not None
    for how, copied in copies(llm).items():
        assert copied.generate([CHAT]) == expected, how
        assert copied._progress_callback is None, "process-local, like a pickle"
    assert llm.generate([CHAT]) == expected  # the original is untouched


def test_a_used_cohere_llm_deep_copies_and_both_work() -> None:
    # On the real cohere SDK (its AsyncClient holds an httpx client), against the local
    # server of Cohere's v1 API that the SDK-wrapper tests use.
    pytest.importorskip("cohere")
    from tests.test_llms_sdk_wrappers import CohereServer

    cohere = CohereServer()
    try:
        llm = llms.CohereLLM(model="command-r", base_url=cohere.url, api_key="k")
        llm.load()
        llm.set_progress_callback(lambda progress: None)
        expected = llm.generate([CHAT])
        assert expected[0]["generations"] == ["cohere: hello there"]
        for how, copied in copies(llm).items():
            assert copied.generate([CHAT]) == expected, how
            assert copied._aclient is not llm._aclient, how
            assert copied._progress_callback is None, "process-local, like a pickle"
        assert llm.generate([CHAT]) == expected  # the original is untouched
        # Every generate reached the server: the original's two and one per copy.
        assert [chat["message"] for chat in cohere.chats()] == ["hello there"] * 4
    finally:
        cohere.stop()


def test_a_used_mixture_of_agents_llm_deep_copies_and_both_work() -> None:
    server = _core.MockServer(record=True)
    try:
        llm = llms.MixtureOfAgentsLLM(
            aggregator_llm=llms.OpenAILLM(model="agg", base_url=server.base_url, api_key="k"),
            proposers_llms=[
                llms.OpenAILLM(model="alpha", base_url=server.base_url, api_key="k"),
                llms.AnthropicLLM(model="beta", base_url=server.origin, api_key="k"),
            ],
        )
        llm.load()
        expected = llm.generate([CHAT])
        assert expected[0]["generations"] == ["echo: hello there"]
        assert len(server.recorded()) == 3  # two proposals, then the aggregation
        for how, copied in copies(llm).items():
            assert copied.aggregator_llm is not llm.aggregator_llm, how
            assert copied.generate([CHAT]) == expected, how
        assert llm.generate([CHAT]) == expected  # the original is untouched
        recorded = [(path, json.loads(body)) for path, body, _ in server.recorded()]
        aggregations = [body for _, body in recorded if body["model"] == "agg"]
        # Each of the four generates (two by the original, one per copy) asked both
        # proposers, then gave the aggregator their answers.
        paths = sorted((body["model"], path) for path, body in recorded)
        assert paths == sorted(
            [("agg", "/v1/chat/completions")] * 4
            + [("alpha", "/v1/chat/completions")] * 4
            + [("beta", "/v1/messages")] * 4
        )
        assert len(aggregations) == 4
        for body in aggregations:
            system = body["messages"][0]
            assert system["role"] == "system"
            assert system["content"].endswith("\n1. echo: hello there\n2. echo: hello there")
    finally:
        server.stop()


def test_an_offline_batch_llm_copy_keeps_its_jobs(server: Any) -> None:
    llm = llms.OpenAILLM(
        model="m", base_url=server.base_url, api_key="k", use_offline_batch_generation=True
    )
    llm.load()
    llm.jobs_ids = ("batch_x",)
    for copied in copies(llm).values():
        assert copied.jobs_ids == ("batch_x",)


def test_a_user_llm_with_an_sdk_client_deep_copies_and_both_work(
    server: Any, capfd: pytest.CaptureFixture
) -> None:
    llm = SDKClientLLM(base_url=server.base_url)
    llm.load()
    assert llm.generate([CHAT])[0]["generations"] == ["echo: hello there"]
    for how, copied in copies(llm).items():
        assert copied._aclient is None, "process-bound: rebuilt by load()"
        assert copied.generate([CHAT])[0]["generations"] == ["echo: hello there"], how
        assert copied._aclient is not None and copied._aclient is not llm._aclient
    assert llm.generate([CHAT])[0]["generations"] == ["echo: hello there"]
    # A copy of an object that was never loaded is not loaded behind the user's back.
    fresh = copy.deepcopy(SDKClientLLM(base_url=server.base_url))
    assert fresh._load_again is False
    # The half-built SDK objects of the failed copy went quietly.
    assert "Exception ignored" not in capfd.readouterr().err


SERVER = (
    "import sys\nfrom distilabel_rs import _core\ns = _core.MockServer()\n"
    "print(s.base_url, flush=True)\nsys.stdin.read()"
)

PIPELINE = """
import json, sys
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts
from distilabel.steps.tasks import TextGeneration
from distilabel_rs import OpenAILLM
from tests.sdk_llm import SDKClientLLM

base_url, cache_dir, kind = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "native":
    llm = OpenAILLM(model="mock-model", base_url=base_url, api_key="sk-driver")
else:
    llm = SDKClientLLM(base_url=base_url)
# Used in the driver first: a loaded client (and, for the SDK, its locks and sockets).
llm.load()
assert llm.generate([[{"role": "user", "content": "warm up"}]])[0]["generations"]
with Pipeline(name="used-llm", cache_dir=cache_dir) as pipeline:
    load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(60)], batch_size=20)
    task = TextGeneration(llm=llm, input_batch_size=20)
    load >> task
distiset = pipeline.run(use_cache=False)
rows = distiset["default"]["train"].to_list()
print(json.dumps(sorted(r["generation"] for r in rows)))
"""


@pytest.fixture(scope="module")
def server_process() -> Any:
    process = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        yield process.stdout.readline().strip()
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("kind", ["native", "sdk"])
def test_a_pipeline_task_holding_an_llm_used_in_the_driver_returns_every_row(
    server_process: str, tmp_path: Path, kind: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PIPELINE, server_process, str(tmp_path), kind],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    generations = json.loads(result.stdout.strip().splitlines()[-1])
    assert generations == sorted(f"echo: q{i}" for i in range(60))
