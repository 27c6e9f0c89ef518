"""`AzureOpenAILLM`: distilabel's Azure OpenAI LLM, native.

Requests go to the deployment (`{endpoint}/openai/deployments/{model}/…`) with the
`api-version` query parameter and the key in the `api-key` header, as the openai SDK's
`AsyncAzureOpenAI` sends them; offline generation uses Azure's global Batch API (files and
batches under `{endpoint}/openai/`, each uploaded file awaited until `processed`).
"""

import os
from typing import Any, Dict, Optional

from pydantic import Field, PrivateAttr, SecretStr

from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models.llms.openai import OpenAILLM

__all__ = ["AzureOpenAILLM"]

_AZURE_OPENAI_ENDPOINT_ENV_VAR_NAME = "AZURE_OPENAI_ENDPOINT"
_AZURE_OPENAI_API_KEY_ENV_VAR_NAME = "AZURE_OPENAI_API_KEY"


class AzureOpenAILLM(OpenAILLM):
    """Azure OpenAI LLM, with the request path in Rust.

    Attributes:
        model: the model name to use for the LLM i.e. the name of the Azure deployment.
        base_url: the base URL to use for the Azure OpenAI API can be set with
            `AZURE_OPENAI_ENDPOINT`. Defaults to `None` which means that the value set for the
            environment variable `AZURE_OPENAI_ENDPOINT` will be used, or `None` if not set.
        api_key: the API key to authenticate the requests to the Azure OpenAI API. Defaults
            to `None` which means that the value set for the environment variable
            `AZURE_OPENAI_API_KEY` will be used, or `None` if not set.
        api_version: the API version to use for the Azure OpenAI API. Defaults to `None` which
            means that the value set for the environment variable `OPENAI_API_VERSION` will
            be used, or `None` if not set.

    Icon:
        `:material-microsoft-azure:`
    """

    base_url: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv(_AZURE_OPENAI_ENDPOINT_ENV_VAR_NAME),
        description="The base URL to use for the Azure OpenAI API requests i.e. the Azure"
        " OpenAI endpoint.",
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv(_AZURE_OPENAI_API_KEY_ENV_VAR_NAME),
        description="The API key to authenticate the requests to the Azure OpenAI API.",
    )  # type: ignore[assignment]  # pydantic turns the str into a SecretStr

    api_version: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv("OPENAI_API_VERSION"),
        description="The API version to use for the Azure OpenAI API.",
    )

    _base_url_env_var: str = PrivateAttr(_AZURE_OPENAI_ENDPOINT_ENV_VAR_NAME)
    _api_key_env_var: str = PrivateAttr(_AZURE_OPENAI_API_KEY_ENV_VAR_NAME)

    def _client_settings(self) -> Dict[str, Any]:
        settings = super()._client_settings()
        if not self.base_url:
            raise ValueError(
                f"To use `{type(self).__name__}` the Azure OpenAI endpoint must be provided via"
                f" `base_url` attribute or runtime parameter, or set the environment variable"
                f" `{self._base_url_env_var}`."
            )
        if not self.api_version:
            raise ValueError(
                f"To use `{type(self).__name__}` an API version must be provided via"
                " `api_version` attribute or runtime parameter, or set the environment"
                " variable `OPENAI_API_VERSION`."
            )
        deployment = f"openai/deployments/{self.model}"
        settings["profile"] = {
            "name": "azure",
            "auth": {"header": "api-key"},
            "query": {"api-version": self.api_version},
            "chat_path": f"{deployment}/chat/completions",
            "text_path": f"{deployment}/completions",
            "batch": {
                "path_prefix": "openai/",
                "endpoint": "/chat/completions",
                "wait_for_files": True,
                "max_rows": 100_000,
            },
        }
        return settings
