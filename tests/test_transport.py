"""Which transport carries generation requests: the client's own HTTP/1.1 connections for
plain-http servers, reqwest behind a proxy or with `DISTILABEL_RS_TRANSPORT=reqwest`."""

import os
import subprocess
import sys
from typing import Dict

from distilabel_rs import _core

from .conftest import REPO

CLIENT = """
import sys
from distilabel_rs import OpenAILLM
llm = OpenAILLM(model="m", base_url=sys.argv[1], api_key="sk-transport")
llm.load()
outputs = llm.generate([[{"role": "user", "content": f"hello {i}"}] for i in range(3)])
print([output["generations"][0] for output in outputs])
"""

PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY")


def generate(base_url: str, env: Dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    clean.pop("DISTILABEL_RS_TRANSPORT", None)
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", CLIENT, base_url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**clean, **env},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_a_proxy_variable_sends_generations_through_the_proxy() -> None:
    target, proxy = _core.MockServer(), _core.MockServer()
    try:
        for variable in ("http_proxy", "ALL_PROXY"):
            before = proxy.requests
            out = generate(target.base_url, {variable: proxy.origin})
            assert "echo: hello 2" in out
            assert proxy.requests - before == 3, variable
        assert target.requests == 0
    finally:
        target.stop()
        proxy.stop()


def test_either_transport_answers_without_a_proxy() -> None:
    server = _core.MockServer(record=True)
    try:
        for env in ({}, {"DISTILABEL_RS_TRANSPORT": "reqwest"}):
            assert "echo: hello 0" in generate(server.base_url, env)
        requests = server.recorded_requests()
        assert len(requests) == 6
        headers = [sorted(r["headers"]) for r in requests]
        assert headers[0] == headers[3]
    finally:
        server.stop()
