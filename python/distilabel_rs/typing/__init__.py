"""Public types, at the same paths as `distilabel.typing`."""

from distilabel_rs.typing.base import ChatItem, ChatType, ImageContent, ImageUrl, TextContent
from distilabel_rs.typing.models import (
    FormattedInput,
    GenerateOutput,
    HiddenState,
    InstructorStructuredOutputType,
    LLMLogprobs,
    LLMOutput,
    LLMStatistics,
    Logprob,
    OutlinesStructuredOutputType,
    StandardInput,
    StructuredInput,
    StructuredOutputType,
    TokenCount,
)
from distilabel_rs.typing.steps import GeneratorStepOutput, StepColumns, StepOutput

__all__ = [
    "ChatItem",
    "ChatType",
    "FormattedInput",
    "GenerateOutput",
    "GeneratorStepOutput",
    "HiddenState",
    "ImageContent",
    "ImageUrl",
    "InstructorStructuredOutputType",
    "LLMLogprobs",
    "LLMOutput",
    "LLMStatistics",
    "Logprob",
    "OutlinesStructuredOutputType",
    "StandardInput",
    "StepColumns",
    "StepOutput",
    "StructuredInput",
    "StructuredOutputType",
    "TextContent",
    "TokenCount",
]
