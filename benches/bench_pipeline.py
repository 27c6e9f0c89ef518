"""A distilabel pipeline with distilabel's `OpenAILLM` vs distilabel_rs's, in one run.

    python benches/bench_pipeline.py [--rows 3000]

The same pipeline (LoadDataFromDicts -> TextGeneration, batches of 50 as distilabel's
defaults) runs once with each LLM, each in a fresh process, against the same local
OpenAI-compatible server (the Rust mock, in its own process). Reported: wall time of
`pipeline.run()` (no cache), which includes distilabel's own machinery (worker processes,
batching, writing the dataset).
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine, mock_server_process

REPO = Path(__file__).resolve().parents[1]

PIPELINE = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
lib, base_url, rows, cache_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts
from distilabel.steps.tasks import TextGeneration
if lib == "distilabel":
    from distilabel.models.llms import OpenAILLM
else:
    from distilabel_rs import OpenAILLM
with Pipeline(name=f"bench-{lib}", cache_dir=cache_dir) as pipeline:
    data = [{"instruction": f"question number {i}"} for i in range(rows)]
    load = LoadDataFromDicts(data=data)
    generate = TextGeneration(llm=OpenAILLM(model="bench", base_url=base_url, api_key="k"))
    load >> generate
start = time.perf_counter()
distiset = pipeline.run(use_cache=False)
seconds = time.perf_counter() - start
assert len(distiset["default"]["train"]) == rows
print(json.dumps({"seconds": seconds}))
"""


def run(lib: str, base_url: str, rows: int) -> float:
    with tempfile.TemporaryDirectory() as cache_dir:
        result = subprocess.run(
            [sys.executable, "-c", PIPELINE, lib, base_url, str(rows), cache_dir],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
    return json.loads(result.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3000)
    args = parser.parse_args()
    with mock_server_process() as base_url:
        theirs = run("distilabel", base_url, args.rows)
        ours = run("distilabel_rs", base_url, args.rows)
    print(f"Machine: {machine()}\n")
    print("| pipeline (TextGeneration) | rows | wall time of `pipeline.run()` |")
    print("|---|---|---|")
    print(f"| with distilabel 1.5.3 `OpenAILLM` | {args.rows:,} | {theirs:.1f} s |")
    print(f"| with distilabel_rs `OpenAILLM` | {args.rows:,} | {ours:.1f} s |")
    print(f"\nRatio: {theirs / ours:.1f}x faster end to end.")


if __name__ == "__main__":
    main()
