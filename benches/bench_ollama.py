"""OllamaLLM: distilabel_rs (native, Rust) vs distilabel 1.5.3 (ollama SDK), in one run.

    python benches/bench_ollama.py

Both clients send chats to `/api/chat` of the same local server (the Rust mock of
`distilabel_rs._core.MockServer`, speaking Ollama's API, in its own process), each client
in a fresh process. Reported per client: requests per second over the `generate()` calls,
and client CPU per request (user + system time of every thread of the client process).
`wrk` (Debian package `wrk`) against the same server gives the ceiling, when installed.

distilabel's `OllamaLLM` is measured in calls of 50 inputs, the batch size of distilabel's
pipelines: in one call it starts every request at once on the SDK's pool of 100
connections, and with a few thousand inputs requests wait past the 120 s timeout and the
call fails (`UnboundLocalError`). Ours is measured both ways, on `--ours-requests` inputs
(3,000 inputs in calls of 50 take ours about 0.1 s, short enough for one burst of another
tenant on this shared machine to halve the figure).

A real Ollama server spends milliseconds to seconds per generation on the model: this
measures what the client adds on top, which is what bounds a client driving many servers
(or one server with a large `OLLAMA_NUM_PARALLEL`) and what it takes from the pipeline's CPU.
"""

import argparse
from pathlib import Path

from common import machine, mock_server_process, run_client, wrk

REPO = Path(__file__).resolve().parents[1]

CLIENT = """
import sys, warnings
from common import measure
warnings.simplefilter("ignore")
lib, host, count, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if lib == "distilabel":
    from distilabel.models.llms import OllamaLLM
else:
    from distilabel_rs.models.llms import OllamaLLM
llm = OllamaLLM(model="bench", host=host)
llm.load()
inputs = [[{"role": "user", "content": f"question number {i}"}] for i in range(count)]
llm.generate(inputs[:50])  # warm up: connections, imports
def generate_all():
    outputs = []
    for start in range(0, count, batch):
        chunk = inputs[start : start + batch]
        outputs += llm.generate(chunk, options={"num_predict": 64, "temperature": 0.7})
    return outputs
outputs = measure(generate_all, count)
assert len(outputs) == count and outputs[-1]["generations"][0].startswith("echo:")
"""

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model": "bench", "stream": false, "messages": '
    .. '[{"role": "user", "content": "question number 1"}]}'
"""


def client(lib: str, host: str, count: int, batch: int) -> dict:
    return run_client(CLIENT, lib, host, str(count), str(batch))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--distilabel-requests", type=int, default=3000)
    parser.add_argument("--ours-requests", type=int, default=30000)
    args = parser.parse_args()

    with mock_server_process() as base_url:
        host = base_url.removesuffix("/v1")  # Ollama's API is at the server's root
        theirs = client("distilabel", host, args.distilabel_requests, 50)
        ours_batched = client("distilabel_rs", host, args.ours_requests, 50)
        ours = client("distilabel_rs", host, args.ours_requests, args.ours_requests)
        ceiling = wrk(f"{host}/api/chat", WRK_SCRIPT)

    print(f"Machine: {machine()}\n")
    print("| client | requests | requests/s | client CPU per request |")
    print("|---|---|---|---|")
    rows = [
        (
            "distilabel 1.5.3 `OllamaLLM` (ollama SDK), calls of 50",
            args.distilabel_requests,
            theirs,
        ),
        ("distilabel_rs `OllamaLLM` (native), calls of 50", args.ours_requests, ours_batched),
        ("distilabel_rs `OllamaLLM` (native), one call", args.ours_requests, ours),
    ]
    for name, count, result in rows:
        print(
            f"| {name} | {count:,} | {result['requests_per_second']:,.0f}"
            f" | {result['cpu_us_per_request']:,.1f} µs |"
        )
    print(f"| wrk -t2 -c64 (ceiling of the server) | 5 s | {ceiling} | |")
    for label, mine in (("calls of 50", ours_batched), ("one call", ours)):
        speed = mine["requests_per_second"] / theirs["requests_per_second"]
        cpu = theirs["cpu_us_per_request"] / mine["cpu_us_per_request"]
        print(
            f"\nRatio ({label}): {speed:.0f}x the requests per second,"
            f" 1/{cpu:.0f} of the CPU per request."
        )


if __name__ == "__main__":
    main()
