"""Type stubs of the native module `distilabel_rs._core` (built from `rust/python`)."""

from typing import Any, Iterator, Mapping, Sequence

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "BatchHandle",
    "FanOutScheduler",
    "JsonlJob",
    "MalformedInputError",
    "Grouper",
    "MockServer",
    "OpenAIClient",
    "RateLimitError",
    "RequestCancelledError",
    "__version__",
    "merge_responses",
    "run_jsonl_job",
    "wait_between_polls",
]

__version__: str

def merge_responses(responses: Sequence[Mapping[str, Any]], n: int = 1) -> list[dict[str, Any]]:
    """Groups every `n` consecutive single-generation responses into one, in one pass."""

class Grouper(Iterator[tuple[Any, ...]]):
    """Lazy fixed-size chunks of an iterator, with `grouper`'s `incomplete` policies."""

    def __new__(
        cls, source: Iterator[Any], n: int, incomplete: str = "fill", fillvalue: Any = None
    ) -> Grouper: ...
    def __iter__(self) -> Grouper: ...
    def __next__(self) -> tuple[Any, ...]: ...

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
    ) -> FanOutScheduler: ...
    def next_job(self, now: float) -> int | float | None:
        """A job index to run, seconds to wait before asking again, or `None` when done."""
    def succeeded(self, job: int) -> None: ...
    def succeeded_then_next(self, job: int, now: float) -> int | float | None:
        """`succeeded(job)` then `next_job(now)`, in one call."""
    def failed(
        self, job: int, retryable: bool, retry_after: float | None, now: float
    ) -> float | None:
        """Seconds until the job is retried, or `None` if it has failed for good."""
    def abort(self) -> None: ...
    def progress(self) -> tuple[int, int, int, int, int]:
        """`(total, done, failed, retried, in_flight)`."""
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

class OpenAIClient:
    """An OpenAI-compatible client with its own connection pool."""

    def __new__(
        cls,
        base_url: str,
        *,
        api_key: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        timeout: float = 120.0,
        max_retries: int = 6,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        root_certificate_pem: bytes | None = None,
        pool_size: int = 64,
        seed: int | None = None,
    ) -> OpenAIClient: ...
    def batch_submit(
        self,
        rows: Sequence[Mapping[str, Any] | bytes],
        *,
        file_name_prefix: str,
        metadata: Mapping[str, str],
        max_rows_per_file: int = 50000,
        max_bytes_per_file: int = 209715200,
    ) -> list[str]:
        """Uploads the rows in files split at the API's limits; one batch per file."""
    def batch_check(self, batch_ids: Sequence[str]) -> dict[str, Any]:
        """`running`, `counts`, `results` by custom_id, `submitted`, `unfinished` lines."""
    def batch_cancel(self, batch_ids: Sequence[str]) -> None: ...
    def start(
        self,
        requests: Sequence[tuple[bool, Mapping[str, Any]]],
        *,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
    ) -> BatchHandle:
        """Starts sending `(is_chat, body)` requests; returns at once."""

class BatchHandle:
    """A batch being sent by `OpenAIClient.start`."""

    def wait(self, timeout: float | None = None) -> bool:
        """Waits (without the GIL) until done (`True`) or `timeout` seconds passed."""
    def cancel(self) -> None: ...
    def progress(self) -> tuple[int, int, int, int, int]:
        """`(total, done, failed, retried, in_flight)`."""
    def results(self) -> list[dict[str, Any] | APIError]:
        """A `GenerateOutput` dict, or the (unraised) exception, per request."""
    def empty_choices(self) -> list[tuple[int, str | None]]:
        """`(request index, finish reason)` of choices without content."""

class MockServer:
    """A local OpenAI-compatible server (see `rust/core/src/mock_server.rs`)."""

    def __new__(
        cls,
        *,
        record: bool = False,
        tls_certificate_pem: bytes | None = None,
        tls_key_pem: bytes | None = None,
    ) -> MockServer: ...
    @property
    def port(self) -> int: ...
    @property
    def base_url(self) -> str: ...
    @property
    def requests(self) -> int: ...
    @property
    def peak_in_flight(self) -> int: ...
    def recorded(self) -> list[tuple[str, str, str | None]]: ...
    def batch_ids(self) -> list[str]: ...
    def stop(self) -> None: ...

def wait_between_polls(seconds: float) -> bool:
    """Sleeps without the GIL; `KeyboardInterrupt` on Ctrl-C; `True` early if the
    `sigint_handler_called` environment variable gets set."""

class MalformedInputError(ValueError):
    """A line of the input file is not a valid request (the message names the line)."""

class JsonlJob:
    """A running `distilabel-rs generate` job."""

    def wait(self, timeout: float | None = None) -> bool: ...
    def cancel(self) -> None: ...
    def progress(self) -> tuple[int, int, int, int, int, int, int, int]:
        """`(total read, done, failed, retried, in_flight, skipped, malformed, tokens)`."""
    def summary(self) -> dict[str, Any]:
        """The summary of the finished job, or raises the error that stopped it."""

def run_jsonl_job(
    client: OpenAIClient,
    input: str,
    output: str,
    *,
    model: str,
    defaults: Mapping[str, Any],
    max_concurrency: int,
    skip_malformed: bool,
) -> JsonlJob:
    """Starts sending the JSONL requests of `input`, appending results to `output`."""
