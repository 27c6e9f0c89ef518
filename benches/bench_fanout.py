"""AsyncLLM.generate fan-out: distilabel_rs vs distilabel 1.5.3, side by side in one run.

    python benches/bench_fanout.py            # all cases (distilabel alone needs ~3 minutes
                                              # for 100k x 4: its grouping is quadratic)
    python benches/bench_fanout.py --quick    # skip 100k x 4

Each (library, case) runs in a fresh subprocess so that memory is measured in isolation:
wall time of `generate()`, and peak RSS growth during it (peak RSS minus RSS just before).
`agenerate` only does `await asyncio.sleep(0)`, so what is measured is the engine itself.
The time is `generate()` followed by one `gc.collect()`, for both libraries: distilabel_rs
defers full garbage collections during a fan-out, and the one it owes afterwards is counted.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import machine

CASES = {
    # name: (inputs, num_generations, provider returns n generations per request)
    "50k x 1": (50_000, 1, True),
    "20k x 4, fan-out + group": (20_000, 4, False),
    "100k x 4, fan-out + group": (100_000, 4, False),
}

CHILD = """
import asyncio, gc, json, resource, sys, time, warnings
warnings.simplefilter("ignore")
lib, count, n, per_request_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
if lib == "distilabel":
    from distilabel.models.llms.base import AsyncLLM
else:
    from distilabel_rs.models.llms.base import AsyncLLM

class Bench(AsyncLLM):
    @property
    def model_name(self):
        return "bench"

    def load(self):
        super().load()
        self._num_generations_param_supported = per_request_n

    async def agenerate(self, input, num_generations: int = 1):
        await asyncio.sleep(0)
        return {"generations": ["x"] * num_generations,
                "statistics": {"input_tokens": [1], "output_tokens": [1]}}

def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024

llm = Bench()
llm.load()
inputs = [[{"role": "user", "content": f"question {i}"}] for i in range(count)]
gc.collect()
before = rss_kib()
start = time.perf_counter()
outputs = llm.generate(inputs, num_generations=n)
# One full garbage collection is counted for both libraries: distilabel_rs defers the full
# collections due during its fan-out to its end, so the one it then owes is timed here.
gc.collect()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert len(outputs) == count and len(outputs[-1]["generations"]) == n
print(json.dumps({"seconds": seconds, "growth_mib": (peak - before) / 1024}))
"""


def run(lib: str, count: int, n: int, per_request_n: bool) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, lib, str(count), str(n), "1" if per_request_n else "0"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip 100k x 4")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (best is kept)")
    args = parser.parse_args()

    print(f"Machine: {machine()}\n")
    print(
        "| case | distilabel 1.5.3 | distilabel_rs | speed-up |"
        " memory growth distilabel | memory growth distilabel_rs | memory ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (count, n, per_request_n) in CASES.items():
        if args.quick and count == 100_000:
            continue
        # distilabel's slowest case takes minutes: run it once.
        repeats = 1 if count * n >= 400_000 else args.repeats
        results = {}
        for lib in ("distilabel", "distilabel_rs"):
            runs = [run(lib, count, n, per_request_n) for _ in range(repeats)]
            results[lib] = {
                "seconds": min(r["seconds"] for r in runs),
                "growth_mib": min(r["growth_mib"] for r in runs),
            }
        theirs, ours = results["distilabel"], results["distilabel_rs"]
        print(
            f"| {name} | {theirs['seconds']:.2f} s | {ours['seconds']:.3f} s"
            f" | {theirs['seconds'] / ours['seconds']:.1f}x"
            f" | {theirs['growth_mib']:.0f} MiB | {ours['growth_mib']:.0f} MiB"
            f" | {ours['growth_mib'] / theirs['growth_mib']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
