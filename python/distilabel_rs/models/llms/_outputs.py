"""The outputs of requests that failed for good (`error_policy="isolate"`)."""

from typing import TYPE_CHECKING, Any, Dict, List, cast

from distilabel_rs._core import merge_responses

if TYPE_CHECKING:
    from distilabel_rs.typing import GenerateOutput

__all__ = ["ERROR_KEY", "describe_error", "failed_output", "merge_with_failures"]

# The key under which the isolate error policy keeps each failed generation's error message.
ERROR_KEY = "error"


def describe_error(error: BaseException) -> str:
    """The message kept under `error` for a request that failed for good."""
    return f"{type(error).__name__}: {error}"


def failed_output(num_generations: int, message: str) -> "GenerateOutput":
    """The output of an input whose request failed: `None` generations and the message."""
    output = {
        "generations": [None] * num_generations,
        "statistics": {},
        ERROR_KEY: [message] * num_generations,
    }
    return cast("GenerateOutput", output)


def merge_with_failures(
    results: List[Any], errors: Dict[int, str], n: int
) -> List["GenerateOutput"]:
    """Groups `n` single-generation results per input when some generations failed for
    good (`errors`: the message of each, by result index): a failed generation is `None`,
    with `None` for its statistics and extra keys (so they stay aligned with the
    generations), and its group gets an `error` list with the message of each failure."""
    if not errors:
        return cast("List[GenerateOutput]", merge_responses(results, n))
    template = next((r for i, r in enumerate(results) if i not in errors), None)
    placeholder: Dict[str, Any] = {"generations": [None], "statistics": {}}
    if template is not None:
        placeholder["statistics"] = {key: [None] for key in template["statistics"]}
        for key in template:
            if key not in ("generations", "statistics"):
                placeholder[key] = [None]
    for job in errors:
        results[job] = placeholder
    merged = merge_responses(results, n)
    for job, message in errors.items():
        group = merged[job // n]
        if ERROR_KEY not in group:
            group[ERROR_KEY] = [None] * len(group["generations"])
        group[ERROR_KEY][job % n] = message
    return cast("List[GenerateOutput]", merged)
