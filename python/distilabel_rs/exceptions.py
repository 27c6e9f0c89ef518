"""Exceptions that the pipeline handles gracefully (not user mistakes)."""

from typing import Any, Tuple

from distilabel_rs._interop import counterpart

__all__ = [
    "DistilabelException",
    "DistilabelGenerationException",
    "DistilabelOfflineBatchGenerationNotFinishedException",
]


class DistilabelException(*(counterpart("exceptions", "DistilabelException") or (Exception,))):  # type: ignore[misc]
    """Base of the exceptions a pipeline handles instead of failing."""


class DistilabelGenerationException(
    DistilabelException,
    *counterpart("exceptions", "DistilabelGenerationException"),  # type: ignore[misc]
):
    """Base of the exceptions raised while an `LLM` generates."""


class DistilabelOfflineBatchGenerationNotFinishedException(
    DistilabelGenerationException,
    *counterpart("exceptions", "DistilabelOfflineBatchGenerationNotFinishedException"),  # type: ignore[misc]
):
    """Offline batch jobs are still running: come back later with `jobs_ids`."""

    jobs_ids: Tuple[str, ...]

    def __init__(self, jobs_ids: Tuple[str, ...]) -> None:
        # Not `super().__init__`: with distilabel installed, the next `__init__` in the MRO
        # is distilabel's exception's, which expects the job ids, not the message.
        Exception.__init__(self, f"Batch generation with jobs_ids={jobs_ids} is not finished")
        self.jobs_ids = jobs_ids

    def __reduce__(self) -> Tuple[Any, ...]:
        # Rebuild from the job ids, not from `args` (the message): this exception crosses
        # process boundaries in pipelines and must keep its message intact (COMPATIBILITY.md).
        return (type(self), (self.jobs_ids,), self.__dict__)
