"""`LLM` and `AsyncLLM`: distilabel 1.5.3's base classes, field for field.

What differs from distilabel is underneath: `AsyncLLM.generate` runs a bounded fan-out whose
decisions are made in the Rust core (`_fanout`), works from any thread or running loop
(`_loop`), response grouping (`merge_responses`) runs in the Rust core in one pass, and
objects pickle and deep-copy whatever state they are in (process-local state lives in
`_loop.ProcessLocal` objects; see COMPATIBILITY.md).
"""

import asyncio
import copy
import gc
import inspect
import json
import logging
import os
import sys
from abc import ABC, abstractmethod
from functools import cached_property
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ClassVar,
    Dict,
    List,
    Literal,
    Optional,
    Set,
    Tuple,
    Type,
    Union,
)

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    StringConstraints,
    field_validator,
)
from typing_extensions import Annotated

from distilabel_rs._core import merge_responses as _merge_responses
from distilabel_rs._core import wait_between_polls
from distilabel_rs._interop import counterpart
from distilabel_rs.constants import SIGINT_HANDLER_CALLED_ENV_NAME
from distilabel_rs.errors import DistilabelNotImplementedError, DistilabelUserError
from distilabel_rs.exceptions import DistilabelOfflineBatchGenerationNotFinishedException
from distilabel_rs.mixins.runtime_parameters import RuntimeParameter, RuntimeParametersModelMixin
from distilabel_rs.models.llms import _fanout
from distilabel_rs.models.llms._loop import LoopOwner
from distilabel_rs.models.llms._progress import FanOutProgress
from distilabel_rs.utils.docstring import parse_google_docstring
from distilabel_rs.utils.serialization import _Serializable

if TYPE_CHECKING:
    from logging import Logger

    from distilabel_rs.typing import (
        FormattedInput,
        GenerateOutput,
        HiddenState,
        InstructorStructuredOutputType,
        StandardInput,
        StructuredOutputType,
    )
    from distilabel_rs.utils.docstring import Docstring

__all__ = ["LLM", "AsyncLLM", "merge_responses"]

_OFFLINE_BATCH_PAGE = "sections/how_to_guides/advanced/offline-batch-generation/"
_INSTRUCTOR_PAGE = "sections/how_to_guides/advanced/structured_generation/#instructor"
_STOP_POLLING_MESSAGE = (
    "Received a KeyboardInterrupt. Stopping polling for checking if the offline batch"
    " generation is finished..."
)


# distilabel's pipelines accept only subclasses of distilabel's `LLM` (pydantic rejects
# virtual subclasses): with distilabel installed, the base classes also derive from
# distilabel's, after distilabel_rs's own implementation in the MRO (see `_interop`).
_DISTILABEL_LLM = counterpart("models.llms.base", "LLM")
_LLM_BASES: Tuple[type, ...] = (
    (RuntimeParametersModelMixin, _Serializable, *_DISTILABEL_LLM)
    if _DISTILABEL_LLM
    else (RuntimeParametersModelMixin, BaseModel, _Serializable, ABC)
)
_ASYNC_LLM_EXTRA_BASES = counterpart("models.llms.base", "AsyncLLM")


class LLM(*_LLM_BASES):  # type: ignore[misc]
    """Base class of every LLM.

    A subclass implements `model_name` and `generate` (returning `num_generations`
    generations per input), and may override `load` (calling `super().load()`, which sets
    up the logger) and `offline_batch_generate`.

    Attributes:
        generation_kwargs: the kwargs given to `generate`/`agenerate` by pipelines.
        use_offline_batch_generation: generate through `offline_batch_generate`.
        offline_batch_generation_block_until_done: if set, poll the offline batch jobs
            every that many seconds until their results are ready.
        jobs_ids: the offline batch jobs created so far (set by `offline_batch_generate`).
        _logger: the LLM's logger, created by `load`.
    """

    model_config = ConfigDict(
        arbitrary_types_allowed=True,
        protected_namespaces=(),
        validate_default=True,
        validate_assignment=True,
        extra="forbid",
    )

    generation_kwargs: Optional[RuntimeParameter[Dict[str, Any]]] = Field(
        default_factory=dict,
        description="The kwargs to be propagated to either `generate` or `agenerate`"
        " methods within each `LLM`.",
    )
    use_offline_batch_generation: Optional[RuntimeParameter[bool]] = Field(
        default=False,
        description="Whether to use the `offline_batch_generate` method to generate the responses.",
    )
    offline_batch_generation_block_until_done: Optional[RuntimeParameter[int]] = Field(
        default=None,
        # "ofline" is distilabel's spelling; the description is part of the contract.
        description="If provided, then polling will be done until the `ofline_batch_generate`"
        " method is able to retrieve the results. The value indicate the time to wait between"
        " each polling.",
    )

    jobs_ids: Union[Tuple[str, ...], None] = Field(default=None)
    _logger: "Logger" = PrivateAttr(None)  # type: ignore[assignment]  # set by `load`

    def load(self) -> None:
        """Prepares the LLM for generating; subclasses call it from their own `load`."""
        self._logger = logging.getLogger(f"distilabel.llm.{self.model_name}")

    def unload(self) -> None:
        """Releases what `load` acquired."""

    @property
    @abstractmethod
    def model_name(self) -> str:
        """The name of the model behind the LLM."""

    def get_generation_kwargs(self) -> Dict[str, Any]:
        """The kwargs pipelines pass to `generate` (the field itself, not a copy).

        Returns:
            `generation_kwargs`.
        """
        return self.generation_kwargs  # type: ignore[return-value]

    @abstractmethod
    def generate(
        self,
        inputs: List["FormattedInput"],
        num_generations: int = 1,
        **kwargs: Any,
    ) -> List["GenerateOutput"]:
        """Generates `num_generations` generations for each input.

        Args:
            inputs: the inputs, each a conversation in the OpenAI chat format.
            num_generations: how many generations per input.
            **kwargs: generation parameters.
        """

    def generate_outputs(
        self,
        inputs: List["FormattedInput"],
        num_generations: int = 1,
        **kwargs: Any,
    ) -> List["GenerateOutput"]:
        """What pipelines call: `generate`, or the offline batch path when enabled
        (polling until done when `offline_batch_generation_block_until_done` is set)."""
        if not self.use_offline_batch_generation:
            return self.generate(inputs=inputs, num_generations=num_generations, **kwargs)
        if self.offline_batch_generation_block_until_done is not None:
            return self._offline_batch_generate_polling(
                inputs=inputs, num_generations=num_generations, **kwargs
            )
        # Raises the not-finished exception at once while the jobs run.
        return self.offline_batch_generate(inputs=inputs, num_generations=num_generations, **kwargs)

    def _offline_batch_generate_polling(
        self,
        inputs: List["FormattedInput"],
        num_generations: int = 1,
        **kwargs: Any,
    ) -> List["GenerateOutput"]:
        """Calls `offline_batch_generate` until it returns, sleeping between calls.

        Stops with the not-finished exception (carrying `jobs_ids`) on Ctrl-C, or when a
        pipeline worker has recorded a SIGINT in the `sigint_handler_called` environment
        variable.

        Args:
            inputs: the inputs.
            num_generations: how many generations per input.
            **kwargs: generation parameters.

        Returns:
            The outputs, one per input.
        """
        block = self.offline_batch_generation_block_until_done
        while True:
            try:
                try:
                    return self.offline_batch_generate(
                        inputs=inputs, num_generations=num_generations, **kwargs
                    )
                except DistilabelOfflineBatchGenerationNotFinishedException as e:
                    self._logger.info(
                        f"Waiting for the offline batch generation to finish: {e}. Sleeping"
                        f" for {block} seconds before trying to get the results again."
                    )
                    # Pipeline workers ignore SIGINT and record it in this variable instead.
                    if os.getenv(SIGINT_HANDLER_CALLED_ENV_NAME) is not None:
                        self._logger.info(_STOP_POLLING_MESSAGE)
                        raise
                    # Waits in Rust without the GIL; Ctrl-C raises KeyboardInterrupt within
                    # 50 ms, and a SIGINT recorded by a pipeline worker ends the wait too.
                    if wait_between_polls(block):  # type: ignore[arg-type]
                        self._logger.info(_STOP_POLLING_MESSAGE)
                        raise
            except KeyboardInterrupt as e:
                # Also while sleeping, where distilabel lets it escape (COMPATIBILITY.md).
                self._logger.info(_STOP_POLLING_MESSAGE)
                raise DistilabelOfflineBatchGenerationNotFinishedException(
                    jobs_ids=self.jobs_ids  # type: ignore[arg-type]
                ) from e

    def get_last_hidden_states(self, inputs: List["StandardInput"]) -> List["HiddenState"]:
        """The last hidden states of the model for each input, if the LLM can give them.

        Args:
            inputs: the conversations.

        Returns:
            One array of shape [num_tokens, hidden_size] per input.
        """
        raise NotImplementedError(
            f"Method `get_last_hidden_states` is not implemented for `{type(self).__name__}`"
        )

    def _prepare_structured_output(
        self, structured_output: "StructuredOutputType"
    ) -> Union[Any, None]:
        """Builds what guided generation needs; LLMs that support it override this.

        Args:
            structured_output: the structured output configuration.

        Returns:
            Whatever the LLM's guided generation uses.
        """
        raise NotImplementedError(
            f"Guided generation is not implemented for `{type(self).__name__}`"
        )

    def offline_batch_generate(
        self,
        inputs: Union[List["FormattedInput"], None] = None,
        num_generations: int = 1,
        **kwargs: Any,
    ) -> List["GenerateOutput"]:
        """Generates through a provider's offline batch API.

        The first call creates the jobs, stores their ids in `jobs_ids` and raises
        `DistilabelOfflineBatchGenerationNotFinishedException`; later calls return the
        outputs once the jobs are done, or raise that exception again.

        Args:
            inputs: the inputs (not needed once `jobs_ids` is set).
            num_generations: how many generations per input.
            **kwargs: generation parameters.

        Returns:
            The outputs, one per input.
        """
        raise DistilabelNotImplementedError(
            f"`offline_batch_generate` is not implemented for `{type(self).__name__}`",
            page=_OFFLINE_BATCH_PAGE,
        )


# `AsyncLLM`'s own process-local private attributes (subclasses may add theirs).
_ASYNC_PROCESS_LOCAL: Tuple[str, ...] = ("_event_loop", "_progress_callback")


def _discard_partial_copies(memo: Dict[int, Any], before: Set[int]) -> None:
    """Drops what a failed deep copy half-built (kept in `memo`): their finalizers, which
    expect whole objects, would print errors later. Silenced while they go."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        for key in [key for key in memo if key not in before]:
            del memo[key]
        gc.collect()
    finally:
        sys.unraisablehook = hook


class AsyncLLM(LLM, *_ASYNC_LLM_EXTRA_BASES):  # type: ignore[misc]
    """Base class of LLMs that generate one input at a time with `async def agenerate`;
    `generate` runs those coroutines concurrently, at most `max_concurrency` at once, with
    retries, a rate limit and an error policy decided by the Rust core.

    A subclass declares which of its errors are worth retrying in `_retryable_exceptions`
    (or overrides `_is_retryable`); a retry-after hint the error carries is honoured (see
    `_retry_after`).

    Attributes:
        _event_loop: the event loop `generate` runs on.
    """

    # An unannotated private class attribute: pydantic makes it a private attribute that
    # `load()` may reassign per instance (providers that cannot return `n` generations).
    _num_generations_param_supported = True
    # distilabel's; `event_loop` hands out the loop of `_loop_owner` without storing it (a
    # stored loop could be neither pickled nor deep-copied).
    _event_loop: Optional["asyncio.AbstractEventLoop"] = PrivateAttr(default=None)
    _new_event_loop: bool = PrivateAttr(default=False)
    # The one owner of this object's event loop and `generate` lock, per process.
    _loop_owner: LoopOwner = PrivateAttr(default_factory=LoopOwner)
    _progress_callback: Optional[Callable[[FanOutProgress], Any]] = PrivateAttr(default=None)
    # Seed of the retry jitter; `None` seeds from the clock. Tests fix it.
    _fanout_seed: Optional[int] = PrivateAttr(default=None)
    # Set on a deep copy of a loaded object whose process-bound state (an SDK client...)
    # could not be copied: the copy loads itself again before its first `generate`.
    _load_again: bool = PrivateAttr(default=False)
    # What `max_concurrency="auto"` learned in this process (a `ProcessLocal`).
    _adaptive_memory: _fanout.AdaptiveMemory = PrivateAttr(default_factory=_fanout.AdaptiveMemory)

    _retryable_exceptions: ClassVar[Tuple[Type[BaseException], ...]] = ()
    # Private attributes that belong to one process and are not `ProcessLocal` objects
    # themselves (a callback may be a lambda): reset when pickled. Subclasses may extend it.
    _process_local: ClassVar[Tuple[str, ...]] = _ASYNC_PROCESS_LOCAL

    max_concurrency: RuntimeParameter[
        Union[PositiveInt, Annotated[str, StringConstraints(pattern=r"^auto(:[1-9][0-9]*)?$")]]
    ] = Field(
        default=64,
        description="The maximum number of `agenerate` calls running at once (requests in"
        ' flight). `None` removes the limit, as in distilabel. `"auto"` adapts the limit'
        " to the provider: it grows while latency stays flat and comes down on rate-limit"
        " (429), overload (503, 529) and timeout errors or rising latency, up to 1024 requests"
        ' in flight; `"auto:N"` sets that ceiling to N.',
    )
    max_request_retries: RuntimeParameter[NonNegativeInt] = Field(
        default=3,
        description="How many times a request that fails with a retryable error is retried,"
        " with exponential backoff and full jitter, or after the retry-after delay the error"
        " carries.",
    )
    retry_backoff_base: RuntimeParameter[NonNegativeFloat] = Field(
        default=1.0,
        description="The backoff of the first retry in seconds; it doubles with each retry"
        " (the actual wait is a random time up to it).",
    )
    retry_backoff_max: RuntimeParameter[NonNegativeFloat] = Field(
        default=60.0,
        description="The maximum backoff between retries in seconds.",
    )
    requests_per_minute: Optional[RuntimeParameter[PositiveFloat]] = Field(
        default=None,
        description="The maximum number of requests started per minute (spread evenly, at"
        " most one second's worth at once). `None` means no limit.",
    )
    error_policy: RuntimeParameter[Literal["raise", "isolate"]] = Field(
        default="raise",
        description="What a request that fails for good does: `raise` fails the whole"
        " `generate` call with its exception (distilabel's behaviour); `isolate` keeps every"
        " other result and returns `None` generations for it, with the error message under"
        " the `error` key.",
    )
    progress_bar: RuntimeParameter[bool] = Field(
        default=False,
        description="Whether `generate` shows a progress bar (requires `tqdm`).",
    )

    @field_validator("max_concurrency", mode="before")
    @classmethod
    def _check_max_concurrency(cls, value: Any) -> Any:
        """A positive integer, `None`, `"auto"` or `"auto:N"`, with an error naming the
        accepted values otherwise."""
        return _fanout.parse_max_concurrency(value)

    @property
    def generate_parameters(self) -> List[inspect.Parameter]:
        """The parameters of `agenerate`, which are the generation kwargs.

        Returns:
            The parameters of the bound method, in order.
        """
        return list(inspect.signature(self.agenerate).parameters.values())

    @cached_property
    def generate_parsed_docstring(self) -> "Docstring":
        """The parsed docstring of `agenerate` (computed once per object).

        Returns:
            The parsed docstring.
        """
        return parse_google_docstring(self.agenerate)

    @property
    def event_loop(self) -> "asyncio.AbstractEventLoop":
        """The loop `generate` runs on: the running loop if there is one, else this
        object's own loop in this process (closed when the object is deleted). Set as the
        thread's current loop on every access."""
        try:
            loop = asyncio.get_running_loop()
            if loop.is_closed():
                raise RuntimeError("closed")
        except RuntimeError:
            loop = self._loop_owner.loop()
            self._new_event_loop = True
        asyncio.set_event_loop(loop)
        return loop

    @abstractmethod
    async def agenerate(
        self, input: "FormattedInput", num_generations: int = 1, **kwargs: Any
    ) -> "GenerateOutput":
        """Generates `num_generations` generations for one input."""

    async def _agenerate(
        self, inputs: List["FormattedInput"], num_generations: int = 1, **kwargs: Any
    ) -> List["GenerateOutput"]:
        """Runs `agenerate` for every input concurrently, outputs in input order.

        At most `max_concurrency` requests run at once. When the provider cannot return
        several generations per request, one request runs per input and generation and the
        responses are grouped per input. Cancelling the awaiting task cancels every request.

        Args:
            inputs: the inputs.
            num_generations: how many generations per input.
            **kwargs: generation parameters.

        Returns:
            The outputs, one per input.
        """
        self._load_if_copied()
        return await _fanout.fan_out(
            self.agenerate,
            inputs,
            num_generations,
            kwargs,
            per_input=bool(self._num_generations_param_supported),
            settings=self._fanout_settings(),
            is_retryable=self._is_retryable,
            retry_after=self._retry_after,
        )

    def _fanout_settings(self) -> _fanout.FanOutSettings:
        """How this object's fan-outs run, from its runtime parameters."""
        return _fanout.FanOutSettings(
            max_concurrency=self.max_concurrency,
            max_retries=self.max_request_retries or 0,
            backoff_base=self.retry_backoff_base or 0.0,
            backoff_cap=self.retry_backoff_max or 0.0,
            requests_per_minute=self.requests_per_minute,
            isolate=self.error_policy == "isolate",
            seed=self._fanout_seed,
            progress_callback=self._progress_callback,
            progress_bar=bool(self.progress_bar),
            adaptive_memory=self._adaptive_memory,
        )

    def generate(
        self,
        inputs: List["FormattedInput"],
        num_generations: int = 1,
        **kwargs: Any,
    ) -> List["GenerateOutput"]:
        """Generates for every input by running `agenerate` concurrently, and waits.

        Works from scripts, threads, forked processes and inside a running event loop
        (Jupyter); Ctrl-C cancels the requests in flight and raises `KeyboardInterrupt`.

        Args:
            inputs: the inputs.
            num_generations: how many generations per input.
            **kwargs: generation parameters.

        Returns:
            The outputs, one per input.
        """
        self._load_if_copied()
        return self._loop_owner.run(
            lambda: self._agenerate(inputs=inputs, num_generations=num_generations, **kwargs),
        )

    def set_progress_callback(self, callback: Optional[Callable[[FanOutProgress], Any]]) -> None:
        """Calls `callback(progress)` about ten times a second while `generate` runs, and
        once at its end, with the counts of requests done, failed, retried and in flight.

        The callback stays with this object in this process (it is not pickled).

        Args:
            callback: the callback, or `None` to remove it.
        """
        self._progress_callback = callback

    def _is_retryable(self, error: BaseException) -> bool:
        """Whether a failed request is retried (by default: an error of a type listed in
        `_retryable_exceptions`)."""
        return isinstance(error, self._retryable_exceptions)

    def _retry_after(self, error: BaseException) -> Optional[float]:
        """The delay in seconds the error asks for before a retry, if any: a numeric
        `retry_after` attribute, or the `retry-after-ms`/`retry-after` header of an HTTP
        response attached as `error.response` (as the openai and httpx errors do)."""
        hint = getattr(error, "retry_after", None)
        if isinstance(hint, (int, float)) and not isinstance(hint, bool):
            return float(hint)
        headers = getattr(getattr(error, "response", None), "headers", None)
        if headers is None:
            return None
        try:
            if (milliseconds := headers.get("retry-after-ms")) is not None:
                return float(milliseconds) / 1000
            if (seconds := headers.get("retry-after")) is not None:
                return float(seconds)
        except (TypeError, ValueError):
            return None
        return None

    def __getstate__(self) -> Dict[str, Any]:
        # Process-local private attributes (`_process_local`) go back to their defaults: a
        # pickled copy (a pipeline worker, a Ray actor) makes its own on first use instead
        # of failing to pickle them. (`ProcessLocal` objects reset themselves.)
        state = super().__getstate__()
        private = dict(state.get("__pydantic_private__") or {})
        for name in self._process_local:
            private[name] = type(self).__private_attributes__[name].get_default()
        state["__pydantic_private__"] = private
        return state

    def __deepcopy__(self, memo: Optional[Dict[int, Any]] = None) -> "AsyncLLM":
        """A deep copy, made as a pickled copy would be (`copy.deepcopy`,
        `model_copy(deep=True)`, distilabel's copy of each step before it starts a worker):
        `ProcessLocal` state starts empty and `_process_local` attributes at their defaults.
        A private attribute that cannot be deep-copied (an SDK client holding locks,
        sockets or an SSL context) is left at its default too; when that, or a subclass's
        `_process_local` state, leaves out something `load()` made, the copy of a loaded
        object loads itself again before its first `generate`, so that it works on its own.

        Args:
            memo: `copy.deepcopy`'s memo.

        Returns:
            The copy.
        """
        memo = {} if memo is None else memo
        cls = type(self)
        copied = cls.__new__(cls)
        memo[id(self)] = copied
        object.__setattr__(copied, "__dict__", copy.deepcopy(self.__dict__, memo))
        object.__setattr__(
            copied, "__pydantic_extra__", copy.deepcopy(self.__pydantic_extra__, memo)
        )
        object.__setattr__(copied, "__pydantic_fields_set__", set(self.__pydantic_fields_set__))
        private: Dict[str, Any] = {}
        reset = False
        attributes = cls.__private_attributes__
        for name, value in (self.__pydantic_private__ or {}).items():
            if name in self._process_local:
                default = attributes[name].get_default()
                private[name] = default
                # A subclass's process-local state (a tokenizer, a client) that `load()`
                # made: made again by the copy. (The loop and callback need nothing.)
                reset = reset or (name not in _ASYNC_PROCESS_LOCAL and value is not default)
                continue
            before = set(memo)
            try:
                private[name] = copy.deepcopy(value, memo)
                continue
            except Exception:  # bound to this process or object: rebuilt by `load()`
                private[name] = attributes[name].get_default() if name in attributes else None
                reset = True
            _discard_partial_copies(memo, before)
        if reset and self._logger is not None:
            private["_load_again"] = True
        object.__setattr__(copied, "__pydantic_private__", private)
        return copied

    def _load_if_copied(self) -> None:
        """Loads a deep copy of a loaded object whose process-bound state was not copied."""
        if self._load_again:
            self._load_again = False
            self.load()

    def __del__(self) -> None:
        """Closes the event loop this object created in this process, if any."""
        if sys.meta_path is None:  # interpreter shutdown
            return
        private = getattr(self, "__pydantic_private__", None) or {}
        owner = private.get("_loop_owner")
        if owner is not None:
            owner.close()

    @staticmethod
    def _prepare_structured_output(  # type: ignore[override]
        structured_output: "InstructorStructuredOutputType",
        client: Any = None,
        framework: Optional[str] = None,
    ) -> Dict[str, Union[str, Any]]:
        """Wraps `client` with `instructor` and stores a pydantic schema as JSON schema.

        Args:
            structured_output: the configuration; a pydantic `schema` is replaced in place
                by its JSON schema (what gets serialized).
            client: the client to wrap.
            framework: the provider's name for `instructor`.

        Returns:
            `{"client": wrapped}`, plus `"structured_output"` when the schema was converted.
        """
        from distilabel_rs.models.llms._structured import prepare_instructor

        result: Dict[str, Any] = {
            "client": prepare_instructor(
                client, mode=structured_output.get("mode"), framework=framework
            )
        }
        schema = structured_output.get("schema")
        if not schema:
            raise DistilabelUserError(
                f"The `structured_output` argument must contain a schema: {structured_output}",
                page=_INSTRUCTOR_PAGE,
            )
        if inspect.isclass(schema) and issubclass(schema, BaseModel):
            structured_output["schema"] = schema.model_json_schema()
            result["structured_output"] = structured_output
        return result

    @staticmethod
    def _prepare_kwargs(
        arguments: Dict[str, Any], structured_output: Dict[str, Any]
    ) -> Dict[str, Any]:
        """Adds `instructor`'s `response_model` and `max_retries` to `arguments`.

        Args:
            arguments: the request kwargs (updated in place).
            structured_output: the configuration; a JSON schema (dict or string) is turned
                into a pydantic model.

        Returns:
            `arguments`.
        """
        schema = structured_output.get("schema", {})
        if not (inspect.isclass(schema) and issubclass(schema, BaseModel)):
            from distilabel_rs.models.llms._structured import json_schema_to_model

            if isinstance(schema, str):
                schema = json.loads(schema)
            try:
                schema = json_schema_to_model(schema)
            except Exception as e:
                raise ValueError(
                    "Failed to convert the schema to a pydantic model, the model is too"
                    f" complex currently: {e}"
                ) from e
        arguments.update(response_model=schema, max_retries=structured_output.get("max_retries", 1))
        return arguments


def merge_responses(responses: List["GenerateOutput"], n: int = 1) -> List["GenerateOutput"]:
    """Groups every `n` consecutive single-generation responses into one per input.

    Runs in the Rust core in one pass (distilabel's is quadratic); same output and errors.

    Args:
        responses: the outputs of `agenerate`, input-major.
        n: generations per input.

    Returns:
        One merged output per input: first generation of each response, statistics and
        extra keys (those of the first response) as lists; `input_tokens` and
        `output_tokens` always first.
    """
    return _merge_responses(responses, n)  # type: ignore[return-value]
