"""`InferenceEndpointsLLM`: distilabel's Hugging Face Inference Endpoints / TGI LLM with the
whole request path in Rust.

The fields, validators, generation parameters, request bodies, outputs and statistics are
distilabel 1.5.3's (with `huggingface_hub`'s `AsyncInferenceClient` underneath); here every
request is built once in Python and sent by the core's `tgi` provider (tokio, keep-alive
pool, rustls), with no `huggingface_hub` on the request path:

- a conversation goes to TGI's Messages API (`{base_url}/v1/chat/completions`), unless a
  `tokenizer_id` is set;
- a prompt, or a conversation rendered with the chat template of `tokenizer_id` (in
  Python, with `transformers`), goes to TGI's generate API (`POST {base_url}`), with
  `details: true` for the token count and the `top_n_tokens` logprobs.

Failures: every request is retried first (connection errors, timeouts, 408, 409, 429 and
5xx, "model is loading" included), up to `max_request_retries` times, waiting what the
server asks (`Retry-After`) or a full-jitter backoff. A request that still fails gets
`None` generations, as in distilabel (its message is logged, and kept under `error`),
because this LLM's `error_policy` defaults to `"isolate"`; `error_policy="raise"` makes it
fail `generate` instead.
"""

import logging
import random
import sys
import warnings
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Literal,
    NamedTuple,
    Optional,
    Tuple,
    Union,
)

from pydantic import BaseModel, Field, PositiveInt, model_validator, validate_call
from typing_extensions import Annotated

from distilabel_rs import _core
from distilabel_rs._providers import PROVIDERS
from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models.base_clients.inference_endpoints import InferenceEndpointsBaseClient
from distilabel_rs.models.llms._native import NativeLLM, Request, Template
from distilabel_rs.models.llms.utils import compute_tokens
from distilabel_rs.models.mixins.magpie import (
    MagpieChatTemplateMixin,
    require_tokenizer_for_magpie,
)
from distilabel_rs.typing import FormattedInput, GenerateOutput

if TYPE_CHECKING:
    from distilabel_rs.typing import StandardInput

__all__ = ["InferenceEndpointsLLM"]

_PROVIDER = PROVIDERS["inference-endpoints"]
# `AsyncInferenceClient` waits without limit; every wait here has one. TGI answers a whole
# generation at once, so this bounds a generation, not a silence.
_REQUEST_TIMEOUT_SECONDS = 600.0
_NO_RESPONSE = "⚠️ Received no response using Inference Client (model: '{model}')."
_MAX_STOP_SEQUENCES = 4
# `random.randint(0, sys.maxsize)` (distilabel's seed) is `getrandbits(63)`, three times faster.
_SEED_BITS = sys.maxsize.bit_length()


def _draw_seed() -> int:
    return random.getrandbits(_SEED_BITS)


# The Messages API arguments of `agenerate` sent only when not `None` (the others always
# have a value: `logprobs`, `max_new_tokens` as `max_tokens`, `temperature`, the seed).
_OPTIONAL_CHAT_ARGUMENTS = (
    "frequency_penalty",
    "logit_bias",
    "presence_penalty",
    "tool_choice",
    "tool_prompt",
    "tools",
    "top_logprobs",
    "top_p",
)


class _Context(NamedTuple):
    """What the requests of one call share."""

    # TGI's grammar for the LLM's `structured_output`, or `None`.
    grammar: Optional[Dict[str, Any]]
    # The `model` of chat bodies: "dummy" for a URL, as huggingface_hub sends it, or the
    # model id for the router.
    chat_model: str
    # Conversations are rendered with the chat template of `tokenizer_id`.
    templated: bool
    tokenizer: Any


class _TextRequest(tuple):
    """A generate request, `(endpoint, body)`, with the prompt's token count distilabel
    reports (TGI's response does not have it): the tokenizer's count, or -1."""

    input_tokens: int


def _text_request(body: Dict[str, Any], input_tokens: int) -> Request:
    request = _TextRequest(("text", body))
    request.input_tokens = input_tokens
    return request


def _without_none(value: Any) -> Any:
    """`value` without `None` entries in its dicts, at any depth (as `huggingface_hub`
    filters its request bodies)."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def _grammar(structured_output: Dict[str, Any]) -> Dict[str, Any]:
    """TGI's grammar (`{"type", "value"}`) for `{"format", "schema"}`; a pydantic model
    becomes its JSON schema."""
    grammar = {"type": structured_output["format"], "value": structured_output["schema"]}
    schema = grammar["value"]
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        grammar["value"] = schema.model_json_schema()
    return grammar


class _Results:
    """A requests handle whose results carry distilabel's prompt token counts for generate
    requests and whose isolated failures are logged as distilabel logs them."""

    __slots__ = ("_handle", "_input_tokens", "_warn", "wait", "cancel", "progress")

    def __init__(
        self,
        handle: Any,
        input_tokens: Dict[int, int],
        warn: Optional[Callable[[BaseException], None]],
    ) -> None:
        self._handle = handle
        self._input_tokens = input_tokens
        self._warn = warn
        self.wait = handle.wait
        self.cancel = handle.cancel
        self.progress = handle.progress

    def empty_choices(self) -> List[Tuple[int, Optional[str]]]:
        return self._handle.empty_choices()

    def results(self) -> List[Any]:
        results = self._handle.results()
        for index, count in self._input_tokens.items():
            output = results[index]
            if isinstance(output, dict):
                output["statistics"]["input_tokens"] = [count]
        if self._warn is not None:
            for output in results:
                if isinstance(output, BaseException):
                    self._warn(output)
        return results


class InferenceEndpointsLLM(InferenceEndpointsBaseClient, NativeLLM, MagpieChatTemplateMixin):
    """An LLM served by Hugging Face: a dedicated Inference Endpoint, a TGI server, or a
    model on the Hugging Face router, with the request path in Rust.

    Attributes:
        model_id: the model ID on the Hugging Face Hub, served through the Hugging Face
            router (needs `huggingface_hub`). Defaults to `None`.
        endpoint_name: the name of a dedicated Inference Endpoint (needs
            `huggingface_hub`). Defaults to `None`.
        endpoint_namespace: the user or organisation owning the endpoint. Defaults to
            `None`.
        base_url: the URL of a TGI server or an Inference Endpoint.
        api_key: the Hugging Face token; defaults to `HF_TOKEN`, else the token file of
            `huggingface-cli login`. Never dumped nor logged.
        tokenizer_id: a tokenizer whose chat template renders conversations into prompts
            for the generate API (needs `transformers`). Defaults to `None`: conversations
            go to the Messages API.
        model_display_name: the model name to show. Defaults to `None`.
        use_magpie_template: whether to append the Magpie pre-query template to the
            prompt. Defaults to `False`.
        magpie_pre_query_template: the pre-query template: "llama3", "qwen2" or the
            template itself. Defaults to `None`.
        structured_output: `{"format": "json" | "regex", "schema": ...}`, sent as TGI's
            `grammar` (generate API) or `response_format` (Messages API). Defaults to `None`.
        error_policy: `"isolate"` by default here: a request that fails for good gets `None`
            generations, as in distilabel.

    Icon:
        `:hugging:`
    """

    error_policy: RuntimeParameter[Literal["raise", "isolate"]] = Field(
        default="isolate",
        description="What a request that fails for good (after its retries) does: `isolate`"
        " (the default of this LLM, distilabel's behaviour) returns `None` generations for it,"
        " logs a warning and keeps the error message under the `error` key; `raise` fails the"
        " whole `generate` call with its exception.",
    )

    _provider = _PROVIDER.kind
    _no_response_message = _NO_RESPONSE + " Finish reason was: {finish_reason}"

    @model_validator(mode="after")  # type: ignore[misc]
    def only_one_of_model_id_endpoint_name_or_base_url_provided(
        self,
    ) -> "InferenceEndpointsLLM":
        """Exactly one of `model_id` and `endpoint_name`, or else a `base_url`; a `base_url`
        given with one of them is replaced at `load()` (with a warning). Magpie needs a
        tokenizer, and `structured_output` with a `model_id` uses the model's tokenizer
        unless `tokenizer_id` is given."""
        if self.base_url and (self.model_id or self.endpoint_name):
            logging.getLogger(f"distilabel.llm.{self.model_name}").warning(
                f"Since the `base_url={self.base_url}` is available and either one of"
                " `model_id` or `endpoint_name` is also provided, the `base_url` will either be"
                " ignored or overwritten with the one generated from either of those args, for"
                " serverless or dedicated inference endpoints, respectively."
            )
        require_tokenizer_for_magpie(self.use_magpie_template, self.tokenizer_id)
        if self.model_id and self.tokenizer_id is None and self.structured_output is not None:
            self.tokenizer_id = self.model_id
        if self.base_url and not (self.model_id or self.endpoint_name):
            return self
        if self.model_id and not self.endpoint_name:
            return self
        if self.endpoint_name and not self.model_id:
            return self
        raise ValueError(
            "Only one of `model_id` or `endpoint_name` must be provided. If `base_url` is"
            " provided too, it will be overwritten instead. Found"
            f" `model_id`={self.model_id}, `endpoint_name`={self.endpoint_name}, and"
            f" `base_url`={self.base_url}."
        )

    def load(self) -> None:
        """Reads the key, resolves `model_id` / `endpoint_name` into URLs (asking the Hub),
        loads the tokenizer of `tokenizer_id`, and builds the native client (nothing is
        sent to the endpoint)."""
        self._num_generations_param_supported = False
        self._resolve_endpoint()
        super().load()

    def _client_settings(self) -> Dict[str, Any]:
        profile = dict(_PROVIDER.profile)
        if self._chat_url is not None:
            profile["chat_url"] = self._chat_url
        return {
            "base_url": self.base_url,
            "profile": profile,
            "api_key": self.api_key.get_secret_value() if self.api_key else None,
            "timeout": _REQUEST_TIMEOUT_SECONDS,
            "max_retries": self.max_request_retries,
        }

    def prepare_input(self, input: "StandardInput") -> str:
        """The prompt of a conversation: the tokenizer's chat template (with the generation
        prompt), then the Magpie pre-query template when it applies.

        Args:
            input: the conversation.

        Returns:
            The prompt to send to the generate API.
        """
        prompt: str = (
            self._tokenizer.apply_chat_template(  # type: ignore[assignment, union-attr]
                conversation=input,  # type: ignore[arg-type]
                tokenize=False,
                add_generation_prompt=True,
            )
            if input
            else ""
        )
        return super().apply_magpie_pre_query_template(prompt, input)

    def _llm_grammar(self) -> Dict[str, Any]:
        """TGI's grammar for the LLM's own `structured_output`."""
        try:
            return _grammar(self.structured_output)  # type: ignore[arg-type]
        except KeyError as e:
            raise ValueError(
                "To use the structured output you have to inform the `format` and `schema` in "
                "the `structured_output` attribute."
            ) from e

    def _check_stop_sequences(
        self,
        stop_sequences: Optional[Union[str, List[str]]] = None,
    ) -> Union[List[str], None]:
        """At most 4 stop sequences (TGI's limit): more are cut, with a warning.

        Args:
            stop_sequences: a stop sequence or a list of them.

        Returns:
            The stop sequences, as a list.
        """
        if stop_sequences is None:
            return None
        if isinstance(stop_sequences, str):
            stop_sequences = [stop_sequences]
        if len(stop_sequences) > _MAX_STOP_SEQUENCES:
            warnings.warn(
                "Only up to 4 stop sequences are allowed, so keeping the first 4 items only.",
                UserWarning,
                stacklevel=2,
            )
            stop_sequences = stop_sequences[:_MAX_STOP_SEQUENCES]
        return stop_sequences

    @validate_call
    async def agenerate(  # type: ignore[override]
        self,
        input: FormattedInput,
        max_new_tokens: int = 128,
        frequency_penalty: Optional[Annotated[float, Field(ge=-2.0, le=2.0)]] = None,
        logit_bias: Optional[List[float]] = None,
        logprobs: bool = False,
        presence_penalty: Optional[Annotated[float, Field(ge=-2.0, le=2.0)]] = None,
        seed: Optional[int] = None,
        stop_sequences: Optional[List[str]] = None,
        temperature: float = 1.0,
        tool_choice: Optional[Union[Dict[str, str], Literal["auto"]]] = None,
        tool_prompt: Optional[str] = None,
        tools: Optional[List[Dict[str, Any]]] = None,
        top_logprobs: Optional[PositiveInt] = None,
        top_n_tokens: Optional[PositiveInt] = None,
        top_p: Optional[float] = None,
        do_sample: bool = False,
        repetition_penalty: Optional[float] = None,
        return_full_text: bool = False,
        top_k: Optional[int] = None,
        typical_p: Optional[float] = None,
        watermark: bool = False,
        num_generations: int = 1,
    ) -> GenerateOutput:
        """Generates one response for one input: a conversation goes to TGI's Messages API
        (`chat_completion`) unless `tokenizer_id` is set; a prompt, or a conversation
        rendered with the tokenizer's chat template, goes to the generate API
        (`text_generation`). Some parameters apply to one API only.

        Args:
            input: a conversation, a conversation with its structured output, or a prompt.
            max_new_tokens: the most tokens the generation may have.
            frequency_penalty: between -2.0 and 2.0; penalises tokens by how often they
                already appear.
            logit_bias: biases of the token likelihoods (Messages API only).
            logprobs: whether to return log probabilities (Messages API only).
            presence_penalty: between -2.0 and 2.0; penalises tokens that already appear
                (Messages API only).
            seed: the sampling seed; a random one is sent when `None` (or 0), so that the
                server's cache is never used.
            stop_sequences: up to 4 sequences that end the generation.
            temperature: the sampling temperature.
            tool_choice: `"auto"` or `{"function_name": ...}` (Messages API only).
            tool_prompt: text put before the tools (Messages API only).
            tools: tool definitions the model may call (Messages API only).
            top_logprobs: alternatives per position with `logprobs` (Messages API only).
            top_n_tokens: alternatives per position, returned as logprobs (generate API
                only).
            top_p: the nucleus sampling probability.
            do_sample: whether to sample (generate API only).
            repetition_penalty: the repetition penalty (generate API only).
            return_full_text: whether the prompt is part of the generation (generate API
                only).
            top_k: the top-k sampling value (generate API only).
            typical_p: the typical-p sampling value (generate API only).
            watermark: whether to watermark the generation (generate API only).
            num_generations: accepted for validation; one generation per request.

        Returns:
            The generation with its statistics (and logprobs when asked).
        """
        return await self._agenerate_one(locals())

    def _batch_context(self) -> "_Context":
        """What every request of one call shares, read once (private attributes are slow to
        read on a pydantic model)."""
        return _Context(
            grammar=None if self.structured_output is None else self._llm_grammar(),
            chat_model=self._chat_model,
            templated=self.tokenizer_id is not None,
            tokenizer=self._tokenizer,
        )

    def _request(self, parameters: Dict[str, Any], context: "_Context") -> Request:
        """The request for one input, as distilabel's `AsyncInferenceClient` sends it."""
        input = parameters["input"]
        stop = parameters["stop_sequences"]
        if stop is not None:
            stop = self._check_stop_sequences(stop)
        # As distilabel: a random seed in [0, sys.maxsize] when none (or 0) is given, so that
        # TGI's cache is never used and every generation differs.
        seed = parameters["seed"] or _draw_seed()
        grammar = context.grammar
        if isinstance(input, tuple):
            input, structured_output = input
            if structured_output is not None:
                grammar = _grammar(structured_output)  # type: ignore[arg-type]

        if isinstance(input, str) or context.templated:
            if isinstance(input, str):
                # A prompt: no grammar, as in distilabel.
                grammar = None
            else:
                input = self.prepare_input(input)
            options = (
                ("details", True),
                ("do_sample", parameters["do_sample"]),
                ("frequency_penalty", parameters["frequency_penalty"]),
                ("grammar", grammar),
                ("max_new_tokens", parameters["max_new_tokens"]),
                ("repetition_penalty", parameters["repetition_penalty"]),
                ("return_full_text", parameters["return_full_text"]),
                ("seed", seed),
                ("stop", stop),
                ("temperature", parameters["temperature"]),
                ("top_k", parameters["top_k"]),
                ("top_n_tokens", parameters["top_n_tokens"]),
                ("top_p", parameters["top_p"]),
                ("typical_p", parameters["typical_p"]),
                ("watermark", parameters["watermark"]),
            )
            body: Dict[str, Any] = {
                "inputs": input,
                "parameters": {
                    k: _without_none(v) if isinstance(v, dict) else v
                    for k, v in options
                    if v is not None
                },
            }
            tokenizer = context.tokenizer
            input_tokens = compute_tokens(input, tokenizer.encode) if tokenizer else -1
            return _text_request(body, input_tokens)

        body = {
            "model": context.chat_model,
            "messages": input,
            "logprobs": parameters["logprobs"],
            "max_tokens": parameters["max_new_tokens"],
            "seed": seed,
            "temperature": parameters["temperature"],
            "stream": False,
        }
        # And, as huggingface_hub sends them, the arguments that are not `None` (without
        # `None` entries at any depth).
        for key in _OPTIONAL_CHAT_ARGUMENTS:
            value = parameters[key]
            if value is not None:
                body[key] = _without_none(value) if isinstance(value, (dict, list)) else value
        # distilabel 1.5.3 drops the grammar on this path (or sends a broken request for a
        # per-input one); TGI's Messages API takes it as `response_format`.
        if grammar is not None:
            body["response_format"] = _without_none(grammar)
        if stop is not None:
            body["stop"] = stop
        return "chat", body

    def _template(
        self, parameters: Dict[str, Any], context: "_Context", inputs: List[Any]
    ) -> Optional[Template]:
        """Conversations to the Messages API differ only in `messages` and, when no seed is
        given, in the seed drawn per request."""
        if context.templated or any(type(input) is not list for input in inputs):
            return None  # prompts, templated conversations, per-input structured outputs
        stop = parameters["stop_sequences"]
        if stop is not None and not isinstance(stop, str) and len(stop) > _MAX_STOP_SEQUENCES:
            return None  # warned about per request
        if parameters["seed"]:
            return Template("messages")
        return Template("messages", seed=("seed", _draw_seed))

    def _start(self, requests: List[Request]) -> Any:
        input_tokens = {
            index: request.input_tokens
            for index, request in enumerate(requests)
            if type(request) is _TextRequest
        }
        return self._wrap(super()._start(requests), input_tokens)

    def _wrap(self, handle: Any, input_tokens: Optional[Dict[int, int]] = None) -> Any:
        warn = self._warn_failure if self.error_policy == "isolate" else None
        if not input_tokens and warn is None:
            return handle
        return _Results(handle, input_tokens or {}, warn)

    def _warn_failure(self, error: BaseException) -> None:
        if isinstance(error, _core.RequestCancelledError):
            return
        self._logger.warning(
            _NO_RESPONSE.format(model=self.model_name) + f" Finish reason was: {error}"
        )
