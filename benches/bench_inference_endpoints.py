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
of every thread of the client process), each the median of `--rounds` (3) runs, the two
clients alternating (a shared machine's noise moves single runs by 10-20 %), with the
range of the runs.
"""

import argparse
import statistics
from pathlib import Path
from typing import Dict, List

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


def summary(runs: List[dict]) -> Dict[str, float]:
    """Medians and ranges of a client's runs."""
    rates = [run["requests_per_second"] for run in runs]
    cpus = [run["cpu_us_per_request"] for run in runs]
    return {
        "rate": statistics.median(rates),
        "rate_low": min(rates),
        "rate_high": max(rates),
        "cpu": statistics.median(cpus),
        "cpu_low": min(cpus),
        "cpu_high": max(cpus),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--distilabel-requests", type=int, default=3000)
    parser.add_argument("--ours-requests", type=int, default=30000)
    parser.add_argument("--rounds", type=int, default=3, help="runs per client and API")
    args = parser.parse_args()

    rows = []
    with mock_server_process() as base_url:
        tgi = base_url.rsplit("/v1", 1)[0] + "/tgi"
        for api, label in (("chat", "Messages API (chat)"), ("text", "generate API (prompts)")):
            theirs, ours = [], []
            for _ in range(args.rounds):
                theirs.append(client("distilabel", tgi, api, args.distilabel_requests))
                ours.append(client("distilabel_rs", tgi, api, args.ours_requests))
            rows.append((label, theirs, ours))

    print(f"Machine: {machine()}\n")
    print(f"Medians of {args.rounds} runs per client (range in brackets), clients alternating.\n")
    print("| API | client | requests | requests/s | client CPU per request |")
    print("|---|---|---|---|---|")
    for label, theirs, ours in rows:
        for name, count, runs in (
            (
                "distilabel 1.5.3 `InferenceEndpointsLLM` (huggingface_hub)",
                args.distilabel_requests,
                theirs,
            ),
            ("distilabel_rs `InferenceEndpointsLLM` (native)", args.ours_requests, ours),
        ):
            m = summary(runs)
            print(
                f"| {label} | {name} | {count:,}"
                f" | {m['rate']:,.0f} ({m['rate_low']:,.0f}-{m['rate_high']:,.0f})"
                f" | {m['cpu']:,.1f} µs ({m['cpu_low']:,.1f}-{m['cpu_high']:,.1f}) |"
            )
    print()
    for label, theirs, ours in rows:
        t, o = summary(theirs), summary(ours)
        pairs = ", ".join(
            f"{b['requests_per_second'] / a['requests_per_second']:.0f}x"
            for a, b in zip(theirs, ours, strict=True)
        )
        print(
            f"{label}: {o['rate'] / t['rate']:.0f}x the requests per second (medians; runs"
            f" paired in order: {pairs}), 1/{t['cpu'] / o['cpu']:.0f} of the CPU per request."
        )


if __name__ == "__main__":
    main()
