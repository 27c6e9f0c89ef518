"""The same LLM subclasses, defined once (`template.py`) and built on both libraries.

`tests.zoo.rs` holds them built on distilabel_rs and `tests.zoo.dl` on distilabel 1.5.3, so
the differential tests compare what a user sees from identical user code.
"""

import sys
import types
from pathlib import Path

_TEMPLATE = Path(__file__).with_name("template.py")


def build(module_name: str, lib: str) -> types.ModuleType:
    """Executes the template in a fresh module named `module_name`, importing from `lib`."""
    module = types.ModuleType(module_name)
    module.__file__ = str(_TEMPLATE)
    module.LIB = lib
    sys.modules[module_name] = module
    exec(compile(_TEMPLATE.read_text(), str(_TEMPLATE), "exec"), module.__dict__)
    return module
