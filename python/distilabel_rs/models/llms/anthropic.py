"""`AnthropicLLM`: distilabel's Anthropic LLM with the whole request path in Rust.

The fields, generation parameters, request bodies, outputs and validation errors are
distilabel 1.5.3's; the requests go through the native client (`POST {base_url}/v1/messages`
with `x-api-key` and `anthropic-version: 2023-06-01`), with no anthropic SDK involved. The
Messages API has no `n`: `num_generations` sends one request per generation and groups them
per input, as distilabel does. Offline generation (`use_offline_batch_generation=True`) runs
through Message Batches, which distilabel 1.5.3 does not have.
"""

import inspect
import json
import os
import re
from typing import TYPE_CHECKING, Any, ClassVar, Dict, List, Optional, Tuple, Union

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, validate_call

from distilabel_rs._providers import PROVIDERS
from distilabel_rs.errors import DistilabelUserError
from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models._keys import required_api_key
from distilabel_rs.models.llms._native import NativeLLM, Request
from distilabel_rs.models.llms.base import AsyncLLM
from distilabel_rs.models.llms.utils import prepare_output
from distilabel_rs.typing import (
    FormattedInput,
    GenerateOutput,
    InstructorStructuredOutputType,
)

if TYPE_CHECKING:
    from distilabel_rs.typing import StandardInput

__all__ = ["AnthropicLLM"]

_ANTHROPIC_API_KEY_ENV_VAR_NAME = "ANTHROPIC_API_KEY"
_DEFAULT_BASE_URL = PROVIDERS["anthropic"].default_base_url
_STRUCTURED_OUTPUT_PAGE = "sections/how_to_guides/advanced/structured_generation/#instructor"


def _tool_format(structured_output: Dict[str, Any]) -> Dict[str, Any]:
    """`tools` and `tool_choice` making the model answer with JSON that follows the schema
    of `structured_output` (the input of the one tool it is made to call)."""
    schema: Any = structured_output.get("schema")
    if inspect.isclass(schema) and issubclass(schema, BaseModel):
        schema = schema.model_json_schema()
    elif isinstance(schema, str):
        schema = json.loads(schema)
    if not schema:
        raise DistilabelUserError(
            f"The `structured_output` argument must contain a schema: {structured_output}",
            page=_STRUCTURED_OUTPUT_PAGE,
        )
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", str(schema.get("title") or "response"))[:64]
    tool: Dict[str, Any] = {"name": name, "input_schema": schema}
    if schema.get("description"):
        tool["description"] = schema["description"]
    return {"tools": [tool], "tool_choice": {"type": "tool", "name": name}}


class AnthropicLLM(NativeLLM):
    """Anthropic's Messages API, with the request path in Rust.

    Attributes:
        model: the model name, e.g. "claude-3-5-sonnet-20241022". Any name is accepted
            (the API says which exist).
        base_url: the API's base URL; defaults to `ANTHROPIC_BASE_URL` or
            "https://api.anthropic.com".
        api_key: the API key; defaults to `ANTHROPIC_API_KEY`. Never dumped nor logged.
        timeout: seconds to wait for each response. Defaults to `600.0`.
        max_retries: retries of a request failing with a connection error, a timeout, or a
            408, 409, 429 or 5xx status (529 `overloaded_error` included). Defaults to `6`.
        http_client: distilabel's alternative `httpx.AsyncClient`; not used by the native
            client (a warning says so), excluded from dumps.
        structured_output: a `schema` (pydantic model or JSON schema) the generations follow,
            sent as a tool the model must call; the generation is the tool input as JSON.

    Icon:
        `:material-web:`
    """

    model: str
    base_url: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv("ANTHROPIC_BASE_URL", _DEFAULT_BASE_URL),
        description="The base URL to use for the Anthropic API.",
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv(_ANTHROPIC_API_KEY_ENV_VAR_NAME),
        description="The API key to authenticate the requests to the Anthropic API.",
    )  # type: ignore
    timeout: RuntimeParameter[float] = Field(
        default=600.0,
        description="The maximum time in seconds to wait for a response from the API.",
    )
    max_retries: RuntimeParameter[int] = Field(
        default=6,
        description="The maximum number of times to retry the request to the API before failing.",
    )
    http_client: Optional[Any] = Field(default=None, exclude=True)
    structured_output: Optional[RuntimeParameter[InstructorStructuredOutputType]] = Field(
        default=None,
        description="The structured output format to use across all the generations.",
    )

    _num_generations_param_supported = False

    _provider: ClassVar[str] = "anthropic"
    _no_response_message: ClassVar[str] = (
        "Received no response using Anthropic client (model: '{model}')."
        " Finish reason was: {finish_reason}"
    )
    # An SDK client (or a test double) assigned here is used instead of the native client.
    _process_local: ClassVar[Tuple[str, ...]] = (*NativeLLM._process_local, "_aclient")

    _api_key_env_var: str = PrivateAttr(_ANTHROPIC_API_KEY_ENV_VAR_NAME)
    _aclient: Any = PrivateAttr(None)

    @property
    def model_name(self) -> str:
        """The model requests are sent to."""
        return self.model

    def load(self) -> None:
        """Checks the API key and builds the native client (nothing is sent).

        Unlike distilabel, the model name is not checked against the model names of an
        installed anthropic SDK (their list is always out of date: it rejects new models).
        """
        if self.structured_output:
            schema = self.structured_output.get("schema")
            if inspect.isclass(schema) and issubclass(schema, BaseModel):
                # Stored as JSON schema so that the LLM dumps and pickles.
                self.structured_output = {
                    **self.structured_output,
                    "schema": schema.model_json_schema(),
                }
        super().load()
        if self.http_client is not None:
            self._logger.warning(
                "`http_client` is not used: `AnthropicLLM` sends its requests through its"
                " native client (set `timeout`, `max_retries` and `SSL_CERT_FILE` instead)."
            )

    def unload(self) -> None:
        """Drops the clients."""
        self._aclient = None
        super().unload()

    def _client_settings(self) -> Dict[str, Any]:
        api_key = required_api_key(self, self.api_key, self._api_key_env_var)
        return {
            "base_url": self.base_url or _DEFAULT_BASE_URL,
            "profile": PROVIDERS["anthropic"].profile,
            "api_key": api_key.get_secret_value(),
            "timeout": self._timeout_seconds(self.timeout),
            "max_retries": self.max_retries,
        }

    # The docstring's `Args` texts are distilabel's: pipelines show them as the descriptions
    # of the generation kwargs (and a description paragraph would hide them from distilabel's
    # docstring parser). A leading system message becomes `system`; `temperature` is always
    # sent, the other options only when set.
    @validate_call
    async def agenerate(  # type: ignore[override]
        self,
        input: FormattedInput,
        max_tokens: int = 128,
        stop_sequences: Union[List[str], None] = None,
        temperature: float = 1.0,
        top_p: Union[float, None] = None,
        top_k: Union[int, None] = None,
    ) -> GenerateOutput:
        """Generates one response for one input, through the Messages API (in Rust).

        Args:
            input: a single input in chat format to generate responses for.
            max_tokens: the maximum number of new tokens that the model will generate. Defaults to `128`.
            stop_sequences: custom text sequences that will cause the model to stop generating. Defaults to `NOT_GIVEN`.
            temperature: the temperature to use for the generation. Set only if top_p is None. Defaults to `1.0`.
            top_p: the top-p value to use for the generation. Defaults to `NOT_GIVEN`.
            top_k: the top-k value to use for the generation. Defaults to `NOT_GIVEN`.

        Returns:
            The generation with its statistics.
        """  # noqa: E501
        arguments = locals()
        if self._aclient is not None:
            return await self._agenerate_with_client(arguments)
        return await self._agenerate_one(arguments)

    def _batch_context(self) -> Optional[Dict[str, Any]]:
        """The forced tool of `self.structured_output`, if set."""
        if not self.structured_output:
            return None
        return _tool_format(self.structured_output)  # type: ignore[arg-type]

    def _request(self, parameters: Dict[str, Any], context: Any) -> Request:
        """The Messages request for one input, as distilabel's client sends it: a leading
        system message becomes `system`, `temperature` is always sent, the other options
        only when set; `context` is the tool of the LLM's own `structured_output`."""
        input = parameters["input"]
        tools = context
        if isinstance(input, tuple):
            input, structured_output = input
            if structured_output is not None:
                tools = _tool_format(structured_output)  # type: ignore[arg-type]
        if isinstance(input, str):
            raise TypeError(
                f"`{type(self).__name__}` takes conversations (lists of messages), not"
                " prompts: pass `[{'role': 'user', 'content': prompt}]` instead of the string."
            )
        messages: StandardInput = list(input)
        body: Dict[str, Any] = {
            "max_tokens": parameters["max_tokens"],
            "messages": messages,
            "model": self.model,
            "stream": False,
            "temperature": parameters["temperature"],
        }
        if messages and messages[0]["role"] == "system":
            body["system"] = messages[0]["content"]
            body["messages"] = messages[1:]
        for key in ("stop_sequences", "top_p", "top_k"):
            if parameters[key] is not None:
                body[key] = parameters[key]
        if tools:
            body.update(tools)
        return "chat", body

    # ---- the `_aclient` seam (distilabel's unit tests assign a mocked SDK client) ---------

    def generate(  # type: ignore[override]
        self,
        inputs: List[FormattedInput],
        num_generations: int = 1,
        **kwargs: Any,
    ) -> List[GenerateOutput]:
        """Sends every request from Rust and waits (Ctrl-C cancels them); with an SDK
        client assigned to `_aclient`, calls `agenerate` through it instead.

        Args:
            inputs: the conversations.
            num_generations: generations per input (one request each).
            **kwargs: the generation parameters of `agenerate`.

        Returns:
            One output per input, in input order.
        """
        if self._aclient is not None:
            return AsyncLLM.generate(self, inputs, num_generations, **kwargs)
        return super().generate(inputs, num_generations, **kwargs)

    async def _agenerate(
        self, inputs: List[FormattedInput], num_generations: int = 1, **kwargs: Any
    ) -> List[GenerateOutput]:
        if self._aclient is not None:
            return await AsyncLLM._agenerate(self, inputs, num_generations, **kwargs)
        return await super()._agenerate(inputs, num_generations, **kwargs)

    async def _agenerate_with_client(self, arguments: Dict[str, Any]) -> GenerateOutput:
        """One request through the client in `_aclient` (`messages.create(**body)`), read
        as distilabel reads it."""
        parameters = {k: v for k, v in arguments.items() if k not in ("self", "__class__")}
        _, body = self._request(parameters, self._batch_context())
        completion = await self._aclient.messages.create(**body)
        raw_response = getattr(completion, "_raw_response", None)
        if "tools" in body and raw_response is not None:
            # An object parsed by an instructor-wrapped client, as distilabel returns it.
            return prepare_output(
                [completion.model_dump_json()], **_client_statistics(raw_response)
            )
        generation = _client_generation(completion)
        if generation is None and self._logger is not None:
            self._logger.warning(
                self._no_response_message.format(
                    model=self.model, finish_reason=getattr(completion, "stop_reason", None)
                )
            )
        return prepare_output([generation], **_client_statistics(completion))

    # ---- offline batch generation ----------------------------------------------------------

    def offline_batch_generate(  # type: ignore[override]
        self,
        inputs: Union[List[FormattedInput], None] = None,
        num_generations: int = 1,
        max_tokens: int = 128,
        stop_sequences: Union[List[str], None] = None,
        temperature: float = 1.0,
        top_p: Union[float, None] = None,
        top_k: Union[int, None] = None,
        **kwargs: Any,
    ) -> List[GenerateOutput]:
        """Generates through Message Batches (half the price, results within 24 h).

        The first call sends the requests — one per input (custom id `"<input>"`), or per
        input and generation (`"<input>-<generation>"`) when `num_generations > 1` — in
        batches split at the API's limits (100,000 requests
        and 256 MB) — stores the batch ids in `jobs_ids` and raises
        `DistilabelOfflineBatchGenerationNotFinishedException`. Later calls (in this or
        another process: the batch ids are enough) raise it again while a batch runs,
        submit again the rows an expired or canceled batch did not run, and finally return
        one output per input, in order, its generations grouped as online; a row that
        errored has a `None` generation and the API's message under `error`.

        The API keeps no copy of the requests, so a copy of each batch's requests is kept
        in `$XDG_CACHE_HOME/distilabel-rs/message-batches` (else
        `~/.cache/distilabel-rs/message-batches`) until its results are in; rows that copy
        does not have (another machine) are rebuilt from `inputs` when they are passed (as
        distilabel's pipelines do), else returned as failed, saying so.

        Args:
            inputs: the conversations (not needed once `jobs_ids` is set).
            num_generations: generations per input (one request each).
            max_tokens: the most tokens each response may have.
            stop_sequences: sequences that stop the generation.
            temperature: the sampling temperature.
            top_p: the nucleus sampling probability.
            top_k: sample only from the `top_k` most likely tokens.
            **kwargs: ignored, as in distilabel.

        Returns:
            One output per input.
        """
        validate = self._parameters_validator()
        context = self._batch_context()
        options = {
            "max_tokens": max_tokens,
            "stop_sequences": stop_sequences,
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
        }

        def request(input: FormattedInput) -> Request:
            return self._request(validate(self, input=input, **options), context)

        return self._offline_batch(inputs, num_generations, request)


def _client_generation(completion: Any) -> Optional[str]:
    """The text of the first text block of an SDK `Message` (or the input of a first
    `tool_use` block, as JSON), or `None`."""
    for block in getattr(completion, "content", None) or []:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            return text
        tool_input = getattr(block, "input", None)
        if isinstance(tool_input, dict):
            return json.dumps(tool_input, separators=(",", ":"), ensure_ascii=False)
    return None


def _client_statistics(completion: Any) -> Dict[str, Any]:
    usage = completion.usage
    return {"input_tokens": [usage.input_tokens], "output_tokens": [usage.output_tokens]}
