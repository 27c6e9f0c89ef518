"""Exceptions that the pipeline handles gracefully (not user mistakes)."""

from typing import Any, Tuple

__all__ = [
    "DistilabelException",
    "DistilabelGenerationException",
    "DistilabelOfflineBatchGenerationNotFinishedException",
]


class DistilabelException(Exception):
    """Base of the exceptions a pipeline handles instead of failing."""


class DistilabelGenerationException(DistilabelException):
    """Base of the exceptions raised while an `LLM` generates."""


class DistilabelOfflineBatchGenerationNotFinishedException(DistilabelGenerationException):
    """Offline batch jobs are still running: come back later with `jobs_ids`."""

    jobs_ids: Tuple[str, ...]

    def __init__(self, jobs_ids: Tuple[str, ...]) -> None:
        self.jobs_ids = jobs_ids
        super().__init__(f"Batch generation with jobs_ids={jobs_ids} is not finished")

    def __reduce__(self) -> Tuple[Any, ...]:
        # Rebuild from the job ids, not from `args` (the message): this exception crosses
        # process boundaries in pipelines and must keep its message intact (COMPATIBILITY.md).
        return (type(self), (self.jobs_ids,), self.__dict__)
