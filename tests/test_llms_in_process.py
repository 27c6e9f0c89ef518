"""The in-process engines (vLLM, LlamaCppLLM, MlxLLM, TransformersLLM) and the CUDA device
placement mixin, next to distilabel 1.5.3's, with each engine replaced by a local fake in
`sys.modules` (`tests.fakes`): vllm, llama-cpp-python and mlx cannot run here (GPU, native
builds, Apple silicon). TransformersLLM on a real tiny model: `tests/test_transformers_llm.py`.
"""

import json
import logging
import pickle
import types
from pathlib import Path
from typing import Any, Dict, List, Tuple

import distilabel.models.llms as dl
import distilabel.models.mixins.cuda_device_placement as dl_cuda
import pytest
from pydantic import ValidationError

import distilabel_rs.models.llms as rs
import distilabel_rs.models.mixins.cuda_device_placement as rs_cuda
from tests.fakes import (
    FakeTokenizer,
    Recorder,
    fake_llama_cpp,
    fake_mlx,
    fake_pynvml,
    fake_vllm,
    install,
    module,
)

CHAT = [{"role": "user", "content": "hello there"}]
CHAT2 = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "and you"}]
LLAMA3 = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"


def loaded_pair(
    monkeypatch: pytest.MonkeyPatch, fake: Any, name: str, **kwargs: Any
) -> Tuple[Any, Any, Recorder, Recorder]:
    """Our `name` and distilabel's, each loaded on its own recording fake engine."""
    mine, reference = Recorder(), Recorder()
    install(monkeypatch, fake(reference))
    theirs = getattr(dl, name)(**kwargs)
    theirs.load()
    install(monkeypatch, fake(mine))
    ours = getattr(rs, name)(**kwargs)
    ours.load()
    return ours, theirs, mine, reference


def fake_transformers(recorder: Recorder) -> Dict[str, types.ModuleType]:
    """`transformers.pipeline` (text generation echoing the prompt, one result per
    `num_return_sequences`) and `AutoTokenizer.from_pretrained`."""

    class Pipeline:
        def __init__(self) -> None:
            self.tokenizer = FakeTokenizer()

        def __call__(self, prompts: List[str], **kwargs: Any) -> Any:
            recorder.record(call="pipeline", prompts=prompts, **kwargs)
            n = kwargs["num_return_sequences"]
            return [[{"generated_text": f"hf {i}: {p}"} for i in range(n)] for p in prompts]

    def pipeline(task: str, **kwargs: Any) -> Pipeline:
        recorder.record(call="make_pipeline", task=task, **kwargs)
        return Pipeline()

    class AutoTokenizer:
        @staticmethod
        def from_pretrained(name: str) -> FakeTokenizer:
            recorder.record(call="AutoTokenizer", name=name)
            return FakeTokenizer()

    return {"transformers": module("transformers", pipeline=pipeline, AutoTokenizer=AutoTokenizer)}


# -- construction, dumps, pickles, missing engines -------------------------------------------

CASES = [
    ("vLLM", {"model": "org/model", "dtype": "float16", "extra_kwargs": {"max_model_len": 64}}),
    ("TransformersLLM", {"model": "org/model", "device": "cpu", "token": "hf_secret_token"}),
    ("MlxLLM", {"path_or_hf_repo": "mlx-community/model", "adapter_path": "a"}),
    ("LlamaCppLLM", {"n_ctx": 1024, "chat_format": "chatml"}),
]


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_dump_load_and_pickle_like_distilabel(name: str, kwargs: dict, tmp_path: Path) -> None:
    if name == "LlamaCppLLM":
        (tmp_path / "m.gguf").write_bytes(b"GGUF")
        kwargs = {**kwargs, "model_path": str(tmp_path / "m.gguf")}
    ours, theirs = getattr(rs, name)(**kwargs), getattr(dl, name)(**kwargs)
    dumped = ours.dump()
    expected = theirs.dump()
    # distilabel dumps the Hugging Face token (and `save` as YAML writes it in clear).
    assert "token" not in dumped and ("token" in expected) == (name == "TransformersLLM")
    assert {k: v for k, v in dumped.items() if k != "type_info"} == {
        k: v for k, v in expected.items() if k not in ("type_info", "token")
    }
    assert "hf_secret_token" not in json.dumps(dumped) + repr(ours)
    ours.save(tmp_path / "llm.yaml", format="yaml")
    assert "hf_secret_token" not in (tmp_path / "llm.yaml").read_text()
    assert "model_path" not in dumped  # excluded, as in distilabel
    loaded = getattr(rs, name).from_dict(json.loads(json.dumps(dumped)))
    assert type(loaded) is type(ours)
    copy = pickle.loads(pickle.dumps(ours))
    assert copy.model_dump() == ours.model_dump()
    assert isinstance(ours, (dl.LLM, rs.LLM))


@pytest.mark.parametrize(
    ("name", "kwargs", "blocked", "message"),
    [
        ("vLLM", {"disable_cuda_device_placement": True}, ["vllm"], "vllm"),
        ("TransformersLLM", {}, ["transformers"], "hf-transformers"),
        ("MlxLLM", {"path_or_hf_repo": "p"}, ["mlx_lm.utils", "mlx_lm"], "mlx"),
        ("LlamaCppLLM", {}, ["llama_cpp"], "llama-cpp"),
    ],
)
def test_missing_engine_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, name: str, kwargs: dict, blocked: list, message: str
) -> None:
    install(monkeypatch, {module_name: None for module_name in blocked})
    if name in ("vLLM", "TransformersLLM"):
        kwargs = {"model": "m", **kwargs}
    with pytest.raises(ImportError) as error:
        getattr(rs, name)(**kwargs).load()
    assert f"pip install 'distilabel-rs[{message}]'" in str(error.value)


# -- vLLM ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "kwargs"),
    [
        ([CHAT, CHAT2], {"num_generations": 2, "temperature": 0.5, "stop": ["x"]}),
        ([CHAT], {"logprobs": 2, "max_new_tokens": 4}),
        (["a raw prompt"], {"logprobs": 1, "echo": True, "extra_sampling_params": {"seed": 3}}),
    ],
)
def test_vllm_matches_distilabel(
    monkeypatch: pytest.MonkeyPatch, inputs: list, kwargs: dict
) -> None:
    ours, theirs, mine, reference = loaded_pair(
        monkeypatch,
        fake_vllm,
        "vLLM",
        model="org/model",
        chat_template="custom",
        disable_cuda_device_placement=True,
    )
    install(monkeypatch, fake_vllm(reference))
    expected = theirs.generate(inputs, **kwargs)
    install(monkeypatch, fake_vllm(mine))
    got = ours.generate(inputs, **kwargs)
    assert got == expected
    assert mine.calls == reference.calls
    assert mine.calls[0]["call"] == "LLM" and mine.calls[0]["seed"] == 0
    assert ours._tokenizer.chat_template == "custom"


def fake_outlines(recorder: Recorder) -> Dict[str, types.ModuleType]:
    """`outlines` >= 0.1.0: JSON/regex logits processors built for an adapted tokenizer."""

    class JSONLogitsProcessor:
        def __init__(self, schema: Any, tokenizer: Any, whitespace_pattern: Any = None) -> None:
            recorder.record(call="json", schema=schema, whitespace_pattern=whitespace_pattern)
            self.schema = schema

    class RegexLogitsProcessor:
        def __init__(self, regex: str, tokenizer: Any) -> None:
            recorder.record(call="regex", regex=regex)
            self.schema = regex

    processors = module(
        "outlines.processors",
        JSONLogitsProcessor=JSONLogitsProcessor,
        RegexLogitsProcessor=RegexLogitsProcessor,
    )
    vllm_models = module("outlines.models.vllm", adapt_tokenizer=lambda tokenizer: tokenizer)
    return {
        "outlines": module("outlines", __version__="1.0.0", processors=processors),
        "outlines.processors": processors,
        "outlines.models": module("outlines.models", vllm=vllm_models),
        "outlines.models.vllm": vllm_models,
    }


def test_vllm_batches_structured_inputs_by_schema_and_keeps_input_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, guides = Recorder(), Recorder()
    install(monkeypatch, {**fake_vllm(engine), **fake_outlines(guides)})
    monkeypatch.setattr("importlib.metadata.version", lambda name: "1.0.0")
    llm = rs.vLLM(model="m", disable_cuda_device_placement=True)
    llm.load()
    person = {"type": "object", "properties": {"name": {"type": "string"}}}
    inputs = [
        ([{"role": "user", "content": "one"}], {"format": "json", "schema": person}),
        ([{"role": "user", "content": "two"}], {"format": "regex", "schema": "[0-9]+"}),
        ([{"role": "user", "content": "three"}], {"format": "json", "schema": person}),
    ]
    outputs = llm.generate(inputs)
    assert [o["generations"] for o in outputs] == [
        ["vllm 0: <user>one<assistant>"],
        ["vllm 0: <user>two<assistant>"],
        ["vllm 0: <user>three<assistant>"],
    ]
    generate_calls = [c for c in engine.calls if c["call"] == "generate"]
    assert [c["prompts"] for c in generate_calls] == [
        ["<user>one<assistant>", "<user>three<assistant>"],
        ["<user>two<assistant>"],
    ]
    # One processor per batch: they do not stack up.
    assert [[p.schema for p in c["logits_processors"]] for c in generate_calls] == [
        [person],
        ["[0-9]+"],
    ]
    assert [c["call"] for c in guides.calls] == ["json", "regex"]


def test_vllm_without_pynvml_fails_like_distilabel(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, {"pynvml": None, **fake_vllm(Recorder())})
    with pytest.raises(ImportError) as mine:
        rs.vLLM(model="m").load()
    with pytest.raises(ImportError) as reference:
        dl.vLLM(model="m").load()
    assert str(mine.value) == str(reference.value)


# -- CUDA device placement -------------------------------------------------------------------


@pytest.fixture
def placement_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Both libraries' device placement file, in a temporary folder."""
    path = tmp_path / "host" / "distilabel_cuda_device_placement_mixin.json"
    monkeypatch.setattr(rs_cuda, "_CUDA_DEVICE_PLACEMENT_MIXIN_FILE", path)
    monkeypatch.setattr(dl_cuda, "_CUDA_DEVICE_PLACEMENT_MIXIN_FILE", path)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return path


def placed(library: Any, identifier: str, **kwargs: Any) -> Any:
    llm = library.vLLM(model="m", **kwargs)
    llm._llm_identifier = identifier
    llm._logger = logging.getLogger("test.cuda")
    return llm


def test_cuda_devices_are_shared_out_between_llms_of_both_libraries(
    monkeypatch: pytest.MonkeyPatch, placement_file: Path
) -> None:
    import os

    install(monkeypatch, fake_pynvml(device_count=3))
    first = placed(rs, "ours-0")
    rs.CudaDevicePlacementMixin.load(first)
    assert first.cuda_devices == [0]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    theirs = placed(dl, "theirs-0")
    dl.CudaDevicePlacementMixin.load(theirs)  # distilabel's mixin reads our entry
    assert theirs.cuda_devices == [1]
    second = placed(rs, "ours-1")
    second._desired_num_gpus = 2
    rs.CudaDevicePlacementMixin.load(second)
    assert second.cuda_devices == [2]  # one left: a warning, not an error
    assert json.loads(placement_file.read_text()) == {
        "ours-0": [0],
        "theirs-0": [1],
        "ours-1": [2],
    }
    rs.CudaDevicePlacementMixin.unload(first)
    assert "ours-0" not in json.loads(placement_file.read_text())

    bad = placed(rs, "bad", cuda_devices=[7])
    with pytest.raises(RuntimeError, match="Invalid CUDA devices for LLM 'bad': \\[7\\]"):
        rs.CudaDevicePlacementMixin.load(bad)
    disabled = placed(rs, "off", disable_cuda_device_placement=True)
    rs.CudaDevicePlacementMixin.load(disabled)
    assert disabled.cuda_devices == "auto"
    assert "off" not in json.loads(placement_file.read_text())


def test_distilabel_pipelines_recognise_the_mixin() -> None:
    # distilabel's step wrapper sets `_llm_identifier` on what `isinstance` recognises.
    assert issubclass(rs.vLLM, dl_cuda.CudaDevicePlacementMixin)
    assert issubclass(rs.TransformersLLM, dl_cuda.CudaDevicePlacementMixin)
    assert not issubclass(rs.LlamaCppLLM, dl_cuda.CudaDevicePlacementMixin)


# -- LlamaCppLLM -------------------------------------------------------------------------------


@pytest.fixture
def gguf(tmp_path: Path) -> str:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return str(path)


@pytest.mark.parametrize(
    ("extra", "inputs"),
    [
        ({}, [CHAT, CHAT2]),
        ({"tokenizer_id": "org/tok"}, [CHAT]),
        (
            {
                "tokenizer_id": "org/tok",
                "use_magpie_template": True,
                "magpie_pre_query_template": "llama3",
            },
            [[{"role": "system", "content": "you are a teacher"}]],
        ),
    ],
)
def test_llamacpp_matches_distilabel(
    monkeypatch: pytest.MonkeyPatch, gguf: str, extra: dict, inputs: list
) -> None:
    def fake(recorder: Recorder) -> Dict[str, types.ModuleType]:
        return {**fake_llama_cpp(recorder), **fake_transformers(recorder)}

    ours, theirs, mine, reference = loaded_pair(
        monkeypatch, fake, "LlamaCppLLM", model_path=gguf, n_ctx=256, **extra
    )
    kwargs = {"num_generations": 2, "temperature": 0.3, "extra_generation_kwargs": {"top_k": 5}}
    expected = theirs.generate(inputs, **kwargs)
    got = ours.generate(inputs, **kwargs)
    assert got == expected
    assert mine.calls == reference.calls
    assert ours.model_name == gguf
    if extra.get("use_magpie_template"):
        assert got[0]["generations"][0].endswith(LLAMA3)


def test_llamacpp_bad_configurations(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, fake_llama_cpp(Recorder()))
    with pytest.raises(ValidationError, match="`use_magpie_template` cannot be `True`"):
        rs.LlamaCppLLM(use_magpie_template=True, magpie_pre_query_template="llama3")
    with pytest.raises(ValueError, match="needs `model_path`"):
        rs.LlamaCppLLM().load()


# -- MlxLLM ------------------------------------------------------------------------------------


def test_mlx_matches_distilabel(monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs, mine, reference = loaded_pair(
        monkeypatch,
        fake_mlx,
        "MlxLLM",
        path_or_hf_repo="mlx-community/m",
        tokenizer_config={"a": 1},
    )
    inputs = [CHAT2, "a raw prompt"]
    kwargs = {"num_generations": 2, "max_tokens": 16, "temp": 0.7, "top_k": 3}
    expected = theirs.generate(inputs, **kwargs)
    got = ours.generate(inputs, **kwargs)
    assert got == expected
    assert got[1]["generations"] == ["mlx: a raw prompt"] * 2
    strip = [{k: v for k, v in c.items() if k != "sampler"} for c in mine.calls]
    assert strip == [{k: v for k, v in c.items() if k != "sampler"} for c in reference.calls]
    assert ours._tokenizer.pad_token == ours._tokenizer.eos_token


# -- TransformersLLM on a fake pipeline -----------------------------------------------------------


def test_transformers_matches_distilabel_on_a_fake_pipeline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_from_env_secret")
    ours, theirs, mine, reference = loaded_pair(
        monkeypatch,
        fake_transformers,
        "TransformersLLM",
        model="org/model",
        chat_template="tmpl",
        use_magpie_template=True,
        magpie_pre_query_template="qwen2",
    )
    inputs = [CHAT, [{"role": "system", "content": "write"}]]
    got = ours.generate(inputs, num_generations=2, max_new_tokens=8, do_sample=False)
    expected = theirs.generate(inputs, num_generations=2, max_new_tokens=8, do_sample=False)
    assert got == expected
    assert mine.calls == reference.calls
    assert mine.calls[0]["token"] == "hf_from_env_secret"
    assert mine.calls[0]["return_full_text"] is False
    assert got[1]["generations"][0].endswith("<|im_start|>user\n")
    assert "hf_from_env_secret" not in json.dumps(ours.dump()) + repr(ours)
