"""Models, at the same import path as `distilabel.models`."""

from distilabel_rs.models.llms import LLM, AsyncLLM, InferenceEndpointsLLM, OpenAILLM
from distilabel_rs.typing import GenerateOutput, HiddenState

__all__ = [
    "LLM",
    "AsyncLLM",
    "GenerateOutput",
    "HiddenState",
    "InferenceEndpointsLLM",
    "OpenAILLM",
]
