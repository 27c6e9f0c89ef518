"""Hugging Face LLMs, at the same import path as `distilabel.models.llms.huggingface`."""

from distilabel_rs.models.llms.huggingface.inference_endpoints import InferenceEndpointsLLM
from distilabel_rs.models.llms.huggingface.transformers import TransformersLLM

__all__ = ["InferenceEndpointsLLM", "TransformersLLM"]
