"""`parse_google_docstring`: unit cases and every docstring distilabel 1.5.3 itself ships."""

import importlib
import inspect
import pkgutil
import warnings
from typing import Callable, Iterator, List

import distilabel
import pytest
from distilabel.utils.docstring import parse_google_docstring as dl_parse

from distilabel_rs.utils.docstring import parse_google_docstring, remove_leading_whitespaces


def _doc(text: str) -> Callable:
    def f() -> None: ...

    f.__doc__ = text
    return f


def test_empty_and_missing_docstrings_give_the_defaults() -> None:
    assert parse_google_docstring(_doc("")) == dl_parse(_doc(""))
    assert parse_google_docstring(_doc(None)) == parse_google_docstring(_doc(""))  # type: ignore[arg-type]
    assert list(parse_google_docstring(_doc(""))) == [
        "short_description",
        "description",
        "attributes",
        "args",
        "returns",
        "raises",
        "runtime_parameters",
        "input_columns",
        "output_columns",
        "categories",
        "icon",
        "references",
        "examples",
        "note",
        "citations",
    ]


def test_one_line_summary_then_args() -> None:
    parsed = parse_google_docstring(
        _doc(
            """Short.

            Args:
                temperature: the temperature
                    wrapped here.
                top_p: nucleus.

            Returns:
                Something
                  here.
            """
        )
    )
    assert parsed["short_description"] == "Short."
    assert parsed["args"] == {"temperature": "the temperature  wrapped here.", "top_p": "nucleus."}
    assert parsed["returns"] == "Something\n                  here."


def test_args_after_a_description_land_under_distilabels_odd_key() -> None:
    parsed = parse_google_docstring(
        _doc(
            """Summary on
            two lines.

            Args:
                x: an arg.
            """
        )
    )
    assert parsed["args"] == {}
    odd = [k for k in parsed if k.endswith("args") and k != "args"]
    assert odd and odd[0].startswith("\n")


def test_distilabel_sections() -> None:
    text = """Task summary.

    Longer description.

    Attributes:
        name: the name.

    Runtime parameters:
        - `temperature`: the temperature
            over two lines.
        - max_tokens: the max.

    Input columns:
        - instruction (`str`): the instruction.

    Output columns:
        - generation (`List[str]`): the generations.

    Categories:
        - text-generation
        - preference

    Icon:
        `:material-robot:`

    References:
        - [`Paper`](https://example.com/paper)

    Examples:
        Generate text:

        ```python
        from x import y
        y()
        ```

    Note:
        Be careful.
            Indented.

    Citations:
        ```
        @article{a, title={A}}
        ```
    """
    ours = parse_google_docstring(_doc(text))
    assert ours == dl_parse(_doc(text))
    assert ours["runtime_parameters"] == {
        "temperature": "the temperature  over two lines.",
        "max_tokens": "the max.",
    }
    assert ours["input_columns"] == {"instruction": ("`str`", "the instruction.")}
    assert ours["categories"] == ["text-generation", "preference"]
    assert ours["icon"] == ":material-robot:"
    assert ours["references"] == {"Paper": "https://example.com/paper"}
    assert ours["examples"] == {"Generate text": "from x import y\ny()"}
    assert ours["citations"] == ["@article{a, title={A}}"]


def test_remove_leading_whitespaces() -> None:
    assert remove_leading_whitespaces("        a\n    b\n          c") == "a\n    b\n  c"
    assert remove_leading_whitespaces("  x", num_spaces=2) == "x"


def _distilabel_documented_objects() -> Iterator[object]:
    seen = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for info in pkgutil.walk_packages(distilabel.__path__, "distilabel."):
            if ".cli" in info.name or info.name.endswith("__main__"):
                continue
            try:
                module = importlib.import_module(info.name)
            except Exception:  # optional dependencies of integrations
                continue
            for _, obj in inspect.getmembers(module):
                if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                    continue
                if not getattr(obj, "__module__", "").startswith("distilabel"):
                    continue
                candidates: List[object] = [obj]
                if inspect.isclass(obj):
                    candidates += [v for v in vars(obj).values() if inspect.isfunction(v)]
                for candidate in candidates:
                    if id(candidate) not in seen and candidate.__doc__:
                        seen.add(id(candidate))
                        yield candidate


def test_every_docstring_distilabel_ships_parses_identically() -> None:
    objects = list(_distilabel_documented_objects())
    assert len(objects) > 300  # the walk really found distilabel's classes and functions
    mismatches = [
        getattr(obj, "__qualname__", obj)
        for obj in objects
        if parse_google_docstring(obj) != dl_parse(obj)  # type: ignore[arg-type]
    ]
    assert mismatches == []


@pytest.mark.parametrize(
    "text",
    [
        "Returns: inline is not a header\n\nArgs:\n    a: b",
        "Only summary",
        "Summary\nArgs:\n    a: first\n    b: second:with colon\n",
        "Summary\n\nIcon:\n    no backticks\n\nIcon:\n    `second`",
        "Summary\n\nArgs:\n\tx:\tthe\ttabbed\n",
        "\n\n   Leading blank lines\n\nNote:\n        eight\n    four",
    ],
)
def test_odd_shapes_match_distilabel(text: str) -> None:
    assert parse_google_docstring(_doc(text)) == dl_parse(_doc(text))
