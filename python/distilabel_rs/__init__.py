"""distilabel-rs: a drop-in for distilabel 1.5.3's LLM layer, with a Rust core.

Port code by replacing `distilabel.` with `distilabel_rs.` in its imports.
"""

from distilabel_rs._core import __version__
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
from distilabel_rs.models.llms.base import LLM, AsyncLLM, merge_responses
from distilabel_rs.models.llms.openai import OpenAILLM
from distilabel_rs.typing import FormattedInput, GenerateOutput

__all__ = [
    "LLM",
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
