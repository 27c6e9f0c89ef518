"""User-facing errors that point to a page of distilabel's documentation."""

from typing import Optional

from distilabel_rs._interop import counterpart
from distilabel_rs.constants import DISTILABEL_DOCS_URL

__all__ = [
    "DistilabelError",
    "DistilabelNotImplementedError",
    "DistilabelTypeError",
    "DistilabelUserError",
]


class DistilabelError(*counterpart("errors", "DistilabelError")):  # type: ignore[misc]
    """Mixin of every distilabel error: a message and, optionally, a documentation page.

    Attributes:
        message: what went wrong.
        page: a page of distilabel's documentation, relative to its root.
    """

    def __init__(self, message: str, *, page: Optional[str] = None) -> None:
        # `args` is still `(message,)`: BaseException.__new__ records the arguments.
        self.message = message
        self.page = page

    def __str__(self) -> str:
        if self.page is None:
            return self.message
        return f"{self.message}\n\nFor further information visit '{DISTILABEL_DOCS_URL}{self.page}'"


class DistilabelUserError(
    DistilabelError,
    *counterpart("errors", "DistilabelUserError"),  # type: ignore[misc]
    ValueError,
):
    """A user mistake (a `ValueError`), with a documentation page."""


class DistilabelTypeError(
    DistilabelError,
    *counterpart("errors", "DistilabelTypeError"),  # type: ignore[misc]
    TypeError,
):
    """A wrong type (a `TypeError`), with a documentation page."""


class DistilabelNotImplementedError(
    DistilabelError,
    *counterpart("errors", "DistilabelNotImplementedError"),  # type: ignore[misc]
    NotImplementedError,
):
    """A missing feature (a `NotImplementedError`), with a documentation page."""
