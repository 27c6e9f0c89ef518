"""Guided generation with `outlines` for the in-process engines (Transformers, llama.cpp,
vLLM), as distilabel 1.5.3 does it: a JSON-schema or regex logits processor built for the
engine's tokenizer (outlines >= 0.1.0) or for the engine itself (older outlines).
"""

import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import re
from typing import TYPE_CHECKING, Any, Dict, Literal, Tuple, Type, Union

from pydantic import BaseModel

from distilabel_rs.errors import DistilabelUserError

if TYPE_CHECKING:
    from distilabel_rs.typing import OutlinesStructuredOutputType

__all__ = ["is_outlines_below_0_1_0", "prepare_guided_output"]

Framework = Literal["transformers", "llamacpp", "vllm"]
_FRAMEWORKS: Tuple[str, ...] = ("transformers", "llamacpp", "vllm")
_PAGE = "sections/how_to_guides/advanced/structured_generation/"
# Where outlines < 0.1.0 keeps each engine's processors.
_LEGACY_PROCESSORS = {
    "transformers": (
        "outlines.integrations.transformers",
        "JSONPrefixAllowedTokens",
        "RegexPrefixAllowedTokens",
    ),
    "llamacpp": ("outlines.integrations.llamacpp", "JSONLogitsProcessor", "RegexLogitsProcessor"),
    "vllm": ("outlines.integrations.vllm", "JSONLogitsProcessor", "RegexLogitsProcessor"),
}


def _version_tuple(version: str) -> Tuple[int, ...]:
    numbers = []
    for part in version.split(".")[:3]:
        match = re.match(r"\d+", part)
        numbers.append(int(match.group()) if match else 0)
    return tuple(numbers)


def is_outlines_below_0_1_0() -> bool:
    """Whether the installed outlines predates 0.1.0 (which moved its processors).

    Raises:
        ImportError: if outlines is not installed.
    """
    if not importlib.util.find_spec("outlines"):
        raise ImportError(
            "Outlines is not installed. Please install it using `pip install outlines`."
        )
    try:
        version = importlib.metadata.version("outlines")
    except importlib.metadata.PackageNotFoundError:
        version = str(getattr(importlib.import_module("outlines"), "__version__", "0.1.0"))
    return _version_tuple(version) < (0, 1, 0)


def _processor_classes(framework: str) -> Tuple[Any, Any]:
    if framework not in _FRAMEWORKS:
        raise DistilabelUserError(
            f"Invalid framework '{framework}'. Must be one of {_FRAMEWORKS}", page=_PAGE
        )
    if is_outlines_below_0_1_0():
        module_path, json_name, regex_name = _LEGACY_PROCESSORS[framework]
    else:
        module_path, json_name, regex_name = (
            "outlines.processors",
            "JSONLogitsProcessor",
            "RegexLogitsProcessor",
        )
    module = importlib.import_module(module_path)
    return getattr(module, json_name), getattr(module, regex_name)


def _outlines_tokenizer(engine: Any, framework: str) -> Any:
    if framework == "llamacpp":
        from outlines.models.llamacpp import LlamaCppTokenizer

        return LlamaCppTokenizer(engine)
    if framework == "transformers":
        from outlines.models.transformers import TransformerTokenizer

        return TransformerTokenizer(engine.tokenizer)
    from outlines.models.vllm import adapt_tokenizer

    return adapt_tokenizer(engine.get_tokenizer())


def _schema_as_dict(schema: Union[str, Dict[str, Any], Type[BaseModel]]) -> Dict[str, Any]:
    if isinstance(schema, str):
        return json.loads(schema)
    if isinstance(schema, dict):
        return schema
    return schema.model_json_schema()


def prepare_guided_output(
    structured_output: "OutlinesStructuredOutputType", framework: Framework, engine: Any
) -> Dict[str, Any]:
    """The logits processor that makes `engine` follow `structured_output`.

    Args:
        structured_output: `format` ("json" or "regex"; guessed from `schema` when missing),
            `schema` (a JSON schema, a pydantic model or, for "regex", a pattern) and an
            optional `whitespace_pattern`.
        framework: the engine's kind.
        engine: the transformers pipeline, `llama_cpp.Llama` or `vllm.LLM`.

    Returns:
        `{"processor": ...}`, plus `"schema"` as a dict for JSON (what gets serialized).

    Raises:
        DistilabelUserError: for an unknown framework or format.
    """
    json_processor, regex_processor = _processor_classes(framework)
    format = structured_output.get("format")
    schema = structured_output.get("schema")
    assert schema is not None, "schema cannot be `None`"
    if not format:
        if isinstance(schema, dict) or inspect.isclass(schema):
            format = "json"
        elif isinstance(schema, str):
            format = "regex"
    target = engine if is_outlines_below_0_1_0() else _outlines_tokenizer(engine, framework)
    if format == "json":
        return {
            "processor": json_processor(
                schema, target, whitespace_pattern=structured_output.get("whitespace_pattern")
            ),
            "schema": _schema_as_dict(schema),  # type: ignore[arg-type]
        }
    if format == "regex":
        return {"processor": regex_processor(schema, target)}
    raise DistilabelUserError(
        f"Invalid format '{format}'. Must be either 'json' or 'regex'.", page=_PAGE
    )
