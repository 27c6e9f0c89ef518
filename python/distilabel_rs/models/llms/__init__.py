"""LLMs, at the same import path as `distilabel.models.llms`."""

from distilabel_rs.models.llms.base import LLM, AsyncLLM
from distilabel_rs.models.llms.cohere import CohereLLM
from distilabel_rs.models.llms.huggingface import TransformersLLM
from distilabel_rs.models.llms.litellm import LiteLLM
from distilabel_rs.models.llms.llamacpp import LlamaCppLLM
from distilabel_rs.models.llms.mlx import MlxLLM
from distilabel_rs.models.llms.moa import MixtureOfAgentsLLM
from distilabel_rs.models.llms.openai import OpenAILLM
from distilabel_rs.models.llms.vertexai import VertexAILLM
from distilabel_rs.models.llms.vllm import vLLM
from distilabel_rs.models.mixins.cuda_device_placement import CudaDevicePlacementMixin
from distilabel_rs.typing import GenerateOutput, HiddenState

# In the order of distilabel's `__all__`.
__all__ = [
    "LLM",
    "AsyncLLM",
    "CohereLLM",
    "CudaDevicePlacementMixin",
    "GenerateOutput",
    "HiddenState",
    "LiteLLM",
    "LlamaCppLLM",
    "MixtureOfAgentsLLM",
    "MlxLLM",
    "OpenAILLM",
    "TransformersLLM",
    "VertexAILLM",
    "vLLM",
]
