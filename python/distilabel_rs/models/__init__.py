"""Models, at the same import path as `distilabel.models`."""

from distilabel_rs.models.llms import (
    LLM,
    AsyncLLM,
    CohereLLM,
    LiteLLM,
    LlamaCppLLM,
    MixtureOfAgentsLLM,
    MlxLLM,
    OpenAILLM,
    TransformersLLM,
    VertexAILLM,
    vLLM,
)
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
