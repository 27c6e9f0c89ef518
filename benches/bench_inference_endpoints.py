"""InferenceEndpointsLLM: distilabel_rs (native, Rust) vs distilabel 1.5.3 (huggingface_hub's
AsyncInferenceClient), in one run.

    python benches/bench_inference_endpoints.py

Both clients send requests to the same local TGI server (the Rust mock of
`distilabel_rs._core.MockServer`, in its own process, at `{origin}/tgi`), each client in a
fresh process: conversations to TGI's Messages API (`/tgi/v1/chat/completions`), prompts to
its generate API (`POST /tgi`). distilabel's generate path passes `stop_sequences=`, which
huggingface_hub 2.x no longer takes (every request would fail before being sent), so its
client gets the keyword renamed to `stop` for the measurement. Reported per client and API:
requests per second of one `generate()` call, and client CPU per request (user + system time
of every thread of the client process).
"""

import argparse
from pathlib import Path

from common import machine, mock_server_process, run_client

REPO = Path(__file__).resolve().parents[1]

CLIENT = """
import sys, warnings
from common import measure
warnings.simplefilter("ignore")
lib, base_url, api, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if lib == "distilabel":
    from distilabel.models.llms import InferenceEndpointsLLM
else:
    from distilabel_rs.models.llms import InferenceEndpointsLLM
llm = InferenceEndpointsLLM(base_url=base_url, api_key="hf_bench")
llm.load()
if lib == "distilabel":
    original = llm._aclient.text_generation
    async def text_generation(*args, stop_sequences=None, **kwargs):
        return await original(*args, stop=stop_sequences, **kwargs)
    llm._aclient.text_generation = text_generation
if api == "chat":
    inputs = [[{"role": "user", "content": f"question number {i}"}] for i in range(count)]
else:
    inputs = [f"prompt number {i}" for i in range(count)]
llm.generate(inputs[:50])  # warm up: connections, imports
outputs = measure(lambda: llm.generate(inputs), count)
assert len(outputs) == count and all(o["generations"][0].startswith("echo:") for o in outputs)
"""


def client(lib: str, base_url: str, api: str, count: int) -> dict:
    return run_client(CLIENT, lib, base_url, api, str(count))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--distilabel-requests", type=int, default=3000)
    parser.add_argument("--ours-requests", type=int, default=30000)
    args = parser.parse_args()

    rows = []
    with mock_server_process() as base_url:
        tgi = base_url.rsplit("/v1", 1)[0] + "/tgi"
        for api, label in (("chat", "Messages API (chat)"), ("text", "generate API (prompts)")):
            theirs = client("distilabel", tgi, api, args.distilabel_requests)
            ours = client("distilabel_rs", tgi, api, args.ours_requests)
            rows.append((label, theirs, ours))

    print(f"Machine: {machine()}\n")
    print("| API | client | requests | requests/s | client CPU per request |")
    print("|---|---|---|---|---|")
    for label, theirs, ours in rows:
        print(
            f"| {label} | distilabel 1.5.3 `InferenceEndpointsLLM` (huggingface_hub)"
            f" | {args.distilabel_requests:,} | {theirs['requests_per_second']:,.0f}"
            f" | {theirs['cpu_us_per_request']:,.0f} µs |"
        )
        print(
            f"| {label} | distilabel_rs `InferenceEndpointsLLM` (native)"
            f" | {args.ours_requests:,} | {ours['requests_per_second']:,.0f}"
            f" | {ours['cpu_us_per_request']:,.1f} µs |"
        )
    print()
    for label, theirs, ours in rows:
        speed = ours["requests_per_second"] / theirs["requests_per_second"]
        cpu = theirs["cpu_us_per_request"] / ours["cpu_us_per_request"]
        print(f"{label}: {speed:.0f}x the requests per second, 1/{cpu:.0f} of the CPU per request.")


if __name__ == "__main__":
    main()
