"""Configuration shared by clients of OpenAI-compatible APIs (distilabel's fields, exactly)."""

import os
from typing import Any, Dict, Optional

from pydantic import BaseModel, Field, PrivateAttr, SecretStr

from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models._keys import required_api_key
from distilabel_rs.typing import InstructorStructuredOutputType

__all__ = ["OpenAIBaseClient"]

_OPENAI_API_KEY_ENV_VAR_NAME = "OPENAI_API_KEY"


class OpenAIBaseClient(BaseModel):
    """Model, endpoint and credentials of an OpenAI-compatible API."""

    model: str
    base_url: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv("OPENAI_BASE_URL", "https://api.openai.com/v1"),
        description="The base URL to use for the OpenAI API requests.",
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv(_OPENAI_API_KEY_ENV_VAR_NAME),
        description="The API key to authenticate the requests to the OpenAI API.",
    )  # type: ignore
    default_headers: Optional[RuntimeParameter[Dict[str, str]]] = Field(
        default=None,
        description="The default headers to use for the OpenAI API requests.",
    )
    max_retries: RuntimeParameter[int] = Field(
        default=6,
        description="The maximum number of times to retry the request to the API before failing.",
    )
    timeout: RuntimeParameter[int] = Field(
        default=120,
        description="The maximum time in seconds to wait for a response from the API.",
    )
    structured_output: Optional[RuntimeParameter[InstructorStructuredOutputType]] = Field(
        default=None,
        description="The structured output format to use across all the generations.",
    )

    _api_key_env_var: str = PrivateAttr(_OPENAI_API_KEY_ENV_VAR_NAME)
    # distilabel's SDK clients. The native LLMs keep their client elsewhere (process-local);
    # these stay `None`.
    _client: Any = PrivateAttr(None)
    _aclient: Any = PrivateAttr(None)

    def _check_api_key(self) -> SecretStr:
        return required_api_key(self, self.api_key, self._api_key_env_var)

    def unload(self) -> None:
        """Drops the clients. Like distilabel, also resets `default_headers` and
        `structured_output`."""
        self._client = None
        self._aclient = None
        self.default_headers = None
        self.structured_output = None
        # The LLM's own `unload` (the native client), when mixed into an LLM.
        unload = getattr(super(), "unload", None)
        if unload is not None:
            unload()

    @property
    def model_name(self) -> str:
        """The model requests are sent to."""
        return self.model
