"""The `distilabel-rs` command, run as users run it (a subprocess)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from distilabel_rs import _core
from tests.conftest import REPO

ENV = {**os.environ, "DISTILABEL_RS_STANDALONE": "1"}
EXIT_INTERRUPTED = 130


def cli(*args: str, timeout: float = 300, env: dict = ENV) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distilabel_rs", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )


def write_lines(path: Path, records: List[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def read_output(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_mock_end_to_end_with_both_input_formats(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        [
            {"messages": [{"role": "user", "content": "hello"}]},
            {"prompt": "complete me", "max_tokens": 5},
            {
                "custom_id": "req-9",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "other", "messages": [{"role": "user", "content": "hi"}]},
            },
        ],
    )
    result = cli(
        "generate",
        str(source),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--model",
        "m",
        "--mock",
        "--num-generations",
        "2",
    )
    assert result.returncode == 0, result.stderr
    rows = {row["custom_id"]: row for row in read_output(tmp_path / "out.jsonl")}
    assert set(rows) == {"1", "2", "req-9"}
    chat = rows["1"]["response"]["body"]
    assert [c["message"]["content"] for c in chat["choices"]] == ["echo: hello"] * 2
    assert chat["model"] == "m" and rows["req-9"]["response"]["body"]["model"] == "other"
    assert rows["2"]["response"]["body"]["choices"][0]["text"] == " echo: complete me"
    assert all(
        row["response"]["status_code"] == 200 and row["error"] is None for row in rows.values()
    )
    assert "requests: 3 (3 succeeded, 0 failed)" in result.stderr
    assert "requests/s" in result.stderr


def test_sigkill_mid_run_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    count = 2000
    source = write_lines(
        tmp_path / "in.jsonl",
        [
            {"messages": [{"role": "user", "content": f"[[sleep_ms=25]] q{i}"}]}
            for i in range(count)
        ],
    )
    output = tmp_path / "out.jsonl"
    args = [
        sys.executable,
        "-m",
        "distilabel_rs",
        "generate",
        str(source),
        "-o",
        str(output),
        "--model",
        "m",
        "--mock",
        "--max-concurrency",
        "16",
        "--no-progress",
    ]
    process = subprocess.Popen(args, cwd=REPO, env=ENV, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill once some, but not all, results are written
        if output.exists() and output.read_text().count("\n") >= 200:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    first = read_output(output)  # every line left by the killed run is whole JSON
    assert 200 <= len(first) < count
    result = cli(
        "generate",
        str(source),
        "-o",
        str(output),
        "--model",
        "m",
        "--mock",
        "--max-concurrency",
        "64",
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    rows = read_output(output)
    ids = [row["custom_id"] for row in rows]
    assert len(ids) == len(set(ids)) == count
    assert rows[: len(first)] == first  # what the first run wrote is kept as it was
    assert f"skipped (already in {output}): {len(first)}" in result.stderr


def test_ctrl_c_keeps_every_result_that_came_back(tmp_path: Path) -> None:
    """Ctrl-C abandons the requests in flight only: every result the server had sent
    back by then is in the output, and a re-run finishes the job without a duplicate."""
    count, concurrency = 3000, 16
    source = write_lines(
        tmp_path / "in.jsonl",
        [
            {"messages": [{"role": "user", "content": f"[[sleep_ms=20]] q{i}"}]}
            for i in range(count)
        ],
    )
    output = tmp_path / "out.jsonl"
    mock = _core.MockServer()
    try:
        args = ["generate", str(source), "-o", str(output), "--model", "m"]
        args += ["--base-url", mock.base_url, "--max-concurrency", str(concurrency)]
        process = subprocess.Popen(
            [sys.executable, "-m", "distilabel_rs", *args, "--no-progress"],
            cwd=REPO,
            env={**ENV, "OPENAI_API_KEY": "sk-test"},
            stderr=subprocess.PIPE,
            text=True,
            # A terminal's Ctrl-C, even where the test runner's children ignore SIGINT.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 60
        while not (output.exists() and output.read_text().count("\n") >= 200):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == EXIT_INTERRUPTED, stderr
        assert "interrupted; finished results are in" in stderr
        first = read_output(output)  # whole lines only
        # Sent and not written: at most the requests in flight when Ctrl-C came.
        assert mock.requests - concurrency <= len(first) < count
        result = cli(*args, "--no-progress", env={**ENV, "OPENAI_API_KEY": "sk-test"})
        assert result.returncode == 0, result.stderr
        ids = [row["custom_id"] for row in read_output(output)]
        assert len(ids) == len(set(ids)) == count
    finally:
        mock.stop()


def test_a_line_cut_by_a_kill_is_dropped_and_redone(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [{"prompt": "a"}, {"prompt": "b"}])
    output = tmp_path / "out.jsonl"
    cli("generate", str(source), "-o", str(output), "--model", "m", "--mock", "--no-progress")
    whole = output.read_text().splitlines()
    output.write_text(whole[0] + "\n" + whole[1][:20])  # as if killed mid-write
    result = cli("generate", str(source), "-o", str(output), "--model", "m", "--mock")
    assert result.returncode == 0, result.stderr
    assert sorted(row["custom_id"] for row in read_output(output)) == ["1", "2"]


def _peak_rss_kib(*args: str) -> int:
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's (pytest's) peak.
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['distilabel-rs', *{list(args)!r}]\n"
        "try:\n    runpy.run_module('distilabel_rs', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "status = open('/proc/self/status').read().splitlines()\n"
        "print(next(l.split()[1] for l in status if l.startswith('VmHWM')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO, env=ENV
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


def test_memory_stays_flat_with_a_100k_line_input(tmp_path: Path) -> None:
    peaks = {}
    for count in (10_000, 100_000):
        source = write_lines(
            tmp_path / f"in{count}.jsonl",
            [
                {"messages": [{"role": "user", "content": f"question number {i} " + "x" * 200}]}
                for i in range(count)
            ],
        )
        output = tmp_path / f"out{count}.jsonl"
        peaks[count] = _peak_rss_kib(
            "generate", str(source), "-o", str(output), "--model", "m", "--mock", "--no-progress"
        )
        assert output.read_text().count("\n") == count
    # Ten times the lines (about 30 MB more input, 60 MB more output): the peak barely moves
    # (the ids of finished requests are all that grows).
    assert peaks[100_000] < peaks[10_000] * 1.3 + 20_000, peaks


def test_malformed_lines_stop_or_are_skipped_and_reported(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"prompt": "a"}\n{"prompt": \n{"neither": 1}\n{"prompt": "b"}\n')
    stop = cli("generate", str(source), "-o", str(tmp_path / "o1.jsonl"), "--model", "m", "--mock")
    assert stop.returncode == 2
    assert f"{source}:2: not valid JSON" in stop.stderr
    skip = cli(
        "generate",
        str(source),
        "-o",
        str(tmp_path / "o2.jsonl"),
        "--model",
        "m",
        "--mock",
        "--on-malformed",
        "skip",
    )
    assert skip.returncode == 0, skip.stderr
    assert "skipped malformed line 2: not valid JSON" in skip.stderr
    assert "skipped malformed line 3: expected a Batch API request" in skip.stderr
    assert len(read_output(tmp_path / "o2.jsonl")) == 2


def test_errors_and_exit_codes(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [{"prompt": "[[status=401]] x"}])
    missing = cli(
        "generate",
        str(tmp_path / "nope.jsonl"),
        "-o",
        str(tmp_path / "o.jsonl"),
        "--model",
        "m",
        "--mock",
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr
    env = {**ENV, "OPENAI_API_KEY": "sk-do-not-print-me"}
    unreachable = cli(
        "generate",
        str(source),
        "-o",
        str(tmp_path / "o.jsonl"),
        "--model",
        "m",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--max-retries",
        "0",
        env=env,
    )
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr
    # The mock answers 401 for this line: the key is refused.
    auth = cli(
        "generate", str(source), "-o", str(tmp_path / "o.jsonl"), "--model", "m", "--mock", env=env
    )
    assert auth.returncode == 4 and "refused the key" in auth.stderr
    for result in (unreachable, auth):
        assert "sk-do-not-print-me" not in result.stderr + result.stdout
    no_key = cli(
        "generate",
        str(source),
        "-o",
        str(tmp_path / "o.jsonl"),
        "--model",
        "m",
        env={k: v for k, v in ENV.items() if k != "OPENAI_API_KEY"},
    )
    assert no_key.returncode == 2 and "no API key" in no_key.stderr
    failed = cli(
        "generate",
        str(write_lines(tmp_path / "f.jsonl", [{"prompt": "[[status=500]] y"}])),
        "-o",
        str(tmp_path / "f.out"),
        "--model",
        "m",
        "--mock",
        "--max-retries",
        "0",
    )
    assert failed.returncode == 1 and "status_500: 1" in failed.stderr


def test_bench_compares_with_distilabel() -> None:
    result = cli("bench", "--requests", "300", env={**os.environ})
    assert result.returncode == 0, result.stderr
    assert "| distilabel_rs `OpenAILLM` |" in result.stdout
    assert "| distilabel 1.5.3 `OpenAILLM` |" in result.stdout
    assert "x the requests per second" in result.stdout


@pytest.mark.parametrize("entry", [["-m", "distilabel_rs"]])
def test_help(entry: list) -> None:
    result = subprocess.run(
        [sys.executable, *entry, "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=ENV,
        timeout=60,
    )
    assert result.returncode == 0 and "generate" in result.stdout


def test_batch_api_with_wait(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        [
            {"messages": [{"role": "user", "content": "hello"}]},
            {
                "custom_id": "a",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"messages": [{"role": "user", "content": "[[expire]] later"}]},
            },
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
        "m",
        "--mock",
        "--batch-api",
        "--wait",
        "--poll-interval",
        "0",
    )
    assert result.returncode == 1, result.stderr  # one request failed (400)
    rows = {row["custom_id"]: row for row in read_output(output)}
    assert set(rows) == {"1", "a", "3"}
    assert rows["a"]["response"]["status_code"] == 200  # expired once, resubmitted, done
    assert rows["3"]["response"]["status_code"] == 400
    state = json.loads((tmp_path / "out.jsonl.batch.json").read_text())
    assert len(state["jobs_ids"]) == 2
    assert "resubmitted 1 unfinished requests" in result.stderr


def test_batch_api_without_wait_keeps_the_job_ids(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [{"messages": [{"role": "user", "content": "x"}]}])
    result = cli(
        "generate",
        str(source),
        "-o",
        str(tmp_path / "o.jsonl"),
        "--model",
        "m",
        "--mock",
        "--batch-api",
    )
    assert result.returncode == 0, result.stderr
    assert "submitted batch jobs batch_" in result.stderr and "--wait" in result.stderr
    assert json.loads((tmp_path / "o.jsonl.batch.json").read_text())["jobs_ids"]
    prompts = write_lines(tmp_path / "p.jsonl", [{"prompt": "x"}])
    refused = cli(
        "generate",
        str(prompts),
        "-o",
        str(tmp_path / "p.out"),
        "--model",
        "m",
        "--mock",
        "--batch-api",
    )
    assert refused.returncode == 2 and "chat" in refused.stderr
