"""Type stubs of the native module `distilabel_rs._core` (built from `rust/python`)."""

from typing import Any, Iterator, Mapping, Sequence, final

__all__ = [
    "CLIENT_DEFAULTS",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "BatchJobs",
    "FanOutScheduler",
    "GenerateJob",
    "Grouper",
    "MalformedInputError",
    "MockServer",
    "NativeClient",
    "RateLimitError",
    "RequestCancelledError",
    "RequestsHandle",
    "__version__",
    "append_results",
    "batch_journal_state",
    "batch_rows_from_file",
    "forget_batch_submissions",
    "merge_responses",
    "start_generate_job",
    "wait_between_polls",
]

__version__: str
CLIENT_DEFAULTS: dict[str, float | int]
"""The one set of native client defaults: `timeout`, `max_retries`, `backoff_base`,
`backoff_cap`, `max_concurrency`."""

def merge_responses(responses: Sequence[Mapping[str, Any]], n: int = 1) -> list[dict[str, Any]]:
    """Groups every `n` consecutive single-generation responses into one, in one pass."""

@final
class Grouper(Iterator[tuple[Any, ...]]):
    """Lazy fixed-size chunks of an iterator, with `grouper`'s `incomplete` policies."""

    def __new__(
        cls, source: Iterator[Any], n: int, incomplete: str = "fill", fillvalue: Any = None
    ) -> Grouper: ...
    def __iter__(self) -> Grouper: ...
    def __next__(self) -> tuple[Any, ...]: ...

@final
class FanOutScheduler:
    """Decisions of one bounded fan-out: next job, retries with backoff, rate limit, counts.

    Times are seconds on the caller's monotonic clock.
    """

    def __new__(
        cls,
        jobs: int,
        *,
        max_retries: int = 0,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        requests_per_minute: float | None = None,
        seed: int | None = None,
        max_concurrency: int | str | None = None,
        previous: FanOutScheduler | None = None,
    ) -> FanOutScheduler:
        """`previous`: an earlier scheduler to the same provider whose adaptive limit
        (`max_concurrency="auto"`) this one continues from."""
    def next_job(self, now: float) -> int | float | None:
        """A job index to run, seconds to wait before asking again, or `None` when done."""
    def succeeded(self, job: int, now: float | None = None) -> None:
        """With `now`, the request's latency steers an adaptive limit."""
    def workers_wanted(self) -> int:
        """How many workers should be running (`auto`: follows the adaptive limit)."""
    @property
    def limit(self) -> int | None:
        """The concurrency limit in force (`None`: no limit)."""
    def succeeded_then_next(self, job: int, now: float) -> int | float | None:
        """`succeeded(job)` then `next_job(now)`, in one call."""
    def failed(
        self, job: int, retryable: bool, retry_after: float | None, now: float
    ) -> float | None:
        """Seconds until the job is retried, or `None` if it has failed for good."""
    def abort(self) -> None: ...
    def progress(self) -> tuple[int, int, int, int, int, int | None]:
        """`(total, done, failed, retried, in_flight, limit)`."""
    @property
    def peak_in_flight(self) -> int: ...

class APIError(Exception):
    """A request to the LLM provider's API failed."""

class APIConnectionError(APIError):
    """The API could not be reached, or the connection broke."""

class APITimeoutError(APIConnectionError):
    """No complete response within the request timeout."""

class APIStatusError(APIError):
    """The API answered with an error status."""

    status_code: int
    message: str
    retry_after: float | None

class RateLimitError(APIStatusError):
    """The API answered 429."""

class APIResponseValidationError(APIError):
    """The API answered with a body that is not a valid completion."""

class RequestCancelledError(APIError):
    """The request was cancelled with its batch."""

@final
class NativeClient:
    """A client of one provider (`"openai"` with a profile for every OpenAI-compatible
    API, `"ollama"`) with its own connection pool."""

    def __new__(
        cls,
        provider: str,
        base_url: str,
        *,
        profile: Mapping[str, Any] | None = None,
        api_key: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        # The defaults are `CLIENT_DEFAULTS`'.
        timeout: float = ...,
        max_retries: int = ...,
        backoff_base: float = ...,
        backoff_cap: float = ...,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        root_certificate_pem: bytes | None = None,
        pool_size: int = ...,
        seed: int | None = None,
        follow_redirects: bool = True,
        # The largest generation response body read (default 32 MiB).
        max_response_bytes: int | None = None,
    ) -> NativeClient: ...
    @property
    def provider(self) -> str: ...
    @property
    def supports_n(self) -> bool: ...
    def get(self, path: str) -> str:
        """GETs `path` (relative to the base URL) with retries; the body as text."""
    def start(
        self,
        requests: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        max_concurrency: int | str | None = None,
        fail_fast: bool = False,
    ) -> RequestsHandle:
        """Starts sending `(endpoint, body)` requests (`"chat"` or `"text"`); returns at
        once. `max_concurrency`: a positive number, `None` (no limit), `"auto"` or
        `"auto:N"` (adaptive, up to N)."""
    def start_templated(
        self,
        endpoint: str,
        template: Mapping[str, Any],
        key: str,
        inputs: list[Any],
        *,
        repeat: int = 1,
        seed_key: str | None = None,
        seeds: list[int] | None = None,
        max_concurrency: int | str | None = None,
        fail_fast: bool = False,
    ) -> RequestsHandle | None:
        """Like `start`, for bodies that are `template` with `key` set to each input
        (`repeat` requests per input; with `seed_key`, that member set to each of `seeds`,
        one per request): the template is written once. `None` (nothing started) when a
        value cannot be written directly or the client reserves tokens per request."""

@final
class RequestsHandle:
    """Online requests being sent by `NativeClient.start`."""

    def wait(self, timeout: float | None = None) -> bool:
        """Waits (without the GIL) until done (`True`) or `timeout` seconds passed."""
    def cancel(self) -> None: ...
    def progress(self) -> tuple[int, int, int, int, int, int | None]:
        """`(total, done, failed, retried, in_flight, limit)`."""
    def results(self) -> list[dict[str, Any] | APIError]:
        """A `GenerateOutput` dict, or the (unraised) exception, per request."""
    def empty_choices(self) -> list[tuple[int, str | None]]:
        """`(request index, finish reason)` of choices without content."""

def append_results(output: str, results: Mapping[str, str]) -> int:
    """Appends the result lines (`{custom_id: line}`) OUTPUT lacks, after removing a line cut
    by an earlier kill, then syncs it; returns how many. `OSError` naming the file."""

def batch_journal_state(path: str) -> tuple[list[str], bool]:
    """`(jobs_ids, first_submission_complete)` of a batch state file (`([], False)` if
    missing); `OSError` if unreadable or damaged."""

def forget_batch_submissions(job_ids: Sequence[str]) -> int:
    """Removes the shared submission journals whose jobs are all among `job_ids` (and the
    expired ones); returns how many."""

@final
class BatchJobs:
    """The Batch API of a client's provider (`ValueError` if it has none)."""

    def __new__(cls, client: NativeClient) -> BatchJobs: ...
    def submit(
        self,
        requests: Sequence[tuple[str, str, Mapping[str, Any]] | bytes],
        *,
        name: str,
        metadata: Mapping[str, str],
        journal: str | None = None,
        scope: str | None = None,
        known_jobs: Sequence[str] = ...,
    ) -> list[str]:
        """`(custom_id, endpoint, body)` requests (or rows as bytes) as jobs split at the
        API's limits; returns the job ids. Durable with `journal` (a state file) or `scope`
        (a journal in the shared directory): a re-run after a kill resumes the submission
        (`known_jobs`: the jobs the caller already collects). `OSError` if the journal
        cannot be used."""
    def check(self, job_ids: Sequence[str], *, raw: bool = False) -> dict[str, Any]:
        """`running`, `counts`, `results` by custom_id, `failed` and `submitted` custom ids,
        `unfinished` rows, `lost` custom ids (undone rows the API cannot give back)."""
    def cancel(self, job_ids: Sequence[str]) -> None: ...

@final
class MockServer:
    """The project's local server of the LLM APIs (crate `distilabel-rs-mock`)."""

    def __new__(
        cls,
        *,
        record: bool = False,
        tls_certificate_pem: bytes | None = None,
        tls_key_pem: bytes | None = None,
        capacity: int | None = None,
        base_latency_ms: float = 0.0,
    ) -> MockServer: ...
    @property
    def port(self) -> int: ...
    @property
    def origin(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def requests(self) -> int: ...
    @property
    def peak_in_flight(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    def recorded(self) -> list[tuple[str, str, str | None]]: ...
    def recorded_requests(self) -> list[dict[str, Any]]: ...
    def batch_ids(self) -> list[str]: ...
    def stop(self) -> None: ...

def wait_between_polls(seconds: float) -> bool:
    """Sleeps without the GIL; `KeyboardInterrupt` on Ctrl-C; `True` early if the
    `sigint_handler_called` environment variable gets set."""

class MalformedInputError(ValueError):
    """A line of the input file is not a valid request (the message names the line)."""

@final
class GenerateJob:
    """A running `distilabel-rs generate` job."""

    def wait(self, timeout: float | None = None) -> bool: ...
    def cancel(self) -> None:
        """Stops the job; the results that had come back are written and synced first."""
    def progress(self) -> tuple[int, int, int, int, int, int, int, int, int | None]:
        """`(total read, done, failed, retried, in_flight, skipped, malformed, tokens,
        limit)`; `limit`: the concurrency limit in force (it moves with `"auto"`), `None`
        until the job started."""
    def summary(self) -> dict[str, Any]:
        """The summary of the finished job (with `final_limit` and `peak_limit`, the
        concurrency limit at the end and the highest it reached), or raises the error that
        stopped it."""

def start_generate_job(
    client: NativeClient,
    input: str,
    output: str,
    *,
    defaults: Mapping[str, Any],
    max_concurrency: int | str,
    skip_malformed: bool,
) -> GenerateJob:
    """Starts sending the JSONL requests of `input`, appending results to `output`;
    `defaults`: `model` and optional `n`, `max_tokens`, `temperature`, `top_p`;
    `max_concurrency`: a positive number, `"auto"` or `"auto:N"` (adaptive, up to N)."""

def batch_rows_from_file(
    client: NativeClient,
    jobs: BatchJobs,
    input: str,
    *,
    defaults: Mapping[str, Any],
    skip_malformed: bool,
) -> tuple[list[bytes], list[tuple[int, str]]]:
    """`input` read by the online path's parser into batch rows, and the malformed lines
    skipped."""
