"""merge_responses and grouper: distilabel_rs (Rust core) vs distilabel 1.5.3, in one run.

    python benches/bench_grouping.py            # 20k, 80k and 200k responses
    python benches/bench_grouping.py --full     # adds 400k (distilabel alone takes minutes)

Prints a markdown table with the machine it ran on. Times are the best of a few runs for
each side (one run for distilabel above 100k responses, where one run takes long).
"""

import argparse
import time
import warnings
from typing import Any, Callable, List

warnings.simplefilter("ignore")

from common import machine  # noqa: E402
from distilabel.models.llms.base import merge_responses as dl_merge  # noqa: E402
from distilabel.utils.itertools import grouper as dl_grouper  # noqa: E402

from distilabel_rs.models.llms.base import merge_responses as rs_merge  # noqa: E402
from distilabel_rs.utils.itertools import grouper as rs_grouper  # noqa: E402


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def responses(count: int) -> List[dict]:
    return [
        {
            "generations": [f"generation {i}"],
            "statistics": {"input_tokens": [i % 100], "output_tokens": [i % 50]},
            "logprobs": [[[{"token": "t", "logprob": -0.5}]]],
        }
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="also run 400k responses")
    args = parser.parse_args()
    sizes = [20_000, 80_000, 200_000] + ([400_000] if args.full else [])

    print(f"Machine: {machine()}\n")
    print("| operation | responses | n | distilabel 1.5.3 | distilabel_rs | speed-up |")
    print("|---|---|---|---|---|---|")
    for size in sizes:
        data = responses(size)
        assert rs_merge(data, n=4) == dl_merge(data, n=4) if size <= 20_000 else True
        theirs = best_of(lambda data=data: dl_merge(data, n=4), 1 if size > 100_000 else 3)
        ours = best_of(lambda data=data: rs_merge(data, n=4), 5)
        row = f"{theirs:.3f} s | {ours:.3f} s | {theirs / ours:.0f}x"
        print(f"| merge_responses | {size:,} | 4 | {row} |")
    for size in sizes:
        items = range(size)
        theirs = best_of(lambda items=items: list(dl_grouper(items, 4, incomplete="ignore")), 5)
        ours = best_of(lambda items=items: list(rs_grouper(items, 4, incomplete="ignore")), 5)
        print(f"| grouper | {size:,} | 4 | {theirs:.3f} s | {ours:.3f} s | {theirs / ours:.2f}x |")


if __name__ == "__main__":
    main()
