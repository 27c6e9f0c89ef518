"""`OpenAILLM`: distilabel's OpenAI LLM with the whole request path in Rust.

The fields, generation parameters, outputs and errors are distilabel's; underneath, one
`generate()` is one crossing into Rust: every request body is converted once, tokio sends
them (keep-alive pool, rustls, retries with backoff honouring the server's hints, request
and token rate limits, `max_concurrency`) with the GIL released, and the results come back
to Python once. There is no openai SDK (nor instructor) dependency.
"""

import asyncio
import inspect
import json
import os
import re
from typing import TYPE_CHECKING, Any, ClassVar, Dict, List, Optional, Tuple, Union

from pydantic import (
    BaseModel,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    validate_call,
)

from distilabel_rs import _core
from distilabel_rs.constants import PIPELINE_CACHE_ID_ENV_NAME, PIPELINE_NAME_ENV_NAME
from distilabel_rs.errors import DistilabelUserError
from distilabel_rs.exceptions import DistilabelOfflineBatchGenerationNotFinishedException
from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models.base_clients.openai import OpenAIBaseClient
from distilabel_rs.models.llms import _fanout
from distilabel_rs.models.llms.base import AsyncLLM
from distilabel_rs.typing import FormattedInput, GenerateOutput

if TYPE_CHECKING:
    from distilabel_rs.typing import StandardInput

__all__ = ["OpenAILLM"]

_STRUCTURED_OUTPUT_PAGE = "sections/how_to_guides/advanced/structured_generation/#instructor"
# How often a synchronous `generate()` wakes up to check Ctrl-C and report progress.
_WAIT_SLICE_SECONDS = 0.1


def _parameters(
    self: Any,
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
) -> Dict[str, Any]:
    arguments = dict(locals())
    del arguments["self"]
    return arguments


# `agenerate`'s parameters, validated exactly as distilabel's `@validate_call` does (same
# coercions, same `ValidationError` titled "OpenAILLM.agenerate"), once per input.
_parameters.__qualname__ = "OpenAILLM.agenerate"
_validated_parameters = validate_call(_parameters)


def _json_schema_format(structured_output: Dict[str, Any]) -> Dict[str, Any]:
    """`response_format` asking for JSON that follows the schema of `structured_output`."""
    schema = structured_output.get("schema")
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


class OpenAILLM(OpenAIBaseClient, AsyncLLM):
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
        tokens_per_minute: a limit on prompt plus generated tokens per minute.

    Icon:
        `:simple-openai:`
    """

    tokens_per_minute: Optional[RuntimeParameter[PositiveFloat]] = Field(
        default=None,
        description="The maximum number of tokens (prompt plus the most each request may"
        " generate, reconciled with the usage the API reports) per minute. `None` means no"
        " limit.",
    )

    # The native client (connections, runtime handles) and the batch progress bar belong to
    # this process: pickled copies start without them.
    _process_local: ClassVar[Tuple[str, ...]] = (
        *AsyncLLM._process_local,
        "_client",
        "_aclient",
        "_client_pid",
        "_batch_reporter",
    )
    # The process the native client was built in (a forked child builds its own).
    _client_pid: Optional[int] = PrivateAttr(None)
    # Progress of the offline batch jobs across polls: the latest counts and their reporter.
    _batch_snapshot: Tuple[int, ...] = PrivateAttr((0, 0, 0, 0, 0))
    _batch_reporter: Optional[Any] = PrivateAttr(None)

    def load(self) -> None:
        """Checks the API key and builds the native client (nothing is sent)."""
        AsyncLLM.load(self)
        self._check_api_key()
        if self.structured_output:
            schema = self.structured_output.get("schema")
            if inspect.isclass(schema) and issubclass(schema, BaseModel):
                # Stored as JSON schema so that the LLM dumps and pickles.
                self.structured_output = {
                    **self.structured_output,
                    "schema": schema.model_json_schema(),
                }
        self._build_client()

    def _build_client(self) -> None:
        api_key = self._check_api_key()
        client = _core.OpenAIClient(
            self.base_url,
            api_key=api_key.get_secret_value(),
            default_headers=self.default_headers,
            timeout=float(self.timeout),
            max_retries=self.max_retries,
            backoff_base=self.retry_backoff_base,
            backoff_cap=self.retry_backoff_max,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            pool_size=self.max_concurrency or 256,
            root_certificate_pem=_extra_root_certificates(),
            seed=self._fanout_seed,
        )
        self._client = self._aclient = client
        self._client_pid = os.getpid()

    def _native_client(self) -> Any:
        if self._client is None:
            raise RuntimeError(f"`{type(self).__name__}` is not loaded: call `load()` first.")
        # A forked child cannot use its parent's connections: it builds its own client.
        if self._client_pid != os.getpid():
            self._build_client()
        return self._client

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
        parameters = dict(locals())
        del parameters["self"]
        request = self._request(parameters, self._default_response_format())
        outputs = await self._run_async([request], num_generations)
        return outputs[0]

    def _requests(
        self, inputs: List[FormattedInput], num_generations: int, kwargs: Dict[str, Any]
    ) -> List[Tuple[bool, Dict[str, Any]]]:
        default_format = self._default_response_format()  # once per batch, not per input
        return [
            self._request(
                _validated_parameters(self, input=input, num_generations=num_generations, **kwargs),
                default_format,
            )
            for input in inputs
        ]

    def _default_response_format(self) -> Optional[Dict[str, Any]]:
        """The `json_schema` response format of `self.structured_output`, if set."""
        if not self.structured_output:
            return None
        return _json_schema_format(self.structured_output)  # type: ignore[arg-type]

    def _request(
        self, parameters: Dict[str, Any], default_format: Optional[Dict[str, Any]]
    ) -> Tuple[bool, Dict[str, Any]]:
        """`(is_chat, body)` of the request for one input, as distilabel's client sends it;
        `default_format` is the response format of the LLM's own `structured_output`."""
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
            return False, body

        response_format = default_format
        if isinstance(input, tuple):
            input, structured_output = input
            if structured_output is not None:
                response_format = _json_schema_format(structured_output)  # type: ignore[arg-type]
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
        if isinstance(_first_user_message(input)["content"], list):
            del body["stop"]
        if parameters["response_format"] is not None:
            body["response_format"] = parameters["response_format"]
        if response_format is not None:
            body["response_format"] = response_format
        if parameters["extra_body"]:
            body.update(parameters["extra_body"])
        return True, body

    def generate(  # type: ignore[override]
        self,
        inputs: List[FormattedInput],
        num_generations: int = 1,
        **kwargs: Any,
    ) -> List[GenerateOutput]:
        """Sends one request per input, all from Rust, and waits (Ctrl-C cancels them).

        Args:
            inputs: the inputs.
            num_generations: generations per input (sent as `n`).
            **kwargs: the generation parameters of `agenerate`.

        Returns:
            One output per input, in input order.
        """
        requests = self._requests(inputs, num_generations, kwargs)
        handle = self._start(requests)
        reporter = _fanout.ProgressReporter.create(self, handle.progress)
        try:
            while not handle.wait(_WAIT_SLICE_SECONDS):
                if reporter is not None:
                    reporter.tick()
        except BaseException:
            handle.cancel()
            raise
        finally:
            if reporter is not None:
                reporter.close()
        return self._outputs(handle, num_generations)

    async def _agenerate(
        self, inputs: List[FormattedInput], num_generations: int = 1, **kwargs: Any
    ) -> List[GenerateOutput]:
        """Like `generate`, awaited: cancelling the awaiting task cancels the requests."""
        return await self._run_async(
            self._requests(inputs, num_generations, kwargs), num_generations
        )

    async def _run_async(
        self, requests: List[Tuple[bool, Dict[str, Any]]], num_generations: int
    ) -> List[GenerateOutput]:
        handle = self._start(requests)
        reporter = _fanout.ProgressReporter.create(self, handle.progress)
        if reporter is not None:
            reporter.start()
        try:
            # The wait runs in a worker thread with the GIL released; the loop stays free.
            await asyncio.to_thread(handle.wait)
        except BaseException:
            handle.cancel()
            raise
        finally:
            if reporter is not None:
                await reporter.stop()
        return self._outputs(handle, num_generations)

    def offline_batch_generate(  # type: ignore[override]
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
        """Generates through the OpenAI Batch API (half the price, results within 24 h).

        The first call uploads the requests (files split at 50,000 requests and 200 MB),
        starts one batch per file, stores their ids in `jobs_ids` and raises
        `DistilabelOfflineBatchGenerationNotFinishedException`. Later calls (in this or
        another process: the job ids are enough) raise it again while a job runs, submit
        again only the rows an expired or cancelled job left undone, and finally return one
        output per input, in order: a row that failed has `None` generations and its error
        message under `error`.

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
        if self.jobs_ids:
            return self._collect_batch_results(inputs, num_generations)
        if inputs is None:
            raise ValueError("No `inputs` were provided and no `jobs_ids` were found.")
        request = {
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
        rows = [
            {
                "custom_id": str(index),
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"messages": input, **request},
            }
            for index, input in enumerate(inputs)
        ]
        self.jobs_ids = tuple(self._submit_batch_rows(rows))
        raise DistilabelOfflineBatchGenerationNotFinishedException(jobs_ids=self.jobs_ids)

    def _submit_batch_rows(self, rows: List[Any]) -> List[str]:
        prefix, metadata = _batch_file_prefix_and_metadata()
        return self._native_client().batch_submit(rows, file_name_prefix=prefix, metadata=metadata)

    def _collect_batch_results(
        self, inputs: Optional[List[FormattedInput]], num_generations: int
    ) -> List[GenerateOutput]:
        state = self._native_client().batch_check(list(self.jobs_ids))  # type: ignore[arg-type]
        self._report_batch_progress(state["counts"], finished=not state["running"])
        if state["running"]:
            raise DistilabelOfflineBatchGenerationNotFinishedException(jobs_ids=self.jobs_ids)
        if state["unfinished"]:
            # An expired or cancelled job: its finished rows are kept, the others go again.
            self.jobs_ids = (*self.jobs_ids, *self._submit_batch_rows(state["unfinished"]))  # type: ignore[misc]
            raise DistilabelOfflineBatchGenerationNotFinishedException(jobs_ids=self.jobs_ids)
        results = state["results"]
        count = (
            len(inputs) if inputs is not None else 1 + max(map(int, state["submitted"]), default=-1)
        )
        outputs: List[GenerateOutput] = []
        for index in range(count):
            result = results.get(str(index), "No result for this input in the batch jobs.")
            if isinstance(result, str):
                outputs.append(_fanout.failed_output(num_generations, result))
            else:
                outputs.append(result)
        return outputs

    def _report_batch_progress(self, counts: Tuple[int, int, int], finished: bool) -> None:
        """The jobs' request counts to the progress callback and bar (as the fan-out's)."""
        total, completed, failed = counts
        self._batch_snapshot = (total, completed, failed, 0, max(total - completed - failed, 0))
        if self._batch_reporter is None:
            self._batch_reporter = _fanout.ProgressReporter.create(
                self, lambda: self._batch_snapshot
            )
        reporter = self._batch_reporter
        if reporter is None:
            return
        if finished:
            reporter.close()
            self._batch_reporter = None
        else:
            reporter.report()

    def cancel_offline_batch_generation(self) -> None:
        """Asks the API to cancel this LLM's batch jobs (`jobs_ids`). Rows they finished are
        still collected by the next `offline_batch_generate`; the others go again."""
        if self.jobs_ids:
            self._native_client().batch_cancel(list(self.jobs_ids))

    def _start(self, requests: List[Tuple[bool, Dict[str, Any]]]) -> Any:
        return self._native_client().start(
            requests,
            max_concurrency=self.max_concurrency,
            fail_fast=self.error_policy == "raise",
        )

    def _outputs(self, handle: Any, num_generations: int) -> List[GenerateOutput]:
        outputs = handle.results()
        for _, finish_reason in handle.empty_choices():
            self._logger.warning(
                f"Received no response using OpenAI client (model: '{self.model}')."
                f" Finish reason was: {finish_reason}"
            )
        failures = [i for i, output in enumerate(outputs) if isinstance(output, BaseException)]
        if not failures:
            return outputs
        if self.error_policy == "raise":
            # The failure that stopped the batch, not the requests cancelled because of it.
            first = next(
                (
                    outputs[i]
                    for i in failures
                    if not isinstance(outputs[i], _core.RequestCancelledError)
                ),
                outputs[failures[0]],
            )
            raise first
        for index in failures:
            outputs[index] = _fanout.failed_output(
                num_generations, _fanout.describe_error(outputs[index])
            )
        return outputs


def _extra_root_certificates() -> Optional[bytes]:
    # The certificates named by `SSL_CERT_FILE` are trusted too (as httpx and the openai SDK
    # do): a self-hosted server with its own certificate authority needs nothing else.
    path = os.environ.get("SSL_CERT_FILE")
    if not path:
        return None
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as e:
        raise ValueError(f"`SSL_CERT_FILE` points to an unreadable file ({path}): {e}") from e


def _batch_file_prefix_and_metadata() -> Tuple[str, Dict[str, str]]:
    """File names and batch metadata naming the pipeline run, as distilabel's do."""
    name = os.getenv(PIPELINE_NAME_ENV_NAME)
    cache_id = os.getenv(PIPELINE_CACHE_ID_ENV_NAME)
    metadata = {"description": "distilabel"}
    if name is not None and cache_id is not None:
        metadata.update(distilabel_pipeline_name=name, distilabel_pipeline_cache_id=cache_id)
        return f"distilabel-pipeline-{name}-{cache_id}", metadata
    return "distilabel-pipeline", metadata


def _first_user_message(messages: "StandardInput") -> Dict[str, Any]:
    # distilabel indexes the first user message unguarded (IndexError without one); kept.
    return [message for message in messages if message["role"] == "user"][0]  # type: ignore[return-value]
