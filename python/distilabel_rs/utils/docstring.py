"""Google-style docstring parsing, with the exact output of distilabel 1.5.3.

The parser's quirks are part of the contract (pipelines serialize the parsed text into
`pipeline.yaml` and the runtime-parameter info), so they are kept on purpose:

- the summary is the first line only;
- continuation lines of `Args`/`Raises`/`Attributes` items are joined with the spaces that
  remain after collapsing tabs, newlines and runs of 2+ spaces (often two spaces);
- the section pattern's leading `\\s*` binds to `Args` alone, so an `Args:` header that
  follows a description is captured with its leading whitespace, lands under an odd key
  (e.g. `"\\n\\n________args"`, spaces shown as `_` here) and leaves `args` empty.
"""

import re
from typing import Callable, Dict, List, Tuple

from typing_extensions import TypedDict

__all__ = ["Docstring", "parse_google_docstring", "remove_leading_whitespaces"]


class Docstring(TypedDict):
    short_description: str
    description: str
    attributes: Dict[str, str]
    args: Dict[str, str]
    returns: str
    raises: Dict[str, str]
    runtime_parameters: Dict[str, str]
    input_columns: Dict[str, Tuple[str, str]]
    output_columns: Dict[str, Tuple[str, str]]
    categories: List[str]
    icon: str
    references: Dict[str, str]
    examples: Dict[str, str]
    note: str
    citations: List[str]


_SECTION_HEADERS = (
    "Args",
    "Returns",
    "Raises",
    "Attributes",
    "Runtime parameters",
    "Input columns",
    "Output columns",
    "Categories",
    "Icon",
    "References",
    "Examples",
    "Note",
    "Citations",
)
# Deliberately `(\s*Args|Returns|...)`: see the module docstring.
_SECTION = re.compile(r"(\s*" + "|".join(_SECTION_HEADERS) + r"):\s*\n")

_NAMED_ITEM = re.compile(r"\s*(\w+):\s*(.*?)\s*(?=\n\s*\w+:\s*|\n\s*$|$)", re.DOTALL)
_RUNTIME_PARAMETER = re.compile(r"\s*-\s*`?(\w+)`?:\s*(.*?)\s*(?=\n\s*-\s*`?\w+`?:|$)", re.DOTALL)
_COLUMN = re.compile(
    r"- (?P<name>\w+) \((?P<type>`[^`]+`|[^)]+)\): (?P<description>.+?)(?=\n\s*-\s|\Z)",
    re.DOTALL,
)
_ICON = re.compile(r"`([^`]+)`")
_REFERENCE = re.compile(r"\s*-\s*\[([^]]+)\]\(([^)]+)\)")
_EXAMPLE = re.compile(
    r"""([\w,()'][\w\s,()=`!'"]*?):\s*\n?\s*```python\n(.*?)\n\s*```""", re.DOTALL
)
_FENCED = re.compile(r"```(.*?)```", re.DOTALL)
_WHITESPACE_RUN = re.compile(r"[\t\n]+| {2,}")


def _collapse(text: str) -> str:
    return _WHITESPACE_RUN.sub(" ", text).strip()


def _named_items(content: str) -> Dict[str, str]:
    return {name: _collapse(text) for name, text in _NAMED_ITEM.findall(content)}


def _runtime_parameters(content: str) -> Dict[str, str]:
    return {name: _collapse(text) for name, text in _RUNTIME_PARAMETER.findall(content)}


def _columns(content: str) -> Dict[str, Tuple[str, str]]:
    return {name: (type_, _collapse(text)) for name, type_, text in _COLUMN.findall(content)}


def _categories(content: str) -> List[str]:
    return [line.replace("-", "", 1).strip() for line in content.split("\n") if line.strip()]


def _references(content: str) -> Dict[str, str]:
    return {name.replace("`", ""): url for name, url in _REFERENCE.findall(content)}


def _examples(content: str) -> Dict[str, str]:
    return {
        title.strip(): remove_leading_whitespaces(code.strip())
        for title, code in _EXAMPLE.findall(content)
    }


def _citations(content: str) -> List[str]:
    return [remove_leading_whitespaces(block).strip() for block in _FENCED.findall(content)]


_SECTION_PARSERS: Dict[str, Callable[[str], object]] = {
    "args": _named_items,
    "raises": _named_items,
    "attributes": _named_items,
    "runtime_parameters": _runtime_parameters,
    "input_columns": _columns,
    "output_columns": _columns,
    "categories": _categories,
    "references": _references,
    "examples": _examples,
    "note": lambda content: remove_leading_whitespaces(content),
    "citations": _citations,
}


def _empty_docstring() -> Docstring:
    return {
        "short_description": "",
        "description": "",
        "attributes": {},
        "args": {},
        "returns": "",
        "raises": {},
        "runtime_parameters": {},
        "input_columns": {},
        "output_columns": {},
        "categories": [],
        "icon": "",
        "references": {},
        "examples": {},
        "note": "",
        "citations": [],
    }


def parse_google_docstring(func: Callable) -> Docstring:
    """Parses the Google-style docstring of `func` (a function or a class) into its sections.

    Args:
        func: the function or class whose `__doc__` is parsed (docstrings are not inherited).

    Returns:
        The sections; the ones the docstring lacks keep their empty defaults.
    """
    sections = _empty_docstring()
    if not func.__doc__:
        return sections

    summary, _, remaining = func.__doc__.strip().partition("\n")
    sections["short_description"] = summary.strip()

    parts = _SECTION.split(remaining.strip())
    description = parts[0].strip()
    if description and not _SECTION.match(f"\n{description}\n"):
        sections["description"] = description

    for header, content in zip(parts[1::2], parts[2::2], strict=True):
        name = header.lower().replace(" ", "_")
        content = content.strip()
        if name == "icon":
            match = _ICON.match(content)
            if match:
                sections["icon"] = match.group(1)
            continue
        parse = _SECTION_PARSERS.get(name)
        sections[name] = parse(content) if parse else content  # type: ignore[literal-required]
    return sections


def remove_leading_whitespaces(text: str, num_spaces: int = 8) -> str:
    """Removes `num_spaces` leading spaces from each line that starts with that many.

    Args:
        text: the text to dedent.
        num_spaces: how many leading spaces to remove.

    Returns:
        The text with those spaces removed.
    """
    prefix = " " * num_spaces
    return "\n".join(
        line[num_spaces:] if line.startswith(prefix) else line for line in text.split("\n")
    )
