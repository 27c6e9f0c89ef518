"""LLMs, at the same import path as `distilabel.models.llms`."""

from distilabel_rs.models.llms.base import LLM, AsyncLLM
from distilabel_rs.models.llms.huggingface import InferenceEndpointsLLM
from distilabel_rs.models.llms.openai import OpenAILLM
from distilabel_rs.typing import GenerateOutput, HiddenState

__all__ = [
    "LLM",
    "AsyncLLM",
    "GenerateOutput",
    "HiddenState",
    "InferenceEndpointsLLM",
    "OpenAILLM",
]
