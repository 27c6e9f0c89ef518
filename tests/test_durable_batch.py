"""Batch submissions survive kills: a kill at any moment of a submission, followed by a
re-run, never creates a second job for the same requests and loses no job — for the
`distilabel-rs generate --batch-api` command and for `offline_batch_generate`, with
OpenAI-format batches (Files + Batches) and Anthropic's Message Batches.

Kills are real: `DISTILABEL_RS_KILL_AT=<point>` ends the process at that point as a SIGKILL
would (`after-upload`, `before-create`, `after-create`, `mid-state-write[:n]`,
`after-submit`, `after-resubmit`), and a `[[slow_create=MS]]` request makes the mock record
the job and then hold its answer, while the test SIGKILLs the client waiting for it. The
mock server runs in the test process; the clients are subprocesses.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from distilabel_rs import _core
from tests.conftest import REPO

KILLED = (137, -signal.SIGKILL)
MODEL = "claude-3-5-sonnet-20241022"


@pytest.fixture
def server() -> Any:
    mock = _core.MockServer(record=True)
    yield mock
    mock.stop()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """XDG_CACHE_HOME of the subprocesses: journals and Anthropic's copies go there."""
    path = tmp_path / "cache"
    path.mkdir()
    return path


def write_lines(path: Path, records: List[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def chat(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def env(cache: Path, kill_at: Optional[str] = None) -> Dict[str, str]:
    values = {
        **os.environ,
        "DISTILABEL_RS_STANDALONE": "1",
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "XDG_CACHE_HOME": str(cache),
    }
    values.pop("DISTILABEL_RS_KILL_AT", None)
    if kill_at is not None:
        values["DISTILABEL_RS_KILL_AT"] = kill_at
    return values


def command(source: Path, output: Path, server: Any, provider: str, *extra: str) -> List[str]:
    base_url = server.base_url if provider == "openai" else server.origin
    return [
        sys.executable,
        "-m",
        "distilabel_rs",
        "generate",
        str(source),
        "-o",
        str(output),
        "--model",
        MODEL if provider == "anthropic" else "m",
        "--provider",
        provider,
        "--base-url",
        base_url,
        "--batch-api",
        "--no-progress",
        *extra,
    ]


def run(arguments: List[str], environment: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        arguments, capture_output=True, text=True, timeout=300, cwd=REPO, env=environment
    )


def get(server: Any, path: str) -> Any:
    with urllib.request.urlopen(server.origin + path, timeout=30) as answer:  # noqa: S310
        return json.loads(answer.read())


def unused_uploads(server: Any) -> List[str]:
    """Uploaded request files that no batch uses (output files are not uploads)."""
    files = get(server, "/v1/files?purpose=batch")["data"]
    used = {batch["input_file_id"] for batch in get(server, "/v1/batches?limit=100")["data"]}
    return [f["id"] for f in files if f["id"] not in used]


def collect(arguments: List[str], environment: Dict[str, str], output: Path) -> List[str]:
    """Re-runs the command with --wait; returns the custom ids of OUTPUT."""
    result = run([*arguments, "--wait", "--poll-interval", "0"], environment)
    assert result.returncode == 0, result.stderr
    return [json.loads(line)["custom_id"] for line in output.read_text().splitlines()]


def kill_while_creating(arguments: List[str], environment: Dict[str, str], server: Any) -> None:
    """Starts the command and SIGKILLs it while the mock holds its create call (the job
    exists at the provider, its id is not recorded)."""
    process = subprocess.Popen(
        arguments, cwd=REPO, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while not server.batch_ids() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.batch_ids(), "the job was never created"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


# ---- the command, OpenAI-format batches ------------------------------------------------


@pytest.mark.parametrize(
    "kill_at",
    [
        "after-upload",  # a file exists whose id was never recorded
        "before-create",  # the file is recorded, no job
        "during-create",  # the job exists, the client was waiting for its id
        "after-create",  # the job exists, its id not recorded yet
        "mid-state-write:4",  # killed while writing the job id into the state file
        "mid-state-write:1",  # killed while writing the very first record
    ],
)
def test_the_command_killed_while_submitting_never_pays_twice(
    tmp_path: Path, server: Any, cache: Path, kill_at: str
) -> None:
    texts = ["a", "b", "c"]
    if kill_at == "during-create":
        texts[0] = "[[slow_create=30000]] a"
    source = write_lines(tmp_path / "in.jsonl", [chat(text) for text in texts])
    output = tmp_path / "out.jsonl"
    arguments = command(source, output, server, "openai")
    if kill_at == "during-create":
        kill_while_creating(arguments, env(cache), server)
    else:
        killed = run(arguments, env(cache, kill_at))
        assert killed.returncode in KILLED, killed.stderr
    state = tmp_path / "out.jsonl.batch.json"
    if state.exists():
        json.loads(state.read_text())  # never torn

    ids = collect(arguments, env(cache), output)
    assert sorted(ids) == ["1", "2", "3"]
    assert len(server.batch_ids()) == 1, server.batch_ids()
    assert unused_uploads(server) == []
    assert json.loads(state.read_text())["jobs_ids"] == server.batch_ids()
    # A further run only collects: nothing is submitted again.
    again = run([*arguments, "--wait", "--poll-interval", "0"], env(cache))
    assert again.returncode == 0 and "collecting batch jobs" in again.stderr
    assert len(server.batch_ids()) == 1


def test_a_killed_state_write_leaves_the_previous_state_whole(
    tmp_path: Path, server: Any, cache: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", [chat("a")])
    output = tmp_path / "out.jsonl"
    arguments = command(source, output, server, "openai")
    killed = run(arguments, env(cache, "mid-state-write:4"))
    assert killed.returncode in KILLED
    state = json.loads((tmp_path / "out.jsonl.batch.json").read_text())
    chunk = state["submissions"][0]["chunks"][0]
    # The write that would have recorded the job id did not happen; the one before did.
    assert "job_id" not in chunk and chunk["file_id"] and chunk["create_started"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # the torn copy
    assert collect(arguments, env(cache), output) == ["1"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(server.batch_ids()) == 1


def test_a_kill_between_two_jobs_resumes_with_the_second(
    tmp_path: Path, server: Any, cache: Path
) -> None:
    # 50,001 requests: two files (50,000 + 1), two jobs.
    count = 50_001
    source = write_lines(tmp_path / "in.jsonl", [chat(f"q{i}") for i in range(count)])
    output = tmp_path / "out.jsonl"
    arguments = command(source, output, server, "openai")
    killed = run(arguments, env(cache, "after-upload:2"))
    assert killed.returncode in KILLED, killed.stderr
    assert len(server.batch_ids()) == 1  # the first job was created before the kill
    ids = collect(arguments, env(cache), output)
    assert len(ids) == len(set(ids)) == count
    assert len(server.batch_ids()) == 2
    assert unused_uploads(server) == []


def test_a_create_answered_by_an_error_after_creating_is_not_retried_blindly(
    tmp_path: Path, server: Any, cache: Path
) -> None:
    """The client's timeout fires while the mock holds a create it already recorded: the
    lookup finds the job, no second create is sent."""
    source = write_lines(tmp_path / "in.jsonl", [chat("[[slow_create=3000]] a")])
    output = tmp_path / "out.jsonl"
    arguments = command(source, output, server, "openai", "--timeout", "1")
    assert collect(arguments, env(cache), output) == ["1"]
    calls = [r["method"] for r in server.recorded_requests() if r["path"] == "/v1/batches"]
    assert calls.count("POST") == 1, "one create, never repeated"
    assert "GET" in calls, "the job was looked up after the timeout"
    assert len(server.batch_ids()) == 1


def test_a_resubmission_killed_midway_is_resumed_not_repeated(
    tmp_path: Path, server: Any, cache: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", [chat("a"), chat("[[expire]] b"), chat("c")])
    output = tmp_path / "out.jsonl"
    arguments = command(source, output, server, "openai")
    # The first job expires one row; its resubmission is killed once created.
    first = run([*arguments, "--wait", "--poll-interval", "0"], env(cache, "after-create:2"))
    assert first.returncode in KILLED, first.stderr
    assert len(server.batch_ids()) == 2
    assert sorted(collect(arguments, env(cache), output)) == ["1", "2", "3"]
    assert len(server.batch_ids()) == 2


# ---- the command, Anthropic Message Batches -------------------------------------------


@pytest.mark.parametrize("kill_at", ["during-create", "after-create", "mid-state-write:3"])
def test_the_command_with_message_batches_never_pays_twice(
    tmp_path: Path, server: Any, cache: Path, kill_at: str
) -> None:
    texts = ["a", "b"]
    if kill_at == "during-create":
        texts[0] = "[[slow_create=30000]] a"
    source = write_lines(tmp_path / "in.jsonl", [chat(text) for text in texts])
    output = tmp_path / "out.jsonl"
    arguments = command(source, output, server, "anthropic")
    if kill_at == "during-create":
        kill_while_creating(arguments, env(cache), server)
    else:
        killed = run(arguments, env(cache, kill_at))
        assert killed.returncode in KILLED, killed.stderr
    assert sorted(collect(arguments, env(cache), output)) == ["1", "2"]
    assert len(server.batch_ids()) == 1, server.batch_ids()
    store = cache / "distilabel-rs" / "message-batches"
    # The local copy was kept under the batch's id, then removed once every row was in.
    assert not store.exists() or not list(store.iterdir())


def test_a_message_batch_that_cannot_be_told_apart_stops_the_submission(
    tmp_path: Path, server: Any, cache: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", [chat("a")])
    output = tmp_path / "out.jsonl"
    arguments = command(source, output, server, "anthropic")
    killed = run(arguments, env(cache, "after-create"))
    assert killed.returncode in KILLED
    # Another client creates a batch of the same size in the same minutes.
    other = write_lines(tmp_path / "other.jsonl", [chat("z")])
    others = run(command(other, tmp_path / "o.jsonl", server, "anthropic"), env(cache))
    assert others.returncode == 0, others.stderr
    ambiguous = run([*arguments, "--wait", "--poll-interval", "0"], env(cache))
    assert ambiguous.returncode == 2, ambiguous.stderr
    assert "msgbatch_0" in ambiguous.stderr and "msgbatch_1" in ambiguous.stderr
    assert len(server.batch_ids()) == 2  # nothing created on a guess


# ---- offline_batch_generate ------------------------------------------------------------

LLM_SCRIPT = """
import json, sys
from distilabel_rs import AnthropicLLM, OpenAILLM
from distilabel_rs.exceptions import DistilabelOfflineBatchGenerationNotFinishedException

kind, base_url, inputs, jobs_ids, rounds = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), \
    json.loads(sys.argv[4]), int(sys.argv[5])
if kind == "openai":
    llm = OpenAILLM(model="m", base_url=base_url, api_key="sk", use_offline_batch_generation=True)
else:
    llm = AnthropicLLM(model="{model}", base_url=base_url, api_key="sk",
                       use_offline_batch_generation=True)
llm.load()
llm.jobs_ids = tuple(jobs_ids) or None
for _ in range(rounds):
    try:
        outputs = llm.offline_batch_generate(inputs=inputs)
    except DistilabelOfflineBatchGenerationNotFinishedException:
        print("JOBS " + json.dumps(list(llm.jobs_ids)), flush=True)
        continue
    print("OUT " + json.dumps([o["generations"] for o in outputs]), flush=True)
    break
""".replace("{model}", MODEL)


def offline(
    kind: str,
    server: Any,
    inputs: Any,
    cache: Path,
    kill_at: Optional[str] = None,
    jobs_ids: List[str] = (),  # type: ignore[assignment]
    rounds: int = 10,
) -> subprocess.CompletedProcess:
    base_url = server.base_url if kind == "openai" else server.origin
    arguments = [kind, base_url, json.dumps(inputs), json.dumps(list(jobs_ids)), str(rounds)]
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-c", LLM_SCRIPT, *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env(cache, kill_at),
    )


def outputs_of(result: subprocess.CompletedProcess) -> Any:
    assert result.returncode == 0, result.stderr[-3000:]
    line = [line for line in result.stdout.splitlines() if line.startswith("OUT ")][-1]
    return json.loads(line[4:])


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("kill_at", [None, "after-submit", "after-create"])
def test_offline_generation_killed_before_its_jobs_were_cached_pays_once(
    server: Any, cache: Path, kind: str, kill_at: Optional[str]
) -> None:
    """`None`: the first run ends with the jobs running and nothing keeps their ids (as
    when distilabel is killed before caching `jobs_ids`); `after-submit`: killed right after
    the ids were returned; `after-create`: killed inside the submission."""
    inputs = [[{"role": "user", "content": f"q{i}"}] for i in range(3)]
    first = offline(kind, server, inputs, cache, kill_at=kill_at, rounds=1)
    if kill_at is None:
        assert first.returncode == 0 and "JOBS " in first.stdout, first.stderr[-3000:]
    else:
        assert first.returncode in KILLED, first.stderr[-3000:]
    assert len(server.batch_ids()) == 1
    outputs = outputs_of(offline(kind, server, inputs, cache))
    assert outputs == [[f"echo: q{i}"] for i in range(3)]
    assert len(server.batch_ids()) == 1, server.batch_ids()
    # Collected: the journal is forgotten, so the same requests later are a new run.
    assert not list((cache / "distilabel-rs" / "batch-submissions").glob("*.json"))


def test_offline_resubmission_killed_before_its_jobs_were_cached_pays_once(
    server: Any, cache: Path
) -> None:
    inputs = [[{"role": "user", "content": "a"}], [{"role": "user", "content": "[[expire]] b"}]]
    first = offline("openai", server, inputs, cache, rounds=1)
    first_jobs = json.loads(first.stdout.split("JOBS ")[-1])
    assert first_jobs == server.batch_ids()
    # Polls until the job expired a row and the row was resubmitted, then dies before the
    # new job id was kept anywhere (distilabel's cache still has only the first job).
    killed = offline("openai", server, inputs, cache, kill_at="after-resubmit", jobs_ids=first_jobs)
    assert killed.returncode in KILLED, killed.stderr[-3000:]
    assert len(server.batch_ids()) == 2
    outputs = outputs_of(offline("openai", server, inputs, cache, jobs_ids=first_jobs))
    assert outputs == [["echo: a"], ["echo: [[expire]] b"]]
    assert len(server.batch_ids()) == 2, server.batch_ids()


def test_identical_requests_already_collected_are_a_new_submission(
    server: Any, cache: Path
) -> None:
    inputs = [[{"role": "user", "content": "x"}]]
    assert outputs_of(offline("openai", server, inputs, cache)) == [["echo: x"]]
    assert outputs_of(offline("openai", server, inputs, cache)) == [["echo: x"]]
    assert len(server.batch_ids()) == 2
