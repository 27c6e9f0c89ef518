"""`AnyscaleLLM`: distilabel's Anyscale Endpoints LLM (an OpenAI-compatible API), native."""

import os
from typing import Any, Dict, Optional

from pydantic import Field, PrivateAttr, SecretStr

from distilabel_rs._providers import PROVIDERS
from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models.llms.openai import OpenAILLM

__all__ = ["AnyscaleLLM"]

_ANYSCALE_API_KEY_ENV_VAR_NAME = "ANYSCALE_API_KEY"


class AnyscaleLLM(OpenAILLM):
    """Anyscale Endpoints' OpenAI-compatible API, with the request path in Rust. (Anyscale
    retired its multi-tenant endpoints in 2024; the class works with any compatible
    `base_url`.) No Batch API.

    Attributes:
        model: the model name to use for the LLM, e.g., `google/gemma-7b-it`.
        base_url: the base URL to use for the Anyscale API requests. Defaults to the value
            of the environment variable `ANYSCALE_BASE_URL`, or
            "https://api.endpoints.anyscale.com/v1".
        api_key: the API key to authenticate the requests to the Anyscale API. Defaults to
            the value of the environment variable `ANYSCALE_API_KEY`.
    """

    base_url: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv(
            "ANYSCALE_BASE_URL", "https://api.endpoints.anyscale.com/v1"
        ),
        description="The base URL to use for the Anyscale API requests.",
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv(_ANYSCALE_API_KEY_ENV_VAR_NAME),
        description="The API key to authenticate the requests to the Anyscale API.",
    )  # type: ignore[assignment]  # pydantic turns the str into a SecretStr

    _api_key_env_var: str = PrivateAttr(_ANYSCALE_API_KEY_ENV_VAR_NAME)

    def _client_settings(self) -> Dict[str, Any]:
        return {**super()._client_settings(), "profile": PROVIDERS["anyscale"].profile}
