"""`LLM`/`AsyncLLM`: fields, config, dispatch, polling and generation, next to distilabel."""

import asyncio
import gc
import logging
import pickle
import textwrap

import pytest
from distilabel.models.llms import base as dl_base
from pydantic import ValidationError

import tests.zoo.dl as zoo_dl
import tests.zoo.rs as zoo_rs
from distilabel_rs import LLM, AsyncLLM
from distilabel_rs.errors import DistilabelNotImplementedError, DistilabelUserError
from distilabel_rs.exceptions import DistilabelOfflineBatchGenerationNotFinishedException
from tests.conftest import FANOUT_FIELDS, run_python


@pytest.mark.parametrize(("ours", "theirs"), [(LLM, dl_base.LLM), (AsyncLLM, dl_base.AsyncLLM)])
def test_class_shape_matches_distilabel(ours: type, theirs: type) -> None:
    assert list(theirs.model_fields) == [
        "generation_kwargs",
        "use_offline_batch_generation",
        "offline_batch_generation_block_until_done",
        "jobs_ids",
    ]
    added = FANOUT_FIELDS if ours is AsyncLLM else []
    assert list(ours.model_fields) == list(theirs.model_fields) + added
    for name, field in ours.model_fields.items():
        if name in added:
            continue
        other = theirs.model_fields[name]
        assert field.description == other.description
        assert repr(field.annotation) == repr(other.annotation)
        assert field.get_default(call_default_factory=True) == other.get_default(
            call_default_factory=True
        )
        assert field.metadata == other.metadata
    assert ours.model_config == theirs.model_config
    ours_private = {k: v.default for k, v in ours.__private_attributes__.items()}
    theirs_private = {k: v.default for k, v in theirs.__private_attributes__.items()}
    assert {k: ours_private[k] for k in theirs_private} == theirs_private
    assert ours.__abstractmethods__ == theirs.__abstractmethods__


def test_validation_like_distilabel(zoo) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        zoo.DummyLLM(unknown=1)
    llm = zoo.DummyLLM()
    with pytest.raises(ValidationError):
        llm.use_offline_batch_generation = "x"
    llm.jobs_ids = ["a", "b"]
    assert llm.jobs_ids == ("a", "b")
    assert zoo.DummyLLM(generation_kwargs=None).get_generation_kwargs() is None


def test_load_sets_the_logger() -> None:
    llm = zoo_rs.DummyLLM()
    assert llm._logger is None
    llm.load()
    assert llm._logger is logging.getLogger("distilabel.llm.test")


def test_generate_outputs_calls_generate_with_keywords() -> None:
    llm = zoo_rs.DummyLLM()
    assert llm.generate_outputs(
        inputs=[[{"role": "user", "content": "hi"}]], num_generations=2
    ) == [
        {
            "generations": ["output 0", "output 1"],
            "statistics": {"input_tokens": [12, 12], "output_tokens": [12, 12]},
        }
    ]


def test_offline_without_block_raises_not_finished_at_once(zoo) -> None:
    llm = zoo.BatchLLM(use_offline_batch_generation=True)
    llm.load()
    with pytest.raises(Exception) as info:
        llm.generate_outputs(inputs=["a"])
    assert type(info.value).__name__ == "DistilabelOfflineBatchGenerationNotFinishedException"
    assert info.value.jobs_ids == ("job-1", "job-2")


def test_offline_polling_returns_when_done(zoo, caplog: pytest.LogCaptureFixture) -> None:
    llm = zoo.BatchLLM(
        use_offline_batch_generation=True, offline_batch_generation_block_until_done=0
    )
    llm.load()
    with caplog.at_level(logging.INFO, logger="distilabel.llm.batch"):
        assert llm.generate_outputs(inputs=["a", "b"]) == [
            {"generations": ["batch a"], "statistics": {}},
            {"generations": ["batch b"], "statistics": {}},
        ]
    assert llm._calls == 3
    assert caplog.messages[0] == (
        "Waiting for the offline batch generation to finish: Batch generation with"
        " jobs_ids=('job-1', 'job-2') is not finished. Sleeping for 0 seconds before trying"
        " to get the results again."
    )


def test_offline_polling_stops_when_a_worker_got_sigint(
    zoo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("sigint_handler_called", "1")
    llm = zoo.BatchLLM(
        use_offline_batch_generation=True, offline_batch_generation_block_until_done=0
    )
    llm.load()
    with pytest.raises(Exception) as info:
        llm.generate_outputs(inputs=["a"])
    assert type(info.value).__name__ == "DistilabelOfflineBatchGenerationNotFinishedException"
    assert llm._calls == 1


def test_ctrl_c_during_a_poll_becomes_not_finished_with_the_job_ids(zoo) -> None:
    llm = zoo.BatchLLM(
        use_offline_batch_generation=True, offline_batch_generation_block_until_done=0
    )
    llm.load()
    original = type(llm).offline_batch_generate

    def interrupted(self, *args, **kwargs):
        if self._calls == 1:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    type(llm).offline_batch_generate = interrupted
    try:
        with pytest.raises(Exception) as info:
            llm.generate_outputs(inputs=["a"])
    finally:
        type(llm).offline_batch_generate = original
    assert type(info.value).__name__ == "DistilabelOfflineBatchGenerationNotFinishedException"
    assert info.value.jobs_ids == ("job-1", "job-2")
    assert isinstance(info.value.__cause__, KeyboardInterrupt)


def test_ctrl_c_during_the_wait_becomes_not_finished_within_a_fraction_of_a_second() -> None:
    # distilabel lets this KeyboardInterrupt escape; the fix is listed in COMPATIBILITY.md.
    code = textwrap.dedent(
        """
        import os, signal, threading, time
        import tests.zoo.rs as zoo
        from distilabel_rs.exceptions import DistilabelOfflineBatchGenerationNotFinishedException

        llm = zoo.BatchLLM(use_offline_batch_generation=True,
                           offline_batch_generation_block_until_done=60)
        llm.load()
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        try:
            llm.generate_outputs(inputs=["a"])
        except DistilabelOfflineBatchGenerationNotFinishedException as e:
            late = time.monotonic() - started - 0.5
            print(e.jobs_ids, type(e.__cause__).__name__, late < 0.5)
        """
    )
    result = run_python(code, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "('job-1', 'job-2') KeyboardInterrupt True"


def test_a_sigint_recorded_by_a_pipeline_worker_ends_the_wait() -> None:
    import os
    import threading
    import time

    llm = zoo_rs.BatchLLM(
        use_offline_batch_generation=True, offline_batch_generation_block_until_done=60
    )
    llm.load()
    timer = threading.Timer(0.3, lambda: os.environ.__setitem__("sigint_handler_called", "1"))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(DistilabelOfflineBatchGenerationNotFinishedException) as info:
            llm.generate_outputs(inputs=["a"])
    finally:
        timer.join()
        os.environ.pop("sigint_handler_called", None)
    assert time.monotonic() - started < 5
    assert info.value.jobs_ids == ("job-1", "job-2")


def test_polling_before_load_fails_like_distilabel(zoo) -> None:
    llm = zoo.BatchLLM(
        use_offline_batch_generation=True, offline_batch_generation_block_until_done=0
    )
    with pytest.raises(AttributeError):
        llm.generate_outputs(inputs=["a"])


def test_not_implemented_paths_match_distilabel() -> None:
    ours, theirs = zoo_rs.DummyLLM(), zoo_dl.DummyLLM()
    with pytest.raises(DistilabelNotImplementedError) as info:
        ours.offline_batch_generate()
    assert str(info.value) == (
        "`offline_batch_generate` is not implemented for `DummyLLM`\n\nFor further information"
        " visit 'https://distilabel.argilla.io/latest/sections/how_to_guides/advanced/"
        "offline-batch-generation/'"
    )
    assert info.value.args == ("`offline_batch_generate` is not implemented for `DummyLLM`",)
    for call in ("get_last_hidden_states", "_prepare_structured_output"):
        with pytest.raises(NotImplementedError) as mine:
            getattr(ours, call)([])
        with pytest.raises(NotImplementedError) as reference:
            getattr(theirs, call)([])
        assert str(mine.value) == str(reference.value)


INPUTS = [[{"role": "user", "content": f"q{i}"}] for i in range(7)]


@pytest.mark.parametrize("supported", [True, False])
@pytest.mark.parametrize("num_generations", [1, 3])
def test_async_generate_matches_distilabel(supported: bool, num_generations: int) -> None:
    outputs = []
    for zoo in (zoo_rs, zoo_dl):
        llm = zoo.DummyAsyncLLM(n_generations_supported=supported)
        llm.load()
        outputs.append(
            llm.generate_outputs(inputs=INPUTS, num_generations=num_generations, temperature=0.5)
        )
    assert outputs[0] == outputs[1]
    assert [o["generations"][0] for o in outputs[0]] == [f"q{i}-0" for i in range(7)]
    assert all(len(o["generations"]) == num_generations for o in outputs[0])


def test_fan_out_path_groups_generations_per_input() -> None:
    llm = zoo_rs.DummyAsyncLLM(n_generations_supported=False)
    llm.load()
    out = llm.generate(inputs=["a", "b"], num_generations=2)
    assert out == [
        {
            "generations": ["a-0", "a-0"],
            "statistics": {"input_tokens": [1, 1], "output_tokens": [1, 1]},
            "logprobs": [[[{"token": "a", "logprob": -1.0}]], [[{"token": "a", "logprob": -1.0}]]],
        },
        {
            "generations": ["b-0", "b-0"],
            "statistics": {"input_tokens": [1, 1], "output_tokens": [1, 1]},
            "logprobs": [[[{"token": "b", "logprob": -1.0}]], [[{"token": "b", "logprob": -1.0}]]],
        },
    ]


def test_a_failing_request_fails_generate_like_distilabel(zoo) -> None:
    llm = zoo.FailingAsyncLLM()
    llm.load()
    with pytest.raises(RuntimeError, match="cannot generate for 'boom'"):
        llm.generate(inputs=["ok", "boom", "ok"])


def test_event_loop_is_owned_and_closed_on_delete() -> None:
    llm = zoo_rs.DummyAsyncLLM()
    loop = llm.event_loop
    assert llm._new_event_loop is True and llm.event_loop is loop
    assert asyncio.get_event_loop_policy().get_event_loop() is loop
    del llm
    gc.collect()
    assert loop.is_closed()


def test_pickles_before_load_after_generate_and_after_unload() -> None:
    llm = zoo_rs.DummyAsyncLLM(
        n_generations_supported=False, generation_kwargs={"temperature": 0.1}
    )
    pickle.loads(pickle.dumps(llm))
    llm.load()
    llm.generate(inputs=["x"])
    copy = pickle.loads(pickle.dumps(llm))  # distilabel cannot pickle a used AsyncLLM
    assert copy._event_loop is None and copy.generation_kwargs == {"temperature": 0.1}
    assert copy._num_generations_param_supported is False
    assert copy.generate(inputs=["y"], num_generations=2)[0]["generations"] == ["y-0", "y-0"]
    llm.unload()
    restored = pickle.loads(pickle.dumps(llm))
    assert restored.model_dump() == llm.model_dump()


def test_forked_worker_loads_and_generates_a_pickled_llm() -> None:
    code = textwrap.dedent(
        """
        import multiprocessing as mp, pickle
        import tests.zoo.rs as zoo

        def work(blob):
            llm = pickle.loads(blob)
            llm.load()
            return llm.generate(inputs=["child"], num_generations=2)

        if __name__ == "__main__":
            llm = zoo.DummyAsyncLLM(n_generations_supported=False)
            llm.load()
            llm.generate(inputs=["parent"])  # the parent used it before forking
            with mp.get_context("fork").Pool(1) as pool:
                out = pool.apply_async(work, (pickle.dumps(llm),)).get(timeout=60)
            print(out[0]["generations"])
        """
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['child-0', 'child-0']"


@pytest.mark.parametrize("standalone", [True, False])
def test_import_and_construction_start_no_threads(standalone: bool) -> None:
    # Importing distilabel itself starts native threads (its dependencies'): counted first.
    code = textwrap.dedent(
        f"""
        import os
        if {standalone!r}:
            os.environ["DISTILABEL_RS_STANDALONE"] = "1"
        else:
            import distilabel.models.llms.base
        before = len(os.listdir("/proc/self/task"))
        import distilabel_rs
        import tests.zoo.rs as zoo
        llm = zoo.DummyAsyncLLM()
        llm.runtime_parameters_names, llm.dump()
        openai_llm = distilabel_rs.OpenAILLM(model="m", api_key="k")
        print(len(os.listdir("/proc/self/task")) - before)
        """
    )
    result = run_python(code, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_distilabel_recognises_distilabel_rs_llms() -> None:
    from distilabel.models.llms.base import LLM as DistilabelLLM

    assert isinstance(zoo_rs.DummyAsyncLLM(), DistilabelLLM)
    assert issubclass(AsyncLLM, dl_base.AsyncLLM)
    # distilabel_rs's own implementation comes first.
    assert AsyncLLM.generate.__module__ == "distilabel_rs.models.llms.base"
    assert LLM.dump.__module__ == "distilabel_rs.utils.serialization"


def test_structured_output_helpers() -> None:
    with pytest.raises(ImportError) as ours:
        AsyncLLM._prepare_structured_output({"schema": None}, client=None, framework="openai")
    with pytest.raises(ImportError) as theirs:
        dl_base.AsyncLLM._prepare_structured_output(
            {"schema": None}, client=None, framework="openai"
        )
    if "instructor" in str(theirs.value):
        assert str(ours.value) == str(theirs.value)

    schema = {
        "title": "User",
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name"],
    }
    args = AsyncLLM._prepare_kwargs({"model": "m"}, {"schema": schema, "max_retries": 3})
    model = args["response_model"]
    assert model.__name__ == "User" and args["max_retries"] == 3
    assert model(name="x", tags=["a"]).model_dump() == {"name": "x", "age": None, "tags": ["a"]}
    with pytest.raises(ValueError, match="^Failed to convert the schema to a pydantic model"):
        AsyncLLM._prepare_kwargs({}, {"schema": {"title": "T", "properties": {"x": {"type": "?"}}}})


def test_structured_output_without_schema_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import distilabel_rs.models.llms._structured as structured

    monkeypatch.setattr(structured, "prepare_instructor", lambda client, mode, framework: "wrapped")
    with pytest.raises(DistilabelUserError, match="must contain a schema"):
        AsyncLLM._prepare_structured_output({"schema": None}, client=None, framework="openai")
    config = {"schema": zoo_rs.Options}
    result = AsyncLLM._prepare_structured_output(config, client=None, framework="openai")
    assert result["client"] == "wrapped"
    assert result["structured_output"]["schema"]["title"] == "Options"


def test_not_finished_exception_type_is_ours() -> None:
    llm = zoo_rs.BatchLLM(use_offline_batch_generation=True)
    with pytest.raises(DistilabelOfflineBatchGenerationNotFinishedException):
        llm.generate_outputs(inputs=["a"])
