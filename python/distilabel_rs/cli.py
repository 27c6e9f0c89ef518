"""The `distilabel-rs` command (also `python -m distilabel_rs`).

    distilabel-rs generate INPUT -o OUTPUT --model M [--base-url URL] [options]
    distilabel-rs generate INPUT -o OUTPUT --model M --mock     # local server, no key
    distilabel-rs bench [--requests N]

Exit codes: 0 every request succeeded; 1 the job finished but some requests failed (their
errors are in OUTPUT); 2 bad usage or input (missing file, malformed line); 3 the server
cannot be reached; 4 the API key was refused; 5 reading INPUT or writing OUTPUT (or its
state file) failed mid-run: disk full, read-only or vanished file, I/O error (the message
names the file and the cause; every line already written is kept, and a re-run once the
cause is fixed finishes the job); 130 interrupted (Ctrl-C; OUTPUT keeps every finished
result and a re-run continues where it stopped).
"""

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Set, Union

from distilabel_rs import _core
from distilabel_rs._providers import PROVIDERS

# The one set of client defaults, shared with the native LLMs.
_DEFAULTS = _core.CLIENT_DEFAULTS

__all__ = ["main"]

EXIT_OK, EXIT_FAILED_REQUESTS, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_AUTH = 0, 1, 2, 3, 4
EXIT_IO = 5
EXIT_INTERRUPTED = 130

# The ceiling of `--max-concurrency auto`: the Rust core's `adaptive::DEFAULT_CEILING`, as
# `_fanout.AUTO_DEFAULT_CEILING` (not imported: it would load the LLM modules).
_AUTO_CEILING = 1024

_MAX_CONCURRENCY_HELP = (
    "how many requests at once: a positive integer (default: %(default)s), `auto` (adaptive:"
    f" starts at 8 and follows the server's latencies and 429s, up to {_AUTO_CEILING}) or"
    " `auto:N` (adaptive, up to N)"
)


def _max_concurrency(text: str) -> Union[int, str]:
    """`--max-concurrency`: a positive int, `"auto"` or `"auto:N"` (normalized)."""
    value = text.strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    if value == "auto":
        return value
    head, _, ceiling = value.partition(":")
    if head == "auto" and ceiling.strip().isdigit() and int(ceiling) > 0:
        return f"auto:{int(ceiling)}"
    raise argparse.ArgumentTypeError(
        f"expected a positive integer (e.g. --max-concurrency 64), `auto` (adaptive, up to"
        f" {_AUTO_CEILING}) or `auto:N` (adaptive, up to N > 0, e.g. --max-concurrency"
        f" auto:256); got {text!r}"
    )


def _pool_size(max_concurrency: Union[int, str]) -> int:
    """Connections to keep: the most requests that can ever be in flight (for `auto`, its
    ceiling, as the native LLMs' `_fanout.pool_size`)."""
    if isinstance(max_concurrency, int):
        return max_concurrency
    _, _, ceiling = max_concurrency.partition(":")
    return int(ceiling) if ceiling else _AUTO_CEILING


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
        "--provider",
        choices=sorted(PROVIDERS),
        default="openai",
        help="the API to send the requests to (default: openai): "
        + "; ".join(f"{name}: {spec.description}" for name, spec in sorted(PROVIDERS.items())),
    )
    generate.add_argument(
        "--base-url",
        help="the API's base URL (default: the provider's, or its environment variable, e.g."
        " OPENAI_BASE_URL)",
    )
    generate.add_argument(
        "--api-key-env",
        help="environment variable holding the API key (default: the provider's, e.g."
        " OPENAI_API_KEY)",
    )
    generate.add_argument(
        "--mock", action="store_true", help="use a local mock server (no key needed)"
    )
    generate.add_argument("--num-generations", type=int, help="`n` for requests that set none")
    generate.add_argument(
        "--max-concurrency",
        type=_max_concurrency,
        default=_DEFAULTS["max_concurrency"],
        metavar="N|auto|auto:N",
        help=_MAX_CONCURRENCY_HELP,
    )
    generate.add_argument("--requests-per-minute", type=float)
    generate.add_argument("--tokens-per-minute", type=float)
    generate.add_argument("--max-retries", type=int, default=_DEFAULTS["max_retries"])
    generate.add_argument(
        "--timeout", type=float, default=_DEFAULTS["timeout"], help="seconds per request"
    )
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
    generate.add_argument(
        "--batch-api",
        action="store_true",
        help="submit INPUT through the provider's Batch API instead (chat requests); the job"
        " ids are kept in OUTPUT.batch.json, so a re-run collects instead of submitting again",
    )
    generate.add_argument(
        "--wait", action="store_true", help="with --batch-api: poll until done, then write OUTPUT"
    )
    generate.add_argument(
        "--poll-interval", type=float, default=30.0, help="seconds between polls (--wait)"
    )

    bench = commands.add_parser(
        "bench",
        help="compare with distilabel 1.5.3's OpenAILLM against an embedded local server",
    )
    bench.add_argument("--requests", type=int, default=2000)
    return parser


def _defaults(args: argparse.Namespace) -> Dict[str, Any]:
    """The model and generation options for requests that do not set them."""
    return {
        "model": args.model,
        "n": args.num_generations,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
    }


def _error(message: str) -> None:
    print(f"distilabel-rs: error: {message}", file=sys.stderr)


def _generate(args: argparse.Namespace) -> int:
    spec = PROVIDERS[args.provider]
    server = _core.MockServer() if args.mock else None
    if server is not None:
        base_url = server.origin + spec.mock_path
    else:
        base_url = args.base_url or (
            os.environ.get(spec.base_url_env, spec.default_base_url)
            if spec.base_url_env
            else spec.default_base_url
        )
    key_env = args.api_key_env or spec.api_key_env
    api_key = os.environ.get(key_env) if key_env else None
    if api_key is None and server is not None:
        api_key = "mock"
    if api_key is None and key_env is not None:
        _error(f"no API key: set {key_env} (or pass --api-key-env NAME, or --mock)")
        return EXIT_USAGE
    if not os.path.isfile(args.input):
        _error(f"cannot read {args.input}: no such file")
        return EXIT_USAGE
    client = _core.NativeClient(
        spec.kind,
        base_url,
        profile=spec.profile,
        api_key=api_key,
        timeout=args.timeout,
        max_retries=args.max_retries,
        requests_per_minute=args.requests_per_minute,
        tokens_per_minute=args.tokens_per_minute,
        pool_size=_pool_size(args.max_concurrency),
    )
    if args.batch_api:
        return _batch(args, client)
    job = _core.start_generate_job(
        client,
        args.input,
        args.output,
        defaults=_defaults(args),
        max_concurrency=args.max_concurrency,
        skip_malformed=args.on_malformed == "skip",
    )
    bar = None if args.no_progress else _open_bar()
    # A fixed limit is known; the one `auto` found is worth watching.
    show_limit = isinstance(args.max_concurrency, str)
    try:
        while not job.wait(0.1):
            _update(bar, job.progress(), show_limit)
    except KeyboardInterrupt:
        job.cancel()
        _close(bar, job.progress(), show_limit)
        _error(f"interrupted; finished results are in {args.output}, re-run to continue")
        return EXIT_INTERRUPTED
    _close(bar, job.progress(), show_limit)
    try:
        summary = job.summary()
    except _core.MalformedInputError as e:
        _error(f"malformed input at {e} (use --on-malformed skip to skip such lines)")
        return EXIT_USAGE
    except FileNotFoundError as e:  # INPUT went away before it was opened
        _error(str(e))
        return EXIT_USAGE
    except OSError as e:  # disk full, read-only, vanished or unreadable file...
        _error(
            f"{e}; every result already written to {args.output} is kept: fix the cause and"
            " re-run to finish the job"
        )
        return EXIT_IO
    except _core.APIStatusError as e:
        _error(f"the API refused the key ({e})")
        return EXIT_AUTH
    except _core.APIConnectionError as e:
        _error(f"cannot reach {base_url}: {e}")
        return EXIT_UNREACHABLE
    _print_summary(summary, args.output, None if not show_limit else args.max_concurrency)
    return EXIT_OK if not summary["failures"] else EXIT_FAILED_REQUESTS


_BATCH_METADATA = {"description": "distilabel-rs generate"}


def _batch(args: argparse.Namespace, client: Any) -> int:
    """`--batch-api`: submit once (job ids kept next to OUTPUT), then collect with `--wait`.

    OUTPUT.batch.json is the submission's journal: each intent is written (atomically)
    before the call that acts on it, so a re-run after a kill at any moment resumes the
    submission, finding at the provider what an interrupted call created, instead of paying
    for the same requests twice."""
    state_path = f"{args.output}.batch.json"
    try:
        jobs = _core.BatchJobs(client)
    except ValueError as e:
        _error(str(e))
        return EXIT_USAGE
    try:
        jobs_ids, submitted = _core.batch_journal_state(state_path)
    except OSError as e:
        _error(str(e))
        return EXIT_IO
    if submitted:
        print(f"collecting batch jobs {', '.join(jobs_ids)} (from {state_path})", file=sys.stderr)
    else:
        try:
            # The same line parser as the online path.
            rows, malformed = _core.batch_rows_from_file(
                client,
                jobs,
                args.input,
                defaults=_defaults(args),
                skip_malformed=args.on_malformed == "skip",
            )
        except _core.MalformedInputError as e:
            _error(f"malformed input at {e} (use --on-malformed skip to skip such lines)")
            return EXIT_USAGE
        except OSError as e:
            _error(f"{e}; fix the cause and re-run")
            return EXIT_IO
        for line, reason in malformed:
            print(f"skipped malformed line {line}: {reason}", file=sys.stderr)
        try:
            jobs_ids = _submit(jobs, rows, state_path, known_jobs=[])
        except OSError as e:
            _error(f"{e}; fix the cause and re-run: the submission resumes where it stopped")
            return EXIT_IO
        except (ValueError, _core.APIError) as e:
            return _submission_failed(e, state_path)
        print(f"submitted batch jobs {', '.join(jobs_ids)} ({len(rows)} requests)", file=sys.stderr)
    if not args.wait:
        print("re-run with --wait to collect the results", file=sys.stderr)
        return EXIT_OK
    try:
        while True:
            state = jobs.check(jobs_ids, raw=True)
            total, completed, failed = state["counts"]
            if state["running"]:
                print(
                    f"running: {completed + failed}/{total} done ({failed} failed)", file=sys.stderr
                )
                _core.wait_between_polls(args.poll_interval)
                continue
            unfinished = list(state["unfinished"])
            if state["lost"]:
                # The API keeps no copy of these requests: INPUT has them.
                unfinished.extend(_rows_from_input(args, client, jobs, set(state["lost"])))
            if unfinished:
                more = _submit(jobs, unfinished, state_path, known_jobs=jobs_ids)
                jobs_ids = [*jobs_ids, *more]
                print(f"resubmitted {len(unfinished)} unfinished requests", file=sys.stderr)
                continue
            break
    except KeyboardInterrupt:
        _error(f"interrupted; the jobs keep running, re-run to collect ({state_path})")
        return EXIT_INTERRUPTED
    except OSError as e:
        _error(f"{e}; fix the cause and re-run: the submission resumes where it stopped")
        return EXIT_IO
    except (ValueError, _core.APIError) as e:
        return _submission_failed(e, state_path)
    # Requests INPUT no longer has, among those the API could not give back, are failures
    # without a result line.
    failures = len(state["failed"]) + len(state["lost"])
    try:
        # A line cut by an earlier kill or full disk is dropped, results already in OUTPUT
        # are kept, the others appended and synced.
        _core.append_results(args.output, state["results"])
    except OSError as e:
        _error(f"{e}; every result line written before is kept: fix the cause and re-run")
        return EXIT_IO
    print(
        f"requests: {len(state['results'])} ({failures} failed); results in {args.output}",
        file=sys.stderr,
    )
    return EXIT_OK if not failures else EXIT_FAILED_REQUESTS


def _submission_failed(error: Exception, state_path: str) -> int:
    """The exit code (and message) of a submission or a poll the API did not accept."""
    if isinstance(error, _core.APIConnectionError):
        _error(f"cannot reach the API: {error}; re-run to resume ({state_path})")
        return EXIT_UNREACHABLE
    if isinstance(error, _core.APIStatusError) and error.status_code in (401, 403):
        _error(f"the API refused the key ({error})")
        return EXIT_AUTH
    _error(f"{error} (state in {state_path}; re-run to resume)")
    return EXIT_USAGE


def _submit(jobs: Any, rows: List[Any], state_path: str, known_jobs: List[str]) -> List[str]:
    """Submits `rows` durably, recorded in the state file."""
    return list(
        jobs.submit(
            rows,
            name="distilabel-rs",
            metadata=_BATCH_METADATA,
            journal=state_path,
            known_jobs=known_jobs,
        )
    )


def _rows_from_input(
    args: argparse.Namespace, client: Any, jobs: Any, custom_ids: Set[str]
) -> List[bytes]:
    """The batch rows of `custom_ids`, read again from INPUT by the same parser."""
    try:
        rows, _ = _core.batch_rows_from_file(
            client, jobs, args.input, defaults=_defaults(args), skip_malformed=True
        )
    except OSError as e:
        _error(f"cannot read {args.input} again to resubmit {len(custom_ids)} requests: {e}")
        return []
    found = [row for row in rows if json.loads(row)["custom_id"] in custom_ids]
    if len(found) < len(custom_ids):
        _error(f"{len(custom_ids) - len(found)} unfinished requests are no longer in {args.input}")
    return found


def _open_bar() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(unit="req", desc="Generating", dynamic_ncols=True, file=sys.stderr)


def _update(bar: Any, progress: tuple, show_limit: bool = False) -> None:
    if bar is None:
        return
    total, done, failed, retried, in_flight, skipped, malformed, _, limit = progress
    bar.total = total
    bar.n = done + failed
    postfix: Dict[str, Any] = {
        "failed": failed,
        "retried": retried,
        "in_flight": in_flight,
        "skipped": skipped,
        "malformed": malformed,
    }
    if show_limit and limit is not None:
        postfix["limit"] = limit
    bar.set_postfix(postfix, refresh=False)
    bar.refresh()


def _close(bar: Any, progress: tuple, show_limit: bool = False) -> None:
    if bar is not None:
        _update(bar, progress, show_limit)
        bar.close()


def _print_summary(summary: Dict[str, Any], output: str, adaptive: Optional[str] = None) -> None:
    """`adaptive`: the `auto` setting, whose limits are reported."""
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
    if adaptive is not None:
        lines.append(
            f"concurrency: {adaptive}, limit peaked at {summary['peak_limit']}"
            f" and ended at {summary['final_limit']}"
        )
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
