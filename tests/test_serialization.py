"""dump/save/from_* with type_info, against distilabel 1.5.3 on the same user classes."""

from pathlib import Path

import pytest
from pydantic import SecretStr

import tests.zoo.dl as zoo_dl
import tests.zoo.rs as zoo_rs
from distilabel_rs import LLM
from distilabel_rs.utils.serialization import (
    DISTILABEL_FILENAME,
    TYPE_INFO_KEY,
    _extra_serializable_fields,
    load_with_type_info,
)
from tests.conftest import same_modules, without_fanout_fields

ZOO_CLASSES = ["DummyLLM", "DummyAsyncLLM", "RichLLM", "BatchLLM"]


@pytest.mark.parametrize("name", ZOO_CLASSES)
def test_dumps_match_distilabel(name: str) -> None:
    ours = getattr(zoo_rs, name)(jobs_ids=["a", "b"])
    theirs = getattr(zoo_dl, name)(jobs_ids=["a", "b"])
    dumped = without_fanout_fields(ours.dump())
    assert same_modules(dumped) == same_modules(theirs.dump())
    assert list(dumped) == list(theirs.dump())
    assert list(ours.dump())[-1] == TYPE_INFO_KEY
    assert ours.dump()["jobs_ids"] == ("a", "b")


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_saved_files_match_distilabel_byte_for_byte(tmp_path: Path, fmt: str) -> None:
    zoo_rs.RichLLM(jobs_ids=("j",)).save(tmp_path / "rs" / f"llm.{fmt}", format=fmt)
    zoo_dl.RichLLM(jobs_ids=("j",)).save(tmp_path / "dl" / f"llm.{fmt}", format=fmt)
    ours = (tmp_path / "rs" / f"llm.{fmt}").read_text()
    theirs = (tmp_path / "dl" / f"llm.{fmt}").read_text()
    assert ours == theirs.replace("tests.zoo.dl", "tests.zoo.rs")


def test_api_key_is_never_dumped_nor_saved(tmp_path: Path) -> None:
    llm = zoo_rs.RichLLM(api_key="sk-very-secret")
    assert "api_key" not in llm.dump()
    for fmt in ("json", "yaml"):
        llm.save(tmp_path / f"llm.{fmt}", format=fmt)
        assert "sk-very-secret" not in (tmp_path / f"llm.{fmt}").read_text()
    assert "sk-very-secret" not in repr(llm) and "sk-very-secret" not in str(llm)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_round_trip_through_files(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOO_API_KEY", "from-env")
    # A non-empty list of sub-models dumps as {"0": ...}, which neither library loads back.
    llm = zoo_rs.RichLLM(
        jobs_ids=("x", "y"), timeout=3, generation_kwargs={"top_k": 2}, option_list=[]
    )
    path = tmp_path / f"llm.{fmt}"
    llm.save(path, format=fmt)
    loaded = LLM.from_file(path)
    assert type(loaded) is zoo_rs.RichLLM
    assert loaded.jobs_ids == ("x", "y")
    assert loaded.timeout == 3 and loaded.generation_kwargs == {"top_k": 2}
    assert loaded.api_key == SecretStr("from-env")  # keys come back from the environment
    assert [m.name for m in loaded.palette] == ["RED", "BLUE"]


def test_from_dict_takes_the_class_from_type_info_and_mutates_its_input() -> None:
    data = zoo_rs.DummyAsyncLLM().dump()
    data["not_a_field"] = 1
    loaded = LLM.from_dict(data)
    assert type(loaded) is zoo_rs.DummyAsyncLLM
    assert TYPE_INFO_KEY not in data and "not_a_field" not in data
    assert load_with_type_info({"plain": [1, {"a": 2}]}) == {"plain": [1, {"a": 2}]}


def test_save_paths_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    llm = zoo_rs.DummyLLM()
    llm.save(tmp_path / "folder")
    assert (tmp_path / "folder" / DISTILABEL_FILENAME).exists()
    monkeypatch.chdir(tmp_path)
    llm.save()
    assert (tmp_path / DISTILABEL_FILENAME).read_bytes().startswith(b'{"generation_kwargs":{}')
    for ours_call, theirs_call in [
        (
            lambda: llm.save(tmp_path / "x.txt", format="txt"),
            lambda: zoo_dl.DummyLLM().save(tmp_path / "x.txt", format="txt"),
        ),
        (
            lambda: LLM.from_file(tmp_path / "x.toml"),
            lambda: zoo_dl.LLM.from_file(tmp_path / "x.toml"),
        ),
        (lambda: LLM.from_json(tmp_path), lambda: zoo_dl.LLM.from_json(tmp_path)),
        (lambda: LLM.from_yaml(tmp_path), lambda: zoo_dl.LLM.from_yaml(tmp_path)),
        (lambda: llm.dump(exclude={"x"}), lambda: zoo_dl.DummyLLM().dump(exclude={"x"})),
    ]:
        with pytest.raises(Exception) as theirs:
            theirs_call()
        with pytest.raises(type(theirs.value)) as ours:
            ours_call()
        assert str(ours.value).replace("distilabel_rs", "distilabel") == str(theirs.value)


def test_extra_serializable_fields_dump_nested_llms() -> None:
    from pydantic import BaseModel

    class Holder(BaseModel):
        llm: zoo_rs.DummyLLM
        llms: list

    holder = Holder(llm=zoo_rs.DummyLLM(), llms=[zoo_rs.DummyLLM()])
    updates = _extra_serializable_fields(holder)
    assert updates[0]["llm"]["type_info"] == {"module": "tests.zoo.rs", "name": "DummyLLM"}
    assert updates[1]["llms"]["0"]["type_info"]["name"] == "DummyLLM"
