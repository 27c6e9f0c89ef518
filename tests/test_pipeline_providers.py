"""The native providers inside a real distilabel pipeline, with only the import changed: the
same `TextGeneration` pipeline runs with distilabel's class and with distilabel_rs's, each in
a fresh interpreter, against the same mock server (in its own process), and gives the same
rows."""

import json
import subprocess
import sys
from typing import Any, Dict

import pytest

from tests.conftest import REPO

SERVER = (
    "import sys\nfrom distilabel_rs import _core\ns = _core.MockServer()\n"
    "print(s.origin, flush=True)\nsys.stdin.read()"
)

PIPELINE = """
import json, sys
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts
from distilabel.steps.tasks import TextGeneration
from {package}.models.llms import {name} as LLMClass

cache_dir, kwargs = sys.argv[1], json.loads(sys.argv[2])
with Pipeline(name="providers-e2e", cache_dir=cache_dir) as pipeline:
    load = LoadDataFromDicts(data=[{{"instruction": f"q{{i}}"}} for i in range(24)], batch_size=8)
    generate = TextGeneration(llm=LLMClass(**kwargs), input_batch_size=8, num_generations=2)
    load >> generate
rows = pipeline.run(use_cache=False)["default"]["train"].to_list()
print(json.dumps([
    {{"instruction": r["instruction"], "generation": r["generation"],
      "statistics": r["distilabel_metadata"]["statistics_text_generation_0"],
      "model_name": r["model_name"]}}
    for r in rows
]))
"""


@pytest.fixture(scope="module")
def origin() -> Any:
    server = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        yield server.stdout.readline().strip()  # type: ignore[union-attr]
    finally:
        server.kill()
        server.wait()


def run(package: str, name: str, kwargs: Dict[str, Any], tmp_path: Any) -> Any:
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore",
            "-c",
            PIPELINE.format(package=package, name=name),
            str(tmp_path / package),
            json.dumps(kwargs),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("InferenceEndpointsLLM", lambda origin: {"base_url": origin + "/tgi", "api_key": "hf_x"}),
        ("OllamaLLM", lambda origin: {"model": "llama3.2", "host": origin}),
        (
            "AnthropicLLM",
            lambda origin: {
                "model": "claude-3-5-haiku-20241022",
                "base_url": origin,
                "api_key": "k",
            },
        ),
    ],
)
def test_pipeline_rows_are_distilabels_with_only_the_import_changed(
    origin: str, name: str, kwargs: Any, tmp_path: Any
) -> None:
    theirs = run("distilabel", name, kwargs(origin), tmp_path)
    ours = run("distilabel_rs", name, kwargs(origin), tmp_path)
    # 24 instructions x 2 generations: one row each (distilabel's TextGeneration expands them).
    assert len(ours) == 48
    assert ours == theirs
    assert all(r["generation"].startswith("echo: q") for r in ours)
