"""`dump`/`save`/`from_*` of distilabel objects, with `type_info` to rebuild the right class.

Formats are distilabel 1.5.3's: compact JSON via orjson, block-style YAML keeping key order
(tuples as `!!python/tuple`), and a trailing `type_info` key naming the class.
"""

import builtins
import importlib
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple, Type, TypeVar, Union, get_args

import orjson
import yaml
from pydantic import BaseModel
from typing_extensions import Self

from distilabel_rs.mixins.runtime_parameters import RuntimeParametersMixin

if sys.version_info < (3, 11):
    from enum import EnumMeta as EnumType
else:
    from enum import EnumType

__all__ = [
    "DISTILABEL_FILENAME",
    "TYPE_INFO_KEY",
    "SaveFormats",
    "StrOrPath",
    "_Serializable",
    "_check_is_dir",
    "_extra_serializable_fields",
    "_get_module_attr",
    "load_with_type_info",
    "read_json",
    "read_yaml",
    "write_json",
    "write_yaml",
]

T = TypeVar("T")

DISTILABEL_FILENAME = "distilabel-file.json"
TYPE_INFO_KEY = "type_info"

StrOrPath = Union[str, os.PathLike]
SaveFormats = Literal["json", "yaml"]

# Classes that moved in older distilabel releases, so their old dumps still load.
_OLD_IMPORT_MODULE_ATTR: Dict[Tuple[str, str], Tuple[str, str]] = {
    ("distilabel.pipeline.base", "_Batch"): ("distilabel.pipeline.batch", "_Batch"),
    ("distilabel.pipeline.base", "_BatchManager"): (
        "distilabel.pipeline.batch_manager",
        "_BatchManager",
    ),
    ("distilabel.pipeline.base", "_BatchManagerStep"): (
        "distilabel.pipeline.batch_manager",
        "_BatchManagerStep",
    ),
}


def _get_module_attr(module: str, name: str) -> Type:
    """The class `name` of `module`, following classes that moved.

    Returns:
        The class.
    """
    module, name = _OLD_IMPORT_MODULE_ATTR.get((module, name), (module, name))
    return getattr(importlib.import_module(module), name)


def _enum_from_dump(dumped: Dict[str, Any]) -> Type[Enum]:
    # The value type is a builtin's name ("str", "int"...); looked up, never evaluated.
    value_type = getattr(builtins, dumped["_enum_type"])
    return Enum(dumped["_name"], dumped["_values"], type=value_type)  # type: ignore[return-value]


def load_with_type_info(class_: Any) -> Any:
    """Rebuilds the objects described by a dump, innermost first.

    Dicts carrying `type_info` become instances of the class it names (keys that are not
    fields of a pydantic class are dropped); enum dumps become Enum classes. Like
    distilabel, the dicts given are modified in place.

    Args:
        class_: the dump (a dict or list, or any other value, returned as is).

    Returns:
        The rebuilt object.
    """
    if isinstance(class_, list):
        return [load_with_type_info(item) for item in class_]
    if not isinstance(class_, dict):
        return class_

    for key, value in class_.items():
        if isinstance(value, (dict, list)):
            class_[key] = load_with_type_info(value)
        if isinstance(value, dict) and value.get("_type") == "enum":
            class_[key] = _enum_from_dump(value)

    if TYPE_INFO_KEY not in class_:
        return class_

    type_info = class_.pop(TYPE_INFO_KEY)
    cls = _get_module_attr(type_info["module"], type_info["name"])
    if issubclass(cls, BaseModel):
        for key in [key for key in class_ if key not in cls.model_fields]:
            del class_[key]
    return cls(**class_)


def write_json(filename: Path, data: Any) -> None:
    """Writes `data` as compact JSON, creating the parent directories.

    Args:
        filename: where to write.
        data: what to write.
    """
    filename.parent.mkdir(parents=True, exist_ok=True)
    filename.write_bytes(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY))


def read_json(filename: StrOrPath) -> Any:
    """Reads a JSON file.

    Args:
        filename: the file.

    Returns:
        Its content.
    """
    return orjson.loads(Path(filename).read_bytes())


def write_yaml(filename: Path, data: Dict[str, Any]) -> None:
    """Writes `data` as block-style YAML keeping key order, creating the parent directories.

    Args:
        filename: where to write.
        data: what to write.
    """
    filename.parent.mkdir(parents=True, exist_ok=True)
    with open(filename, "w") as file:
        yaml.dump(data, file, default_flow_style=False, sort_keys=False)


def read_yaml(filename: StrOrPath) -> Dict[str, Any]:
    """Reads a YAML file (python tuples allowed).

    Args:
        filename: the file.

    Returns:
        Its content.
    """
    with open(filename) as file:
        return yaml.load(file, Loader=yaml.FullLoader)


def _check_is_dir(path: StrOrPath) -> None:
    if Path(path).is_dir():
        raise ValueError(f"You must provide a file path, not a directory: {path}")


def _is_pipeline(value: Any) -> bool:
    # A pipeline is owned by its steps' parent, never dumped inside them. distilabel_rs has
    # no pipeline of its own; distilabel's is recognised when distilabel is loaded.
    pipeline_module = sys.modules.get("distilabel.pipeline.base")
    base = getattr(pipeline_module, "BasePipeline", None)
    return base is not None and isinstance(value, base)


def _extra_serializable_fields(obj: BaseModel) -> List[Dict[str, Dict[str, Any]]]:
    """Dumps of the fields of `obj` that are themselves serializable (an LLM in a task).

    Args:
        obj: the object whose fields are inspected.

    Returns:
        One `{field: dump}` dict per such field; a list of them dumps as `{"0": ..., ...}`.
    """
    updates = []
    for name in type(obj).model_fields:
        value = getattr(obj, name)
        if _is_pipeline(value):
            continue
        if isinstance(value, _Serializable):
            updates.append({name: value.dump()})
        elif isinstance(value, list) and value and isinstance(value[0], _Serializable):
            updates.append({name: {str(i): item.dump() for i, item in enumerate(value)}})
    return updates


class _Serializable:
    """Mixin giving a pydantic class `dump`, `save` and the `from_*` constructors."""

    _type_info: Dict[str, Any] = {}

    def _model_dump(self, obj: Any, **kwargs: Any) -> Dict[str, Any]:
        """Dumps a pydantic object in Python mode, without any `api_key`.

        Args:
            obj: the object to dump.
            **kwargs: passed to `model_dump` (except `exclude`, which is taken).

        Returns:
            The dump, with enums, lists of runtime-parameter models and nested
            serializable objects in distilabel's formats.
        """
        # Secrets never leave the object: `api_key` is always excluded.
        dump = obj.model_dump(exclude="api_key", **kwargs)

        for key, value in dump.items():
            if isinstance(value, EnumType):
                members = list(value)  # type: ignore[var-annotated]
                dump[key] = {
                    "_type": "enum",
                    "_enum_type": type(members[0].value).__name__,
                    "_name": getattr(obj, key).__name__,
                    "_values": {member.name: member.value for member in members},
                }
            elif isinstance(value, list) and value:
                original = getattr(obj, key)
                if isinstance(original, list) and isinstance(original[0], RuntimeParametersMixin):
                    dump[key] = {str(i): item for i, item in enumerate(value)}

        for update in _extra_serializable_fields(obj):
            dump.update(update)
        return dump

    def dump(self, **kwargs: Any) -> Dict[str, Any]:
        """The object as a dict, fields in order, with a last `type_info` key.

        Args:
            kwargs: passed to pydantic's `model_dump`.

        Returns:
            The dump; private attributes and `api_key` are never in it.
        """
        dumped = {
            key: value
            for key, value in self._model_dump(self, **kwargs).items()
            if not key.startswith("_")
        }
        dumped[TYPE_INFO_KEY] = {"module": type(self).__module__, "name": type(self).__name__}
        return dumped

    def save(
        self,
        path: Union[StrOrPath, None] = None,
        format: SaveFormats = "json",
        dump: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        """Writes the dump of the object to a file.

        Args:
            path: the file; a path without suffix is a folder that gets
                `distilabel-file.json`; `None` means that name in the working directory.
            format: `"json"` or `"yaml"`.
            dump: what to write instead of `self.dump(**kwargs)`.

        Raises:
            ValueError: for any other format.
        """
        path = Path.cwd() / DISTILABEL_FILENAME if path is None else Path(path)
        if path.suffix == "":
            path = path / DISTILABEL_FILENAME
        if dump is None:
            dump = self.dump(**kwargs)

        writers = {"json": write_json, "yaml": write_yaml}
        if format not in writers:
            raise ValueError(f"Invalid format: '{format}', must be one of {get_args(SaveFormats)}.")
        writers[format](path, dump)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Self:
        """Rebuilds an object from its dump; the class comes from `type_info`.

        Args:
            data: the dump (modified in place).

        Returns:
            The object.
        """
        return load_with_type_info(data)

    @classmethod
    def from_json(cls, path: StrOrPath) -> Self:
        """Rebuilds an object from a JSON dump file.

        Args:
            path: the file.

        Raises:
            ValueError: if the path is a directory.

        Returns:
            The object.
        """
        _check_is_dir(path)
        return cls.from_dict(read_json(path))

    @classmethod
    def from_yaml(cls, path: StrOrPath) -> Self:
        """Rebuilds an object from a YAML dump file.

        Args:
            path: the file.

        Raises:
            ValueError: if the path is a directory.

        Returns:
            The object.
        """
        _check_is_dir(path)
        return cls.from_dict(read_yaml(path))

    @classmethod
    def from_file(cls, path: StrOrPath) -> Self:
        """Rebuilds an object from a `.json`, `.yaml` or `.yml` dump file.

        Args:
            path: the file.

        Returns:
            The object.
        """
        suffix = Path(path).suffix
        if suffix == ".json":
            return cls.from_json(Path(path))
        if suffix in (".yaml", ".yml"):
            return cls.from_yaml(Path(path))
        raise ValueError(
            f"Invalid file format: '{suffix}', must be one of {get_args(SaveFormats)}."
        )
