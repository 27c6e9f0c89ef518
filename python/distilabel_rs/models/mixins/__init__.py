"""Mixins of LLM classes, at the same import path as `distilabel.models.mixins`."""

from distilabel_rs.models.mixins.cuda_device_placement import CudaDevicePlacementMixin
from distilabel_rs.models.mixins.magpie import (
    MAGPIE_PRE_QUERY_TEMPLATES,
    MagpieAvailablePreQueryTemplates,
    MagpieChatTemplateMixin,
)

__all__ = [
    "CudaDevicePlacementMixin",
    "MAGPIE_PRE_QUERY_TEMPLATES",
    "MagpieAvailablePreQueryTemplates",
    "MagpieChatTemplateMixin",
]
