"""The zoo built on distilabel_rs (replaced by the module `build` creates)."""

from tests.zoo import build

build(__name__, "distilabel_rs")
