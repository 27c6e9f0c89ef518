"""The conversations of one call whose bodies differ only in `messages` (and a drawn seed)
are written from one template (`NativeLLM._template`, `NativeClient.start_templated`): the
same bodies, in the same order, with the same seeds, as when they are built one by one; and
the inputs a template cannot express are built one by one."""

import json
import math
import random
from typing import Any, Dict, Iterator, List, Optional

import pytest

from distilabel_rs import _core
from distilabel_rs.models.llms import InferenceEndpointsLLM, OpenAILLM
from distilabel_rs.models.llms._native import NativeLLM

WEIRD_TEXT = 'quote " backslash \\ nl \n nul \x00 é 中文 🦀 \u2028 \U0010ffff'


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    mock = _core.MockServer(record=True)
    yield mock
    mock.stop()


def _openai(server: Any, **fields: Any) -> OpenAILLM:
    llm = OpenAILLM(model="m", base_url=server.base_url, api_key="sk-template", **fields)
    llm.load()
    return llm


def _inference_endpoints(server: Any, **fields: Any) -> InferenceEndpointsLLM:
    base_url = server.base_url.rsplit("/v1", 1)[0] + "/tgi"
    llm = InferenceEndpointsLLM(base_url=base_url, api_key="hf_template", **fields)
    llm.load()
    return llm


def _conversations(count: int) -> List[Any]:
    return [
        [
            {"role": "system", "content": f"system {i}"},
            {"role": "user", "content": f"{WEIRD_TEXT} {i}"},
        ]
        for i in range(count)
    ]


def _sent(
    server: Any,
    llm: NativeLLM,
    inputs: List[Any],
    *,
    templated: bool,
    expect_template: Optional[bool] = None,
    **kwargs: Any,
) -> List[Dict[str, Any]]:
    """The bodies the server received for one `generate` call, in the order sent (one
    request at a time), the template allowed or not; checks which way was taken (the
    template's when allowed, unless `expect_template` says otherwise)."""
    llm.max_concurrency = 1
    original_template, original_start = type(llm)._template, type(llm)._start
    one_by_one: List[int] = []

    def start(self: Any, requests: List[Any]) -> Any:
        one_by_one.append(len(requests))
        return original_start(self, requests)

    type(llm)._start = start  # type: ignore[method-assign]
    if not templated:
        type(llm)._template = lambda *args: None  # type: ignore[method-assign]
    before = len(server.recorded())
    try:
        random.seed(20261122)
        outputs = llm.generate(inputs, **kwargs)
    finally:
        type(llm)._template, type(llm)._start = original_template, original_start  # type: ignore[method-assign]
    assert all(output["generations"][0] is not None for output in outputs), outputs
    expected = templated if expect_template is None else expect_template
    assert (one_by_one == []) == expected, one_by_one
    return [json.loads(body) for _, body, _ in server.recorded()[before:]]


def _same_either_way(server: Any, llm: NativeLLM, inputs: List[Any], **kwargs: Any) -> None:
    templated = _sent(server, llm, inputs, templated=True, **kwargs)
    one_by_one = _sent(server, llm, inputs, templated=False, **kwargs)
    assert templated == one_by_one
    assert len(templated) == len(inputs) * (
        1 if llm._num_generations_param_supported else kwargs.get("num_generations", 1)
    )


def test_openai_conversations_are_sent_as_built_one_by_one(server: Any) -> None:
    llm = _openai(server)
    _same_either_way(server, llm, _conversations(7))
    _same_either_way(
        server,
        llm,
        _conversations(3),
        num_generations=2,
        max_new_tokens=9,
        stop=["a", "b"],
        temperature=0.5,
        extra_body={"metadata": {"k": [1, 2.5, None, True]}},
    )
    _same_either_way(
        server, _openai(server, structured_output={"schema": {"type": "object"}}), _conversations(2)
    )


def test_inference_endpoints_conversations_keep_their_seeds(server: Any) -> None:
    llm = _inference_endpoints(server)
    _same_either_way(server, llm, _conversations(6))
    # One request per generation, each with a seed of its own, drawn in the same order.
    bodies = _sent(server, llm, _conversations(3), templated=True, num_generations=3)
    seeds = [body["seed"] for body in bodies]
    assert len(set(seeds)) == 9
    _same_either_way(server, llm, _conversations(3), num_generations=3)
    # A seed given is sent as it is.
    bodies = _sent(server, llm, _conversations(4), templated=True, seed=1234)
    assert {body["seed"] for body in bodies} == {1234}
    _same_either_way(server, llm, _conversations(4), seed=1234, stop_sequences=["x", "y"])


@pytest.mark.parametrize(
    ("inputs", "kwargs", "fields"),
    [
        # An image in the first user message: that body has no `stop`.
        (
            [
                [{"role": "user", "content": "text"}],
                [{"role": "user", "content": [{"type": "text", "text": "look"}]}],
            ],
            {},
            {},
        ),
        # A prompt goes to the completions API.
        (["a prompt", [{"role": "user", "content": "text"}]], {}, {}),
        # A per-input structured output.
        (
            [
                (
                    [{"role": "user", "content": "t"}],
                    {"format": "json", "schema": {"type": "object"}},
                )
            ],
            {},
            {},
        ),
        # A tokens-per-minute limit reserves each prompt's tokens.
        (_conversations(2), {}, {"tokens_per_minute": 1e9}),
    ],
)
def test_openai_inputs_a_template_cannot_express_are_built_one_by_one(
    server: Any, inputs: List[Any], kwargs: Dict[str, Any], fields: Dict[str, Any]
) -> None:
    llm = _openai(server, **fields)
    bodies = _sent(server, llm, inputs, templated=False, **kwargs)
    assert _sent(server, llm, inputs, templated=True, expect_template=False, **kwargs) == bodies


def test_inference_endpoints_more_than_four_stop_sequences_are_built_one_by_one(
    server: Any,
) -> None:
    llm = _inference_endpoints(server)
    stop = ["a", "b", "c", "d", "e"]
    with pytest.warns(UserWarning, match="Only up to 4 stop sequences"):
        bodies = _sent(
            server,
            llm,
            _conversations(2),
            templated=True,
            expect_template=False,
            stop_sequences=stop,
            seed=5,
        )
    assert [body["stop"] for body in bodies] == [stop[:4]] * 2


@pytest.mark.parametrize("bad", [math.nan, math.inf, 2**64, {1: "int key"}, {"a", "set"}])
def test_a_value_the_template_cannot_write_gets_the_error_of_one_by_one(
    server: Any, bad: Any
) -> None:
    llm = _openai(server)
    errors: List[Optional[str]] = []
    for template in (True, False):
        original = OpenAILLM._template
        if not template:
            OpenAILLM._template = lambda *args: None  # type: ignore[method-assign]
        before = len(server.recorded())
        try:
            with pytest.raises(Exception) as raised:
                llm.generate(_conversations(2), extra_body={"bad": bad})
            errors.append(f"{type(raised.value).__name__}: {raised.value}")
        finally:
            OpenAILLM._template = original  # type: ignore[method-assign]
        assert len(server.recorded()) == before, "nothing was sent"
    assert errors[0] == errors[1]
    assert "bad" in str(errors[0])
