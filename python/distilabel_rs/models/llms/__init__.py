"""LLMs, at the same import path as `distilabel.models.llms`."""

from distilabel_rs.models.llms.anyscale import AnyscaleLLM
from distilabel_rs.models.llms.azure import AzureOpenAILLM
from distilabel_rs.models.llms.base import LLM, AsyncLLM
from distilabel_rs.models.llms.groq import GroqLLM
from distilabel_rs.models.llms.mistral import MistralLLM
from distilabel_rs.models.llms.openai import OpenAILLM
from distilabel_rs.models.llms.together import TogetherLLM
from distilabel_rs.models.llms.vllm import ClientvLLM
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
