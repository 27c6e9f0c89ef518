"""`OpenAILLM`: distilabel's OpenAI LLM with the whole request path in Rust.

The fields, generation parameters, outputs and errors are distilabel's; underneath, one
`generate()` is one crossing into Rust: every request body is converted once, tokio sends
them (keep-alive pool, rustls, retries with backoff honouring the server's hints, request
and token rate limits, `max_concurrency`) with the GIL released, and the results come back
to Python once. There is no openai SDK (nor instructor) dependency.

The module is the provider's fields, `agenerate` signature and request bodies; the rest is
`NativeLLM`'s. The other OpenAI-compatible LLMs (Azure, Together, Anyscale, vLLM's server)
derive from `OpenAILLM` with another profile.
"""

import inspect
import json
import re
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

from pydantic import BaseModel, NonNegativeInt, PositiveInt, validate_call

from distilabel_rs.errors import DistilabelUserError
from distilabel_rs.models.base_clients.openai import OpenAIBaseClient
from distilabel_rs.models.llms._native import NativeLLM, Request, Template
from distilabel_rs.typing import FormattedInput, GenerateOutput

if TYPE_CHECKING:
    from distilabel_rs.typing import StandardInput

__all__ = ["OpenAILLM"]

_STRUCTURED_OUTPUT_PAGE = "sections/how_to_guides/advanced/structured_generation/#instructor"


def structured_output_format(
    structured_output: Optional[Dict[str, Any]],
) -> Optional[Dict[str, Any]]:
    """The `json_schema` response format asking for JSON that follows the schema of
    `structured_output` (`None` without one). Shared by the OpenAI-compatible LLMs."""
    if not structured_output:
        return None
    return _json_schema_format(structured_output)


def _json_schema_format(structured_output: Dict[str, Any]) -> Dict[str, Any]:
    """`response_format` asking for JSON that follows the schema of `structured_output`."""
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
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


class OpenAILLM(OpenAIBaseClient, NativeLLM):
    """An LLM served by the OpenAI API or any OpenAI-compatible server (vLLM, SGLang, TGI,
    llama.cpp, Ollama, Together, Groq...), with the request path in Rust.

    Attributes:
        model: the model name, e.g. "gpt-4o-mini".
        base_url: the API's base URL; defaults to `OPENAI_BASE_URL` or
            "https://api.openai.com/v1".
        api_key: the API key; defaults to `OPENAI_API_KEY`. Never dumped nor logged.
        default_headers: headers sent with every request.
        max_retries: retries of a request failing with a connection error, a timeout, or a
            408, 409, 429 or 5xx status.
        timeout: seconds to wait for each response.
        structured_output: a `schema` (pydantic model or JSON schema) the generations follow,
            sent as a `json_schema` `response_format`; the generation is the JSON text.

    Icon:
        `:simple-openai:`
    """

    _no_response_message = (
        "Received no response using OpenAI client (model: '{model}')."
        " Finish reason was: {finish_reason}"
    )

    def _client_settings(self) -> Dict[str, Any]:
        return {
            "base_url": self.base_url,
            "api_key": self._check_api_key().get_secret_value(),
            "default_headers": self.default_headers,
            "timeout": self._timeout_seconds(self.timeout),
            "max_retries": self.max_retries,
        }

    @validate_call
    async def agenerate(  # type: ignore[override]
        self,
        input: FormattedInput,
        num_generations: int = 1,
        max_new_tokens: NonNegativeInt = 128,
        logprobs: bool = False,
        top_logprobs: Optional[PositiveInt] = None,
        echo: bool = False,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: Optional[Union[str, List[str]]] = None,
        response_format: Optional[Dict[str, str]] = None,
        extra_body: Optional[Dict[str, Any]] = None,
    ) -> GenerateOutput:
        """Generates `num_generations` responses for one input (a conversation, a
        conversation with its structured output, or a prompt for `/completions`).

        Args:
            input: the input.
            num_generations: how many generations (sent as `n`).
            max_new_tokens: the most tokens each generation may have.
            logprobs: whether to return log probabilities (chat).
            top_logprobs: how many alternatives per position to return.
            echo: whether a prompt is echoed in the completion (prompts only).
            frequency_penalty: the frequency penalty.
            presence_penalty: the presence penalty.
            temperature: the sampling temperature.
            top_p: the nucleus sampling probability.
            stop: stop sequences (chat).
            response_format: e.g. `{"type": "json_object"}` (chat).
            extra_body: more fields for the request body.

        Returns:
            The generations with their statistics (and logprobs when asked).
        """
        return await self._agenerate_one(locals())

    def _batch_context(self) -> Any:
        """The `json_schema` response format of `self.structured_output`, if set."""
        return structured_output_format(self.structured_output)  # type: ignore[arg-type]

    def _request(self, parameters: Dict[str, Any], context: Any) -> Request:
        """The request for one input, as distilabel's client sends it; `context` is the
        response format of the LLM's own `structured_output`."""
        input = parameters["input"]
        if isinstance(input, str):
            body: Dict[str, Any] = {
                "model": self.model,
                "prompt": input,
                "echo": parameters["echo"],
                "frequency_penalty": parameters["frequency_penalty"],
                "logprobs": parameters["top_logprobs"],
                "max_tokens": parameters["max_new_tokens"],
                "n": parameters["num_generations"],
                "presence_penalty": parameters["presence_penalty"],
                "temperature": parameters["temperature"],
                "top_p": parameters["top_p"],
            }
            if parameters["extra_body"]:
                body.update(parameters["extra_body"])
            return "text", body

        response_format = context
        if isinstance(input, tuple):
            input, structured_output = input
            if structured_output is not None:
                response_format = _json_schema_format(structured_output)
        body = {
            "model": self.model,
            "messages": input,
            "frequency_penalty": parameters["frequency_penalty"],
            "logprobs": parameters["logprobs"],
            "max_tokens": parameters["max_new_tokens"],
            "n": parameters["num_generations"],
            "presence_penalty": parameters["presence_penalty"],
            "stop": parameters["stop"],
            "temperature": parameters["temperature"],
            "top_logprobs": parameters["top_logprobs"],
            "top_p": parameters["top_p"],
        }
        # As distilabel: images in the first user message mean no `stop` (the API rejects it).
        if _starts_with_images(input):
            del body["stop"]
        if parameters["response_format"] is not None:
            body["response_format"] = parameters["response_format"]
        if response_format is not None:
            body["response_format"] = response_format
        if parameters["extra_body"]:
            body.update(parameters["extra_body"])
        return "chat", body

    def _template(
        self, parameters: Dict[str, Any], context: Any, inputs: List[Any]
    ) -> Optional[Template]:
        """Conversations differ only in `messages`, unless one starts with images (its body
        has no `stop`)."""
        try:
            if any(type(input) is not list or _starts_with_images(input) for input in inputs):
                return None  # a prompt, a per-input structured output, or images
        except (IndexError, KeyError, TypeError):
            return None  # no user message: the request built alone says so
        return Template("messages")

    def offline_batch_generate(
        self,
        inputs: Union[List[FormattedInput], None] = None,
        num_generations: int = 1,
        max_new_tokens: int = 128,
        logprobs: bool = False,
        top_logprobs: Optional[PositiveInt] = None,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: Optional[Union[str, List[str]]] = None,
        response_format: Optional[str] = None,
        **kwargs: Any,
    ) -> List[GenerateOutput]:
        """Generates through the provider's Batch API (half the price, results within 24 h).

        The first call uploads the requests (files split at the API's limits: 50,000
        requests and 200 MB for OpenAI), starts one batch per file, stores their ids in
        `jobs_ids` and raises `DistilabelOfflineBatchGenerationNotFinishedException`. Later
        calls (in this or another process: the job ids are enough) raise it again while a
        job runs, submit again only the rows an expired or cancelled job left undone, and
        finally return one output per input, in order: a row that failed has `None`
        generations and its error message under `error`.

        Args:
            inputs: the conversations (not needed once `jobs_ids` is set).
            num_generations: generations per input (sent as `n`).
            max_new_tokens: the most tokens each generation may have.
            logprobs: whether to return log probabilities.
            top_logprobs: how many alternatives per position to return.
            frequency_penalty: the frequency penalty.
            presence_penalty: the presence penalty.
            temperature: the sampling temperature.
            top_p: the nucleus sampling probability.
            stop: stop sequences.
            response_format: the response format.
            **kwargs: ignored, as in distilabel.

        Returns:
            One output per input.
        """
        options = {
            "model": self.model,
            "logprobs": logprobs,
            "top_logprobs": top_logprobs,
            "max_tokens": max_new_tokens,
            "n": num_generations,
            "frequency_penalty": frequency_penalty,
            "presence_penalty": presence_penalty,
            "temperature": temperature,
            "top_p": top_p,
            "stop": stop,
            "response_format": response_format,
        }
        return self._offline_batch(
            inputs, num_generations, lambda input: ("chat", {"messages": input, **options})
        )


def _starts_with_images(messages: "StandardInput") -> bool:
    """Whether the first user message has content parts (images): its body has no `stop`."""
    return isinstance(_first_user_message(messages)["content"], list)


def _first_user_message(messages: "StandardInput") -> Dict[str, Any]:
    # distilabel indexes the first user message unguarded (IndexError without one); kept.
    return [message for message in messages if message["role"] == "user"][0]  # type: ignore[return-value]
