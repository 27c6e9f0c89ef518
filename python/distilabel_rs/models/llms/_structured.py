"""Structured output helpers behind `AsyncLLM._prepare_structured_output`/`_prepare_kwargs`.

These keep distilabel's `instructor`-based contract for Python-implemented LLMs: wrap the
client with `instructor` (an optional dependency) and turn JSON schemas into pydantic models.
"""

import importlib.util
from typing import Any, Dict, List, Optional, Tuple, Type, Union

from pydantic import BaseModel, Field, create_model

from distilabel_rs.errors import DistilabelUserError

_INSTRUCTOR_PAGE = "sections/how_to_guides/advanced/structured_generation/#instructor"
_FRAMEWORKS = ("openai", "azure_openai", "anthropic", "cohere", "groq", "litellm", "mistral")


def _instructor_builder(framework: Optional[str]) -> Tuple[Any, Any]:
    import instructor

    mode = instructor.Mode
    builders = {
        "openai": (instructor.from_openai, mode.TOOLS),
        "azure_openai": (instructor.from_openai, mode.TOOLS),
        "anthropic": (instructor.from_anthropic, mode.ANTHROPIC_JSON),
        "litellm": (instructor.from_litellm, mode.TOOLS),
        "mistral": (instructor.from_mistral, mode.MISTRAL_TOOLS),
        "cohere": (instructor.from_cohere, mode.COHERE_TOOLS),
        "groq": (instructor.from_groq, mode.TOOLS),
    }
    if framework not in builders:
        raise ValueError(f"Invalid framework '{framework}'. Must be one of {_FRAMEWORKS}")
    return builders[framework]


def prepare_instructor(client: Any, mode: Any = None, framework: Optional[str] = None) -> Any:
    """Wraps `client` with `instructor` for `framework`.

    Raises:
        ImportError: if `instructor` is not installed.
        DistilabelUserError: if `mode` is not an `instructor.Mode`.

    Returns:
        The wrapped client.
    """
    if not importlib.util.find_spec("instructor"):
        raise ImportError(
            "`instructor` is not installed. Please install it using"
            " `pip install 'distilabel[instructor]'`."
        )
    import instructor

    builder, default_mode = _instructor_builder(framework)
    mode = mode or default_mode
    known = [m.value for m in instructor.mode.Mode]
    if mode.value not in known:
        raise DistilabelUserError(
            f"Invalid mode '{mode}'. Must be one of {known}", page=_INSTRUCTOR_PAGE
        )
    return builder(client, mode=mode)


def _resolve_refs(element: Any, defs: Optional[Dict[str, Any]]) -> Any:
    if isinstance(element, dict):
        if "$ref" in element and len(element) == 1:
            return _resolve_refs((defs or {}).get(element["$ref"].split("/")[-1], {}), defs)
        return {key: _resolve_refs(value, defs) for key, value in element.items()}
    if isinstance(element, list):
        return [_resolve_refs(item, defs) for item in element]
    return element


def _python_type(schema: Dict[str, Any]) -> Any:
    if "anyOf" in schema:
        return Union[tuple(_python_type(option) for option in schema["anyOf"])]
    kind = schema.get("type")
    scalars = {"string": str, "integer": int, "number": float, "boolean": bool}
    if kind in scalars:
        return scalars[kind]
    if kind == "array":
        items = schema.get("items")
        return List[_python_type(items)] if items else List  # type: ignore[misc]
    if kind == "object":
        return json_schema_to_model(schema) if schema.get("properties") else Dict
    if kind == "null":
        return Optional[Any]
    raise ValueError(f"Unsupported JSON schema type: {kind}")


def json_schema_to_model(json_schema: Dict[str, Any]) -> Type[BaseModel]:
    """A pydantic model class for a JSON schema with a `title` (nested `$defs` resolved).

    Args:
        json_schema: the schema.

    Returns:
        The model class, named after the schema's title.
    """
    defs = json_schema.get("$defs")
    required = json_schema.get("required", [])
    fields = {}
    for name, prop in json_schema.get("properties", {}).items():
        prop = _resolve_refs(prop, defs)
        fields[name] = (
            _python_type(prop),
            Field(
                description=prop.get("description"),
                examples=prop.get("examples"),
                default=... if name in required else None,
            ),
        )
    return create_model(json_schema["title"], **fields)  # type: ignore[call-overload]
