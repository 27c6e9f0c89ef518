"""`max_concurrency="auto"` against a provider of limited capacity, next to fixed limits and
distilabel 1.5.3's unbounded fan-out.

    python benches/bench_adaptive.py              # the full table (several minutes)
    python benches/bench_adaptive.py --quick      # one small cell

The provider is the Rust mock (`_core.MockServer(capacity=C, base_latency_ms=L)`, in its own
process): C generation requests are served at once, each taking L ms; up to C more wait in
a first-come, first-served queue; beyond 2C requests get 429 with a Retry-After of L. For
each C and L, `jobs` = 64 x C inputs (one `generate()` call; ideally 64 base latencies) go
through `distilabel_rs.OpenAILLM` (the native client) with fixed limits, with `"auto"`, and
through distilabel 1.5.3's `OpenAILLM` (every input at once, openai SDK retries). Every run
is a fresh client process against a fresh server.

Reported per run: the wall time of `generate()`, successful outputs per second, failed
outputs (ours: `error_policy="isolate"`; distilabel raises at the first failure, so its
run shows the error), and the 429 answers per input. The last columns compare `auto` with
the best fixed limit and with distilabel.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from common import machine

REPO = Path(__file__).resolve().parents[1]

SERVER = """
import sys
from distilabel_rs import _core
server = _core.MockServer(capacity=int(sys.argv[1]), base_latency_ms=float(sys.argv[2]))
print(server.base_url, flush=True)
for line in sys.stdin:
    print(server.requests, server.rejected, flush=True)
"""

CLIENT = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
lib, base_url, count, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
inputs = [[{"role": "user", "content": f"question number {i}"}] for i in range(count)]
if lib == "distilabel":
    from distilabel.models.llms import OpenAILLM
    llm = OpenAILLM(model="bench", base_url=base_url, api_key="sk-bench")
else:
    from distilabel_rs import OpenAILLM
    limit = None if limit == "None" else (int(limit) if limit.isdigit() else limit)
    llm = OpenAILLM(
        model="bench", base_url=base_url, api_key="sk-bench", max_concurrency=limit,
        error_policy="isolate",
    )
llm.load()
limits = []
if lib != "distilabel":
    llm.set_progress_callback(lambda p: limits.append(p.limit))
start = time.perf_counter()
error = None
try:
    outputs = llm.generate(inputs)
    ok = sum(1 for o in outputs if o["generations"][0] is not None)
except Exception as e:
    outputs, ok, error = [], 0, f"{type(e).__name__}"
wall = time.perf_counter() - start
peak = max((l for l in limits if l is not None), default=None)
print(json.dumps({"seconds": wall, "ok": ok, "error": error, "peak_limit": peak}))
"""


class Server:
    """The capacity-limited mock in its own process; `stats()` = (requests, 429s)."""

    def __init__(self, capacity: int, latency_ms: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-c", SERVER, str(capacity), str(latency_ms)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        self.base_url = self.process.stdout.readline().strip()  # type: ignore[union-attr]

    def stats(self) -> Tuple[int, int]:
        self.process.stdin.write("stats\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        requests, rejected = self.process.stdout.readline().split()  # type: ignore[union-attr]
        return int(requests), int(rejected)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def run(lib: str, capacity: int, latency_ms: float, jobs: int, limit: str, cap: float) -> Dict:
    """One `generate()` in a fresh client process against a fresh server; a run longer than
    `cap` seconds is stopped and reported as such."""
    server = Server(capacity, latency_ms)
    try:
        try:
            result = subprocess.run(
                [sys.executable, "-c", CLIENT, lib, server.base_url, str(jobs), limit],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
                timeout=cap,
            )
            out = json.loads(result.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            out = {"seconds": cap, "ok": 0, "error": f"not done after {cap:.0f} s"}
            out["peak_limit"] = None
        _, rejected = server.stats()
    finally:
        server.close()
    out["rejected"] = rejected
    out["throughput"] = out["ok"] / out["seconds"]
    out["failed"] = jobs - out["ok"]
    return out


def fixed_limits(capacity: int) -> List[int]:
    """The default (64) and the limits around the capacity (the best fixed one is there)."""
    return sorted({64, capacity, capacity * 3 // 2, 2 * capacity})


def cell(
    capacity: int, latency_ms: float, per_capacity: int, skip_distilabel: bool, cap: float
) -> List[str]:
    jobs = per_capacity * capacity
    runs: Dict[str, Dict] = {}
    for limit in fixed_limits(capacity):
        runs[str(limit)] = run("distilabel_rs", capacity, latency_ms, jobs, str(limit), cap)
    runs["auto"] = run("distilabel_rs", capacity, latency_ms, jobs, "auto", cap)
    theirs: Optional[Dict] = None
    if not skip_distilabel:
        theirs = run("distilabel", capacity, latency_ms, jobs, "None", cap)
    clean = {k: v for k, v in runs.items() if k != "auto" and v["failed"] == 0}
    best_key = max(clean or runs, key=lambda k: runs[k]["throughput"])
    best, auto = runs[best_key], runs["auto"]
    rows = []
    for key, r in runs.items():
        rows.append(
            f"| {capacity} | {latency_ms:g} ms | {jobs:,} | ours `{key}` | {r['seconds']:.2f} s"
            f" | {r['throughput']:,.0f} | {r['failed']:,} | {r['rejected'] / jobs:.2%}"
            f" | {'' if r['peak_limit'] is None else r['peak_limit']} |"
        )
    if theirs is not None:
        status = theirs["error"] or f"{theirs['failed']:,}"
        rows.append(
            f"| {capacity} | {latency_ms:g} ms | {jobs:,} | distilabel 1.5.3 (unbounded)"
            f" | {theirs['seconds']:.2f} s | {theirs['throughput']:,.0f} | {status}"
            f" | {theirs['rejected'] / jobs:.2%} | |"
        )
    share = auto["throughput"] / best["throughput"]
    verdict = (
        f"**auto: {share:.0%} of the best fixed limit (`{best_key}`), "
        f"{auto['rejected'] / jobs:.2%} answered 429"
    )
    if theirs is not None:
        faster = theirs["seconds"] / auto["seconds"]
        error = theirs["error"]
        if error and error.startswith("not done"):
            verdict += f"; over {faster:.1f}x faster than distilabel's run ({error})"
        else:
            verdict += f"; {faster:.1f}x faster than distilabel's run"
            if error:
                verdict += f" (which failed with {error})"
    rows.append(f"| | | | {verdict}** | | | | | |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--capacities", type=int, nargs="+", default=[8, 64, 512])
    parser.add_argument("--latencies-ms", type=float, nargs="+", default=[50, 300])
    parser.add_argument("--jobs-per-capacity", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="one small cell")
    parser.add_argument("--skip-distilabel", action="store_true")
    parser.add_argument("--cap-seconds", type=float, default=600, help="stop a run after this long")
    args = parser.parse_args()
    if args.quick:
        args.capacities, args.latencies_ms = [8], [50]
    started = time.perf_counter()
    lines = [
        "| C | base latency | inputs | client / max_concurrency | wall | outputs/s | failed"
        " | 429 per input | peak limit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for capacity in args.capacities:
        for latency in args.latencies_ms:
            rows = cell(
                capacity, latency, args.jobs_per_capacity, args.skip_distilabel, args.cap_seconds
            )
            lines.extend(rows)
            print("\n".join(rows), file=sys.stderr, flush=True)
    print(f"Machine: {machine()}\n")
    print("\n".join(lines))
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
