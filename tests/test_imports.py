"""The import rewrite `distilabel.` -> `distilabel_rs.` is the whole port."""

import ast
import importlib
from pathlib import Path

import pytest

import distilabel_rs
from distilabel_rs import _core

MIRRORED = {
    "models.llms.base": ["LLM", "AsyncLLM", "merge_responses"],
    "models.llms": ["LLM", "AsyncLLM", "GenerateOutput", "HiddenState"],
    "models": ["LLM", "AsyncLLM"],
    "mixins.runtime_parameters": [
        "RuntimeParameter",
        "RuntimeParametersMixin",
        "RuntimeParametersModelMixin",
        "RuntimeParametersNames",
        "RuntimeParameterInfo",
    ],
    "utils.docstring": ["parse_google_docstring", "Docstring"],
    "utils.serialization": [
        "_Serializable",
        "DISTILABEL_FILENAME",
        "TYPE_INFO_KEY",
        "SaveFormats",
        "StrOrPath",
        "_OLD_IMPORT_MODULE_ATTR",
        "load_with_type_info",
        "write_json",
        "read_json",
        "write_yaml",
        "read_yaml",
        "_check_is_dir",
        "_get_module_attr",
        "_extra_serializable_fields",
    ],
    "utils.itertools": ["grouper", "batched"],
    "utils.typing_": ["extract_annotation_inner_type", "is_type_pydantic_secret_field"],
    "models.llms.utils": ["prepare_output", "compute_tokens"],
    "errors": [
        "DistilabelError",
        "DistilabelUserError",
        "DistilabelTypeError",
        "DistilabelNotImplementedError",
    ],
    "exceptions": [
        "DistilabelException",
        "DistilabelGenerationException",
        "DistilabelOfflineBatchGenerationNotFinishedException",
    ],
    "typing": [
        "FormattedInput",
        "StandardInput",
        "StructuredInput",
        "ChatType",
        "ChatItem",
        "GenerateOutput",
        "LLMStatistics",
        "LLMLogprobs",
        "LLMOutput",
        "Logprob",
        "TokenCount",
        "HiddenState",
        "StructuredOutputType",
        "InstructorStructuredOutputType",
        "OutlinesStructuredOutputType",
    ],
}


@pytest.mark.parametrize("module", sorted(MIRRORED))
def test_module_paths_mirror_distilabel(module: str) -> None:
    ours = importlib.import_module(f"distilabel_rs.{module}")
    theirs = importlib.import_module(f"distilabel.{module}")
    for name in MIRRORED[module]:
        assert hasattr(theirs, name), name  # the name really is distilabel's
        assert hasattr(ours, name), name


def test_constants_match_distilabel() -> None:
    from distilabel import constants as theirs

    from distilabel_rs import constants as ours

    assert ours.__all__ == theirs.__all__
    for name in [*theirs.__all__, "PIPELINE_NAME_ENV_NAME", "PIPELINE_CACHE_ID_ENV_NAME"]:
        assert getattr(ours, name) == getattr(theirs, name), name


def test_top_level_all_is_explicit_and_importable() -> None:
    assert len(distilabel_rs.__all__) == len(set(distilabel_rs.__all__))
    for name in distilabel_rs.__all__:
        assert hasattr(distilabel_rs, name), name


def test_native_stub_lists_exactly_the_native_names() -> None:
    stub = ast.parse(Path(distilabel_rs.__file__).with_name("_core.pyi").read_text())
    declared = {
        node.name if not isinstance(node, ast.AnnAssign) else node.target.id  # type: ignore[union-attr]
        for node in stub.body
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AnnAssign))
    }
    exported = {name for name in dir(_core) if not name.startswith("_") or name == "__version__"}
    assert declared == exported
    assert _core.Grouper.__module__ == "distilabel_rs._core"
    assert (Path(distilabel_rs.__file__).parent / "py.typed").exists()
