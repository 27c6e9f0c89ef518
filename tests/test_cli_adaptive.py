"""`distilabel-rs generate --max-concurrency auto`, run as users run it (a subprocess),
against the mock server's capacity model (C served at once, C more queued, 429 beyond 2C)."""

import importlib.util
import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from distilabel_rs import _core
from tests.test_cli import ENV, cli, read_output, write_lines

# The adaptive limit's starting point (the Rust core's `adaptive::INITIAL_LIMIT`).
INITIAL_LIMIT = 8
KEY_ENV = {**ENV, "OPENAI_API_KEY": "sk-test"}


@pytest.fixture
def capacity_server() -> Iterator[Any]:
    server = _core.MockServer(capacity=32, base_latency_ms=20)
    yield server
    server.stop()


def chat_lines(path: Path, count: int) -> Path:
    return write_lines(
        path, [{"messages": [{"role": "user", "content": f"q{i}"}]} for i in range(count)]
    )


def generate(server: Any, source: Path, output: Path, *flags: str) -> Any:
    return cli(
        "generate",
        str(source),
        "-o",
        str(output),
        "--model",
        "m",
        "--base-url",
        server.base_url,
        *flags,
        env=KEY_ENV,
    )


def test_auto_grows_past_its_start_and_keeps_429s_rare(
    tmp_path: Path, capacity_server: Any
) -> None:
    count = 1500
    source = chat_lines(tmp_path / "in.jsonl", count)
    output = tmp_path / "out.jsonl"
    result = generate(capacity_server, source, output, "--max-concurrency", "auto")
    assert result.returncode == 0, result.stderr
    rows = read_output(output)
    ids = [row["custom_id"] for row in rows]
    assert sorted(ids) == sorted(str(i) for i in range(1, count + 1))  # each exactly once
    by_id = {row["custom_id"]: row for row in rows}
    assert by_id["5"]["response"]["body"]["choices"][0]["message"]["content"] == "echo: q4"
    assert f"requests: {count} ({count} succeeded, 0 failed)" in result.stderr
    found = re.search(r"concurrency: auto, limit peaked at (\d+) and ended at (\d+)", result.stderr)
    assert found, result.stderr
    peak, final = int(found[1]), int(found[2])
    assert peak > INITIAL_LIMIT and 1 <= final <= peak <= 1024
    # Few: an overshoot of the slow start (a doubling past twice the capacity, halved at
    # the first 429) costs up to a few dozen; a fixed limit far above it storms (below).
    assert capacity_server.rejected < count // 10
    if importlib.util.find_spec("tqdm") is not None:
        # The progress bar's last render shows the limit in force.
        assert f"limit={final}" in result.stderr


def test_a_fixed_limit_far_above_the_capacity_storms(tmp_path: Path, capacity_server: Any) -> None:
    count = 1500
    source = chat_lines(tmp_path / "in.jsonl", count)
    generate(capacity_server, source, tmp_path / "out.jsonl", "--max-concurrency", "256")
    # 192 of the first 256 are refused at once (the server holds twice its capacity of 32).
    assert capacity_server.rejected >= count // 10


def test_auto_with_a_ceiling_stays_under_it(tmp_path: Path, capacity_server: Any) -> None:
    source = chat_lines(tmp_path / "in.jsonl", 400)
    result = generate(
        capacity_server, source, tmp_path / "out.jsonl", "--max-concurrency", "auto:12"
    )
    assert result.returncode == 0, result.stderr
    found = re.search(r"concurrency: auto:12, limit peaked at (\d+)", result.stderr)
    assert found and int(found[1]) <= 12, result.stderr
    assert capacity_server.peak_in_flight <= 12
    assert len(read_output(tmp_path / "out.jsonl")) == 400


def test_a_fixed_limit_reports_no_adaptive_limit(tmp_path: Path, capacity_server: Any) -> None:
    source = chat_lines(tmp_path / "in.jsonl", 50)
    result = generate(capacity_server, source, tmp_path / "out.jsonl", "--max-concurrency", "16")
    assert result.returncode == 0, result.stderr
    assert "concurrency:" not in result.stderr and "limit=" not in result.stderr
    assert capacity_server.peak_in_flight <= 16


@pytest.mark.parametrize("bad", ["auto:0", "fast", "0", "-3", "auto:", "auto:x", "1.5"])
def test_a_bad_max_concurrency_exits_2_naming_the_flag(tmp_path: Path, bad: str) -> None:
    source = chat_lines(tmp_path / "in.jsonl", 1)
    result = cli(
        "generate",
        str(source),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--model",
        "m",
        "--mock",
        f"--max-concurrency={bad}",
    )
    assert result.returncode == 2, result.stderr
    assert "--max-concurrency" in result.stderr and "auto:N" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("bad", [None, 0, True, "quick", "auto:0"])
def test_the_job_rejects_a_bad_limit_naming_the_field(tmp_path: Path, bad: Any) -> None:
    client = _core.NativeClient("openai", "http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="max_concurrency"):
        _core.start_generate_job(
            client,
            str(tmp_path / "in.jsonl"),
            str(tmp_path / "out.jsonl"),
            defaults={"model": "m"},
            max_concurrency=bad,
            skip_malformed=False,
        )


def test_the_job_reports_its_limit_in_progress(tmp_path: Path, capacity_server: Any) -> None:
    source = chat_lines(tmp_path / "in.jsonl", 20)
    client = _core.NativeClient("openai", capacity_server.base_url, api_key="k")
    job = _core.start_generate_job(
        client,
        str(source),
        str(tmp_path / "out.jsonl"),
        defaults={"model": "m"},
        max_concurrency="auto:64",
        skip_malformed=False,
    )
    assert job.wait(60)
    progress = job.progress()
    assert len(progress) == 9 and progress[:3] == (20, 20, 0)
    summary = job.summary()
    assert progress[-1] == summary["final_limit"] and summary["peak_limit"] >= INITIAL_LIMIT
    assert json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])["error"] is None
