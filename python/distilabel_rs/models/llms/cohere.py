"""`CohereLLM`: distilabel 1.5.3's Cohere wrapper (the v1 chat API of the `cohere` SDK).

The requests go through `cohere.AsyncClient` (`pip install 'distilabel-rs[cohere]'`),
imported in `load()`; what distilabel_rs adds is the engine around `agenerate`: at most
`max_concurrency` requests in flight, retries of Cohere's rate-limit, timeout and server
errors with backoff (honouring their `retry-after` header), `requests_per_minute` and the
`error_policy`.
"""

import os
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple, Type, Union

import orjson
from pydantic import Field, PrivateAttr, SecretStr, validate_call

from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models._keys import required_api_key
from distilabel_rs.models.llms._sdk import has_retryable_status, install_hint, sdk_errors
from distilabel_rs.models.llms.base import AsyncLLM
from distilabel_rs.models.llms.utils import compute_tokens, prepare_output
from distilabel_rs.typing import FormattedInput, GenerateOutput, InstructorStructuredOutputType

if TYPE_CHECKING:
    from cohere import AsyncClient, ChatMessage
    from tokenizers import Tokenizer

    from distilabel_rs.typing import LLMStatistics

__all__ = ["CohereLLM"]

_COHERE_API_KEY_ENV_VAR_NAME = "COHERE_API_KEY"
# cohere's errors worth a retry (besides any `ApiError` with a retryable status).
_RETRYABLE_ERRORS = (
    "TooManyRequestsError",
    "InternalServerError",
    "ServiceUnavailableError",
    "GatewayTimeoutError",
)


class CohereLLM(AsyncLLM):
    """Cohere API implementation using the async client for concurrent text generation.

    Attributes:
        model: the name of the model from the Cohere API to use for the generation.
        base_url: the base URL to use for the Cohere API requests. Defaults to
            `"https://api.cohere.ai/v1"`.
        api_key: the API key to authenticate the requests to the Cohere API. Defaults to
            the value of the `COHERE_API_KEY` environment variable.
        timeout: the maximum time in seconds to wait for a response from the API. Defaults
            to `120`.
        client_name: the name of the client to use for the API requests. Defaults to
            `"distilabel"`.
        structured_output: a dictionary containing the structured output configuration
            using `instructor` (see `InstructorStructuredOutputType`).
        _ChatMessage: the `ChatMessage` class from the `cohere` package.
        _aclient: the `AsyncClient` client from the `cohere` package.
        _tokenizer: the model's tokenizer, used for the token counts.

    Runtime parameters:
        - `base_url`: the base URL to use for the Cohere API requests. Defaults to
            `"https://api.cohere.ai/v1"`.
        - `api_key`: the API key to authenticate the requests to the Cohere API. Defaults
            to the value of the `COHERE_API_KEY` environment variable.
        - `timeout`: the maximum time in seconds to wait for a response from the API. Defaults
            to `120`.
        - `client_name`: the name of the client to use for the API requests. Defaults to
            `"distilabel"`.

    Examples:
        Generate text:

        ```python
        from distilabel_rs.models.llms import CohereLLM

        llm = CohereLLM(model="command-r-plus")
        llm.load()
        output = llm.generate_outputs(inputs=[[{"role": "user", "content": "Hello world!"}]])
        ```
    """

    model: str
    base_url: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv("COHERE_BASE_URL", "https://api.cohere.ai/v1"),
        description="The base URL to use for the Cohere API requests.",
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(  # type: ignore[assignment]
        default_factory=lambda: os.getenv(_COHERE_API_KEY_ENV_VAR_NAME),
        description="The API key to authenticate the requests to the Cohere API.",
    )
    timeout: RuntimeParameter[int] = Field(
        default=120,
        description="The maximum time in seconds to wait for a response from the API.",
    )
    client_name: RuntimeParameter[str] = Field(
        default="distilabel",
        description="The name of the client to use for the API requests.",
    )
    structured_output: Optional[RuntimeParameter[InstructorStructuredOutputType]] = Field(
        default=None,
        description="The structured output format to use across all the generations.",
    )

    _num_generations_param_supported = False

    _ChatMessage: Type["ChatMessage"] = PrivateAttr(...)  # type: ignore[assignment]
    _aclient: "AsyncClient" = PrivateAttr(...)  # type: ignore[assignment]
    _tokenizer: "Tokenizer" = PrivateAttr(...)  # type: ignore[assignment]

    @property
    def model_name(self) -> str:
        """Returns the model name used for the LLM."""
        return self.model

    def load(self) -> None:
        """Creates the `cohere.AsyncClient` (wrapped by `instructor` when
        `structured_output` is set) and fetches the model's tokenizer, used for the token
        counts.

        Raises:
            ImportError: if cohere is not installed.
            ValueError: if no API key is set.
        """
        super().load()
        try:
            from cohere import AsyncClient, ChatMessage, Client
        except ImportError as e:
            raise ImportError(
                "The `cohere` package is required to use the `CohereLLM` class. Please"
                f" install it using {install_hint('cohere')}."
            ) from e
        api_key = required_api_key(self, self.api_key, _COHERE_API_KEY_ENV_VAR_NAME)

        self._ChatMessage = ChatMessage
        client_kwargs = {
            "api_key": api_key.get_secret_value(),
            "client_name": self.client_name,
            "base_url": self.base_url,
            "timeout": self.timeout,
        }
        self._aclient = AsyncClient(**client_kwargs)  # type: ignore[arg-type]
        # The tokenizer is fetched once, here, through a synchronous client: `load()` may
        # run inside an event loop (and cohere's tokenizer helper is synchronous).
        from cohere.manually_maintained.tokenizers import get_hf_tokenizer

        self._tokenizer = get_hf_tokenizer(Client(**client_kwargs), self.model)  # type: ignore[arg-type]

        if self.structured_output:
            result = self._prepare_structured_output(
                structured_output=self.structured_output,
                client=self._aclient,
                framework="cohere",
            )
            self._aclient = result.get("client")  # type: ignore[assignment]
            if structured_output := result.get("structured_output"):
                self.structured_output = structured_output  # type: ignore[assignment]

    def _is_retryable(self, error: BaseException) -> bool:
        """Cohere's rate-limit, timeout and 5xx errors are retried, and so are timeouts and
        connection errors of its HTTP client."""
        if super()._is_retryable(error):
            return True
        if isinstance(error, sdk_errors("cohere", _RETRYABLE_ERRORS)):
            return True
        api_errors = sdk_errors("cohere", ("ApiError",))
        if api_errors and isinstance(error, api_errors):
            return has_retryable_status(error)
        return isinstance(error, sdk_errors("httpx", ("TimeoutException", "TransportError")))

    def _retry_after(self, error: BaseException) -> Optional[float]:
        """Cohere's errors carry the response headers as `headers`."""
        headers = getattr(error, "headers", None)
        if isinstance(headers, dict):
            lowered = {str(key).lower(): value for key, value in headers.items()}
            try:
                if (milliseconds := lowered.get("retry-after-ms")) is not None:
                    return float(milliseconds) / 1000
                if (seconds := lowered.get("retry-after")) is not None:
                    return float(seconds)
            except (TypeError, ValueError):
                return None
        return super()._retry_after(error)

    def _format_chat_to_cohere(
        self, input: "FormattedInput"
    ) -> Tuple[Union[str, None], List["ChatMessage"], str]:
        """Formats the chat input to the Cohere Chat API conversational format.

        Args:
            input: The chat input to format.

        Returns:
            A tuple containing the system, chat history, and message.
        """
        system = None
        message = None
        chat_history = []
        for item in input:
            role = item["role"]  # type: ignore[call-overload, index, typeddict-item]
            content = item["content"]  # type: ignore[call-overload, index, typeddict-item]
            if role == "system":
                system = content
            elif role == "user":
                message = content
            elif role == "assistant":
                if message is None:
                    raise ValueError("An assistant message but be preceded by a user message.")
                chat_history.append(self._ChatMessage(role="USER", message=message))  # type: ignore[call-arg]
                chat_history.append(self._ChatMessage(role="CHATBOT", message=content))  # type: ignore[call-arg]
                message = None
        if message is None:
            raise ValueError("The chat input must end with a user message.")
        return system, chat_history, message  # type: ignore[return-value]

    @validate_call
    async def agenerate(  # type: ignore[override]
        self,
        input: FormattedInput,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        k: Optional[int] = None,
        p: Optional[float] = None,
        seed: Optional[float] = None,
        stop_sequences: Optional[Sequence[str]] = None,
        frequency_penalty: Optional[float] = None,
        presence_penalty: Optional[float] = None,
        raw_prompting: Optional[bool] = None,
    ) -> GenerateOutput:
        """Generates a response from the LLM given an input.

        Args:
            input: a single input in chat format to generate responses for.
            temperature: the temperature to use for the generation. Defaults to `None`.
            max_tokens: the maximum number of new tokens that the model will generate.
                Defaults to `None`.
            k: the number of highest probability vocabulary tokens to keep for the generation.
                Defaults to `None`.
            p: the nucleus sampling probability to use for the generation. Defaults to
                `None`.
            seed: the seed to use for the generation. Defaults to `None`.
            stop_sequences: a list of sequences to use as stopping criteria for the generation.
                Defaults to `None`.
            frequency_penalty: the frequency penalty to use for the generation. Defaults
                to `None`.
            presence_penalty: the presence penalty to use for the generation. Defaults to
                `None`.
            raw_prompting: a flag to use raw prompting for the generation. Defaults to
                `None`.

        Returns:
            The generated response from the Cohere API model.
        """
        client: Any = self._aclient
        structured_output = None
        if isinstance(input, tuple):
            input, structured_output = input
            result = self._prepare_structured_output(
                structured_output=structured_output,  # type: ignore[arg-type]
                client=self._aclient,
                framework="cohere",
            )
            client = result.get("client")
        if structured_output is None and self.structured_output is not None:
            structured_output = self.structured_output

        system, chat_history, message = self._format_chat_to_cohere(input)
        kwargs = {
            "message": message,
            "model": self.model,
            "preamble": system,
            "chat_history": chat_history,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "k": k,
            "p": p,
            "seed": seed,
            "stop_sequences": stop_sequences,
            "frequency_penalty": frequency_penalty,
            "presence_penalty": presence_penalty,
            "raw_prompting": raw_prompting,
        }
        if structured_output:
            kwargs = self._prepare_kwargs(kwargs, structured_output)  # type: ignore[arg-type]

        response = await client.chat(**kwargs)

        if structured_output:
            generation = response.model_dump_json()
            return prepare_output(
                [generation],
                **self._get_llm_statistics(input, orjson.dumps(generation).decode("utf-8")),
            )
        if (text := response.text) == "":
            self._logger.warning(
                f"Received no response using Cohere client (model: '{self.model}')."
                f" Finish reason was: {response.finish_reason}"
            )
            return prepare_output([None], **self._get_llm_statistics(input, ""))
        return prepare_output([text], **self._get_llm_statistics(input, text))

    def _get_llm_statistics(self, input: FormattedInput, output: str) -> "LLMStatistics":
        return {
            "input_tokens": [compute_tokens(input, self._tokenizer.encode)],  # type: ignore[arg-type]
            "output_tokens": [compute_tokens(output, self._tokenizer.encode)],  # type: ignore[arg-type]
        }
