"""distilabel_rs LLMs inside real distilabel pipelines (forked step workers, cache,
`pipeline.yaml`), against the mock server running in its own process."""

import json
import os
import subprocess
import sys
from typing import Any, Dict, Optional

import pytest

from tests.conftest import REPO

SERVER = (
    "import sys\nfrom distilabel_rs import _core\ns = _core.MockServer()\n"
    "print(s.base_url, flush=True)\nsys.stdin.read()\nprint(s.requests, flush=True)"
)


@pytest.fixture
def server_url() -> Any:
    server = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        yield server.stdout.readline().strip()
    finally:
        server.kill()
        server.wait()


PIPELINE = """
import json, sys
from pathlib import Path
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts
from distilabel.steps.tasks import TextGeneration
from distilabel_rs import {llm}

base_url, cache_dir, use_cache = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {{}}
with Pipeline(name="distilabel-rs-e2e", cache_dir=cache_dir) as pipeline:
    data = [{{"instruction": f"q{{i}}"}} for i in range({rows})]
    load = LoadDataFromDicts(data=data, batch_size=50)
    generate = TextGeneration(
        llm={llm}(model="{model}", base_url=base_url, api_key="sk-pipeline", **extra),
        input_batch_size=50,
    )
    load >> generate
distiset = pipeline.run(use_cache=use_cache)
rows = distiset["default"]["train"].to_list()
print(json.dumps({{
    "rows": len(rows),
    "generations": [r["generation"] for r in rows],
    "statistics": rows[0]["distilabel_metadata"]["statistics_text_generation_0"],
    "model_name": rows[0]["model_name"],
}}))
"""


def run_pipeline(
    base_url: str,
    cache_dir: str,
    use_cache: bool,
    rows: int = 300,
    llm: str = "OpenAILLM",
    model: str = "mock-model",
    env: Optional[Dict[str, str]] = None,
    **extra: Any,
) -> subprocess.CompletedProcess:
    """Runs the pipeline in a fresh interpreter (as a user's script would be), with
    `llm(model=model, base_url=base_url, ...)` generating."""
    arguments = [base_url, cache_dir, "1" if use_cache else "0", json.dumps(extra)]
    code = PIPELINE.format(rows=rows, llm=llm, model=model)
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env=env,
    )


def test_text_generation_pipeline_end_to_end_with_cache(server_url: str, tmp_path: Any) -> None:
    first = run_pipeline(server_url, str(tmp_path), use_cache=False)
    assert first.returncode == 0, first.stderr[-3000:]
    out = json.loads(first.stdout.strip().splitlines()[-1])
    assert out["rows"] == 300
    assert sorted(out["generations"]) == sorted(f"echo: q{i}" for i in range(300))
    assert out["model_name"] == "mock-model"
    assert set(out["statistics"]) == {"input_tokens", "output_tokens"}

    # pipeline.yaml holds distilabel_rs's LLM (type_info) and never the key.
    yaml_files = list(tmp_path.rglob("pipeline.yaml"))
    assert yaml_files
    text = yaml_files[0].read_text()
    assert "module: distilabel_rs.models.llms.openai" in text and "sk-pipeline" not in text

    # A re-run rebuilds the pipeline from the cache and pipeline.yaml.
    second = run_pipeline(server_url, str(tmp_path), use_cache=True)
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads(second.stdout.strip().splitlines()[-1])
    assert sorted(again["generations"]) == sorted(out["generations"])


# The batch API of each LLM class that has one: the base URL it is given (the mock's
# OpenAI-style `/v1` one, or the origin for Anthropic's), the model, and the prefix of the
# job ids the mock gives (OpenAI Batch `batch_...`, Message Batches `msgbatch_...`).
OFFLINE_BATCH_LLMS = {
    "OpenAILLM": ("", "mock-model", "batch_"),
    "AnthropicLLM": ("origin", "claude-3-5-sonnet-20241022", "msgbatch_"),
}


@pytest.mark.parametrize("llm", list(OFFLINE_BATCH_LLMS))
def test_offline_batch_generation_inside_a_pipeline(
    llm: str, server_url: str, tmp_path: Any
) -> None:
    url, model, job_prefix = OFFLINE_BATCH_LLMS[llm]
    base_url = server_url.removesuffix("/v1") if url == "origin" else server_url
    # The kept copies of the submitted requests (Message Batches) go under the test's
    # directory, not the user's cache.
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")}
    cache_dir = tmp_path / "pipeline-cache"

    def run() -> subprocess.CompletedProcess:
        return run_pipeline(
            base_url,
            str(cache_dir),
            use_cache=True,
            rows=20,
            llm=llm,
            model=model,
            env=env,
            use_offline_batch_generation=True,
        )

    first = run()
    # The first run stops with the jobs still running, their ids cached in pipeline.yaml.
    yaml_text = next(cache_dir.rglob("pipeline.yaml")).read_text()
    assert "jobs_ids" in yaml_text and job_prefix in yaml_text, first.stderr[-3000:]
    assert f"module: distilabel_rs.models.llms.{llm.removesuffix('LLM').lower()}" in yaml_text
    outputs = None
    for _ in range(5):  # the mock's jobs finish after a few polls
        rerun = run()
        lines = rerun.stdout.strip().splitlines()
        if rerun.returncode == 0 and lines and lines[-1].startswith("{"):
            outputs = json.loads(lines[-1])
            if outputs["rows"] == 20:
                break
    assert outputs is not None and outputs["rows"] == 20, rerun.stderr[-3000:]
    assert sorted(outputs["generations"]) == sorted(f"echo: q{i}" for i in range(20))
    assert outputs["model_name"] == model
    assert set(outputs["statistics"]) == {"input_tokens", "output_tokens"}
