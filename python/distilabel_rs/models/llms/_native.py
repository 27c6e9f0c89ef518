"""`NativeLLM`: the provider-neutral base of LLMs whose requests run in Rust.

It owns everything around the native client — the client per process (rebuilt in a forked
child, absent from pickles and deep copies), the wait loops of `generate` and `_agenerate`
with progress and Ctrl-C, one request per generation when the provider has no `n`, the
error policy on results, and offline generation through the provider's Batch API (submit,
collect, resubmit what expired, progress, cancel) — so that a provider module is its
fields, its `agenerate` signature and its request bodies:

- `_provider` and `_client_settings()`: which API and how to reach it;
- `agenerate(...)` with distilabel's signature (and `@validate_call`), whose body is
  `return await self._agenerate_one(locals())`;
- `_request(parameters, context)`: `(endpoint, body)` for one input, `endpoint` being
  `"chat"` or `"text"`; `context` is what `_batch_context()` computed once per call;
- optionally `_template(parameters, context, inputs)`, when the bodies of a call's
  conversations differ only in the conversation (and a random seed): their common part is
  then written once (`_core.NativeClient.start_templated`);
- optionally `_no_response_message`, and for offline generation `offline_batch_generate`
  calling `_offline_batch(...)`.
"""

import asyncio
import inspect
import json
import os
import signal
import typing
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ClassVar,
    Dict,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
)

from pydantic import (
    BaseModel,
    Field,
    PositiveFloat,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    validate_call,
)

from distilabel_rs import _core
from distilabel_rs.constants import PIPELINE_CACHE_ID_ENV_NAME, PIPELINE_NAME_ENV_NAME
from distilabel_rs.exceptions import DistilabelOfflineBatchGenerationNotFinishedException
from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models.llms import _fanout
from distilabel_rs.models.llms._gc import full_collections_deferred
from distilabel_rs.models.llms._loop import NativeSlot
from distilabel_rs.models.llms._outputs import describe_error, failed_output, merge_with_failures
from distilabel_rs.models.llms._progress import ProgressReporter, Snapshot
from distilabel_rs.models.llms.base import AsyncLLM

if TYPE_CHECKING:
    from distilabel_rs.typing import FormattedInput, GenerateOutput

__all__ = ["NativeLLM", "Request", "Template"]

# `(endpoint, body)`: `endpoint` is "chat" or "text".
Request = Tuple[str, Dict[str, Any]]


class Template(typing.NamedTuple):
    """How the bodies of a call's conversations differ: only in the member `key` (the
    conversation itself) and, with `seed` (a member name and its draw), in a seed drawn per
    request."""

    key: str
    seed: Optional[Tuple[str, Callable[[], int]]] = None


# `agenerate`'s argument validators, per class (see `NativeLLM._parameters_validator`).
_VALIDATORS: Dict[type, Callable[..., Dict[str, Any]]] = {}
_INPUT_VALIDATORS: Dict[type, Optional[Callable[[Any], Any]]] = {}

# How often a synchronous `generate()` wakes up to check Ctrl-C and report progress.
_WAIT_SLICE_SECONDS = 0.1
_MISSING_RESULT = "No result for this input in the batch jobs."
_LOST_RESULT = (
    "The request was not run before its batch expired or was cancelled, and the API keeps no"
    " copy of it: pass the same `inputs` to `offline_batch_generate` to submit it again."
)


class NativeLLM(AsyncLLM):
    """Base of the LLMs whose whole request path runs in Rust (see the module docstring).

    Attributes:
        tokens_per_minute: a limit on prompt plus generated tokens per minute.
    """

    tokens_per_minute: Optional[RuntimeParameter[PositiveFloat]] = Field(
        default=None,
        description="The maximum number of tokens (prompt plus the most each request may"
        " generate, reconciled with the usage the API reports) per minute. `None` means no"
        " limit.",
    )

    # The provider kind of `_core.NativeClient` ("openai" for every OpenAI-compatible API).
    _provider: ClassVar[str] = "openai"
    # Logged for a choice that came back without content (`{model}`, `{finish_reason}`).
    _no_response_message: ClassVar[str] = (
        "Received no response (model: '{model}'). Finish reason was: {finish_reason}"
    )

    # The native client and the batch progress reporter of this process.
    _native: NativeSlot = PrivateAttr(default_factory=NativeSlot)
    # Latest request counts of the offline batch jobs (for their progress reporter).
    _batch_snapshot: Tuple[int, ...] = PrivateAttr((0, 0, 0, 0, 0))

    # ---- what a provider module supplies -------------------------------------------------

    def _client_settings(self) -> Dict[str, Any]:
        """`base_url`, and any of `profile`, `api_key`, `default_headers`, `timeout`,
        `max_retries` for `_core.NativeClient`."""
        raise NotImplementedError

    def _batch_context(self) -> Any:
        """Computed once per `generate` call and passed to every `_request`."""
        return None

    def _request(self, parameters: Dict[str, Any], context: Any) -> Request:
        """`(endpoint, body)` of the request for one input; `parameters` are `agenerate`'s
        validated arguments (with `input`)."""
        raise NotImplementedError

    def _template(
        self, parameters: Dict[str, Any], context: Any, inputs: List[Any]
    ) -> Optional[Template]:
        """`Template` when, for the validated `inputs` of one call (the first is
        `parameters["input"]`), `_request` would build bodies that differ only as it says;
        `None` (the default): bodies are built one by one."""
        return None

    # ---- the native client -----------------------------------------------------------------

    def load(self) -> None:
        """Checks the settings and builds the native client (nothing is sent)."""
        structured_output = getattr(self, "structured_output", None)
        if isinstance(structured_output, dict):
            schema = structured_output.get("schema")
            if inspect.isclass(schema) and issubclass(schema, BaseModel):
                # Stored as JSON schema (as distilabel does) so that the LLM dumps and pickles.
                converted = {**structured_output, "schema": schema.model_json_schema()}
                setattr(self, "structured_output", converted)  # noqa: B010 (a subclass's field)
        # Before the base class's `load`, which names the logger after `model_name`: a
        # provider may ask its server for it.
        self._native = NativeSlot()
        self._native.get(self._build_native_client)
        super().load()

    def _build_native_client(self) -> Any:
        settings = self._client_settings()
        return _core.NativeClient(
            self._provider,
            settings.pop("base_url"),
            backoff_base=self.retry_backoff_base or 0.0,
            backoff_cap=self.retry_backoff_max or 0.0,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            pool_size=_fanout.pool_size(self.max_concurrency),
            root_certificate_pem=_extra_root_certificates(),
            seed=self._fanout_seed,
            **settings,
        )

    @staticmethod
    def _timeout_seconds(timeout: Optional[float]) -> float:
        """A `timeout` field as seconds (`None`: the client default)."""
        return float(timeout) if timeout is not None else _core.CLIENT_DEFAULTS["timeout"]

    def _native_client(self) -> Any:
        """This process's client (a forked child or a copy of a loaded LLM builds its own)."""
        client = self._native.current()
        if client is not None:
            return client
        if self._logger is None:
            raise RuntimeError(f"`{type(self).__name__}` is not loaded: call `load()` first.")
        return self._native.get(self._build_native_client)

    def unload(self) -> None:
        """Drops the native client."""
        self._native = NativeSlot()
        super().unload()

    # ---- requests ----------------------------------------------------------------------------

    @classmethod
    def _parameters_validator(cls) -> Callable[..., Dict[str, Any]]:
        """`agenerate`'s arguments validated as its `@validate_call` does (same coercions,
        same `ValidationError` titled `<Class>.agenerate`), returned as a dict, without
        running it. Built once per class."""
        validator = _VALIDATORS.get(cls)
        if validator is None:
            validator = _VALIDATORS[cls] = _arguments_validator(cls, cls.agenerate)
        return validator

    @classmethod
    def _input_validator(cls) -> Optional[Callable[[Any], Any]]:
        """Validates a list of `input`s in one call, each as `agenerate`'s `@validate_call`
        validates it (`None` if `agenerate` has no `input`). Built once per class."""
        if cls not in _INPUT_VALIDATORS:
            hints = typing.get_type_hints(inspect.unwrap(cls.agenerate), include_extras=True)
            annotation = hints.get("input")
            _INPUT_VALIDATORS[cls] = (
                None if annotation is None else TypeAdapter(List[annotation]).validate_python  # type: ignore[valid-type]
            )
        return _INPUT_VALIDATORS[cls]

    def _validated(
        self, inputs: Sequence["FormattedInput"], kwargs: Dict[str, Any]
    ) -> Tuple[Dict[str, Any], List[Any]]:
        """The first input's validated arguments, and the further inputs validated. The
        other arguments are the same for every input: they are validated once, with the
        first input, and the further inputs in one call of a list validator (per-input calls
        cost more than the validation). When that fails, the inputs are validated one by
        one with all the arguments, so that the error raised is the one of `@validate_call`
        for the first bad input."""
        validate = self._parameters_validator()
        validate_inputs = self._input_validator()
        shared = validate(self, input=inputs[0], **kwargs)
        if validate_inputs is None:
            rest = [validate(self, input=input, **kwargs)["input"] for input in inputs[1:]]
            return shared, rest
        try:
            values = validate_inputs(inputs[1:])
        except ValidationError:
            for input in inputs[1:]:
                validate(self, input=input, **kwargs)
            raise
        return shared, values

    def _send(
        self, inputs: Sequence["FormattedInput"], num_generations: int, kwargs: Dict[str, Any]
    ) -> Any:
        """Starts the requests of one call: one per input, or one per input and generation
        when the provider cannot return several generations per request. Bodies come from
        the provider's `_template` when it has one for these inputs, else one by one."""
        if not inputs:
            return self._start([])
        repeat = 1
        if self._num_generations_param_supported:
            kwargs = {**kwargs, "num_generations": num_generations}
        else:
            repeat = num_generations
        shared, values = self._validated(inputs, kwargs)
        context = self._batch_context()
        handle = self._start_templated(shared, values, context, repeat)
        if handle is not None:
            return handle
        requests: List[Request] = []
        for parameters in (shared, *({**shared, "input": value} for value in values)):
            # Built anew for each generation (a provider may draw a seed per request).
            requests.extend(self._request(parameters, context) for _ in range(repeat))
        return self._start(requests)

    def _start_templated(
        self, shared: Dict[str, Any], values: List[Any], context: Any, repeat: int
    ) -> Any:
        """The requests started from the provider's template (`None`: it has none for these
        inputs, nothing was sent). The same bodies (members in another order) and seed
        draws as one by one; a value the template cannot write leaves the requests to be
        built one by one, which names it."""
        if self.tokens_per_minute is not None:
            return None  # each request reserves its prompt's tokens: built one by one
        conversations = [shared["input"], *values]
        template = self._template(shared, context, conversations)
        if template is None:
            return None
        endpoint, body = self._request(shared, context)
        if body.get(template.key) is not shared["input"]:
            return None
        seed_key, seeds = None, None
        if template.seed is not None:
            # The first request's seed was drawn by `_request`; the others in the order
            # that building them one by one draws them.
            seed_key, draw = template.seed
            seeds = [body[seed_key], *(draw() for _ in range(len(conversations) * repeat - 1))]
        common = {k: v for k, v in body.items() if k != template.key and k != seed_key}
        handle = self._native_client().start_templated(
            endpoint,
            common,
            template.key,
            conversations,
            repeat=repeat,
            seed_key=seed_key,
            seeds=seeds,
            max_concurrency=self.max_concurrency,
            fail_fast=self.error_policy == "raise",
        )
        return None if handle is None else self._wrap(handle)

    def _wrap(self, handle: Any) -> Any:
        """The handle of requests started from a template, as the provider reads it."""
        return handle

    def generate(
        self,
        inputs: List["FormattedInput"],
        num_generations: int = 1,
        **kwargs: Any,
    ) -> List["GenerateOutput"]:
        """Sends every request from Rust and waits (Ctrl-C cancels them).

        Args:
            inputs: the inputs.
            num_generations: generations per input.
            **kwargs: the generation parameters of `agenerate`.

        Returns:
            One output per input, in input order.
        """
        self._load_if_copied()
        # The request bodies and the outputs pile up: full collections would walk them
        # again and again (as in the fan-out engine, they wait until the end).
        with full_collections_deferred():
            handle = self._send(inputs, num_generations, kwargs)
            reporter = self._reporter(handle.progress)
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
            return self._outputs(handle, num_generations, grouped=True)

    async def _agenerate(
        self, inputs: List["FormattedInput"], num_generations: int = 1, **kwargs: Any
    ) -> List["GenerateOutput"]:
        """Like `generate`, awaited: cancelling the awaiting task cancels the requests."""
        self._load_if_copied()
        with full_collections_deferred():
            handle = self._send(inputs, num_generations, kwargs)
            return await self._awaited(handle, num_generations, grouped=True)

    async def _agenerate_one(self, arguments: Dict[str, Any]) -> "GenerateOutput":
        """The body of a provider's `agenerate`: its (validated) `arguments` (its
        `locals()`) sent as one request, whose output is returned."""
        self._load_if_copied()
        parameters = {k: v for k, v in arguments.items() if k not in ("self", "__class__")}
        context = self._batch_context()
        request = self._request(parameters, context)
        # A provider without `n` sends one request for one generation, whatever
        # `num_generations` says (a failure is then one `None` generation).
        generations = (
            parameters.get("num_generations", 1) if self._num_generations_param_supported else 1
        )
        outputs = await self._awaited(self._start([request]), generations, grouped=False)
        return outputs[0]

    async def _awaited(
        self, handle: Any, num_generations: int, grouped: bool
    ) -> List["GenerateOutput"]:
        reporter = self._reporter(handle.progress)
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
        return self._outputs(handle, num_generations, grouped)

    def _start(self, requests: List[Request]) -> Any:
        return self._native_client().start(
            requests,
            max_concurrency=self.max_concurrency,
            fail_fast=self.error_policy == "raise",
        )

    def _reporter(self, snapshot: Snapshot) -> Optional[ProgressReporter]:
        return ProgressReporter.create(snapshot, self._progress_callback, bool(self.progress_bar))

    def _outputs(self, handle: Any, num_generations: int, grouped: bool) -> List["GenerateOutput"]:
        """Per request: the output, or (isolate) a failed output; (raise) the first failure.
        `grouped`: for a provider without `n`, the requests were one per input and
        generation, and their outputs are grouped per input."""
        outputs = handle.results()
        for _, finish_reason in handle.empty_choices():
            self._logger.warning(
                self._no_response_message.format(model=self.model_name, finish_reason=finish_reason)
            )
        failures = {i: out for i, out in enumerate(outputs) if isinstance(out, BaseException)}
        if failures and self.error_policy == "raise":
            # The failure that stopped the others, not the requests cancelled because of it.
            raise next(
                (e for e in failures.values() if not isinstance(e, _core.RequestCancelledError)),
                next(iter(failures.values())),
            )
        if grouped and not self._num_generations_param_supported:
            if not failures and num_generations == 1 and _grouping_is_identity(outputs):
                return outputs
            # Failed generations stay aligned with the others of their input.
            messages = {index: describe_error(error) for index, error in failures.items()}
            return merge_with_failures(outputs, messages, num_generations)
        for index, error in failures.items():
            outputs[index] = failed_output(num_generations, describe_error(error))
        return outputs

    # ---- offline batch generation --------------------------------------------------------

    def _offline_batch(
        self,
        inputs: Optional[List["FormattedInput"]],
        num_generations: int,
        request: Callable[["FormattedInput"], Request],
    ) -> List["GenerateOutput"]:
        """distilabel's offline batch contract over the provider's Batch API: the first call
        submits the requests (built by `request`), stores `jobs_ids` and raises the
        not-finished exception; later calls raise it again while a job runs, submit again
        the rows an expired or cancelled job left undone, and finally return one output per
        input, in order (a failed row: `None` generations and the provider's message under
        `error`). The job ids alone are enough, in any process.

        A provider without `n` gets one row per input and generation (custom ids
        `"<input>-<generation>"`: Anthropic allows only letters, digits, `_` and `-`),
        grouped back per input as the online path does."""
        self._load_if_copied()
        if self.jobs_ids:
            return self._collect_batch_results(inputs, num_generations, request)
        if inputs is None:
            raise ValueError("No `inputs` were provided and no `jobs_ids` were found.")
        requests = self._batch_requests(inputs, num_generations, request)
        # Durable: a re-run after a kill (before distilabel cached `jobs_ids`) gets the same
        # jobs back instead of paying for the requests twice.
        self.jobs_ids = tuple(self._submit_batch(requests, known_jobs=()))
        _kill_point("after-submit")
        raise DistilabelOfflineBatchGenerationNotFinishedException(jobs_ids=self.jobs_ids or ())

    def _batch_requests(
        self,
        inputs: List["FormattedInput"],
        num_generations: int,
        request: Callable[["FormattedInput"], Request],
        only: Optional[Set[str]] = None,
    ) -> List[Tuple[str, str, Dict[str, Any]]]:
        """`(custom_id, endpoint, body)` per input (custom id `"<input>"`), or per input
        and generation (`"<input>-<generation>"`) when the provider has no `n` and more than
        one generation is asked for; with `only`, just those custom ids (rows to submit
        again)."""
        per_generation = not self._num_generations_param_supported and num_generations > 1
        rows: List[Tuple[str, FormattedInput]] = []
        for index, input in enumerate(inputs):
            if not per_generation:
                rows.append((str(index), input))
                continue
            rows.extend((f"{index}-{generation}", input) for generation in range(num_generations))
        return [
            (custom_id, *request(input))
            for custom_id, input in rows
            if only is None or custom_id in only
        ]

    def _batch_jobs(self) -> Any:
        return _core.BatchJobs(self._native_client())

    def _submit_batch(self, requests: List[Any], known_jobs: Sequence[str]) -> List[str]:
        """Submits durably: every intent is recorded in a journal of the shared directory
        (`$XDG_CACHE_HOME/distilabel-rs/batch-submissions`, else `~/.cache/...`) named after
        the requests, the API and the pipeline run, so that the same requests submitted again
        after a kill resume their submission. `known_jobs`: the jobs already collected."""
        name, metadata = _batch_name_and_metadata()
        return self._batch_jobs().submit(
            requests,
            name=name,
            metadata=metadata,
            scope=self._batch_scope(),
            known_jobs=list(known_jobs),
        )

    def _batch_scope(self) -> str:
        """What, besides the requests, names a submission's journal: the API (provider and
        base URL) and the pipeline run (distilabel's name and cache id, when set)."""
        return json.dumps(
            {
                "provider": self._provider,
                "base_url": str(self._client_settings().get("base_url")),
                "pipeline": os.getenv(PIPELINE_NAME_ENV_NAME),
                "cache_id": os.getenv(PIPELINE_CACHE_ID_ENV_NAME),
            },
            sort_keys=True,
        )

    def _collect_batch_results(
        self,
        inputs: Optional[List["FormattedInput"]],
        num_generations: int,
        request: Callable[["FormattedInput"], Request],
    ) -> List["GenerateOutput"]:
        state = self._batch_jobs().check(list(self.jobs_ids))  # type: ignore[arg-type]
        self._report_batch_progress(state["counts"], finished=not state["running"])
        if state["running"]:
            raise DistilabelOfflineBatchGenerationNotFinishedException(jobs_ids=self.jobs_ids or ())
        # An expired or cancelled job: its finished rows are kept, the others go again — as
        # the API (or a kept copy) gives them back, else rebuilt from the inputs.
        resubmit: List[Any] = list(state["unfinished"])
        lost = set(state["lost"])
        if lost and inputs is not None:
            rebuilt = self._batch_requests(inputs, num_generations, request, only=lost)
            resubmit.extend(rebuilt)
            lost.difference_update(custom_id for custom_id, _, _ in rebuilt)
        if resubmit:
            more = self._submit_batch(resubmit, known_jobs=self.jobs_ids or ())
            self.jobs_ids = (*self.jobs_ids, *more)  # type: ignore[misc]
            _kill_point("after-resubmit")
            raise DistilabelOfflineBatchGenerationNotFinishedException(jobs_ids=self.jobs_ids or ())
        # Every result is in: the journals of these jobs are no longer needed.
        _core.forget_batch_submissions(list(self.jobs_ids or ()))
        results = state["results"]
        results.update((custom_id, _LOST_RESULT) for custom_id in lost)
        # Input and generation of each custom id; the jobs say how many there were, so that
        # the job ids alone (another process, default arguments) group them right.
        indices = [tuple(map(int, custom_id.split("-"))) for custom_id in state["submitted"]]
        count = len(inputs) if inputs is not None else 1 + max((i[0] for i in indices), default=-1)
        per_generation = any(len(i) == 2 for i in indices)
        if not per_generation:
            return [_batch_output(results.get(str(i)), num_generations) for i in range(count)]
        # One row per input and generation: grouped per input, failures aligned.
        generations = 1 + max(i[1] for i in indices if len(i) == 2)
        rows: List[Any] = []
        failures: Dict[int, str] = {}
        for index in range(count):
            for generation in range(generations):
                result = results.get(f"{index}-{generation}", _MISSING_RESULT)
                if isinstance(result, str):
                    failures[len(rows)] = result
                rows.append(result)
        return merge_with_failures(rows, failures, generations)

    def _report_batch_progress(self, counts: Tuple[int, int, int], finished: bool) -> None:
        """The jobs' request counts to the progress callback and bar (as the fan-out's)."""
        total, completed, failed = counts
        self._batch_snapshot = (total, completed, failed, 0, max(total - completed - failed, 0))
        slot = self._native
        if slot.batch_reporter is None:
            slot.batch_reporter = self._reporter(lambda: self._batch_snapshot)
        reporter = slot.batch_reporter
        if reporter is None:
            return
        if finished:
            reporter.close()
            slot.batch_reporter = None
        else:
            reporter.report()

    def cancel_offline_batch_generation(self) -> None:
        """Asks the API to cancel this LLM's batch jobs (`jobs_ids`). Rows they finished are
        still collected by the next `offline_batch_generate`; the others go again."""
        if self.jobs_ids:
            self._batch_jobs().cancel(list(self.jobs_ids))


def _batch_output(result: Any, num_generations: int) -> "GenerateOutput":
    """A batch row's output, or the failed output of a row that failed or is missing."""
    if result is None:
        result = _MISSING_RESULT
    if isinstance(result, str):
        return failed_output(num_generations, result)
    return result


def _arguments_validator(cls: type, agenerate: Any) -> Callable[..., Dict[str, Any]]:
    """A function with `agenerate`'s signature, validated by pydantic's `validate_call`
    exactly as the decorated `agenerate` is, that returns its arguments."""
    raw = inspect.unwrap(agenerate)
    arguments = _returning_arguments(inspect.signature(raw))
    hints = typing.get_type_hints(raw, include_extras=True)
    hints.pop("return", None)
    arguments.__annotations__ = hints
    arguments.__qualname__ = f"{cls.__name__}.agenerate"
    arguments.__module__ = raw.__module__
    return validate_call(arguments)


def _returning_arguments(signature: inspect.Signature) -> Callable[..., Dict[str, Any]]:
    """A plain function with `signature`'s parameters (same kinds, same defaults) that
    returns its arguments but `self` as a dict. Generated source, because binding a
    signature at run time costs three times as much per call."""
    parameters: List[str] = []
    returned: List[str] = []
    namespace: Dict[str, Any] = {}
    keyword_only_started = False
    positional_only = False
    for index, parameter in enumerate(signature.parameters.values()):
        name = parameter.name
        default = ""
        if parameter.default is not parameter.empty:
            namespace[f"_default_{index}"] = parameter.default
            default = f"=_default_{index}"
        if parameter.kind is parameter.POSITIONAL_ONLY:
            positional_only = True
        elif positional_only:
            parameters.append("/")
            positional_only = False
        if parameter.kind is parameter.VAR_POSITIONAL:
            parameters.append(f"*{name}")
            keyword_only_started = True
        elif parameter.kind is parameter.VAR_KEYWORD:
            parameters.append(f"**{name}")
            returned.append(f"**{name}")
            continue
        elif parameter.kind is parameter.KEYWORD_ONLY and not keyword_only_started:
            parameters.append("*")
            keyword_only_started = True
        if parameter.kind is not parameter.VAR_POSITIONAL:
            parameters.append(f"{name}{default}")
        if name != "self":
            returned.append(f"{name!r}: {name}")
    if positional_only:
        parameters.append("/")
    source = f"def agenerate({', '.join(parameters)}):\n    return {{{', '.join(returned)}}}\n"
    exec(source, namespace)  # names come from a Python signature: identifiers only
    return namespace["agenerate"]


def _grouping_is_identity(outputs: List[Any]) -> bool:
    """Whether `merge_responses(outputs, 1)` would return `outputs` as they are: for the
    outputs the core builds (both token counts, `logprobs` aligned with the generations),
    when each has one generation and all have the same keys (distilabel's merge takes the
    extra keys of the first output). Grouping in Rust converts every output twice."""
    if not outputs:
        return True
    keys = outputs[0].keys()
    return all(len(output["generations"]) == 1 and output.keys() == keys for output in outputs)


def _extra_root_certificates() -> Optional[bytes]:
    # The certificates named by `SSL_CERT_FILE` are trusted too (as httpx and the SDKs
    # do): a self-hosted server with its own certificate authority needs nothing else.
    path = os.environ.get("SSL_CERT_FILE")
    if not path:
        return None
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as e:
        raise ValueError(f"`SSL_CERT_FILE` points to an unreadable file ({path}): {e}") from e


def _kill_point(point: str) -> None:
    """For tests of kills: `DISTILABEL_RS_KILL_AT=<point>` SIGKILLs the process here (as the
    native core does at its own points)."""
    if os.environ.get("DISTILABEL_RS_KILL_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _batch_name_and_metadata() -> Tuple[str, Dict[str, str]]:
    """File names and batch metadata naming the pipeline run, as distilabel's do."""
    name = os.getenv(PIPELINE_NAME_ENV_NAME)
    cache_id = os.getenv(PIPELINE_CACHE_ID_ENV_NAME)
    metadata = {"description": "distilabel"}
    if name is not None and cache_id is not None:
        metadata.update(distilabel_pipeline_name=name, distilabel_pipeline_cache_id=cache_id)
        return f"distilabel-pipeline-{name}-{cache_id}", metadata
    return "distilabel-pipeline", metadata
