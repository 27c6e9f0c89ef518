"""OpenAILLM: distilabel_rs (native, Rust) vs distilabel 1.5.3 (openai SDK), in one run.

    python benches/bench_openai.py

Both clients send chat completions to the same local OpenAI-compatible server (the Rust
mock of `distilabel_rs._core.MockServer`, in its own process), each client in a fresh
process. Reported per client: requests per second of one `generate()` call, and client CPU
per request (user + system time of every thread of the client process). Ours runs
`--repeat` times (3), each in a fresh process, and its median is reported with the range
(the machine is shared: one run can land on another tenant's burst); distilabel, at about
100 requests/s, runs once. `wrk` (Debian package `wrk`) against the same server gives the
ceiling, when installed, and the fraction of it that our median reaches.
"""

import argparse
import statistics
from pathlib import Path

from common import machine, mock_server_process, run_client, wrk

REPO = Path(__file__).resolve().parents[1]

CLIENT = """
import sys, warnings
from common import measure
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
outputs = measure(lambda: llm.generate(inputs), count)
assert len(outputs) == count and outputs[-1]["generations"][0].startswith("echo:")
"""

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model": "bench", "messages": [{"role": "user", "content": "question number 1"}]}'
"""


def client(lib: str, base_url: str, count: int) -> dict:
    return run_client(CLIENT, lib, base_url, str(count))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--distilabel-requests", type=int, default=3000)
    parser.add_argument("--ours-requests", type=int, default=30000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours (median reported)")
    args = parser.parse_args()

    with mock_server_process() as base_url:
        theirs = client("distilabel", base_url, args.distilabel_requests)
        runs = [client("distilabel_rs", base_url, args.ours_requests) for _ in range(args.repeat)]
        ceiling = wrk(f"{base_url}/chat/completions", WRK_SCRIPT)
    rates = [run["requests_per_second"] for run in runs]
    cpus = [run["cpu_us_per_request"] for run in runs]
    ours = {
        "requests_per_second": statistics.median(rates),
        "cpu_us_per_request": statistics.median(cpus),
    }

    print(f"Machine: {machine()}\n")
    print("| client | requests | requests/s | client CPU per request |")
    print("|---|---|---|---|")
    print(
        f"| distilabel 1.5.3 `OpenAILLM` (openai SDK) | {args.distilabel_requests:,}"
        f" | {theirs['requests_per_second']:,.0f} | {theirs['cpu_us_per_request']:,.0f} µs |"
    )
    print(
        f"| distilabel_rs `OpenAILLM` (native), median of {len(runs)} | {args.ours_requests:,}"
        f" | {ours['requests_per_second']:,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"
        f" | {ours['cpu_us_per_request']:,.1f} µs ({min(cpus):,.1f}-{max(cpus):,.1f}) |"
    )
    print(f"| wrk -t2 -c64 (ceiling of the server) | 5 s | {ceiling} | |")
    speed = ours["requests_per_second"] / theirs["requests_per_second"]
    cpu = theirs["cpu_us_per_request"] / ours["cpu_us_per_request"]
    print(f"\nRatios: {speed:.0f}x the requests per second, 1/{cpu:.0f} of the CPU per request.")
    try:
        print(f"Fraction of wrk: {ours['requests_per_second'] / float(ceiling):.0%}.")
    except ValueError:  # wrk not installed
        pass


if __name__ == "__main__":
    main()
