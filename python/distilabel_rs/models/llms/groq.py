"""`GroqLLM`: distilabel's Groq LLM, native (Groq's chat API is OpenAI's, under
`/openai/v1`; it returns one generation per request, so `num_generations` fans out and the
responses are grouped, as distilabel does). Offline generation uses Groq's Batch API, which
is OpenAI's format.
"""

import os
from typing import Any, Dict, List, Optional, Union

from pydantic import Field, PrivateAttr, SecretStr, validate_call

from distilabel_rs._providers import PROVIDERS
from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models._keys import required_api_key
from distilabel_rs.models.llms._native import NativeLLM, Request
from distilabel_rs.models.llms.openai import structured_output_format
from distilabel_rs.typing import FormattedInput, GenerateOutput, InstructorStructuredOutputType

__all__ = ["GroqLLM"]

_GROQ_API_BASE_URL_ENV_VAR_NAME = "GROQ_BASE_URL"
_GROQ_API_KEY_ENV_VAR_NAME = "GROQ_API_KEY"


class GroqLLM(NativeLLM):
    """Groq's API, with the request path in Rust.

    Attributes:
        model: the name of the model from the Groq API to use for the generation.
        base_url: the base URL to use for the Groq API requests. Defaults to
            `"https://api.groq.com"`.
        api_key: the API key to authenticate the requests to the Groq API. Defaults to
            the value of the `GROQ_API_KEY` environment variable.
        max_retries: the maximum number of times to retry the request to the API before
            failing. Defaults to `2`.
        timeout: the maximum time in seconds to wait for a response from the API. Defaults
            to `120`.
        structured_output: a `schema` (pydantic model or JSON schema) the generations
            follow, sent as a `json_schema` `response_format`; the generation is the JSON
            text.
        _api_key_env_var: the name of the environment variable to use for the API key.

    Runtime parameters:
        - `base_url`: the base URL to use for the Groq API requests. Defaults to
            `"https://api.groq.com"`.
        - `api_key`: the API key to authenticate the requests to the Groq API. Defaults to
            the value of the `GROQ_API_KEY` environment variable.
        - `max_retries`: the maximum number of times to retry the request to the API before
            failing. Defaults to `2`.
        - `timeout`: the maximum time in seconds to wait for a response from the API. Defaults
            to `120`.
    """

    model: str

    base_url: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv(_GROQ_API_BASE_URL_ENV_VAR_NAME, "https://api.groq.com"),
        description="The base URL to use for the Groq API requests.",
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv(_GROQ_API_KEY_ENV_VAR_NAME),
        description="The API key to authenticate the requests to the Groq API.",
    )  # type: ignore[assignment]  # pydantic turns the str into a SecretStr
    max_retries: RuntimeParameter[int] = Field(
        default=2,
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

    _num_generations_param_supported = False
    _api_key_env_var: str = PrivateAttr(_GROQ_API_KEY_ENV_VAR_NAME)
    _aclient: Any = PrivateAttr(None)

    _no_response_message = (
        "Received no response using the Groq client (model: '{model}')."
        " Finish reason was: {finish_reason}"
    )

    @property
    def model_name(self) -> str:
        """Returns the model name used for the LLM."""
        return self.model

    def _client_settings(self) -> Dict[str, Any]:
        api_key = required_api_key(self, self.api_key, self._api_key_env_var)
        return {
            "base_url": self.base_url,
            "profile": PROVIDERS["groq"].profile,
            "api_key": api_key.get_secret_value(),
            "timeout": self._timeout_seconds(self.timeout),
            "max_retries": self.max_retries,
        }

    @validate_call
    async def agenerate(  # type: ignore[override]
        self,
        input: FormattedInput,
        seed: Optional[int] = None,
        max_new_tokens: int = 128,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: Optional[str] = None,
    ) -> GenerateOutput:
        """Generates one response for the given input (Groq returns one generation per
        request: `generate` sends `num_generations` requests and groups them).

        Args:
            input: a single input in chat format to generate responses for.
            seed: the seed to use for the generation. Defaults to `None`.
            max_new_tokens: the maximum number of new tokens that the model will generate.
                Defaults to `128`.
            temperature: the temperature to use for the generation. Defaults to `1.0`.
            top_p: the top-p value to use for the generation. Defaults to `1.0`.
            stop: the stop sequence to use for the generation. Defaults to `None`.

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
        body: Dict[str, Any] = {
            "messages": input,
            "model": self.model,
            "seed": parameters["seed"],
            "temperature": parameters["temperature"],
            "max_tokens": parameters["max_new_tokens"],
            "top_p": parameters["top_p"],
            "stream": False,
            "stop": parameters["stop"],
        }
        if response_format is not None:
            body["response_format"] = response_format
        return "chat", body

    def offline_batch_generate(
        self,
        inputs: Union[List[FormattedInput], None] = None,
        num_generations: int = 1,
        seed: Optional[int] = None,
        max_new_tokens: int = 128,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: Optional[str] = None,
        **kwargs: Any,
    ) -> List[GenerateOutput]:
        """Generates through Groq's Batch API (OpenAI's format; `NativeLLM._offline_batch`
        describes the contract). Groq returns one generation per request, so each input
        gets `num_generations` rows.

        Args:
            inputs: the conversations (not needed once `jobs_ids` is set).
            num_generations: generations per input.
            seed: the seed to use for the generation.
            max_new_tokens: the maximum number of new tokens that the model will generate.
            temperature: the temperature to use for the generation.
            top_p: the top-p value to use for the generation.
            stop: the stop sequence to use for the generation.
            **kwargs: ignored.

        Returns:
            One output per input.
        """
        parameters = {
            "seed": seed,
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "stop": stop,
        }
        context = self._batch_context()
        return self._offline_batch(
            inputs,
            num_generations,
            lambda input: self._request({"input": input, **parameters}, context),
        )
