"""`AnthropicLLM` offline generation through Message Batches, and the command's
`--provider anthropic --batch-api`, against the local mock server."""

import json
import os
import shutil
from pathlib import Path
from typing import Any, List

import pytest

from distilabel_rs import AnthropicLLM, _core
from distilabel_rs._providers import PROVIDERS
from distilabel_rs.exceptions import DistilabelOfflineBatchGenerationNotFinishedException
from tests.conftest import run_python
from tests.test_cli import cli, read_output, write_lines

NotFinished = DistilabelOfflineBatchGenerationNotFinishedException
MODEL = "claude-3-5-sonnet-20241022"


@pytest.fixture
def server() -> Any:
    mock = _core.MockServer(record=True)
    yield mock
    mock.stop()


@pytest.fixture(autouse=True)
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The kept copies of the batches' requests go under the test's directory (the
    subprocesses inherit it)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "distilabel-rs" / "message-batches"


def batch_llm(server: Any, **kwargs: Any) -> AnthropicLLM:
    llm = AnthropicLLM(
        model=MODEL,
        base_url=server.origin,
        api_key="sk-ant-batch",
        use_offline_batch_generation=True,
        **kwargs,
    )
    llm.load()
    return llm


def chats(*texts: str) -> List[Any]:
    return [[{"role": "user", "content": text}] for text in texts]


def poll(llm: AnthropicLLM, inputs: Any, rounds: int = 10, **kwargs: Any) -> Any:
    for _ in range(rounds):
        try:
            return llm.offline_batch_generate(inputs=inputs, **kwargs)
        except NotFinished:
            continue
    raise AssertionError("the batches never ended")


def created(server: Any) -> List[Any]:
    return [
        json.loads(r["body"])
        for r in server.recorded_requests()
        if r["method"] == "POST" and r["path"] == "/v1/messages/batches"
    ]


def test_first_call_creates_a_batch_and_later_calls_return_results_in_order(
    server: Any, store: Path
) -> None:
    llm = batch_llm(server)
    inputs = [
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"}],
        *chats("[[status=400]] second", "third"),
    ]
    with pytest.raises(NotFinished) as info:
        llm.generate_outputs(inputs=inputs, temperature=0.3, top_k=4)
    assert info.value.jobs_ids == llm.jobs_ids == ("msgbatch_0",)
    requests = created(server)[0]["requests"]
    assert requests[0] == {
        "custom_id": "0",
        "params": {
            "max_tokens": 128,
            "messages": [{"role": "user", "content": "first"}],
            "model": MODEL,
            "temperature": 0.3,
            "system": "be brief",
            "top_k": 4,
        },
    }
    assert [r["custom_id"] for r in requests] == ["0", "1", "2"]
    assert sorted(os.listdir(store)) == ["msgbatch_0.jsonl"]  # kept until the results are in

    outputs = poll(llm, inputs)
    assert outputs[0] == {
        "generations": ["echo: first"],
        "statistics": {"input_tokens": [3], "output_tokens": [2]},
    }
    assert outputs[2]["generations"] == ["echo: third"]
    assert outputs[1]["generations"] == [None]
    assert outputs[1]["error"] == ["invalid_request_error: Scripted failure with status 400"]
    assert os.listdir(store) == []
    results = [r for r in server.recorded_requests() if r["path"].endswith("/results")]
    assert results[0]["path"] == "/v1/messages/batches/msgbatch_0/results"
    assert ("x-api-key", "sk-ant-batch") in results[0]["headers"]


def test_results_come_back_unordered_and_are_matched_by_custom_id(server: Any) -> None:
    import urllib.request

    llm = batch_llm(server)
    inputs = chats(*[f"question {i}" for i in range(40)])
    outputs = poll(llm, inputs)
    assert [o["generations"] for o in outputs] == [[f"echo: question {i}"] for i in range(40)]
    request = urllib.request.Request(
        f"{server.origin}/v1/messages/batches/{llm.jobs_ids[0]}/results",
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        order = [json.loads(line)["custom_id"] for line in answer.read().splitlines()]
    assert sorted(order) == sorted(str(i) for i in range(40))
    assert order != [str(i) for i in range(40)]  # the server's order is not the inputs'


def test_num_generations_are_rows_grouped_like_online(server: Any) -> None:
    inputs = [
        *chats("a", "[[status=500 times=1]] flaky"),
        [{"role": "system", "content": "s"}, {"role": "user", "content": "c"}],
    ]
    online = AnthropicLLM(model=MODEL, base_url=server.origin, api_key="k", max_retries=0)
    online.load()
    expected = online.generate(chats("a", "b", "c"), num_generations=3)
    llm = batch_llm(server)
    with pytest.raises(NotFinished):
        llm.offline_batch_generate(inputs=chats("a", "b", "c"), num_generations=3)
    assert [r["custom_id"] for r in created(server)[0]["requests"]] == [
        f"{i}-{g}" for i in range(3) for g in range(3)
    ]
    assert poll(llm, chats("a", "b", "c"), num_generations=3) == expected
    assert expected[0]["generations"] == ["echo: a"] * 3
    assert [len(v) for v in expected[0]["statistics"].values()] == [3, 3]  # one per request
    # A failed generation stays in its place, with its message.
    llm = batch_llm(server)
    outputs = poll(llm, inputs, num_generations=2)
    assert outputs[1]["generations"] == [None, None]
    assert outputs[1]["error"] == ["api_error: Scripted failure with status 500"] * 2
    assert outputs[1]["statistics"] == {"input_tokens": [None, None], "output_tokens": [None, None]}
    assert outputs[2]["generations"] == ["echo: c"] * 2


def test_expired_rows_are_submitted_again_and_nothing_shifts(server: Any) -> None:
    llm = batch_llm(server)
    inputs = chats("a", "[[expire]] b", "c", "[[expire]] d")
    outputs = poll(llm, inputs)
    assert [o["generations"][0] for o in outputs] == [
        "echo: a",
        "echo: [[expire]] b",
        "echo: c",
        "echo: [[expire]] d",
    ]
    assert llm.jobs_ids == ("msgbatch_0", "msgbatch_1")
    again = created(server)[1]["requests"]
    assert [r["custom_id"] for r in again] == ["1", "3"]
    assert again[0]["params"]["messages"] == inputs[1]


def test_a_canceled_batch_resumes_with_its_unfinished_rows(server: Any) -> None:
    llm = batch_llm(server)
    inputs = chats("a", "b")
    with pytest.raises(NotFinished):
        llm.offline_batch_generate(inputs=inputs)
    llm.cancel_offline_batch_generation()
    cancels = [r["path"] for r in server.recorded_requests() if r["path"].endswith("/cancel")]
    assert cancels == ["/v1/messages/batches/msgbatch_0/cancel"]
    outputs = poll(llm, inputs)
    assert [o["generations"] for o in outputs] == [["echo: a"], ["echo: b"]]
    assert len(llm.jobs_ids) == 2


def test_batches_split_at_the_profiles_limits(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PROVIDERS["anthropic"].profile, "batch", {"max_requests": 2})
    llm = batch_llm(server)
    inputs = chats(*[f"q{i}" for i in range(5)])
    with pytest.raises(NotFinished):
        llm.offline_batch_generate(inputs=inputs)
    assert len(llm.jobs_ids) == 3
    assert [len(b["requests"]) for b in created(server)] == [2, 2, 1]
    outputs = poll(llm, inputs)
    assert [o["generations"][0] for o in outputs] == [f"echo: q{i}" for i in range(5)]

    monkeypatch.setitem(PROVIDERS["anthropic"].profile, "batch", {"max_bytes": 600})
    llm = batch_llm(server)
    with pytest.raises(NotFinished):
        llm.offline_batch_generate(inputs=inputs)
    bodies = [r["body"] for r in server.recorded_requests()[-len(llm.jobs_ids) :]]
    assert len(llm.jobs_ids) > 1 and all(len(body.encode()) <= 600 for body in bodies)
    assert [o["generations"][0] for o in poll(llm, inputs)] == [f"echo: q{i}" for i in range(5)]


def test_batches_split_at_one_hundred_thousand_requests(server: Any) -> None:
    llm = batch_llm(server)
    inputs = chats(*[f"q{i}" for i in range(100_001)])
    with pytest.raises(NotFinished):
        llm.offline_batch_generate(inputs=inputs)
    assert len(llm.jobs_ids) == 2
    outputs = poll(llm, inputs)
    assert len(outputs) == 100_001
    assert outputs[100_000]["generations"] == ["echo: q100000"]
    assert outputs[54_321]["generations"] == ["echo: q54321"]


def test_batch_ids_alone_collect_and_resubmit_in_a_new_process(server: Any) -> None:
    llm = batch_llm(server)
    with pytest.raises(NotFinished):
        llm.offline_batch_generate(inputs=chats("x", "[[expire]] y", "z"), num_generations=2)
    result = run_python(
        f"""
        from distilabel_rs import AnthropicLLM
        from distilabel_rs.exceptions import DistilabelOfflineBatchGenerationNotFinishedException
        llm = AnthropicLLM(model="m", base_url="{server.origin}", api_key="k",
                           use_offline_batch_generation=True, jobs_ids={llm.jobs_ids!r})
        llm.load()
        for _ in range(10):
            try:
                outputs = llm.offline_batch_generate()
                break
            except DistilabelOfflineBatchGenerationNotFinishedException:
                pass
        print(len(llm.jobs_ids), [o["generations"] for o in outputs])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "2 [['echo: x', 'echo: x'], ['echo: [[expire]] y', 'echo: [[expire]] y'],"
        " ['echo: z', 'echo: z']]"
    )


def test_rows_the_store_lost_are_rebuilt_from_the_inputs_or_reported(
    server: Any, store: Path
) -> None:
    inputs = chats("a", "[[expire]] b")
    llm = batch_llm(server)
    with pytest.raises(NotFinished):
        llm.offline_batch_generate(inputs=inputs)
    shutil.rmtree(store)  # another machine, a cleared cache
    outputs = poll(llm, inputs)
    assert [o["generations"][0] for o in outputs] == ["echo: a", "echo: [[expire]] b"]
    assert created(server)[1]["requests"][0]["custom_id"] == "1"

    llm = batch_llm(server)
    with pytest.raises(NotFinished):
        llm.offline_batch_generate(inputs=chats("c", "[[expire]] d"))
    shutil.rmtree(store)
    outputs = poll(llm, None)
    assert outputs[0]["generations"] == ["echo: c"]
    assert outputs[1]["generations"] == [None]
    assert "pass the same `inputs`" in outputs[1]["error"][0]


def test_no_inputs_and_no_jobs_is_an_error(server: Any) -> None:
    with pytest.raises(ValueError, match="No `inputs` were provided and no `jobs_ids` were found."):
        batch_llm(server).offline_batch_generate()


def test_polling_until_done_reports_request_counts(server: Any) -> None:
    llm = batch_llm(server, offline_batch_generation_block_until_done=0)
    progress: list = []
    llm.set_progress_callback(progress.append)
    outputs = llm.generate_outputs(inputs=chats("a", "b", "[[status=429]] c"), num_generations=2)
    assert [o["generations"] for o in outputs[:2]] == [["echo: a"] * 2, ["echo: b"] * 2]
    assert progress[0].total == 6 and progress[0].done == 0  # while in progress
    assert (progress[-1].total, progress[-1].done, progress[-1].failed) == (6, 4, 2)


def test_structured_output_in_batches(server: Any) -> None:
    schema = {"title": "Answer", "type": "object", "properties": {"ok": {"type": "boolean"}}}
    llm = batch_llm(server, structured_output={"schema": schema})
    outputs = poll(llm, chats('[[content={"ok":true}]] q'))
    assert outputs[0]["generations"] == ['{"ok":true}']
    params = created(server)[0]["requests"][0]["params"]
    assert params["tool_choice"] == {"type": "tool", "name": "Answer"}


def test_the_command_with_batch_api_and_wait(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": "hello"},
                ]
            },
            {"custom_id": "a", "body": {"messages": [{"role": "user", "content": "[[expire]] x"}]}},
            {"messages": [{"role": "user", "content": "[[status=400]] bad"}]},
        ],
    )
    output = tmp_path / "out.jsonl"
    result = cli(
        "generate",
        str(source),
        "-o",
        str(output),
        "--model",
        MODEL,
        "--provider",
        "anthropic",
        "--mock",
        "--batch-api",
        "--wait",
        "--poll-interval",
        "0",
        env={**os.environ, "DISTILABEL_RS_STANDALONE": "1"},
    )
    assert result.returncode == 1, result.stderr  # one request errored
    rows = {row["custom_id"]: row for row in read_output(output)}
    assert set(rows) == {"1", "a", "3"}
    assert rows["1"]["result"]["type"] == "succeeded"
    assert rows["1"]["result"]["message"]["content"][0]["text"] == "echo: hello"
    assert rows["a"]["result"]["type"] == "succeeded"  # expired once, resubmitted
    assert rows["3"]["result"]["type"] == "errored"
    assert "resubmitted 1 unfinished requests" in result.stderr
    assert "requests: 3 (1 failed)" in result.stderr
    assert len(json.loads((tmp_path / "out.jsonl.batch.json").read_text())["jobs_ids"]) == 2


def test_the_command_rebuilds_lost_rows_from_input(
    tmp_path: Path, server: Any, store: Path
) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        [
            {"messages": [{"role": "user", "content": "kept"}]},
            {"messages": [{"role": "user", "content": "[[expire]] lost"}], "max_tokens": 9},
        ],
    )
    output = tmp_path / "out.jsonl"
    env = {**os.environ, "DISTILABEL_RS_STANDALONE": "1", "ANTHROPIC_API_KEY": "sk-ant"}
    arguments = [
        "generate",
        str(source),
        "-o",
        str(output),
        "--model",
        MODEL,
        "--provider",
        "anthropic",
        "--base-url",
        server.origin,
        "--batch-api",
    ]
    submitted = cli(*arguments, env=env)
    assert submitted.returncode == 0, submitted.stderr
    assert "submitted batch jobs msgbatch_0 (2 requests)" in submitted.stderr
    params = created(server)[0]["requests"][1]["params"]
    assert params == {
        "messages": [{"role": "user", "content": "[[expire]] lost"}],
        "max_tokens": 9,
        "model": MODEL,
    }
    shutil.rmtree(store)
    collected = cli(*arguments, "--wait", "--poll-interval", "0", env=env)
    assert collected.returncode == 0, collected.stderr
    assert "resubmitted 1 unfinished requests" in collected.stderr
    rows = {row["custom_id"]: row["result"]["type"] for row in read_output(output)}
    assert rows == {"1": "succeeded", "2": "succeeded"}
    assert created(server)[1]["requests"][0]["params"]["max_tokens"] == 9
