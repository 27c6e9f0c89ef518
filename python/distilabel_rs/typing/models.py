"""Types of what LLMs take and return."""

from typing import TYPE_CHECKING, Any, Dict, List, Literal, Optional, Tuple, Type, TypeVar, Union

from pydantic import BaseModel
from typing_extensions import NotRequired, TypedDict

from distilabel_rs.typing.base import ChatType

LLMOutput = List[Union[str, None]]


class Logprob(TypedDict):
    token: str
    logprob: float


LLMLogprobs = List[List[List[Logprob]]]
"""Log probabilities: per choice, per generated position, the top-k alternatives."""


class TokenCount(TypedDict):
    input_tokens: List[int]
    output_tokens: List[int]


LLMStatistics = Union[TokenCount, Dict[str, Any]]
"""Token counts, plus any other statistic an LLM reports."""


class GenerateOutput(TypedDict):
    generations: LLMOutput
    statistics: LLMStatistics
    logprobs: NotRequired[LLMLogprobs]


class OutlinesStructuredOutputType(TypedDict, total=False):
    """Structured output configuration in `outlines` style."""

    format: Literal["json", "regex"]
    schema: Union[str, Type[BaseModel], Dict[str, Any]]
    whitespace_pattern: Optional[Union[str, List[str]]]


class InstructorStructuredOutputType(TypedDict, total=False):
    """Structured output configuration in `instructor` style."""

    format: Optional[Literal["json"]]
    schema: Union[Type[BaseModel], Dict[str, Any]]
    mode: Optional[str]
    max_retries: int


StructuredOutputType = Union[OutlinesStructuredOutputType, InstructorStructuredOutputType]
"""Either structured output configuration."""

StandardInput = ChatType
"""The default input of an LLM: a conversation."""

StructuredInput = Tuple[StandardInput, Union[StructuredOutputType, None]]
"""A conversation with the structured output it must follow."""

FormattedInput = Union[StandardInput, StructuredInput, str]
"""Anything an LLM accepts as one input."""

if TYPE_CHECKING:
    from numpy import floating
    from numpy.typing import NDArray

    GenericFloat = TypeVar("GenericFloat", bound=floating[Any])
    HiddenState = NDArray[GenericFloat]
else:
    HiddenState = Any
