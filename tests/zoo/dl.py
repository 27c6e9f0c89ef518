"""The zoo built on distilabel 1.5.3 (replaced by the module `build` creates)."""

from tests.zoo import build

build(__name__, "distilabel")
