"""Write and read errors are errors: `distilabel-rs generate` stops at once (exit code 5)
with a message naming the file and the cause when OUTPUT cannot be written (disk full,
read-only, a directory, deleted or moved mid-run) or INPUT cannot be read (truncated
mid-run), keeps every line it already wrote whole, and a re-run once the cause is fixed
finishes the job with each custom id exactly once.

"Stops at once" is checked against requests that take 20 s each and are in flight when the
error happens: the command must end long before any of them could finish. Disk-full cases
use a real tiny tmpfs (root and mount rights needed: skipped with the reason otherwise) and
`/dev/full` (ENOSPC on every write, no rights needed).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

import pytest

from distilabel_rs import _core
from tests.conftest import REPO

ENV = {**os.environ, "DISTILABEL_RS_STANDALONE": "1", "OPENAI_API_KEY": "sk-test"}
EXIT_IO = 5
# In-flight requests of the failing runs take this long: a command that waited for them
# would end after it.
SLOW_MS = 20_000


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    mock = _core.MockServer()
    yield mock.base_url
    mock.stop()


def write_lines(path: Path, texts: List[str]) -> Path:
    records = [{"messages": [{"role": "user", "content": text}]} for text in texts]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def generate(
    base_url: str, source: Path, output: Path, *extra: str
) -> "tuple[subprocess.CompletedProcess, float]":
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "distilabel_rs",
            "generate",
            str(source),
            "-o",
            str(output),
            "--model",
            "m",
            "--base-url",
            base_url,
            "--no-progress",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=ENV,
    )
    return result, time.monotonic() - started


def ids_of(output: Path) -> List[str]:
    # Every line is whole JSON (a cut line would fail here).
    return [json.loads(line)["custom_id"] for line in output.read_text().splitlines()]


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path`; skips the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tiny tmpfs needs root and mount(8)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not allowed here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def slow(count: int) -> List[str]:
    return [f"[[sleep_ms={SLOW_MS}]] slow {i}" for i in range(count)]


def test_a_full_disk_stops_the_job_at_once_and_a_rerun_finishes_it(
    server: str, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "disk", "32k") as disk:
        # Five small results fit; the sixth (an echo of 48 KB) does not; eight requests are
        # still in flight for 20 s when the disk fills.
        texts = [f"small {i}" for i in range(5)]
        texts.append("[[sleep_ms=500]] " + "x" * 48_000)
        texts += slow(8)
        source = write_lines(tmp_path / "in.jsonl", texts)
        output = disk / "out.jsonl"
        failed, seconds = generate(server, source, output, "--max-concurrency", "16")
        assert failed.returncode == EXIT_IO, failed.stderr
        assert f"cannot write {output}: No space left on device" in failed.stderr
        assert seconds < SLOW_MS / 1000 / 2, seconds  # did not wait for the requests in flight
        assert sorted(ids_of(output)) == ["1", "2", "3", "4", "5"]  # whole lines, kept

        subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
        finished, _ = generate(server, source, output, "--max-concurrency", "16")
        assert finished.returncode == 0, finished.stderr
        ids = ids_of(output)
        assert len(ids) == len(set(ids)) == len(texts)


def test_dev_full_stops_the_job_at_once(server: str, tmp_path: Path) -> None:
    """ENOSPC on every write, without any rights: `/dev/full`."""
    source = write_lines(tmp_path / "in.jsonl", ["fast", *slow(8)])
    failed, seconds = generate(server, source, Path("/dev/full"), "--max-concurrency", "16")
    assert failed.returncode == EXIT_IO, failed.stderr
    assert "cannot write /dev/full: No space left on device" in failed.stderr
    assert seconds < SLOW_MS / 1000 / 2, seconds


def test_a_read_only_output_is_a_clear_error(server: str, tmp_path: Path) -> None:
    writable, read_only = tmp_path / "writable", tmp_path / "ro"
    writable.mkdir()
    read_only.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root (chmod does not stop root)")
    bound = subprocess.run(["mount", "--bind", "-o", "ro", str(writable), str(read_only)])
    if bound.returncode != 0:
        pytest.skip("bind mounts are not allowed here")
    source = write_lines(tmp_path / "in.jsonl", ["a", "b"])
    output = read_only / "out.jsonl"
    try:
        failed, _ = generate(server, source, output)
        assert failed.returncode == EXIT_IO, failed.stderr
        assert f"cannot write {output}: Read-only file system" in failed.stderr
    finally:
        subprocess.run(["umount", str(read_only)], capture_output=True)
    finished, _ = generate(server, source, output)
    assert finished.returncode == 0, finished.stderr
    assert sorted(ids_of(output)) == ["1", "2"]


def test_an_output_that_is_a_directory_is_a_clear_error(server: str, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", ["a"])
    output = tmp_path / "out.jsonl"
    output.mkdir()
    failed, _ = generate(server, source, output)
    assert failed.returncode == EXIT_IO, failed.stderr
    assert f"cannot write {output}: Is a directory" in failed.stderr


def _run_until(process: subprocess.Popen, output: Path, lines: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if output.exists() and output.read_text().count("\n") >= lines:
            return
        assert process.poll() is None, "the job ended before the test could act"
        time.sleep(0.02)
    raise AssertionError("the job wrote nothing")


def _start(server: str, source: Path, output: Path, concurrency: str) -> subprocess.Popen:
    arguments = [
        sys.executable,
        "-m",
        "distilabel_rs",
        "generate",
        str(source),
        "-o",
        str(output),
        "--model",
        "m",
        "--base-url",
        server,
        "--no-progress",
        "--max-concurrency",
        concurrency,
    ]
    return subprocess.Popen(
        arguments, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("how", ["moved", "deleted"])
def test_an_output_that_vanishes_mid_run_stops_the_job(
    server: str, tmp_path: Path, how: str
) -> None:
    count = 3000
    source = write_lines(tmp_path / "in.jsonl", [f"[[sleep_ms=20]] q{i}" for i in range(count)])
    directory = tmp_path / "results"
    directory.mkdir()
    output = directory / "out.jsonl"
    process = _start(server, source, output, "16")
    _run_until(process, output, 100)
    moved = tmp_path / "moved"
    vanished_at = time.monotonic()
    if how == "moved":
        directory.rename(moved)
    else:
        shutil.rmtree(directory)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_IO, stderr
    assert time.monotonic() - vanished_at < 10  # not the whole remaining job
    assert f"{output}: the output file (or its directory) was deleted or moved" in stderr
    if how == "moved":
        kept = ids_of(moved / "out.jsonl")  # what was written stays whole
        assert len(kept) == len(set(kept)) >= 100
        moved.rename(directory)
    else:
        directory.mkdir()
    finished, _ = generate(server, source, output)
    assert finished.returncode == 0, finished.stderr
    ids = ids_of(output)
    assert len(ids) == len(set(ids)) == count


def test_an_input_truncated_mid_run_stops_the_job(server: str, tmp_path: Path) -> None:
    count = 3000
    texts = [f"[[sleep_ms=20]] q{i}" for i in range(count)]
    source = write_lines(tmp_path / "in.jsonl", texts)
    whole = source.read_bytes()
    output = tmp_path / "out.jsonl"
    process = _start(server, source, output, "4")
    _run_until(process, output, 50)
    os.truncate(source, len(whole) // 2)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == EXIT_IO, stderr
    assert f"{source}: the input was truncated while being read" in stderr
    written = ids_of(output)
    assert len(written) == len(set(written)) < count
    source.write_bytes(whole)
    finished, _ = generate(server, source, output)
    assert finished.returncode == 0, finished.stderr
    ids = ids_of(output)
    assert len(ids) == len(set(ids)) == count


def test_batch_api_results_on_a_full_disk(server: str, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "16k") as disk:
        texts = [f"{i} " + "y" * 3000 for i in range(8)]  # ~8 results of 3+ KB: 16 KB is short
        source = write_lines(tmp_path / "in.jsonl", texts)
        output = disk / "out.jsonl"
        arguments = ["--batch-api", "--wait", "--poll-interval", "0"]
        failed, _ = generate(server, source, output, *arguments)
        assert failed.returncode == EXIT_IO, failed.stderr
        assert f"cannot write {output}: No space left on device" in failed.stderr
        kept = ids_of(output)
        assert len(kept) == len(set(kept)) < len(texts)
        subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
        finished, _ = generate(server, source, output, *arguments)
        assert finished.returncode == 0, finished.stderr
        ids = ids_of(output)
        assert len(ids) == len(set(ids)) == len(texts)


def test_a_pipe_whose_reader_waits_holds_up_no_request(tmp_path: Path) -> None:
    """A pipe's writes block while its reader does not read: the requests go on meanwhile
    (the results wait in memory) and every result reaches the reader, once."""
    count = 2000  # about 700 KB of results: ten times a pipe's buffer
    mock = _core.MockServer()
    try:
        source = write_lines(tmp_path / "in.jsonl", [f"q{i}" for i in range(count)])
        pipe = tmp_path / "results"
        os.mkfifo(pipe)
        process = _start(mock.base_url, source, pipe, "16")
        # Opening the write end waits for a reader: open ours, then read nothing until
        # every request has been answered.
        reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        deadline = time.monotonic() + 60
        while mock.requests < count:
            assert time.monotonic() < deadline, f"{mock.requests} requests sent"
            assert process.poll() is None, process.communicate()
            time.sleep(0.02)
        os.set_blocking(reader, True)
        with os.fdopen(reader, "rb") as results:
            text = results.read().decode()
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        ids = [json.loads(line)["custom_id"] for line in text.splitlines()]
        assert sorted(ids, key=int) == [str(i) for i in range(1, count + 1)]
    finally:
        mock.stop()
