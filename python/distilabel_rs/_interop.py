"""Interoperability with distilabel, when it is installed.

distilabel's pipelines check the classes of what they handle (`Task.llm` must be a
distilabel `LLM`, a step stopped for offline batch generation must raise distilabel's
not-finished exception...). When distilabel can be imported, distilabel_rs's base classes,
errors and exceptions therefore also derive from their distilabel counterparts; their
behaviour stays distilabel_rs's own (it comes first in the MRO). Set
`DISTILABEL_RS_STANDALONE=1` to never import distilabel.
"""

import importlib
import os
from typing import Any, Optional, Tuple

__all__ = ["counterpart", "standalone"]


def standalone() -> bool:
    """Whether interoperability is switched off."""
    return os.environ.get("DISTILABEL_RS_STANDALONE", "") not in ("", "0")


def counterpart(module: str, name: str) -> Tuple[Any, ...]:
    """`(distilabel's class,)` for `module.name` of distilabel, or `()` without distilabel."""
    found = _class(module, name)
    return () if found is None else (found,)


def _class(module: str, name: str) -> Optional[type]:
    if standalone():
        return None
    try:
        return getattr(importlib.import_module(f"distilabel.{module}"), name)
    except ImportError:
        return None
