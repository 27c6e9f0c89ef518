"""Helpers to look inside type annotations."""

import inspect
from typing import Any, Union

from pydantic.types import _SecretField
from typing_extensions import Annotated, get_args, get_origin

__all__ = [
    "extract_annotation_inner_type",
    "is_parameter_annotated_with",
    "is_type_pydantic_secret_field",
]


def is_parameter_annotated_with(parameter: inspect.Parameter, annotation: Any) -> bool:
    """Whether `parameter` is annotated `Annotated[..., annotation, ...]`.

    Args:
        parameter: the parameter to check.
        annotation: the metadata to look for.

    Returns:
        `True` if `annotation` is among the `Annotated` metadata of the parameter.
    """
    if get_origin(parameter.annotation) is not Annotated:
        return False
    return any(metadata == annotation for metadata in get_args(parameter.annotation))


def extract_annotation_inner_type(type_hint: Any) -> Any:
    """Unwraps `Annotated[...]` and `Optional[...]` until the inner type.

    Args:
        type_hint: the annotation, e.g. `Optional[RuntimeParameter[SecretStr]]`.

    Returns:
        The inner type, e.g. `SecretStr`.
    """
    while True:
        origin = get_origin(type_hint)
        args = get_args(type_hint)
        if origin is Annotated or (origin is Union and type(None) in args):
            type_hint = args[0]
            continue
        return type_hint


def is_type_pydantic_secret_field(type_: type) -> bool:
    """Whether `type_` is a pydantic secret type (`SecretStr`, `SecretBytes`...).

    Returns:
        `True` for a subclass of pydantic's `_SecretField`.
    """
    return inspect.isclass(type_) and issubclass(type_, _SecretField)
