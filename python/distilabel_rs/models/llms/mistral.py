"""`MistralLLM`: distilabel's Mistral AI LLM, native (Mistral's chat endpoint is
OpenAI-shaped: `POST {endpoint}/v1/chat/completions`; one generation per request, so
`num_generations` fans out and the responses are grouped, as distilabel does).

distilabel 1.5.3's `load()` fails with mistralai 1.x (`Mistral.__init__() got an unexpected
keyword argument 'endpoint'`); this class needs no SDK.
"""

import os
from typing import Any, Dict, Optional

from pydantic import Field, PrivateAttr, SecretStr, validate_call

from distilabel_rs._providers import PROVIDERS
from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models._keys import required_api_key
from distilabel_rs.models.llms import _fanout
from distilabel_rs.models.llms._native import NativeLLM, Request
from distilabel_rs.models.llms.openai import structured_output_format
from distilabel_rs.typing import FormattedInput, GenerateOutput, InstructorStructuredOutputType

__all__ = ["MistralLLM"]

_MISTRALAI_API_KEY_ENV_VAR_NAME = "MISTRAL_API_KEY"


class MistralLLM(NativeLLM):
    """Mistral AI's API, with the request path in Rust.

    Attributes:
        model: the model name to use for the LLM e.g. "mistral-tiny", "mistral-large", etc.
        endpoint: the endpoint to use for the Mistral API. Defaults to
            "https://api.mistral.ai".
        api_key: the API key to authenticate the requests to the Mistral API. Defaults to
            the value of the environment variable `MISTRAL_API_KEY`.
        max_retries: the maximum number of retries to attempt when a request fails.
            Defaults to `6`.
        timeout: the maximum time in seconds to wait for a response. Defaults to `120`.
        max_concurrent_requests: the maximum number of concurrent requests to send.
            Defaults to `64`; requests in flight are at most the smaller of it and
            `max_concurrency`.
        structured_output: a `schema` (pydantic model or JSON schema) the generations
            follow, sent as a `json_schema` `response_format`; the generation is the JSON
            text.
        _api_key_env_var: the name of the environment variable to use for the API key.

    Runtime parameters:
        - `api_key`: the API key to authenticate the requests to the Mistral API.
        - `max_retries`: the maximum number of retries to attempt when a request fails.
            Defaults to `5`.
        - `timeout`: the maximum time in seconds to wait for a response. Defaults to `120`.
        - `max_concurrent_requests`: the maximum number of concurrent requests to send.
            Defaults to `64`.
    """

    model: str
    endpoint: str = "https://api.mistral.ai"
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv(_MISTRALAI_API_KEY_ENV_VAR_NAME),
        description="The API key to authenticate the requests to the Mistral API.",
    )  # type: ignore[assignment]  # pydantic turns the str into a SecretStr
    max_retries: RuntimeParameter[int] = Field(
        default=6,
        description="The maximum number of times to retry the request to the API before failing.",
    )
    timeout: RuntimeParameter[int] = Field(
        default=120,
        description="The maximum time in seconds to wait for a response from the API.",
    )
    max_concurrent_requests: RuntimeParameter[int] = Field(
        default=64, description="The maximum number of concurrent requests to send."
    )
    structured_output: Optional[RuntimeParameter[InstructorStructuredOutputType]] = Field(
        default=None,
        description="The structured output format to use across all the generations.",
    )

    _num_generations_param_supported = False
    _api_key_env_var: str = PrivateAttr(_MISTRALAI_API_KEY_ENV_VAR_NAME)
    _aclient: Any = PrivateAttr(None)

    _no_response_message = (
        "Received no response using MistralAI client (model: '{model}')."
        " Finish reason was: {finish_reason}"
    )

    @property
    def model_name(self) -> str:
        """Returns the model name used for the LLM."""
        return self.model

    def _client_settings(self) -> Dict[str, Any]:
        api_key = required_api_key(self, self.api_key, self._api_key_env_var)
        return {
            "base_url": self.endpoint,
            "profile": PROVIDERS["mistral"].profile,
            "api_key": api_key.get_secret_value(),
            "timeout": self._timeout_seconds(self.timeout),
            "max_retries": self.max_retries,
        }

    def _start(self, requests: Any) -> Any:
        return self._native_client().start(
            requests,
            max_concurrency=_fanout.combine_limits(
                self.max_concurrency, self.max_concurrent_requests
            ),
            fail_fast=self.error_policy == "raise",
        )

    @validate_call
    async def agenerate(  # type: ignore[override]
        self,
        input: FormattedInput,
        max_new_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
    ) -> GenerateOutput:
        """Generates one response for the given input (Mistral returns one generation
        per request: `generate` sends `num_generations` requests and groups them).

        Args:
            input: a single input in chat format to generate responses for.
            max_new_tokens: the maximum number of new tokens that the model will generate.
                Defaults to `None` (the API's default).
            temperature: the temperature to use for the generation. Defaults to `None`.
            top_p: the top-p value to use for the generation. Defaults to `None`.

        Returns:
            The generation with its statistics.
        """
        return await self._agenerate_one(locals())

    def _batch_context(self) -> Optional[Dict[str, Any]]:
        return structured_output_format(self.structured_output)  # type: ignore[arg-type]

    def _request(self, parameters: Dict[str, Any], context: Any) -> Request:
        input = parameters["input"]
        response_format = context
        if isinstance(input, tuple):
            input, structured_output = input
            if structured_output is not None:
                response_format = structured_output_format(structured_output)
        # As the mistralai SDK sends them: `temperature` and `max_tokens` always (null when
        # unset), `top_p` only when set.
        body: Dict[str, Any] = {
            "model": self.model,
            "messages": input,
            "temperature": parameters["temperature"],
            "max_tokens": parameters["max_new_tokens"],
            "stream": False,
        }
        if parameters["top_p"] is not None:
            body["top_p"] = parameters["top_p"]
        if response_format is not None:
            body["response_format"] = response_format
        return "chat", body
