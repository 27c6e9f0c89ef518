"""Error classes, messages and pickling."""

import pickle

import pytest
from distilabel import errors as dl_errors
from distilabel import exceptions as dl_exceptions

from distilabel_rs import errors, exceptions


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("DistilabelUserError", ValueError),
        ("DistilabelTypeError", TypeError),
        ("DistilabelNotImplementedError", NotImplementedError),
    ],
)
def test_errors_render_like_distilabel(name: str, base: type) -> None:
    ours = getattr(errors, name)("Something broke.", page="sections/getting_started/faq/")
    theirs = getattr(dl_errors, name)("Something broke.", page="sections/getting_started/faq/")
    assert isinstance(ours, base) and isinstance(ours, errors.DistilabelError)
    assert (
        str(ours)
        == str(theirs)
        == (
            "Something broke.\n\nFor further information visit "
            "'https://distilabel.argilla.io/latest/sections/getting_started/faq/'"
        )
    )
    assert ours.args == theirs.args == ("Something broke.",)
    assert repr(ours).endswith("('Something broke.')")
    plain = getattr(errors, name)("No page.")
    assert str(plain) == "No page." and plain.page is None
    restored = pickle.loads(pickle.dumps(ours))
    assert restored.page == ours.page and str(restored) == str(ours)


def test_not_finished_exception() -> None:
    ours = exceptions.DistilabelOfflineBatchGenerationNotFinishedException(jobs_ids=("j1",))
    theirs = dl_exceptions.DistilabelOfflineBatchGenerationNotFinishedException(jobs_ids=("j1",))
    assert str(ours) == str(theirs) == "Batch generation with jobs_ids=('j1',) is not finished"
    assert isinstance(ours, exceptions.DistilabelGenerationException)
    assert isinstance(ours, exceptions.DistilabelException)
    assert ours.jobs_ids == ("j1",)


def test_not_finished_exception_survives_pickling_intact() -> None:
    # distilabel doubles the message after a pickle round trip; listed in COMPATIBILITY.md.
    exc = exceptions.DistilabelOfflineBatchGenerationNotFinishedException(jobs_ids=("a", "b"))
    restored = pickle.loads(pickle.dumps(exc))
    assert restored.jobs_ids == ("a", "b")
    assert str(restored) == str(exc)
    assert type(restored) is type(exc)


def test_distilabel_catches_distilabel_rs_errors_and_exceptions() -> None:
    # distilabel's pipeline recognises a step stopped for offline batch generation by
    # distilabel's exception class; users catch distilabel's error classes.
    exc = exceptions.DistilabelOfflineBatchGenerationNotFinishedException(jobs_ids=("j",))
    assert isinstance(exc, dl_exceptions.DistilabelOfflineBatchGenerationNotFinishedException)
    assert isinstance(exc, dl_exceptions.DistilabelException)
    assert (
        exc.jobs_ids == ("j",)
        and str(exc) == "Batch generation with jobs_ids=('j',) is not finished"
    )
    error = errors.DistilabelUserError("bad", page="x/")
    assert isinstance(error, dl_errors.DistilabelUserError) and isinstance(error, ValueError)
    assert (
        str(error)
        == "bad\n\nFor further information visit 'https://distilabel.argilla.io/latest/x/'"
    )
