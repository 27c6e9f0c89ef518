"""`LiteLLM`: distilabel 1.5.3's LiteLLM wrapper (100+ providers behind `litellm.acompletion`).

The requests go through the `litellm` SDK (`pip install 'distilabel-rs[litellm]'`), imported
in `load()`; what distilabel_rs adds is the engine around `agenerate`: at most
`max_concurrency` requests in flight, retries of litellm's rate-limit, timeout, connection
and server errors with backoff, `requests_per_minute` and the `error_policy`.
"""

import logging
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Union

import orjson
from pydantic import Field, PrivateAttr, validate_call

from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models.llms._sdk import install_hint, sdk_errors
from distilabel_rs.models.llms.base import AsyncLLM
from distilabel_rs.models.llms.utils import prepare_output
from distilabel_rs.typing import FormattedInput, GenerateOutput, InstructorStructuredOutputType

if TYPE_CHECKING:
    from distilabel_rs.typing import StructuredOutputType

__all__ = ["LiteLLM"]

# litellm's errors worth a retry (those an installed litellm does not have are skipped).
_RETRYABLE_ERRORS = (
    "RateLimitError",
    "Timeout",
    "APIConnectionError",
    "InternalServerError",
    "BadGatewayError",
    "ServiceUnavailableError",
)


class LiteLLM(AsyncLLM):
    """LiteLLM implementation running the async API client.

    Attributes:
        model: the model name to use for the LLM e.g. "gpt-3.5-turbo" or
            "mistral/mistral-large", etc.
        verbose: whether to log the LiteLLM client's logs. Defaults to `False`.
        structured_output: a dictionary containing the structured output configuration
            using `instructor` (see `InstructorStructuredOutputType`).

    Runtime parameters:
        - `verbose`: whether to log the LiteLLM client's logs. Defaults to `False`.

    Examples:
        Generate text:

        ```python
        from distilabel_rs.models.llms import LiteLLM

        llm = LiteLLM(model="gpt-3.5-turbo", max_concurrency=16)
        llm.load()
        output = llm.generate_outputs(inputs=[[{"role": "user", "content": "Hello world!"}]])
        ```
    """

    model: str
    verbose: RuntimeParameter[bool] = Field(
        default=False, description="Whether to log the LiteLLM client's logs."
    )
    structured_output: Optional[RuntimeParameter[InstructorStructuredOutputType]] = Field(
        default=None,
        description="The structured output format to use across all the generations.",
    )

    _aclient: Optional[Callable] = PrivateAttr(...)  # type: ignore[assignment]

    def load(self) -> None:
        """Imports litellm and takes its `acompletion` (wrapped by `instructor` when
        `structured_output` is set).

        Raises:
            ImportError: if litellm is not installed.
        """
        super().load()
        try:
            import litellm
        except ImportError as e:
            raise ImportError(
                "LiteLLM Python client is not installed. Please install it using"
                f" {install_hint('litellm')}."
            ) from e
        litellm.telemetry = False
        self._aclient = litellm.acompletion

        if not self.verbose:
            litellm.suppress_debug_info = True
            for name in list(logging.Logger.manager.loggerDict):
                if "litellm" in name.lower():
                    logging.getLogger(name).setLevel(logging.CRITICAL)

        if self.structured_output:
            result = self._prepare_structured_output(
                structured_output=self.structured_output,
                client=self._aclient,
                framework="litellm",
            )
            self._aclient = result.get("client").messages.create  # type: ignore[union-attr]
            if structured_output := result.get("structured_output"):
                self.structured_output = structured_output  # type: ignore[assignment]

    @property
    def model_name(self) -> str:
        """Returns the model name used for the LLM."""
        return self.model

    def _is_retryable(self, error: BaseException) -> bool:
        """litellm's rate-limit, timeout, connection and 5xx errors are retried."""
        return super()._is_retryable(error) or isinstance(
            error, sdk_errors("litellm", _RETRYABLE_ERRORS)
        )

    @validate_call
    async def agenerate(  # type: ignore[override]
        self,
        input: FormattedInput,
        num_generations: int = 1,
        functions: Optional[List] = None,
        function_call: Optional[str] = None,
        temperature: Optional[float] = 1.0,
        top_p: Optional[float] = 1.0,
        stop: Optional[Union[str, list]] = None,
        max_tokens: Optional[int] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
        logit_bias: Optional[dict] = None,
        user: Optional[str] = None,
        metadata: Optional[dict] = None,
        api_base: Optional[str] = None,
        api_version: Optional[str] = None,
        api_key: Optional[str] = None,
        model_list: Optional[list] = None,
        mock_response: Optional[str] = None,
        force_timeout: Optional[int] = 600,
        custom_llm_provider: Optional[str] = None,
    ) -> GenerateOutput:
        """Generates `num_generations` responses for the input with LiteLLM's async client.

        Args:
            input: a single input in chat format to generate responses for.
            num_generations: the number of generations to create per input. Defaults to
                `1`.
            functions: a list of functions to apply to the conversation messages. Defaults to
                `None`.
            function_call: the name of the function to call within the conversation. Defaults
                to `None`.
            temperature: the temperature to use for the generation. Defaults to `1.0`.
            top_p: the top-p value to use for the generation. Defaults to `1.0`.
            stop: Up to 4 sequences where the LLM API will stop generating further tokens.
                Defaults to `None`.
            max_tokens: The maximum number of tokens in the generated completion. Defaults to
                `None`.
            presence_penalty: It is used to penalize new tokens based on their existence in the
                text so far. Defaults to `None`.
            frequency_penalty: It is used to penalize new tokens based on their frequency in the
                text so far. Defaults to `None`.
            logit_bias: Used to modify the probability of specific tokens appearing in the
                completion. Defaults to `None`.
            user: A unique identifier representing your end-user. This can help the LLM provider
                to monitor and detect abuse. Defaults to `None`.
            metadata: Pass in additional metadata to tag your completion calls - eg. prompt
                version, details, etc. Defaults to `None`.
            api_base: Base URL for the API. Defaults to `None`.
            api_version: API version. Defaults to `None`.
            api_key: API key. Defaults to `None`.
            model_list: List of api base, version, keys. Defaults to `None`.
            mock_response: If provided, return a mock completion response for testing or debugging
                purposes. Defaults to `None`.
            force_timeout: The maximum execution time in seconds for the completion request.
                Defaults to `600`.
            custom_llm_provider: Used for Non-OpenAI LLMs, Example usage for bedrock, set(iterable)
                model="amazon.titan-tg1-large" and custom_llm_provider="bedrock". Defaults to
                `None`.

        Returns:
            The generations, with the prompt and completion token counts computed locally by
            `litellm.token_counter`.
        """
        import litellm
        from litellm import token_counter

        client = self._aclient
        structured_output: Optional[StructuredOutputType] = None
        if isinstance(input, tuple):
            input, structured_output = input
            result = self._prepare_structured_output(
                structured_output=structured_output,  # type: ignore[arg-type]
                client=self._aclient,
                framework="litellm",
            )
            client = result.get("client").messages.create  # type: ignore[union-attr]
        if structured_output is None and self.structured_output is not None:
            structured_output = self.structured_output

        kwargs = {
            "model": self.model,
            "messages": input,
            "n": num_generations,
            "functions": functions,
            "function_call": function_call,
            "temperature": temperature,
            "top_p": top_p,
            "stream": False,
            "stop": stop,
            "max_tokens": max_tokens,
            "presence_penalty": presence_penalty,
            "frequency_penalty": frequency_penalty,
            "logit_bias": logit_bias,
            "user": user,
            "metadata": metadata,
            "api_base": api_base,
            "api_version": api_version,
            "api_key": api_key,
            "model_list": model_list,
            "mock_response": mock_response,
            "force_timeout": force_timeout,
            "custom_llm_provider": custom_llm_provider,
        }
        if structured_output:
            kwargs = self._prepare_kwargs(kwargs, structured_output)  # type: ignore[arg-type]

        async def until_n_choices() -> List[Any]:
            # A provider may return fewer choices than `n`: ask again until there are enough.
            choices: List[Any] = []
            while len(choices) < num_generations:
                completion = await client(**kwargs)  # type: ignore[misc]
                choices.extend([completion] if structured_output else completion.choices)
            return choices

        # `drop_params` makes litellm drop the parameters a provider does not support; it is
        # turned on only after a provider rejected one.
        try:
            litellm.drop_params = False
            choices = await until_n_choices()
        except litellm.exceptions.APIError as e:
            if "does not support parameters" not in str(e):
                raise
            litellm.drop_params = True
            choices = await until_n_choices()

        input_tokens = [token_counter(model=self.model, messages=input)] * num_generations  # type: ignore[arg-type]
        generations: List[Optional[str]] = []
        output_tokens: List[int] = []
        if structured_output:
            for choice in choices:
                generation = choice.model_dump_json()
                generations.append(generation)
                output_tokens.append(
                    token_counter(model=self.model, text=orjson.dumps(generation).decode("utf-8"))
                )
            return prepare_output(
                generations, input_tokens=input_tokens, output_tokens=output_tokens
            )

        for choice in choices:
            if (content := choice.message.content) is None:
                self._logger.warning(
                    f"Received no response using LiteLLM client (model: '{self.model}')."
                    f" Finish reason was: {choice.finish_reason}"
                )
            generations.append(content)
            output_tokens.append(token_counter(model=self.model, text=content))
        return prepare_output(generations, input_tokens=input_tokens, output_tokens=output_tokens)
