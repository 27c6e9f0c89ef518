"""AnthropicLLM: distilabel_rs (native, Rust) vs distilabel 1.5.3 (anthropic SDK 0.49), in
one run.

    python benches/bench_anthropic.py

Both clients send Messages API requests to the same local server (the Rust mock of
`distilabel_rs._core.MockServer`, which speaks the Messages API at `/v1/messages`, in its
own process), each client in a fresh process. Reported per client: requests per second of
one `generate()` call, and client CPU per request (user + system time of every thread of the
client process). `wrk` (Debian package `wrk`) against the same server gives the ceiling,
when installed.
"""

import argparse
from pathlib import Path

from common import machine, mock_server_process, run_client, wrk

REPO = Path(__file__).resolve().parents[1]
# A model name the anthropic SDK 0.49 lists (distilabel's `load()` rejects the others).
MODEL = "claude-3-5-sonnet-20241022"

CLIENT = """
import sys, warnings
from common import measure
warnings.simplefilter("ignore")
lib, origin, count, model = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if lib == "distilabel":
    from distilabel.models.llms import AnthropicLLM
else:
    from distilabel_rs import AnthropicLLM
llm = AnthropicLLM(model=model, base_url=origin, api_key="sk-ant-bench")
llm.load()
inputs = [
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"question number {i}"}]
    for i in range(count)
]
llm.generate(inputs[:50])  # warm up: connections, imports
outputs = measure(lambda: llm.generate(inputs), count)
assert len(outputs) == count and outputs[-1]["generations"][0].startswith("echo:")
"""

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = "sk-ant-bench"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.body = '{"model": "bench", "max_tokens": 128, "system": "be brief", "messages": [{"role": "user", "content": "question number 1"}]}'
"""  # noqa: E501


def client(lib: str, origin: str, count: int) -> dict:
    return run_client(CLIENT, lib, origin, str(count), MODEL)


def main() -> None:
    parser = argparse.ArgumentParser()
    # 1,000, not 3,000 as for OpenAILLM: one `generate()` of 3,000 with distilabel's class
    # (3,000 concurrent SDK calls on a pool of 1,000 connections) had not finished after 15
    # minutes on the 2-core machine; up to 1,000 its rate is flat.
    parser.add_argument("--distilabel-requests", type=int, default=1000)
    parser.add_argument("--ours-requests", type=int, default=30000)
    args = parser.parse_args()

    with mock_server_process() as base_url:
        origin = base_url.removesuffix("/v1")
        theirs = client("distilabel", origin, args.distilabel_requests)
        ours = client("distilabel_rs", origin, args.ours_requests)
        ceiling = wrk(f"{origin}/v1/messages", WRK_SCRIPT)

    print(f"Machine: {machine()}\n")
    print("| client | requests | requests/s | client CPU per request |")
    print("|---|---|---|---|")
    print(
        f"| distilabel 1.5.3 `AnthropicLLM` (anthropic SDK 0.49.0) | {args.distilabel_requests:,}"
        f" | {theirs['requests_per_second']:,.0f} | {theirs['cpu_us_per_request']:,.0f} µs |"
    )
    print(
        f"| distilabel_rs `AnthropicLLM` (native) | {args.ours_requests:,}"
        f" | {ours['requests_per_second']:,.0f} | {ours['cpu_us_per_request']:,.1f} µs |"
    )
    print(f"| wrk -t2 -c64 (ceiling of the server) | 5 s | {ceiling} | |")
    speed = ours["requests_per_second"] / theirs["requests_per_second"]
    cpu = theirs["cpu_us_per_request"] / ours["cpu_us_per_request"]
    print(f"\nRatios: {speed:.0f}x the requests per second, 1/{cpu:.0f} of the CPU per request.")


if __name__ == "__main__":
    main()
