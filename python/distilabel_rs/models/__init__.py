"""Models, at the same import path as `distilabel.models`."""

from distilabel_rs.models.llms import (
    LLM,
    AnyscaleLLM,
    AsyncLLM,
    AzureOpenAILLM,
    ClientvLLM,
    GroqLLM,
    MistralLLM,
    OpenAILLM,
    TogetherLLM,
)
from distilabel_rs.typing import GenerateOutput, HiddenState

__all__ = [
    "LLM",
    "AnyscaleLLM",
    "AsyncLLM",
    "AzureOpenAILLM",
    "ClientvLLM",
    "GenerateOutput",
    "GroqLLM",
    "HiddenState",
    "MistralLLM",
    "OpenAILLM",
    "TogetherLLM",
]
