"""Hugging Face LLMs, at the same import path as `distilabel.models.llms.huggingface`."""

from distilabel_rs.models.llms.huggingface.inference_endpoints import InferenceEndpointsLLM

__all__ = ["InferenceEndpointsLLM"]
