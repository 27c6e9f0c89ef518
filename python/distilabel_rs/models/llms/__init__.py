"""LLMs, at the same import path as `distilabel.models.llms`."""

from distilabel_rs.models.llms.anthropic import AnthropicLLM
from distilabel_rs.models.llms.anyscale import AnyscaleLLM
from distilabel_rs.models.llms.azure import AzureOpenAILLM
from distilabel_rs.models.llms.base import LLM, AsyncLLM
from distilabel_rs.models.llms.cohere import CohereLLM
from distilabel_rs.models.llms.groq import GroqLLM
from distilabel_rs.models.llms.huggingface import InferenceEndpointsLLM, TransformersLLM
from distilabel_rs.models.llms.litellm import LiteLLM
from distilabel_rs.models.llms.llamacpp import LlamaCppLLM
from distilabel_rs.models.llms.mistral import MistralLLM
from distilabel_rs.models.llms.mlx import MlxLLM
from distilabel_rs.models.llms.moa import MixtureOfAgentsLLM
from distilabel_rs.models.llms.ollama import OllamaLLM
from distilabel_rs.models.llms.openai import OpenAILLM
from distilabel_rs.models.llms.together import TogetherLLM
from distilabel_rs.models.llms.vertexai import VertexAILLM
from distilabel_rs.models.llms.vllm import ClientvLLM, vLLM
from distilabel_rs.models.mixins.cuda_device_placement import CudaDevicePlacementMixin
from distilabel_rs.typing import GenerateOutput, HiddenState

# In the order of distilabel's `__all__`.
__all__ = [
    "LLM",
    "AnthropicLLM",
    "AnyscaleLLM",
    "AsyncLLM",
    "AzureOpenAILLM",
    "ClientvLLM",
    "CohereLLM",
    "CudaDevicePlacementMixin",
    "GenerateOutput",
    "GroqLLM",
    "HiddenState",
    "InferenceEndpointsLLM",
    "LiteLLM",
    "LlamaCppLLM",
    "MistralLLM",
    "MixtureOfAgentsLLM",
    "MlxLLM",
    "OllamaLLM",
    "OpenAILLM",
    "TogetherLLM",
    "TransformersLLM",
    "VertexAILLM",
    "vLLM",
]
