"""Runtime parameters: fields a pipeline may set when it runs, listed with their descriptions.

The marker string is distilabel's own, so a field declared with either package's
`RuntimeParameter` is recognised by both.
"""

import difflib
import inspect
from functools import cached_property
from typing import TYPE_CHECKING, Any, Dict, List, Tuple, TypeVar, Union

from pydantic import BaseModel, Field, PrivateAttr
from typing_extensions import Annotated, get_args, get_origin

from distilabel_rs.utils.docstring import parse_google_docstring
from distilabel_rs.utils.typing_ import (
    extract_annotation_inner_type,
    is_type_pydantic_secret_field,
)

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

    from distilabel_rs.utils.docstring import Docstring

__all__ = [
    "RuntimeParameter",
    "RuntimeParameterInfo",
    "RuntimeParametersMixin",
    "RuntimeParametersModelMixin",
    "RuntimeParametersNames",
]

_T = TypeVar("_T")
_RUNTIME_PARAMETER_ANNOTATION = "distilabel_step_runtime_parameter"
RuntimeParameter = Annotated[Union[_T, None], Field(default=None), _RUNTIME_PARAMETER_ANNOTATION]
"""Marks a field as a runtime parameter (it defaults to `None`)."""

RuntimeParametersNames = Dict[str, Union[bool, "RuntimeParametersNames"]]
"""Runtime parameter names mapped to whether they are optional (nested for sub-models)."""

RuntimeParameterInfo = Dict[str, Any]
"""Name, optionality and description of one runtime parameter."""

# `generate`/`agenerate` parameters that are the call itself, not generation kwargs.
_NOT_GENERATION_KWARGS = ("input", "inputs", "num_generations")


def _is_mixin_list(value: Any) -> bool:
    # Indexes `[0]` unguarded on purpose: distilabel raises IndexError for an empty list
    # runtime parameter here, and callers rely on the same failure.
    return isinstance(value, list) and isinstance(value[0], RuntimeParametersMixin)


class RuntimeParametersMixin(BaseModel):
    """A pydantic model whose `RuntimeParameter` fields a pipeline can list and set.

    Attributes:
        _runtime_parameters: the values set through `set_runtime_parameters`.
    """

    _runtime_parameters: Dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def runtime_parameters_names(self) -> "RuntimeParametersNames":
        """The runtime parameters of this model and its sub-models.

        Returns:
            Each name mapped to whether it is optional; a sub-model (or a list of them) maps
            to its own names (keyed `"0"`, `"1"`... for a list).
        """
        names: RuntimeParametersNames = {}
        for name, field_info in type(self).model_fields.items():
            is_runtime_parameter, is_optional = _is_runtime_parameter(field_info)
            if is_runtime_parameter:
                names[name] = is_optional
                continue
            value = getattr(self, name)
            if isinstance(value, RuntimeParametersMixin):
                names[name] = value.runtime_parameters_names
            if isinstance(value, list) and value and isinstance(value[0], RuntimeParametersMixin):
                names[name] = {
                    str(i): item.runtime_parameters_names for i, item in enumerate(value)
                }
        return names

    def get_runtime_parameters_info(self) -> List["RuntimeParameterInfo"]:
        """Name, optionality and description of every runtime parameter, in field order.

        Returns:
            One dict per runtime parameter; sub-models nest theirs under
            `runtime_parameters_info`.
        """
        names = self.runtime_parameters_names
        infos: List[RuntimeParameterInfo] = []
        for name, field_info in type(self).model_fields.items():
            if name not in names:
                continue
            value = getattr(self, name)
            if isinstance(value, RuntimeParametersMixin):
                infos.append(
                    {"name": name, "runtime_parameters_info": value.get_runtime_parameters_info()}
                )
                continue
            if _is_mixin_list(value):
                nested = {
                    str(i): item.get_runtime_parameters_info() for i, item in enumerate(value)
                }
                infos.append({"name": name, "runtime_parameters_info": nested})
                continue
            info: RuntimeParameterInfo = {"name": name, "optional": names[name]}
            if field_info.description is not None:
                info["description"] = field_info.description
            infos.append(info)
        return infos

    def set_runtime_parameters(self, runtime_parameters: Dict[str, Any]) -> None:
        """Sets runtime parameters, recursing into sub-models.

        Unknown names are skipped (a step with a pipeline logs a warning with close
        matches). Values for secret fields are wrapped in their secret type; assignments
        are validated.

        Args:
            runtime_parameters: the values by name (nested dicts for sub-models).
        """
        names = self.runtime_parameters_names
        for name, value in runtime_parameters.items():
            if name not in names:
                self._warn_unknown_runtime_parameter(name, list(names))
                continue

            current = getattr(self, name)
            if isinstance(current, RuntimeParametersMixin):
                current.set_runtime_parameters(value)
            elif _is_mixin_list(current):
                for i, item in enumerate(current):
                    item.set_runtime_parameters(value.get(str(i), {}))
            else:
                inner_type = extract_annotation_inner_type(type(self).model_fields[name].annotation)
                if is_type_pydantic_secret_field(inner_type):
                    value = inner_type(value)
                setattr(self, name, value)
            self._runtime_parameters[name] = value

    def _warn_unknown_runtime_parameter(self, name: str, known: List[str]) -> None:
        pipeline = getattr(self, "pipeline", None)
        if not pipeline:
            return
        message = f"⚠️  Runtime parameter '{name}' unknown in step '{self.name}'."  # type: ignore[attr-defined]
        closest = difflib.get_close_matches(name, known, cutoff=0.5)
        if closest:
            message += f" Did you mean any of: {closest}"
        else:
            message += f" Available runtime parameters for the step: {known}."
        pipeline._logger.warning(message)


def _is_runtime_parameter(field: "FieldInfo") -> Tuple[bool, bool]:
    """Whether a field is a runtime parameter, and whether it is optional.

    `x: RuntimeParameter[T] = default` is optional only when the default is not `None`;
    `x: Optional[RuntimeParameter[T]]` is always optional.

    Args:
        field: the pydantic field.

    Returns:
        `(is_runtime_parameter, is_optional)`.
    """
    if _RUNTIME_PARAMETER_ANNOTATION in field.metadata:
        return True, field.default is not None

    type_args = get_args(field.annotation)
    for arg in type_args:
        if get_origin(arg) is Annotated and get_args(arg)[-1] == _RUNTIME_PARAMETER_ANNOTATION:
            return True, get_origin(field.annotation) is Union and type(None) in type_args
    return False, False


class RuntimeParametersModelMixin(RuntimeParametersMixin):
    """Runtime parameters of a model (an LLM): its fields plus the generation kwargs, which
    are the parameters of its `generate` method, described by that method's docstring."""

    @property
    def generate_parameters(self) -> List["inspect.Parameter"]:
        """The parameters of `generate`.

        Returns:
            The parameters of the bound method, in order.
        """
        return list(inspect.signature(self.generate).parameters.values())  # type: ignore[attr-defined]

    @property
    def runtime_parameters_names(self) -> "RuntimeParametersNames":
        """The model's runtime parameters, with `generation_kwargs` mapping each parameter
        of `generate` (but the inputs and `num_generations`) to whether it has a default.

        Returns:
            Each name mapped to whether it is optional.
        """
        names = super().runtime_parameters_names
        generation_kwargs: Dict[str, bool] = {}
        # Assigning keeps the field's position when `generation_kwargs` is a field.
        names["generation_kwargs"] = generation_kwargs  # type: ignore[assignment]
        for parameter in self.generate_parameters:
            if parameter.name in _NOT_GENERATION_KWARGS:
                continue
            generation_kwargs[parameter.name] = parameter.default != inspect.Parameter.empty
        return names

    def get_runtime_parameters_info(self) -> List["RuntimeParameterInfo"]:
        """Like the mixin's, with `generation_kwargs` listing its `keys` (name, optional
        and, when the docstring has one, description) instead of an `optional` flag.

        Returns:
            One dict per runtime parameter.
        """
        infos = super().get_runtime_parameters_info()
        generation_kwargs_info = next(
            (info for info in infos if info["name"] == "generation_kwargs"), None
        )
        if generation_kwargs_info:
            descriptions = self.generate_parsed_docstring["args"]
            keys = []
            for key, optional in generation_kwargs_info.pop("optional").items():
                key_info = {"name": key, "optional": optional}
                if description := descriptions.get(key):
                    key_info["description"] = description
                keys.append(key_info)
            generation_kwargs_info["keys"] = keys
        return infos

    @cached_property
    def generate_parsed_docstring(self) -> "Docstring":
        """The parsed docstring of `generate` (computed once per object).

        Returns:
            The parsed docstring.
        """
        return parse_google_docstring(self.generate)  # type: ignore[attr-defined]
