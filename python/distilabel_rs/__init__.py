"""distilabel-rs: a drop-in for distilabel 1.5.3's LLM layer, with a Rust core.

Port code by replacing `distilabel.` with `distilabel_rs.` in its imports.

The names below are imported on first use, so that `import distilabel_rs` (and the
`distilabel-rs` command) stays fast and does not import pydantic models, or distilabel, that
are not needed.
"""

import importlib
from typing import TYPE_CHECKING, Any

from distilabel_rs._core import __version__

if TYPE_CHECKING:
    from distilabel_rs.errors import (
        DistilabelError,
        DistilabelNotImplementedError,
        DistilabelTypeError,
        DistilabelUserError,
    )
    from distilabel_rs.exceptions import (
        DistilabelException,
        DistilabelGenerationException,
        DistilabelOfflineBatchGenerationNotFinishedException,
    )
    from distilabel_rs.mixins.runtime_parameters import (
        RuntimeParameter,
        RuntimeParametersMixin,
        RuntimeParametersModelMixin,
    )
    from distilabel_rs.models.llms.anthropic import AnthropicLLM
    from distilabel_rs.models.llms.base import LLM, AsyncLLM, merge_responses
    from distilabel_rs.models.llms.openai import OpenAILLM
    from distilabel_rs.typing import FormattedInput, GenerateOutput

_EXPORTS = {
    "LLM": "distilabel_rs.models.llms.base",
    "AsyncLLM": "distilabel_rs.models.llms.base",
    "merge_responses": "distilabel_rs.models.llms.base",
    "OpenAILLM": "distilabel_rs.models.llms.openai",
    "AnthropicLLM": "distilabel_rs.models.llms.anthropic",
    "DistilabelError": "distilabel_rs.errors",
    "DistilabelNotImplementedError": "distilabel_rs.errors",
    "DistilabelTypeError": "distilabel_rs.errors",
    "DistilabelUserError": "distilabel_rs.errors",
    "DistilabelException": "distilabel_rs.exceptions",
    "DistilabelGenerationException": "distilabel_rs.exceptions",
    "DistilabelOfflineBatchGenerationNotFinishedException": "distilabel_rs.exceptions",
    "RuntimeParameter": "distilabel_rs.mixins.runtime_parameters",
    "RuntimeParametersMixin": "distilabel_rs.mixins.runtime_parameters",
    "RuntimeParametersModelMixin": "distilabel_rs.mixins.runtime_parameters",
    "FormattedInput": "distilabel_rs.typing",
    "GenerateOutput": "distilabel_rs.typing",
}

__all__ = [
    "LLM",
    "AnthropicLLM",
    "AsyncLLM",
    "DistilabelError",
    "DistilabelException",
    "DistilabelGenerationException",
    "DistilabelNotImplementedError",
    "DistilabelOfflineBatchGenerationNotFinishedException",
    "DistilabelTypeError",
    "DistilabelUserError",
    "FormattedInput",
    "GenerateOutput",
    "OpenAILLM",
    "RuntimeParameter",
    "RuntimeParametersMixin",
    "RuntimeParametersModelMixin",
    "__version__",
    "merge_responses",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'distilabel_rs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
