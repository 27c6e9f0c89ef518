"""`distilabel-rs generate` against what users would otherwise run over a JSONL file of chat
requests, in one run.

    .venv/bin/python benches/bench_command_peers.py [--requests-zero 20000]
        [--requests-latency 5000] [--latency-ms 200] [--concurrency 64] [--repeat 3]
        [--tools command,aiohttp,openai,openai-aiohttp,litellm,curator] [--no-install]
    .venv/bin/python benches/bench_command_peers.py --fraction 5   # the command against wrk
    .venv/bin/python benches/bench_command_peers.py --quick        # every tool, small inputs,
                                                                   # one run each (minutes)

The tools, all on the same input (a JSONL of N OpenAI Batch API chat requests), against the
same local server (the Rust mock of `distilabel_rs._core.MockServer`, in its own process, a
fresh one for each run), at the same concurrency:

- `distilabel-rs generate` (the command, run from `.venv/bin/distilabel-rs`);
- a plain asyncio + aiohttp script with a semaphore (`benches/peers/aiohttp_client.py`);
- the openai SDK, `AsyncOpenAI` with a semaphore (`benches/peers/openai_client.py`), on its
  default httpx transport and on its aiohttp one (`DefaultAioHttpClient`, which the SDK
  recommends for high concurrency);
- LiteLLM, `litellm.acompletion` with a semaphore (`benches/peers/litellm_client.py`);
- Curator, an `LLM` with the OpenAI backend and `max_concurrent_requests`
  (`benches/peers/curator_client.py`).

Outputs: the command appends and flushes one line per result (OpenAI Batch output format);
the aiohttp, openai (both) and LiteLLM scripts do the same (`benches/peers/_lines.py`: one
`json.dumps` line per result, written and flushed as it lands); Curator writes its own
output (each response appended to `responses_*.jsonl` in its working directory, then an Arrow
dataset). Every run is checked to have written every result.

Latency: at 0 ms, and at `--latency-ms` through the mock's `[[sleep_ms=…]]` directive in
each request's message text, which every client sends unchanged.

Measured from the outside, each run in a fresh process: wall time; client CPU (user + system
time of the tool's process and its children, from `os.wait4`); peak RSS (`ru_maxrss`); the
server's CPU (from `/proc`). Each tool also runs once on a 1-request input: its start-up and
shut-down (interpreter, imports, the first connection), subtracted to give the steady
requests/s and CPU per request; the end-to-end requests/s (what a user waits for) is shown
too. `wrk -t2 -c<concurrency>` against the same server with the same body gives the ceiling;
`--fraction PAIRS` measures only the command against wrk at 0 ms, in alternating pairs (the
same load for both), for the "fraction of wrk" of its requests/s.

The peers are not installed into `.venv`: the script makes its own venvs from PyPI, with
the versions pinned below: `benches/peers/.venv` (aiohttp, openai with its aiohttp extra,
LiteLLM) and `benches/peers/.venv-curator` (Curator, which pins its own LiteLLM); a peer
that cannot be installed is reported as such in the table.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from common import machine, mock_server_process

BENCHES = Path(__file__).resolve().parent
REPO = BENCHES.parent
PEERS = BENCHES / "peers"
COMMAND = REPO / ".venv" / "bin" / "distilabel-rs"

# What the peers' venvs get from PyPI (pinned, so that runs compare).
PEERS_VENV = PEERS / ".venv"
PEERS_REQUIREMENTS = ["aiohttp==3.14.5", "openai[aiohttp]==2.54.0", "litellm==1.106.2"]
CURATOR_VENV = PEERS / ".venv-curator"
CURATOR_REQUIREMENTS = ["bespokelabs-curator==0.1.31"]

API_KEY = "sk-bench"
MODEL = "bench"

# Environment for every tool: the key, and nothing that reaches the network but the mock.
BASE_ENV = {
    "OPENAI_API_KEY": API_KEY,
    "NO_PROXY": "127.0.0.1,localhost",
    # LiteLLM (also inside Curator) otherwise downloads its model cost map at import.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    # Curator: no telemetry, no rich live display, Hugging Face offline.
    "TELEMETRY_ENABLED": "false",
    "CURATOR_DISABLE_RICH_DISPLAY": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}


@dataclass
class Tool:
    """One tool: how to install and run it, and where its results are."""

    name: str
    label: str
    venv: Optional[Path]  # None: the project's .venv
    requirements: List[str]
    imports: str  # the module whose import proves the install
    argv: Callable[[Path, Path, str, int], List[str]]
    uses_working_dir: bool = False
    env: Callable[[], Dict[str, str]] = dict  # extra environment variables
    unavailable: Optional[str] = None  # why it cannot run here
    versions: Dict[str, str] = field(default_factory=dict)


def _peer(script: str, venv: Path, *extra: str) -> Callable[[Path, Path, str, int], List[str]]:
    def argv(input_path: Path, output: Path, base_url: str, concurrency: int) -> List[str]:
        return [
            str(venv / "bin" / "python"),
            str(PEERS / script),
            str(input_path),
            str(output),
            base_url,
            str(concurrency),
            *extra,
        ]

    return argv


def _command(input_path: Path, output: Path, base_url: str, concurrency: int) -> List[str]:
    return [
        str(COMMAND),
        "generate",
        str(input_path),
        "-o",
        str(output),
        "--model",
        MODEL,
        "--base-url",
        base_url,
        "--max-concurrency",
        str(concurrency),
        "--no-progress",
    ]


TOOLS = [
    Tool("command", "`distilabel-rs generate`", None, [], "distilabel_rs", _command),
    Tool(
        "aiohttp",
        "asyncio + aiohttp, semaphore",
        PEERS_VENV,
        PEERS_REQUIREMENTS,
        "aiohttp",
        _peer("aiohttp_client.py", PEERS_VENV),
    ),
    Tool(
        "openai",
        "openai SDK `AsyncOpenAI`, semaphore",
        PEERS_VENV,
        PEERS_REQUIREMENTS,
        "openai",
        _peer("openai_client.py", PEERS_VENV),
    ),
    Tool(
        "openai-aiohttp",
        "openai SDK `AsyncOpenAI(http_client=DefaultAioHttpClient())`, semaphore",
        PEERS_VENV,
        PEERS_REQUIREMENTS,
        "httpx_aiohttp",
        _peer("openai_client.py", PEERS_VENV, "aiohttp"),
    ),
    Tool(
        "litellm",
        "LiteLLM `acompletion`, semaphore",
        PEERS_VENV,
        PEERS_REQUIREMENTS,
        "litellm",
        _peer("litellm_client.py", PEERS_VENV),
    ),
    Tool(
        "curator",
        "Curator `LLM` (openai backend)",
        CURATOR_VENV,
        CURATOR_REQUIREMENTS,
        "bespokelabs.curator",
        _peer("curator_client.py", CURATOR_VENV),
        uses_working_dir=True,
        env=lambda: _tiktoken_cache(CURATOR_VENV),
    ),
]


def _tiktoken_cache(venv: Path) -> Dict[str, str]:
    """Curator counts tokens with tiktoken's cl100k_base, which tiktoken downloads on first
    use (no network here); LiteLLM ships that file (in tiktoken's cache layout), so tiktoken
    is pointed at LiteLLM's copy, as one would on an offline machine."""
    found = sorted(venv.glob("lib/python*/site-packages/litellm/litellm_core_utils/tokenizers"))
    return {"TIKTOKEN_CACHE_DIR": str(found[0])} if found else {}


VERSION_OF = {
    "command": ["distilabel-rs"],
    "aiohttp": ["aiohttp"],
    "openai": ["openai"],
    "openai-aiohttp": ["openai", "httpx-aiohttp"],
    "litellm": ["litellm", "openai"],
    "curator": ["bespokelabs-curator", "litellm", "aiohttp"],
}


# ---------------------------------------------------------------------------------------------
# Installing the peers


def _tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " / ".join(kept)[-300:]


def install(tools: List[Tool], allowed: bool) -> None:
    """Makes each peer venv (once) and installs its pinned requirements; a tool whose install
    fails gets `unavailable` set to the reason."""
    done: Dict[Path, Optional[str]] = {}
    for tool in tools:
        if tool.venv is None:
            if not COMMAND.exists():
                tool.unavailable = f"{COMMAND} missing: run `make install` first"
            tool.versions = _versions(Path(sys.executable), VERSION_OF[tool.name])
            continue
        if tool.venv not in done:
            done[tool.venv] = _make_venv(tool.venv, tool.requirements, allowed)
        problem = done[tool.venv]
        python = tool.venv / "bin" / "python"
        if problem is None:
            check = subprocess.run(
                [str(python), "-c", f"import {tool.imports}"],
                capture_output=True,
                text=True,
                env={**os.environ, **BASE_ENV},
            )
            if check.returncode != 0:
                problem = f"installed but `import {tool.imports}` fails: {_tail(check.stderr, 1)}"
        if problem is not None:
            tool.unavailable = f"not installable: {problem}"
        else:
            tool.versions = _versions(python, VERSION_OF[tool.name])


def _make_venv(venv: Path, requirements: List[str], allowed: bool) -> Optional[str]:
    python = venv / "bin" / "python"
    if not allowed:
        return None if python.exists() else f"{venv} missing (run without --no-install)"
    if not python.exists():
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True
        )
        if made.returncode != 0:
            return f"python -m venv failed: {_tail(made.stderr)}"
    print(f"installing {' '.join(requirements)} into {venv} ...", file=sys.stderr, flush=True)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + requirements,
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        return f"pip install {' '.join(requirements)} failed: {_tail(pip.stderr)}"
    return None


def _versions(python: Path, distributions: List[str]) -> Dict[str, str]:
    script = (
        "import json, sys\nfrom importlib import metadata\nout = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n        out[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError:\n        pass\n"
        "print(json.dumps(out))"
    )
    result = subprocess.run(
        [str(python), "-c", script, *distributions], capture_output=True, text=True
    )
    return json.loads(result.stdout) if result.returncode == 0 else {}


# ---------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Run:
    """One process, measured from the outside."""

    wall: float
    cpu: float  # user + system seconds of the process and its waited-for children
    max_rss_mb: float
    server_cpu: float
    returncode: int
    stderr: str
    results: int = 0  # successful results found in the tool's output
    errors: int = 0  # error results found in the tool's output
    rate: float = 0.0  # wrk's own requests/s


def _children() -> List[int]:
    pids: List[int] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids += [int(pid) for pid in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def _proc_cpu(pid: int) -> float:
    """User + system seconds of a running process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Spawns the measured process and reports its wait4 figures. Linux counts the RSS a process
# had before exec in its peak RSS, so the measured process must be spawned from a small
# process (this one, started without `site`: a few MB) rather than from the harness.
_SPAWNER = """
import json, os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(report, "w") as out:
    json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
               "max_rss_kb": usage.ru_maxrss, "exit": os.waitstatus_to_exitcode(status)}, out)
"""


def measure(argv: List[str], env: Dict[str, str], server_pid: int, scratch: Path) -> Run:
    """Runs `argv` to the end in a fresh process: its wall time, CPU (its own and its
    children's) and peak RSS from `wait4`, and the server's CPU meanwhile."""
    stdout_path, stderr_path = scratch / "stdout.txt", scratch / "stderr.txt"
    report_path = scratch / "rusage.json"
    report_path.unlink(missing_ok=True)
    server_before = _proc_cpu(server_pid)
    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        subprocess.run(
            [sys.executable, "-S", "-c", _SPAWNER, str(report_path), *argv],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=scratch,
            check=True,
        )
    server_cpu = _proc_cpu(server_pid) - server_before
    report = json.loads(report_path.read_text())
    return Run(
        wall=report["wall"],
        cpu=report["cpu"],
        max_rss_mb=report["max_rss_kb"] / 1024,
        server_cpu=server_cpu,
        returncode=report["exit"],
        stderr=stderr_path.read_text(errors="replace"),
    )


def count_results(tool: Tool, output: Path) -> Tuple[int, int]:
    """(successful, failed) results, counted once per custom id, in the tool's output."""
    ok, failed = set(), set()
    if tool.uses_working_dir:
        # Curator's own output: every response appended to responses_*.jsonl.
        for path in output.glob("**/responses_*.jsonl"):
            with open(path) as lines:
                for line in lines:
                    response = json.loads(line)
                    custom_id = response["generic_request"]["original_row"]["custom_id"]
                    (failed if response.get("response_errors") else ok).add(custom_id)
        return len(ok), len(failed - ok)
    if output.exists():
        with open(output) as lines:
            for line in lines:
                result = json.loads(line)
                response = result.get("response") or {}
                good = result.get("error") is None and response.get("status_code") == 200
                (ok if good else failed).add(result["custom_id"])
    return len(ok), len(failed - ok)


def run_tool(tool: Tool, input_path: Path, count: int, concurrency: int, scratch: Path) -> Run:
    """One run of `tool` over `input_path` against a fresh mock server."""
    output = scratch / ("work" if tool.uses_working_dir else "output.jsonl")
    if output.is_dir():
        shutil.rmtree(output)
    else:
        output.unlink(missing_ok=True)
    env = {**os.environ, **BASE_ENV, **tool.env()}
    env["CURATOR_CACHE_DIR"] = str(scratch / "curator-cache")
    env["HF_HOME"] = str(scratch / "hf-home")
    if tool.venv is not None:
        env["PATH"] = f"{tool.venv / 'bin'}:{env['PATH']}"
        env.pop("VIRTUAL_ENV", None)
    with mock_server_process() as base_url:
        server_pid = _children()[0]
        argv = tool.argv(input_path, output, base_url, concurrency)
        run = measure(argv, env, server_pid, scratch)
    run.results, run.errors = count_results(tool, output)
    return run


def wrk_run(base_url: str, body: dict, concurrency: int, seconds: int, server_pid: int) -> Run:
    """`wrk -t2 -c<concurrency>` posting `body` to the chat endpoint; `results` = requests."""
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        lua = scratch / "post.lua"
        lua.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {API_KEY}"\n'
            # A long bracket of level 2: the body may hold `[[...]]` directives.
            f"wrk.body = [==[{json.dumps(body)}]==]\n"
        )
        argv = ["wrk", "-t2", f"-c{concurrency}", f"-d{seconds}s", "-s", str(lua)]
        argv.append(f"{base_url}/chat/completions")
        run = measure(argv, dict(os.environ), server_pid, scratch)
        out = (scratch / "stdout.txt").read_text()
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            run.rate = float(line.split(":", 1)[1])
        if "requests in" in line:
            run.results = int(line.split()[0])
        if line.startswith("  Non-2xx"):
            run.errors = int(line.split(":")[1])
    return run


# ---------------------------------------------------------------------------------------------
# The scenarios and the table


def write_input(path: Path, count: int, latency_ms: int) -> dict:
    """N Batch API chat requests; returns the first body (for wrk)."""
    directive = f" [[sleep_ms={latency_ms}]]" if latency_ms else ""
    first: dict = {}
    with open(path, "w") as out:
        for i in range(count):
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"question number {i}{directive}"}],
            }
            first = first or body
            request = {
                "custom_id": f"request-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": body,
            }
            out.write(json.dumps(request) + "\n")
    return first


@dataclass
class Row:
    tool: Tool
    baseline: Optional[Run] = None
    runs: List[Run] = field(default_factory=list)
    problem: Optional[str] = None


def _failure(tool: Tool, run: Run, count: int) -> Optional[str]:
    if run.returncode != 0:
        return f"exit {run.returncode}: {_tail(run.stderr)}"
    if run.results != count:
        return f"wrote {run.results}/{count} results ({run.errors} errors): {_tail(run.stderr)}"
    return None


def scenario(
    tools: List[Tool], count: int, latency_ms: int, args: argparse.Namespace, root: Path
) -> Tuple[List[Row], Run, Tuple[float, float]]:
    """Every tool (1-request baseline, then `--repeat` runs of `count`), then wrk."""
    scratch = root / f"latency-{latency_ms}"
    scratch.mkdir()
    big, small = scratch / "requests.jsonl", scratch / "one-request.jsonl"
    body = write_input(big, count, latency_ms)
    write_input(small, 1, latency_ms)
    load_before = os.getloadavg()[0]
    rows = [Row(tool, problem=tool.unavailable) for tool in tools]
    for row in rows:
        if row.problem is None:
            log(f"{latency_ms} ms: {row.tool.name}, 1 request (start-up)")
            row.baseline = run_tool(row.tool, small, 1, args.concurrency, scratch)
            row.problem = _failure(row.tool, row.baseline, 1)
    for repeat in range(args.repeat):
        for row in rows:
            # Runs after the first only for the tools that are quick to run.
            quick = not row.runs or row.runs[0].wall <= args.repeat_budget
            if row.problem is None and quick:
                log(f"{latency_ms} ms: {row.tool.name}, {count} requests ({repeat + 1})")
                run = run_tool(row.tool, big, count, args.concurrency, scratch)
                row.problem = _failure(row.tool, run, count)
                row.runs.append(run)
                log(f"  {run.wall:.1f} s, {run.cpu:.1f} s CPU, {run.results} results")
    with mock_server_process() as base_url:
        log(f"{latency_ms} ms: wrk")
        ceiling = wrk_run(base_url, body, args.concurrency, args.wrk_seconds, _children()[0])
    return rows, ceiling, (load_before, os.getloadavg()[0])


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {message}", file=sys.stderr)


def median_run(runs: List[Run]) -> Run:
    return sorted(runs, key=lambda run: run.wall)[len(runs) // 2]


def steady(row: Row, count: int) -> Tuple[float, float, float]:
    """(requests/s, CPU µs per request, end-to-end requests/s), the baseline subtracted."""
    run, base = median_run(row.runs), row.baseline
    assert base is not None
    rate = (count - 1) / max(run.wall - base.wall, 1e-9)
    cpu = (run.cpu - base.cpu) / (count - 1) * 1e6
    return rate, cpu, count / run.wall


def table(
    rows: List[Row],
    ceiling: Run,
    count: int,
    latency_ms: int,
    load: Tuple[float, float],
    concurrency: int,
) -> Optional[float]:
    """Prints one scenario's table; returns the command's steady requests/s."""
    print(
        f"\n### {count:,} chat requests, {latency_ms} ms server latency, concurrency"
        f" {concurrency} (load average {load[0]:.2f} before,"
        f" {load[1]:.2f} after)\n"
    )
    print(
        "| tool | requests/s | end-to-end requests/s | client CPU per request"
        " | start-up CPU | peak RSS | server CPU per request | results written |"
    )
    print("|---|---|---|---|---|---|---|---|")
    ours = None
    for row in rows:
        versions = ", ".join(f"{k} {v}" for k, v in row.tool.versions.items())
        label = f"{row.tool.label} ({versions})" if versions else row.tool.label
        if row.problem is not None and not row.runs:
            print(f"| {label} | {row.problem} | | | | | | |")
            continue
        rate, cpu, end_to_end = steady(row, count)
        run, base = median_run(row.runs), row.baseline
        assert base is not None
        if row.tool.name == "command":
            ours = rate
        written = f"{run.results:,}/{count:,}" + (f" ({row.problem})" if row.problem else "")
        spread = ""
        if len(row.runs) > 1:
            rates = [(count - 1) / (r.wall - base.wall) for r in row.runs]
            spread = f" ({min(rates):,.0f}–{max(rates):,.0f})"
        print(
            f"| {label} | {rate:,.0f}{spread} | {end_to_end:,.0f} | {cpu:,.0f} µs"
            f" | {base.cpu:.2f} s | {run.max_rss_mb:,.0f} MB"
            f" | {run.server_cpu / count * 1e6:,.0f} µs | {written} |"
        )
    if ceiling.results:
        wall = ceiling.wall
        print(
            f"| `wrk -t2 -c{concurrency}` (ceiling of the server) | {ceiling.rate:,.0f}"
            f" | | {ceiling.cpu / ceiling.results * 1e6:,.0f} µs | | {ceiling.max_rss_mb:,.0f} MB"
            f" | {ceiling.server_cpu / ceiling.results * 1e6:,.0f} µs"
            f" | {ceiling.results:,} in {wall:.0f} s ({ceiling.errors} non-2xx) |"
        )
    else:
        print(f"| wrk | failed: {_tail(ceiling.stderr)} | | | | | | |")
    return ours


def fraction_of_wrk(args: argparse.Namespace, root: Path) -> None:
    """The command against wrk at 0 ms, in alternating pairs (command run, then wrk for
    about as long) so that both see the same load; prints each pair and the medians."""
    command = next(tool for tool in TOOLS if tool.name == "command")
    install([command], allowed=False)
    if command.unavailable:
        raise SystemExit(command.unavailable)
    count = args.requests_zero
    scratch = root / "fraction"
    scratch.mkdir()
    big, small = scratch / "requests.jsonl", scratch / "one-request.jsonl"
    body = write_input(big, count, 0)
    write_input(small, 1, 0)
    baseline = run_tool(command, small, 1, args.concurrency, scratch)
    print(f"Machine: {machine()}\n")
    print(
        f"### The command against wrk: {count:,} chat requests, 0 ms, concurrency"
        f" {args.concurrency}, {args.fraction} alternating pairs\n"
    )
    print(
        "| pair | load average | command requests/s | wrk requests/s | fraction of wrk"
        " | command CPU per request | wrk CPU per request | server CPU per request"
        " (command / wrk) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    fractions, cpus = [], []
    for pair in range(1, args.fraction + 1):
        load = os.getloadavg()[0]
        log(f"pair {pair}: command")
        run = run_tool(command, big, count, args.concurrency, scratch)
        if _failure(command, run, count):
            raise SystemExit(f"the command failed: {_failure(command, run, count)}")
        rate = (count - 1) / (run.wall - baseline.wall)
        cpu = (run.cpu - baseline.cpu) / (count - 1) * 1e6
        seconds = max(2, round(run.wall))
        with mock_server_process() as base_url:
            log(f"pair {pair}: wrk {seconds} s")
            ceiling = wrk_run(base_url, body, args.concurrency, seconds, _children()[0])
        wrk_cpu = ceiling.cpu / max(ceiling.results, 1) * 1e6
        fractions.append(rate / ceiling.rate)
        cpus.append(cpu)
        print(
            f"| {pair} | {load:.2f} | {rate:,.0f} | {ceiling.rate:,.0f}"
            f" | {rate / ceiling.rate:.0%} | {cpu:,.0f} µs | {wrk_cpu:,.0f} µs"
            f" | {run.server_cpu / count * 1e6:,.0f} / "
            f"{ceiling.server_cpu / max(ceiling.results, 1) * 1e6:,.0f} µs |",
            flush=True,
        )
    print(
        f"\nMedian fraction of wrk: {statistics.median(fractions):.0%} (goal ≥ 60 %);"
        f" median client CPU per request of the command: {statistics.median(cpus):,.0f} µs."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests-zero", type=int, default=20_000)
    parser.add_argument("--requests-latency", type=int, default=5_000)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per tool (the median is shown, and the range)"
    )
    parser.add_argument(
        "--repeat-budget",
        type=float,
        default=30.0,
        help="seconds: a tool whose first run takes longer runs once",
    )
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--tools", default=",".join(tool.name for tool in TOOLS))
    parser.add_argument("--no-install", action="store_true", help="use the venvs as they are")
    parser.add_argument("--skip-latency", action="store_true", help="only the 0 ms scenario")
    parser.add_argument(
        "--fraction",
        type=int,
        metavar="PAIRS",
        help="only the command against wrk at 0 ms, in PAIRS alternating runs",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a check that everything runs: 2,000 requests at 0 ms, 1,000 at --latency-ms,"
        " one run per tool, wrk for 3 s (and 3 pairs with --fraction)",
    )
    args = parser.parse_args()
    if args.quick:
        args.requests_zero, args.requests_latency = 2_000, 1_000
        args.repeat, args.wrk_seconds = 1, 3
        if args.fraction:
            args.fraction = min(args.fraction, 3)

    if shutil.which("wrk") is None:
        raise SystemExit("wrk not installed (`apt-get install wrk`)")
    if args.fraction:
        with tempfile.TemporaryDirectory(prefix="bench-peers-") as root:
            fraction_of_wrk(args, Path(root))
        return
    chosen = args.tools.split(",")
    tools = [tool for tool in TOOLS if tool.name in chosen]
    install(tools, allowed=not args.no_install)

    scenarios = [(args.requests_zero, 0)]
    if not args.skip_latency:
        scenarios.append((args.requests_latency, args.latency_ms))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as root:
        for count, latency_ms in scenarios:
            measured = scenario(tools, count, latency_ms, args, Path(root))
            results.append((count, latency_ms, *measured))

    print(f"Machine: {machine()}")
    print(
        "Each tool in a fresh process against a fresh mock server (its own process);"
        " requests/s and client CPU per request are steady-state: the tool's run on a"
        " 1-request input (start-up, imports, shut-down) subtracted; end-to-end requests/s"
        " includes it. Client CPU = user + system time of the tool's process and children"
        " (wait4); server CPU from /proc."
    )
    for count, latency_ms, rows, ceiling, load in results:
        ours = table(rows, ceiling, count, latency_ms, load, args.concurrency)
        if latency_ms == 0 and ours and ceiling.results:
            wrk_rate = ceiling.rate
            command = next(row for row in rows if row.tool.name == "command")
            _, cpu, _ = steady(command, count)
            print(
                f"\nThe command at 0 ms: {ours / wrk_rate:.0%} of wrk's requests/s (goal ≥ 60 %);"
                f" client CPU per request {cpu:,.0f} µs against wrk's"
                f" {ceiling.cpu / ceiling.results * 1e6:,.0f} µs"
                f" ({cpu / (ceiling.cpu / ceiling.results * 1e6):.1f}x)."
            )


if __name__ == "__main__":
    main()
