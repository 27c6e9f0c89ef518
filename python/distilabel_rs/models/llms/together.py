"""`TogetherLLM`: distilabel's Together AI LLM (an OpenAI-compatible API), native."""

import os
from typing import Any, Dict, Optional

from pydantic import Field, PrivateAttr, SecretStr

from distilabel_rs._providers import PROVIDERS
from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models.llms.openai import OpenAILLM

__all__ = ["TogetherLLM"]

_TOGETHER_API_KEY_ENV_VAR_NAME = "TOGETHER_API_KEY"


class TogetherLLM(OpenAILLM):
    """Together AI's OpenAI-compatible API, with the request path in Rust. Together's
    `finish_reason` values (`"eos"`) are accepted. Together's Batch API is not OpenAI's:
    offline batch generation says so.

    Attributes:
        model: the model name to use for the LLM e.g. "mistralai/Mixtral-8x7B-Instruct-v0.1".
        base_url: the base URL to use for the Together API can be set with
            `TOGETHER_BASE_URL`. Defaults to "https://api.together.xyz/v1".
        api_key: the API key to authenticate the requests to the Together API. Defaults to
            the value of the environment variable `TOGETHER_API_KEY`.
    """

    base_url: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv("TOGETHER_BASE_URL", "https://api.together.xyz/v1"),
        description="The base URL to use for the Together API requests.",
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv(_TOGETHER_API_KEY_ENV_VAR_NAME),
        description="The API key to authenticate the requests to the Together API.",
    )  # type: ignore[assignment]  # pydantic turns the str into a SecretStr

    _api_key_env_var: str = PrivateAttr(_TOGETHER_API_KEY_ENV_VAR_NAME)

    def _client_settings(self) -> Dict[str, Any]:
        return {**super()._client_settings(), "profile": PROVIDERS["together"].profile}
