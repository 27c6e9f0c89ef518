"""`OllamaLLM`: distilabel's Ollama LLM with the whole request path in Rust.

Fields, defaults, the `agenerate` signature, request bodies, outputs and statistics are
distilabel 1.5.3's (with the ollama SDK underneath); here no SDK is involved: conversations
go to `POST {host}/api/chat`, and with `tokenizer_id` the conversation is rendered with the
tokenizer's chat template (plus the Magpie pre-query template) and sent to
`POST {host}/api/generate` with `raw: true`. The host is `host`, else `OLLAMA_HOST`, else
`http://127.0.0.1:11434`, resolved as the ollama SDK does (a scheme and a port are
optional). `transformers` is needed only with `tokenizer_id` and is imported then.

The module is the provider's fields, `agenerate` signature and request bodies; the rest
(client per process, fan-out of one request per generation, retries, limits, error policy)
is `NativeLLM`'s.
"""

import inspect
import json
import os
from typing import Any, Dict, List, Literal, Optional, Sequence, Union

from pydantic import BaseModel, Field, PrivateAttr, model_validator, validate_call
from typing_extensions import Self, TypedDict

from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models.llms._native import NativeLLM, Request
from distilabel_rs.models.mixins.magpie import (
    MagpieChatTemplateMixin,
    require_tokenizer_for_magpie,
)
from distilabel_rs.typing import GenerateOutput, InstructorStructuredOutputType, StandardInput

__all__ = ["OllamaLLM", "Options"]

# The ollama SDK reads it for Ollama's hosted API; sent as `Authorization: Bearer`.
_API_KEY_ENV = "OLLAMA_API_KEY"
_HOST_ENV = "OLLAMA_HOST"


class Options(TypedDict, total=False):
    """The generation options of the Ollama API (the names and types distilabel validates
    `options` with; other keys are dropped)."""

    # load time options
    numa: bool
    num_ctx: int
    num_batch: int
    num_gqa: int
    num_gpu: int
    main_gpu: int
    low_vram: bool
    f16_kv: bool
    logits_all: bool
    vocab_only: bool
    use_mmap: bool
    use_mlock: bool
    embedding_only: bool
    rope_frequency_base: float
    rope_frequency_scale: float
    num_thread: int

    # runtime options
    num_keep: int
    seed: int
    num_predict: int
    top_k: int
    top_p: float
    tfs_z: float
    typical_p: float
    repeat_last_n: int
    temperature: float
    repeat_penalty: float
    presence_penalty: float
    frequency_penalty: float
    mirostat: int
    mirostat_tau: float
    mirostat_eta: float
    penalize_newline: bool
    stop: Sequence[str]


class OllamaLLM(NativeLLM, MagpieChatTemplateMixin):
    """An LLM served by Ollama (`/api/chat`, or `/api/generate` with a chat template applied
    client-side), with the request path in Rust.

    Attributes:
        model: the model name to use for the LLM e.g. "notus".
        host: the Ollama server host; defaults to `OLLAMA_HOST`, else
            "http://127.0.0.1:11434" (a scheme and a port are optional, as in the ollama
            SDK).
        timeout: the timeout for the LLM. Defaults to `120`.
        follow_redirects: whether to follow redirects. Defaults to `True`.
        structured_output: a dictionary with a `schema` (a pydantic model or a JSON schema)
            the generations follow, sent as Ollama's `format`. Defaults to None.
        tokenizer_id: the tokenizer Hugging Face Hub repo id or a path to a directory
            containing the tokenizer config files. When set, the conversation is rendered
            with its chat template and sent as a raw prompt. Defaults to `None`.
        use_magpie_template: a flag used to enable/disable applying the Magpie pre-query
            template. Defaults to `False`.
        magpie_pre_query_template: the pre-query template to be applied to the prompt or
            sent to the LLM to generate an instruction or a follow up user message. Valid
            values are "llama3", "qwen2" or another pre-query template provided. Defaults
            to `None`.

    Runtime parameters:
        - `host`: the Ollama server host.
        - `timeout`: the client timeout for the Ollama API. Defaults to `120`.

    Examples:
        Generate text:

        ```python
        from distilabel_rs.models.llms import OllamaLLM

        llm = OllamaLLM(model="llama3")

        llm.load()

        output = llm.generate(inputs=[[{"role": "user", "content": "Hello world!"}]])
        ```

    Icon:
        `:simple-ollama:`
    """

    model: str
    host: Optional[RuntimeParameter[str]] = Field(
        default=None, description="The host of the Ollama API."
    )
    timeout: RuntimeParameter[int] = Field(
        default=120, description="The timeout for the Ollama API."
    )
    follow_redirects: bool = True
    structured_output: Optional[RuntimeParameter[InstructorStructuredOutputType]] = Field(
        default=None,
        description="The structured output format to use across all the generations.",
    )
    tokenizer_id: Optional[RuntimeParameter[str]] = Field(
        default=None,
        description="The Hugging Face Hub repo id or a path to a directory containing"
        " the tokenizer config files. If not provided, the one associated to the `model`"
        " will be used.",
    )

    _num_generations_param_supported = False
    _provider = "ollama"
    _no_response_message = (
        "Received no response using Ollama client (model: '{model}')."
        " Finish reason was: {finish_reason}"
    )
    # distilabel's SDK client; the native client lives elsewhere (process-local), this
    # stays `None`.
    _aclient: Any = PrivateAttr(None)
    # The tokenizer of `tokenizer_id`, loaded by `load()`.
    _tokenizer: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def validate_magpie_usage(self) -> Self:
        """The Magpie template needs a chat template: `tokenizer_id` must be set."""
        require_tokenizer_for_magpie(self.use_magpie_template, self.tokenizer_id)
        return self

    def load(self) -> None:
        """Builds the native client (the host is checked, nothing is sent; a pydantic
        `structured_output` schema is stored as JSON schema) and, with `tokenizer_id`, loads
        the tokenizer."""
        super().load()
        if self.tokenizer_id:
            try:
                from transformers import AutoTokenizer
            except ImportError as e:
                raise ImportError(
                    "Transformers is not installed. Please install it using"
                    " `pip install 'distilabel-rs[hf-transformers]'`."
                ) from e
            self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_id)
            if self._tokenizer.chat_template is None:
                raise ValueError(
                    "The tokenizer does not have a chat template. Please use a tokenizer with"
                    " a chat template."
                )

    @property
    def model_name(self) -> str:
        """Returns the model name used for the LLM."""
        return self.model

    def _client_settings(self) -> Dict[str, Any]:
        # The ollama SDK's resolution: the host, else `OLLAMA_HOST`; an empty one is the
        # default local server (the core resolves it as the SDK does).
        return {
            "base_url": self.host or os.environ.get(_HOST_ENV) or "",
            "api_key": os.environ.get(_API_KEY_ENV) or None,
            "timeout": self._timeout_seconds(self.timeout),
            # The SDK never retries; `max_request_retries` is the retry budget of the
            # native client (Ollama answers 503 when its queue is full).
            "max_retries": self.max_request_retries,
            "follow_redirects": self.follow_redirects,
        }

    def prepare_input(self, input: "StandardInput") -> str:
        """Prepares the input (applying the chat template and tokenization) for the provided
        input.

        Args:
            input: the input list containing chat items.

        Returns:
            The prompt to send to the LLM.
        """
        if self._tokenizer is None:
            raise RuntimeError(
                f"`{type(self).__name__}` has no tokenizer loaded: call `load()` first."
            )
        prompt: str = (
            self._tokenizer.apply_chat_template(
                conversation=input,
                tokenize=False,
                add_generation_prompt=True,
            )
            if input
            else ""
        )
        return self.apply_magpie_pre_query_template(prompt, input)

    @validate_call
    async def agenerate(  # type: ignore[override]
        self,
        input: StandardInput,
        format: Literal["", "json"] = "",
        options: Union[Options, None] = None,
        keep_alive: Union[bool, None] = None,
    ) -> GenerateOutput:
        """
        Generates a response asynchronously, using the [Ollama Async API definition](https://github.com/ollama/ollama-python).

        Args:
            input: the input to use for the generation.
            format: the format to use for the generation. Defaults to `""`.
            options: the options to use for the generation. Defaults to `None`.
            keep_alive: whether to keep the connection alive. Defaults to `None`.

        Returns:
            A list of strings as completion for the given input.
        """
        return await self._agenerate_one(locals())

    def _batch_context(self) -> Union[str, Dict[str, Any], None]:
        """The `format` of the LLM's own `structured_output`, if set: its JSON schema (or
        `"json"` when it has no schema)."""
        if not self.structured_output:
            return None
        schema = self.structured_output.get("schema")
        if inspect.isclass(schema) and issubclass(schema, BaseModel):
            return schema.model_json_schema()
        if isinstance(schema, str):
            return json.loads(schema)
        if schema:
            return schema
        return "json" if self.structured_output.get("format") == "json" else None

    def _request(self, parameters: Dict[str, Any], context: Any) -> Request:
        """The request for one input, with the body the ollama SDK sends for distilabel;
        `context` is the `format` of the LLM's own `structured_output`."""
        input = parameters["input"]
        body: Dict[str, Any] = {"model": self.model, "stream": False}
        if parameters["options"] is not None:
            body["options"] = parameters["options"]
        format = context if context is not None else parameters["format"] or None
        if format is not None:
            body["format"] = format
        if parameters["keep_alive"] is not None:
            # As the SDK sends it (a number of seconds): `True` is 1.0, `False` 0.0.
            body["keep_alive"] = float(parameters["keep_alive"])
        if self.tokenizer_id is None:
            body["messages"] = _messages(input)
            body["tools"] = []
            return "chat", body
        body["prompt"] = self.prepare_input(input)
        body["raw"] = True
        return "text", body


def _messages(input: "StandardInput") -> List[Dict[str, Any]]:
    """The conversation as the ollama SDK sends it: empty values left out (an assistant turn
    with empty content is sent as `{"role": "assistant"}`); the content must be text.

    The validated conversation is sent as it is when nothing is left out (it is read, never
    changed)."""
    for index, item in enumerate(input):
        content = item.get("content")
        if content is not None and not isinstance(content, str):
            raise ValueError(
                f"input[{index}]['content']: Ollama's chat API takes text content, not"
                f" {type(content).__name__}; join the text parts into one string (images are"
                " not supported by `OllamaLLM`)."
            )
        if not content or not all(item.values()):
            return [{key: value for key, value in item.items() if value} for item in input]
    return input  # type: ignore[return-value]
