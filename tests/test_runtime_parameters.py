"""Runtime parameters: names, info and setting, on the zoo built on both libraries."""

from typing import List, Optional

import pytest
from pydantic import Field, SecretStr, ValidationError

import tests.zoo.dl as zoo_dl
import tests.zoo.rs as zoo_rs
from distilabel_rs.mixins.runtime_parameters import RuntimeParameter, RuntimeParametersMixin
from tests.conftest import FANOUT_FIELDS, without_fanout_fields

ZOO_CLASSES = [
    "DummyLLM",
    "KwargsLLM",
    "DummyAsyncLLM",
    "TwoLineSummaryAsyncLLM",
    "RichLLM",
    "BatchLLM",
]


@pytest.mark.parametrize("name", ZOO_CLASSES)
def test_names_and_info_match_distilabel(name: str) -> None:
    ours, theirs = getattr(zoo_rs, name)(), getattr(zoo_dl, name)()
    names = without_fanout_fields(ours.runtime_parameters_names)
    assert names == theirs.runtime_parameters_names
    assert list(names) == list(theirs.runtime_parameters_names)
    info = without_fanout_fields(ours.get_runtime_parameters_info())
    assert info == theirs.get_runtime_parameters_info()


def test_async_llms_add_the_fan_out_runtime_parameters_with_descriptions() -> None:
    names = zoo_rs.DummyAsyncLLM().runtime_parameters_names
    fanout = [name for name in names if name in FANOUT_FIELDS]
    assert fanout == FANOUT_FIELDS
    assert all(names[name] is True for name in FANOUT_FIELDS)  # all optional
    info = {i["name"]: i for i in zoo_rs.DummyAsyncLLM().get_runtime_parameters_info()}
    assert all(info[name]["description"] for name in FANOUT_FIELDS)
    assert "FANOUT" not in str(zoo_rs.DummyLLM().runtime_parameters_names)
    assert not set(FANOUT_FIELDS) & set(zoo_rs.DummyLLM().runtime_parameters_names)


def test_dummy_llm_names_and_info() -> None:
    llm = zoo_rs.DummyLLM()
    assert llm.runtime_parameters_names == {
        "generation_kwargs": {},
        "use_offline_batch_generation": True,
        "offline_batch_generation_block_until_done": True,
    }
    info = llm.get_runtime_parameters_info()
    assert [i["name"] for i in info] == list(llm.runtime_parameters_names)
    assert info[0] == {
        "name": "generation_kwargs",
        "description": "The kwargs to be propagated to either `generate` or `agenerate`"
        " methods within each `LLM`.",
        "keys": [],
    }


def test_generation_kwargs_come_from_agenerate_with_docstring_descriptions() -> None:
    info = zoo_rs.DummyAsyncLLM().get_runtime_parameters_info()[0]
    assert list(info) == ["name", "description", "keys"]
    assert info["keys"] == [
        {
            "name": "temperature",
            "optional": True,
            "description": "the sampling temperature, with a description  that wraps onto a"
            " second line.",
        },
        {
            "name": "max_new_tokens",
            "optional": True,
            "description": "the maximum number of new tokens.",
        },
        {"name": "stop", "optional": True, "description": "the stop sequences."},
    ]


def test_kwargs_and_keyword_only_parameters_are_required_generation_kwargs() -> None:
    names = zoo_rs.KwargsLLM().runtime_parameters_names["generation_kwargs"]
    assert names == {"seed": False, "kwargs": False}


def test_set_runtime_parameters_nested_lists_secrets_and_unknowns() -> None:
    for zoo in (zoo_rs, zoo_dl):
        llm = zoo.RichLLM()
        llm.set_runtime_parameters(
            {
                "generation_kwargs": {"top_k": 3},
                "api_key": "sk-secret",
                "timeout": 5,
                "options": {"depth": 2, "secret": "s"},
                "option_list": {"1": {"depth": 7}},
                "unknown": 1,
                "model": "ignored: not a runtime parameter",
            }
        )
        assert llm.generation_kwargs == {"top_k": 3}
        assert isinstance(llm.api_key, SecretStr) and llm.api_key.get_secret_value() == "sk-secret"
        assert llm.timeout == 5
        assert llm.options.depth == 2 and isinstance(llm.options.secret, SecretStr)
        assert [o.depth for o in llm.option_list] == [None, 7]
        assert llm.model == "rich-model"
        assert llm._runtime_parameters["option_list"] == {"1": {"depth": 7}}
        assert "unknown" not in llm._runtime_parameters


def test_generation_kwargs_are_replaced_not_merged() -> None:
    llm = zoo_rs.DummyLLM()
    llm.set_runtime_parameters({"generation_kwargs": {"max_new_tokens": 5}})
    llm.set_runtime_parameters({"generation_kwargs": {"temperature": 0.7}})
    assert llm.get_generation_kwargs() == {"temperature": 0.7}
    assert llm.get_generation_kwargs() is llm.generation_kwargs


def test_set_runtime_parameters_validates_assignments() -> None:
    with pytest.raises(ValidationError):
        zoo_rs.RichLLM().set_runtime_parameters({"timeout": "not a number"})


class _Nested(RuntimeParametersMixin):
    a: RuntimeParameter[int] = Field(default=None, description="A.")
    b: Optional[RuntimeParameter[int]] = Field(default=None, description="B.")


class _Outer(RuntimeParametersMixin):
    nested: _Nested
    nested_list: List[_Nested]
    empty_list: RuntimeParameter[List[int]] = []


def test_plain_mixin_names_and_the_empty_list_quirk() -> None:
    outer = _Outer(nested=_Nested(), nested_list=[_Nested(), _Nested()])
    assert outer.runtime_parameters_names == {
        "nested": {"a": False, "b": True},
        "nested_list": {"0": {"a": False, "b": True}, "1": {"a": False, "b": True}},
        "empty_list": True,
    }
    # distilabel indexes `[0]` of a list runtime parameter unguarded (kept on purpose).
    with pytest.raises(IndexError):
        outer.get_runtime_parameters_info()
    with pytest.raises(IndexError):
        outer.set_runtime_parameters({"empty_list": [1]})


def test_unknown_parameter_warns_through_the_pipeline_logger() -> None:
    warnings = []

    class _Logger:
        def warning(self, message: str) -> None:
            warnings.append(message)

    class _Pipeline:
        _logger = _Logger()

    class _Step(RuntimeParametersMixin):
        name: str = "step_0"
        pipeline: object = None
        temperature: RuntimeParameter[float] = None

        model_config = {"arbitrary_types_allowed": True}

    step = _Step(pipeline=_Pipeline())
    step.set_runtime_parameters({"temperatur": 1.0, "zzz": 1})
    assert warnings == [
        "⚠️  Runtime parameter 'temperatur' unknown in step 'step_0'."
        " Did you mean any of: ['temperature']",
        "⚠️  Runtime parameter 'zzz' unknown in step 'step_0'."
        " Available runtime parameters for the step: ['temperature'].",
    ]
