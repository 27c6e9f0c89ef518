"""Soak of `distilabel-rs generate`: a million requests, 1% injected failures, a SIGKILL in
the middle and a resume; memory stays flat and every custom id is in OUTPUT exactly once.

    python benches/soak_generate.py                 # 1,000,000 requests (minutes)
    python benches/soak_generate.py --requests 200000

The mock server runs in its own process. INPUT has one request per line; 1% of them carry a
failure directive, alternately `[[status=503 times=1 retry_after=0]]` (fails once, then
succeeds when retried) and `[[status=400]]` (fails for good: an error line in OUTPUT). The
first run is SIGKILLed once OUTPUT has `--kill-at` of the requests; the second run resumes.
Peak RSS (VmHWM of the command's process) is read when OUTPUT reaches 100,000 lines (or half
of the kill point, in a smaller run), at the kill, and at the end of the resumed run. The
resumed run exits 1 (the permanent failures are failed requests); that is expected. Not part
of CI.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional

from common import machine, mock_server_process

REPO = Path(__file__).resolve().parents[1]

# Runs the command in this very process (so /proc/<pid> is the command's), then prints its
# peak RSS.
WRAPPER = """
import runpy, sys
sys.argv = ["distilabel-rs", *sys.argv[1:]]
try:
    runpy.run_module("distilabel_rs", run_name="__main__")
except SystemExit as e:
    code = e.code
else:
    code = 0
status = open("/proc/self/status").read().splitlines()
print("VmHWM", next(l.split()[1] for l in status if l.startswith("VmHWM")), flush=True)
sys.exit(code)
"""


def write_input(path: Path, count: int, failure_rate: float) -> Dict[str, int]:
    every = max(1, round(1 / failure_rate)) if failure_rate > 0 else 0
    injected = {"transient": 0, "permanent": 0}
    with open(path, "w") as out:
        for i in range(count):
            text = f"soak request {i}"
            if every and i % every == every // 2:
                if (i // every) % 2 == 0:
                    text = f"[[status=503 times=1 retry_after=0]] {text}"
                    injected["transient"] += 1
                else:
                    text = f"[[status=400]] {text}"
                    injected["permanent"] += 1
            out.write(json.dumps({"messages": [{"role": "user", "content": text}]}) + "\n")
    return injected


def peak_rss_kib(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class LineCounter:
    """Counts the lines of a growing file by reading only what was appended."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.lines = path, 0, 0

    def update(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            while chunk := f.read(1 << 20):
                self.lines += chunk.count(b"\n")
                self.offset += len(chunk)
        return self.lines


def run(
    arguments: list, output: Path, marks: Dict[str, int], kill_at: Optional[int]
) -> Dict[str, object]:
    """Runs the command; records the peak RSS when OUTPUT reaches each mark; SIGKILLs it
    at `kill_at` lines."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, *arguments],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DISTILABEL_RS_STANDALONE": "1", "OPENAI_API_KEY": "sk-soak"},
    )
    counter = LineCounter(output)
    seen: Dict[str, Optional[int]] = {}
    killed = False
    while process.poll() is None:
        lines = counter.update()
        for name, mark in marks.items():
            if name not in seen and lines >= mark:
                seen[name] = peak_rss_kib(process.pid)
        if kill_at is not None and lines >= kill_at:
            seen["at the kill"] = peak_rss_kib(process.pid)
            process.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.05)
    stdout, stderr = process.communicate()
    final = next(
        (line.split()[1] for line in stdout.splitlines() if line.startswith("VmHWM")), None
    )
    return {
        "returncode": process.returncode,
        "killed": killed,
        "seconds": time.perf_counter() - started,
        "peaks_kib": seen,
        "final_peak_kib": int(final) if final else None,
        "stderr": stderr,
        "lines": counter.update(),
    }


def check(output: Path, count: int) -> Dict[str, int]:
    ids = set()
    duplicates = statuses_200 = errors = 0
    with open(output, "rb") as f:
        for line in f:
            row = json.loads(line)
            custom_id = row["custom_id"]
            if custom_id in ids:
                duplicates += 1
            ids.add(custom_id)
            status = (row.get("response") or {}).get("status_code")
            statuses_200 += status == 200
            errors += status != 200
    missing = sum(1 for i in range(1, count + 1) if str(i) not in ids)
    return {
        "lines": len(ids) + duplicates,
        "unique ids": len(ids),
        "duplicates": duplicates,
        "missing": missing,
        "200": statuses_200,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--failure-rate", type=float, default=0.01)
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction of OUTPUT lines")
    parser.add_argument("--max-concurrency", type=int, default=256)
    parser.add_argument("--workdir", type=Path, help="default: a temporary directory")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="distilabel-rs-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    source, output = workdir / "in.jsonl", workdir / "out.jsonl"
    output.unlink(missing_ok=True)
    injected = write_input(source, args.requests, args.failure_rate)
    kill_at = int(args.requests * args.kill_at)
    # The first run is SIGKILLed at `kill_at` lines: a mark past it would never be reached.
    mark = min(100_000, kill_at // 2)
    marks = {f"at {mark:,} lines": mark}
    with mock_server_process() as base_url:
        arguments = [
            "generate",
            str(source),
            "-o",
            str(output),
            "--model",
            "soak",
            "--base-url",
            base_url,
            "--no-progress",
            "--max-concurrency",
            str(args.max_concurrency),
        ]
        first = run(arguments, output, marks, kill_at=kill_at)
        second = run(arguments, output, {}, kill_at=None)
    result = check(output, args.requests)

    print(f"## soak of `distilabel-rs generate`: {args.requests:,} requests\n")
    print(f"machine: {machine()}; mock server in its own process; work dir {workdir}")
    print(
        f"input: {source.stat().st_size / 1e6:,.0f} MB; injected failures: "
        f"{injected['transient']:,} transient (503 once, retried), "
        f"{injected['permanent']:,} permanent (400)\n"
    )
    print("| run | ended | output lines | wall time | requests/s | peak RSS |")
    print("|---|---|---|---|---|---|")
    for name, outcome, done_before in (
        ("first (SIGKILLed)", first, 0),
        ("resumed", second, first["lines"]),
    ):
        lines = int(outcome["lines"]) - int(done_before)  # type: ignore[arg-type]
        rate = lines / float(outcome["seconds"])  # type: ignore[arg-type]
        peaks = dict(outcome["peaks_kib"])  # type: ignore[call-overload]
        if outcome["final_peak_kib"]:
            peaks["at the end"] = outcome["final_peak_kib"]
        shown = ", ".join(f"{k}: {v / 1024:,.0f} MiB" for k, v in peaks.items() if v)
        ended = "SIGKILL" if outcome["killed"] else f"exit {outcome['returncode']}"
        print(
            f"| {name} | {ended} | {lines:,} new | {outcome['seconds']:,.1f} s "
            f"| {rate:,.0f} | {shown} |"
        )
    print()
    summary = [line for line in str(second["stderr"]).splitlines() if line and "VmHWM" not in line]
    print("resumed run's summary:\n    " + "\n    ".join(summary[-6:]))
    print(f"\nOUTPUT: {json.dumps(result)}")
    ok = result["duplicates"] == 0 and result["missing"] == 0
    print("every custom id exactly once: " + ("yes" if ok else "NO"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
