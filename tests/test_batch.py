"""Offline batch generation through the Batch API (Files + Batches) of the local mock."""

import json
from typing import Any, List

import pytest

from distilabel_rs import OpenAILLM, _core
from distilabel_rs.exceptions import DistilabelOfflineBatchGenerationNotFinishedException
from tests.conftest import run_python

NotFinished = DistilabelOfflineBatchGenerationNotFinishedException


@pytest.fixture
def server() -> Any:
    mock = _core.MockServer(record=True)
    yield mock
    mock.stop()


def batch_llm(server: Any, **kwargs: Any) -> OpenAILLM:
    llm = OpenAILLM(
        model="batch-model",
        base_url=server.base_url,
        api_key="sk-batch",
        use_offline_batch_generation=True,
        **kwargs,
    )
    llm.load()
    return llm


def chats(*texts: str) -> List[Any]:
    return [[{"role": "user", "content": text}] for text in texts]


def poll(llm: OpenAILLM, inputs: Any, rounds: int = 10, **kwargs: Any) -> Any:
    for _ in range(rounds):
        try:
            return llm.offline_batch_generate(inputs=inputs, **kwargs)
        except NotFinished:
            continue
    raise AssertionError("the batch never finished")


def test_first_call_creates_jobs_and_later_calls_return_results_in_order(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILABEL_PIPELINE_NAME", "my-pipeline")
    monkeypatch.setenv("DISTILABEL_PIPELINE_CACHE_ID", "abc123")
    llm = batch_llm(server)
    inputs = chats("first", "[[status=400]] second", "third")
    with pytest.raises(NotFinished) as info:
        llm.generate_outputs(inputs=inputs, num_generations=2, temperature=0.3)
    assert info.value.jobs_ids == llm.jobs_ids == ("batch_1",)

    uploads = [body for path, body, _ in server.recorded() if path == "/v1/files"]
    assert 'filename="distilabel-pipeline-my-pipeline-abc123-fileno-0.jsonl"' in uploads[0]
    first_row = next(line for line in uploads[0].splitlines() if line.startswith("{"))
    assert json.loads(first_row) == {
        "custom_id": "0",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "messages": inputs[0],
            "model": "batch-model",
            "logprobs": False,
            "top_logprobs": None,
            "max_tokens": 128,
            "n": 2,
            "frequency_penalty": 0.0,
            "presence_penalty": 0.0,
            "temperature": 0.3,
            "top_p": 1.0,
            "stop": None,
            "response_format": None,
        },
    }
    created = [json.loads(body) for path, body, _ in server.recorded() if path == "/v1/batches"]
    assert created[0]["completion_window"] == "24h"
    assert created[0]["endpoint"] == "/v1/chat/completions"
    assert created[0]["metadata"] == {
        "description": "distilabel",
        "distilabel_pipeline_name": "my-pipeline",
        "distilabel_pipeline_cache_id": "abc123",
    }

    outputs = poll(llm, inputs, num_generations=2)
    assert outputs[0]["generations"] == ["echo: first", "echo: first"]
    assert outputs[2]["generations"] == ["echo: third", "echo: third"]
    assert outputs[1]["generations"] == [None, None]
    assert outputs[1]["error"] == ["Error code: 400 - Scripted failure with status 400"] * 2
    assert outputs[0]["statistics"]["input_tokens"] and "error" not in outputs[0]


def test_polling_until_done_reports_request_counts(server: Any) -> None:
    llm = batch_llm(server, offline_batch_generation_block_until_done=0)
    progress: list = []
    llm.set_progress_callback(progress.append)
    outputs = llm.generate_outputs(inputs=chats("a", "b"))
    assert [o["generations"] for o in outputs] == [["echo: a"], ["echo: b"]]
    assert progress[-1].total == 2 and progress[-1].done == 2


def test_an_expired_job_keeps_its_rows_and_resubmits_only_the_rest(server: Any) -> None:
    llm = batch_llm(server)
    inputs = chats("a", "[[expire]] b", "c", "[[expire]] d")
    outputs = poll(llm, inputs)
    assert [o["generations"][0] for o in outputs] == [
        "echo: a",
        "echo: [[expire]] b",
        "echo: c",
        "echo: [[expire]] d",
    ]
    assert len(llm.jobs_ids) == 2 and llm.jobs_ids[0] == "batch_1"  # one more job: the leftovers
    uploads = [body for path, body, _ in server.recorded() if path == "/v1/files"]
    resubmitted = [line for line in uploads[1].splitlines() if line.startswith("{")]
    assert [json.loads(line)["custom_id"] for line in resubmitted] == ["1", "3"]


def test_a_cancelled_job_resumes_with_its_unfinished_rows(server: Any) -> None:
    llm = batch_llm(server)
    inputs = chats("a", "b")
    with pytest.raises(NotFinished):
        llm.offline_batch_generate(inputs=inputs)
    llm.cancel_offline_batch_generation()
    outputs = poll(llm, inputs)
    assert [o["generations"] for o in outputs] == [["echo: a"], ["echo: b"]]
    assert len(llm.jobs_ids) == 2


def test_files_are_split_at_fifty_thousand_requests(server: Any) -> None:
    llm = batch_llm(server)
    inputs = chats(*[f"q{i}" for i in range(50_001)])
    with pytest.raises(NotFinished):
        llm.offline_batch_generate(inputs=inputs)
    assert len(llm.jobs_ids) == 2
    outputs = poll(llm, inputs)
    assert len(outputs) == 50_001
    assert outputs[50_000]["generations"] == ["echo: q50000"]
    assert outputs[12_345]["generations"] == ["echo: q12345"]


def test_job_ids_alone_collect_the_results_in_a_new_process(server: Any) -> None:
    llm = batch_llm(server)
    with pytest.raises(NotFinished):
        llm.offline_batch_generate(inputs=chats("x", "y", "z"))
    result = run_python(
        f"""
        from distilabel_rs import OpenAILLM
        from distilabel_rs.exceptions import DistilabelOfflineBatchGenerationNotFinishedException
        llm = OpenAILLM(model="batch-model", base_url="{server.base_url}", api_key="k",
                        use_offline_batch_generation=True, jobs_ids={llm.jobs_ids!r})
        llm.load()
        for _ in range(10):
            try:
                outputs = llm.offline_batch_generate()
                break
            except DistilabelOfflineBatchGenerationNotFinishedException:
                pass
        print([o["generations"][0] for o in outputs])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['echo: x', 'echo: y', 'echo: z']"


def test_no_inputs_and_no_jobs_is_an_error(server: Any) -> None:
    with pytest.raises(ValueError, match="No `inputs` were provided and no `jobs_ids` were found."):
        batch_llm(server).offline_batch_generate()


def test_ctrl_c_while_polling_the_batch_api(server: Any) -> None:
    result = run_python(
        f"""
        import os, signal, threading, time
        from distilabel_rs import OpenAILLM
        from distilabel_rs.exceptions import DistilabelOfflineBatchGenerationNotFinishedException
        llm = OpenAILLM(model="m", base_url="{server.base_url}", api_key="k",
                        use_offline_batch_generation=True,
                        offline_batch_generation_block_until_done=3600)
        llm.load()
        threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        try:
            llm.generate_outputs(inputs=[[{{"role": "user", "content": "hi"}}]])
        except DistilabelOfflineBatchGenerationNotFinishedException as e:
            print(e.jobs_ids, time.monotonic() - started < 2.0)
        """,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "True" and "batch_" in result.stdout


def test_a_failed_job_never_shifts_the_other_rows(server: Any) -> None:
    llm = batch_llm(server)
    # Two jobs: rows 0-1 in the first (rejected as a whole), row 2 in the second.
    inputs = chats("[[reject_batch]] a", "b", "c")
    requests = [
        (str(i), "chat", {"model": "batch-model", "messages": message})
        for i, message in enumerate(inputs)
    ]
    # Two rows per file: the rejected job holds rows 0 and 1, the other row 2.
    small_files = _core.NativeClient(
        "openai", server.base_url, api_key="k", profile={"batch": {"max_rows": 2}}
    )
    first = _core.BatchJobs(small_files).submit(requests, name="p", metadata={})
    llm.jobs_ids = tuple(first)
    assert len(llm.jobs_ids) == 2
    outputs = poll(llm, inputs)
    assert outputs[0]["generations"] == [None] and outputs[1]["generations"] == [None]
    assert (
        outputs[0]["error"][0].startswith("The batch job batch_")
        and "failed" in outputs[0]["error"][0]
    )
    assert outputs[2]["generations"] == ["echo: c"]


def test_batch_progress_bar(server: Any, capsys: pytest.CaptureFixture) -> None:
    llm = batch_llm(server, offline_batch_generation_block_until_done=0, progress_bar=True)
    llm.generate_outputs(inputs=chats("a", "b", "c"))
    assert "3/3" in capsys.readouterr().err
    assert llm._native.batch_reporter is None  # closed once the results are in
