"""The `distilabel-rs` command (also `python -m distilabel_rs`).

    distilabel-rs generate INPUT -o OUTPUT --model M [--base-url URL] [options]
    distilabel-rs generate INPUT -o OUTPUT --model M --mock     # local server, no key
    distilabel-rs bench [--requests N]

Exit codes: 0 every request succeeded; 1 the job finished but some requests failed (their
errors are in OUTPUT); 2 bad usage or input (missing file, malformed line); 3 the server
cannot be reached; 4 the API key was refused; 130 interrupted (Ctrl-C; OUTPUT keeps every
finished result and a re-run continues where it stopped).
"""

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Optional

from distilabel_rs import _core

__all__ = ["main"]

EXIT_OK, EXIT_FAILED_REQUESTS, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_AUTH = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distilabel-rs", description="Fast, resumable LLM generation over JSONL files."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser(
        "generate",
        help="send every request of INPUT and write the results to OUTPUT",
        description="INPUT is JSONL: OpenAI Batch API requests (custom_id, method, url, body)"
        " or records with `messages` or `prompt` (custom id = line number). OUTPUT gets one"
        " line per result in the Batch API output format, written as each result lands; a"
        " re-run skips the custom ids already in OUTPUT.",
    )
    generate.add_argument("input", help="the JSONL file of requests")
    generate.add_argument("-o", "--output", required=True, help="the JSONL file of results")
    generate.add_argument("--model", required=True, help="model for requests that name none")
    generate.add_argument(
        "--base-url", default=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
    )
    generate.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="environment variable holding the API key (default: OPENAI_API_KEY)",
    )
    generate.add_argument(
        "--mock", action="store_true", help="use a local mock server (no key needed)"
    )
    generate.add_argument("--num-generations", type=int, help="`n` for requests that set none")
    generate.add_argument("--max-concurrency", type=int, default=64)
    generate.add_argument("--requests-per-minute", type=float)
    generate.add_argument("--tokens-per-minute", type=float)
    generate.add_argument("--max-retries", type=int, default=6)
    generate.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    generate.add_argument("--max-tokens", type=int, help="`max_tokens` for requests that set none")
    generate.add_argument("--temperature", type=float)
    generate.add_argument("--top-p", type=float)
    generate.add_argument(
        "--on-malformed",
        choices=("stop", "skip"),
        default="stop",
        help="a malformed input line stops the job (default) or is skipped and reported",
    )
    generate.add_argument("--no-progress", action="store_true", help="no progress bar")

    bench = commands.add_parser(
        "bench",
        help="compare with distilabel 1.5.3's OpenAILLM against an embedded local server",
    )
    bench.add_argument("--requests", type=int, default=2000)
    return parser


def _defaults(args: argparse.Namespace) -> Dict[str, Any]:
    options = {
        "n": args.num_generations,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
    }
    return {key: value for key, value in options.items() if value is not None}


def _error(message: str) -> None:
    print(f"distilabel-rs: error: {message}", file=sys.stderr)


def _generate(args: argparse.Namespace) -> int:
    server = _core.MockServer() if args.mock else None
    base_url = server.base_url if server is not None else args.base_url
    api_key = os.environ.get(args.api_key_env) or ("mock" if server is not None else None)
    if api_key is None:
        _error(f"no API key: set {args.api_key_env} (or pass --api-key-env NAME, or --mock)")
        return EXIT_USAGE
    if not os.path.isfile(args.input):
        _error(f"cannot read {args.input}: no such file")
        return EXIT_USAGE
    client = _core.OpenAIClient(
        base_url,
        api_key=api_key,
        timeout=args.timeout,
        max_retries=args.max_retries,
        requests_per_minute=args.requests_per_minute,
        tokens_per_minute=args.tokens_per_minute,
        pool_size=args.max_concurrency,
    )
    job = _core.run_jsonl_job(
        client,
        args.input,
        args.output,
        model=args.model,
        defaults=_defaults(args),
        max_concurrency=args.max_concurrency,
        skip_malformed=args.on_malformed == "skip",
    )
    bar = None if args.no_progress else _open_bar()
    try:
        while not job.wait(0.1):
            _update(bar, job.progress())
    except KeyboardInterrupt:
        job.cancel()
        _close(bar, job.progress())
        _error(f"interrupted; finished results are in {args.output}, re-run to continue")
        return EXIT_INTERRUPTED
    _close(bar, job.progress())
    try:
        summary = job.summary()
    except FileNotFoundError as e:
        _error(str(e))
        return EXIT_USAGE
    except _core.MalformedInputError as e:
        _error(f"malformed input at {e} (use --on-malformed skip to skip such lines)")
        return EXIT_USAGE
    except OSError as e:
        _error(str(e))
        return EXIT_USAGE
    except _core.APIStatusError as e:
        _error(f"the API refused the key ({e})")
        return EXIT_AUTH
    except _core.APIConnectionError as e:
        _error(f"cannot reach {base_url}: {e}")
        return EXIT_UNREACHABLE
    _print_summary(summary, args.output)
    return EXIT_OK if not summary["failures"] else EXIT_FAILED_REQUESTS


def _open_bar() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(unit="req", desc="Generating", dynamic_ncols=True, file=sys.stderr)


def _update(bar: Any, progress: tuple) -> None:
    if bar is None:
        return
    total, done, failed, retried, in_flight, skipped, malformed, _ = progress
    bar.total = total
    bar.n = done + failed
    bar.set_postfix(
        failed=failed,
        retried=retried,
        in_flight=in_flight,
        skipped=skipped,
        malformed=malformed,
        refresh=False,
    )
    bar.refresh()


def _close(bar: Any, progress: tuple) -> None:
    if bar is not None:
        _update(bar, progress)
        bar.close()


def _print_summary(summary: Dict[str, Any], output: str) -> None:
    seconds = summary["seconds"]
    rate = summary["requests"] / seconds if seconds else 0.0
    failures = ", ".join(f"{kind}: {count}" for kind, count in summary["failures"].items())
    lines = [
        f"requests: {summary['requests']} ({summary['succeeded']} succeeded,"
        f" {sum(summary['failures'].values())} failed{': ' + failures if failures else ''})",
        f"skipped (already in {output}): {summary['skipped']}",
        f"tokens: {summary['tokens']}",
        f"wall time: {seconds:.2f} s ({rate:,.0f} requests/s)",
    ]
    for line, reason in summary["malformed_lines"]:
        lines.append(f"skipped malformed line {line}: {reason}")
    print("\n".join(lines), file=sys.stderr)


def _bench(args: argparse.Namespace) -> int:
    server = _core.MockServer()
    inputs = [[{"role": "user", "content": f"question number {i}"}] for i in range(args.requests)]
    rows: List[tuple] = []
    for name, factory in (("distilabel_rs", _ours), ("distilabel 1.5.3", _theirs)):
        llm = factory(server.base_url)
        if llm is None:
            rows.append((name, None))
            continue
        llm.load()
        llm.generate(inputs[:20])  # warm up
        started = time.perf_counter()
        llm.generate(inputs)
        rows.append((name, args.requests / (time.perf_counter() - started)))
    print(f"{args.requests} chat completions against an embedded local server (127.0.0.1)\n")
    print("| client | requests/s |\n|---|---|")
    for name, rate in rows:
        print(f"| {name} `OpenAILLM` | {'not installed' if rate is None else f'{rate:,.0f}'} |")
    ours, theirs = rows[0][1], rows[1][1]
    if ours and theirs:
        print(f"\ndistilabel_rs: {ours / theirs:.0f}x the requests per second.")
    return EXIT_OK


def _ours(base_url: str) -> Any:
    from distilabel_rs import OpenAILLM

    return OpenAILLM(model="bench", base_url=base_url, api_key="mock")


def _theirs(base_url: str) -> Optional[Any]:
    try:
        import warnings

        warnings.simplefilter("ignore")
        from distilabel.models.llms import OpenAILLM
    except ImportError:
        return None
    return OpenAILLM(model="bench", base_url=base_url, api_key="mock")


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "generate":
        return _generate(args)
    return _bench(args)
