"""`grouper` (Rust core) and `batched` against distilabel 1.5.3's."""

import itertools

import pytest
from distilabel.utils import itertools as dl_itertools

from distilabel_rs.utils.itertools import batched, grouper


@pytest.mark.parametrize("size", [0, 1, 2, 3, 6, 7, 12])
@pytest.mark.parametrize("n", [-1, 0, 1, 2, 3, 7])
@pytest.mark.parametrize("incomplete", ["fill", "ignore", "strict"])
def test_grouper_matches_distilabel(size: int, n: int, incomplete: str) -> None:
    def run(fn):
        out = []
        try:
            for chunk in fn(range(size), n, incomplete=incomplete, fillvalue="x"):
                out.append(chunk)
        except ValueError as e:
            out.append(("ValueError", str(e)))
        return out

    assert run(grouper) == run(dl_itertools.grouper)


def test_grouper_is_lazy_and_stops_pulling_after_exhaustion() -> None:
    pulled = []

    def source():
        for i in range(5):
            pulled.append(i)
            yield i

    chunks = grouper(source(), 2)
    assert pulled == []
    assert next(chunks) == (0, 1)
    assert pulled == [0, 1]
    assert list(chunks) == [(2, 3), (4, None)]


def test_grouper_bad_arguments_fail_like_distilabel() -> None:
    for args, kwargs in [
        ((range(3), 2), {"incomplete": "nope"}),
        ((5, 2), {}),
        ((range(3), 2.0), {}),
    ]:
        with pytest.raises(Exception) as expected:
            dl_itertools.grouper(*args, **kwargs)
        with pytest.raises(
            type(expected.value), match=str(expected.value).replace("(", r"\(").replace(")", r"\)")
        ):
            grouper(*args, **kwargs)


def test_grouper_propagates_source_errors() -> None:
    def source():
        yield 1
        raise KeyError("broken source")

    with pytest.raises(KeyError, match="broken source"):
        list(grouper(source(), 2))


def test_batched() -> None:
    assert list(batched("ABCDEFG", 3)) == list(dl_itertools.batched("ABCDEFG", 3))
    assert list(batched(iter([]), 2)) == []
    with pytest.raises(ValueError):
        list(batched("AB", 0))
    assert list(itertools.islice(batched(itertools.count(), 2), 2)) == [(0, 1), (2, 3)]
