"""OpenAILLM: distilabel_rs (native, Rust) vs distilabel 1.5.3 (openai SDK), in one run.

    python benches/bench_openai.py

Both clients send chat completions to the same local OpenAI-compatible server (the Rust
mock of `distilabel_rs._core.MockServer`, in its own process), each client in a fresh
process. Reported per client: requests per second of one `generate()` call, and client CPU
per request (user + system time of every thread of the client process). `wrk` (Debian
package `wrk`) against the same server gives the ceiling, when installed.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine, mock_server_process

REPO = Path(__file__).resolve().parents[1]

CLIENT = """
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
lib, base_url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
if lib == "distilabel":
    from distilabel.models.llms import OpenAILLM
else:
    from distilabel_rs import OpenAILLM
llm = OpenAILLM(model="bench", base_url=base_url, api_key="sk-bench")
llm.load()
inputs = [[{"role": "user", "content": f"question number {i}"}] for i in range(count)]
llm.generate(inputs[:50])  # warm up: connections, imports
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
start_wall, start_cpu = time.perf_counter(), cpu()
outputs = llm.generate(inputs)
wall, used = time.perf_counter() - start_wall, cpu() - start_cpu
assert len(outputs) == count and outputs[-1]["generations"][0].startswith("echo:")
print(json.dumps({"requests_per_second": count / wall, "cpu_us_per_request": used / count * 1e6}))
"""

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model": "bench", "messages": [{"role": "user", "content": "question number 1"}]}'
"""


def client(lib: str, base_url: str, count: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, lib, base_url, str(count)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return json.loads(result.stdout)


def wrk(base_url: str) -> str:
    if shutil.which("wrk") is None:
        return "wrk not installed (`apt-get install wrk`)"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", "-t2", "-c64", "-d5s", "-s", script.name, f"{base_url}/chat/completions"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next((line for line in out.splitlines() if line.startswith("Requests/sec")), "")
    return line.split(":", 1)[1].strip() if line else "?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--distilabel-requests", type=int, default=3000)
    parser.add_argument("--ours-requests", type=int, default=30000)
    args = parser.parse_args()

    with mock_server_process() as base_url:
        theirs = client("distilabel", base_url, args.distilabel_requests)
        ours = client("distilabel_rs", base_url, args.ours_requests)
        ceiling = wrk(base_url)

    print(f"Machine: {machine()}\n")
    print("| client | requests | requests/s | client CPU per request |")
    print("|---|---|---|---|")
    print(
        f"| distilabel 1.5.3 `OpenAILLM` (openai SDK) | {args.distilabel_requests:,}"
        f" | {theirs['requests_per_second']:,.0f} | {theirs['cpu_us_per_request']:,.0f} µs |"
    )
    print(
        f"| distilabel_rs `OpenAILLM` (native) | {args.ours_requests:,}"
        f" | {ours['requests_per_second']:,.0f} | {ours['cpu_us_per_request']:,.1f} µs |"
    )
    print(f"| wrk -t2 -c64 (ceiling of the server) | 5 s | {ceiling} | |")
    speed = ours["requests_per_second"] / theirs["requests_per_second"]
    cpu = theirs["cpu_us_per_request"] / ours["cpu_us_per_request"]
    print(f"\nRatios: {speed:.0f}x the requests per second, 1/{cpu:.0f} of the CPU per request.")


if __name__ == "__main__":
    main()
