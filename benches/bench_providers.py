"""The OpenAI-compatible family: each distilabel_rs class (native, Rust) vs distilabel 1.5.3's
(its SDK), in one run.

    python benches/bench_providers.py [--only groq,azure] [--distilabel-requests N]

For each class, both libraries send chat requests to the same local server (the Rust mock
of `distilabel_rs._core.MockServer`, in its own process, which speaks each provider's paths),
each client in a fresh process. Reported per client: requests per second of one `generate()`
call and client CPU per request (user + system time of every thread of the client process).
distilabel's `AzureOpenAILLM` and `MistralLLM` cannot `load()` in 1.5.3 with current SDKs;
their request path is measured with the workaround the differential tests use.
"""

import argparse
from pathlib import Path

from common import machine, mock_server_process, run_client

REPO = Path(__file__).resolve().parents[1]

CLIENT = r"""
import json, sys, tempfile, warnings
from common import measure
warnings.simplefilter("ignore")
lib, provider, base_url, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
origin = base_url[: -len("/v1")]
if lib == "distilabel":
    import distilabel.models, distilabel.models.llms.openai
    import distilabel.models.llms as llms
    # distilabel 1.5.3's AzureOpenAILLM.load() patches a module path that does not exist.
    distilabel.models.openai = distilabel.models.llms.openai
else:
    import distilabel_rs.models.llms as llms


def tokenizer_dir():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    words = ["<unk>", "question", "number"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    )
    path = tempfile.mkdtemp()
    tokenizer.save_pretrained(path)
    return path


key = "sk-bench"
if provider == "azure":
    llm = llms.AzureOpenAILLM(model="bench", base_url=origin, api_key=key, api_version="2024-10-21")
elif provider == "together":
    llm = llms.TogetherLLM(model="bench", base_url=origin + "/together/v1", api_key=key)
elif provider == "anyscale":
    llm = llms.AnyscaleLLM(model="bench", base_url=base_url, api_key=key)
elif provider == "groq":
    llm = llms.GroqLLM(model="bench", base_url=origin, api_key=key)
elif provider == "mistral":
    if lib == "distilabel":
        llm = llms.MistralLLM(model="bench", api_key=key)
    else:
        llm = llms.MistralLLM(model="bench", api_key=key, endpoint=origin)
elif provider == "clientvllm":
    llm = llms.ClientvLLM(base_url=base_url, tokenizer=tokenizer_dir())
else:
    raise SystemExit(f"unknown provider {provider}")
try:
    llm.load()
except TypeError:
    # distilabel 1.5.3's MistralLLM.load() passes `endpoint=` to mistralai >= 1.0.
    from mistralai import Mistral
    llm._aclient = Mistral(api_key=key, server_url=origin)
inputs = [[{"role": "user", "content": f"question number {i}"}] for i in range(count)]
llm.generate(inputs[:50])  # warm up: connections, imports
outputs = measure(lambda: llm.generate(inputs), count)
assert len(outputs) == count and "echo:" in outputs[-1]["generations"][0]
"""

CLASSES = {
    "azure": "AzureOpenAILLM",
    "together": "TogetherLLM",
    "anyscale": "AnyscaleLLM",
    "groq": "GroqLLM",
    "mistral": "MistralLLM",
    "clientvllm": "ClientvLLM",
}


def client(lib: str, provider: str, base_url: str, count: int) -> dict:
    return run_client(CLIENT, lib, provider, base_url, str(count))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", help="comma-separated providers: " + ",".join(CLASSES))
    parser.add_argument("--distilabel-requests", type=int, default=2000)
    parser.add_argument("--ours-requests", type=int, default=20000)
    args = parser.parse_args()
    providers = args.only.split(",") if args.only else list(CLASSES)

    rows = []
    with mock_server_process() as base_url:
        for provider in providers:
            theirs = client("distilabel", provider, base_url, args.distilabel_requests)
            ours = client("distilabel_rs", provider, base_url, args.ours_requests)
            rows.append((CLASSES[provider], theirs, ours))

    print(f"Machine: {machine()}")
    print(
        f"Requests per client: distilabel {args.distilabel_requests:,},"
        f" distilabel_rs {args.ours_requests:,}.\n"
    )
    print(
        "| class | distilabel 1.5.3 req/s | distilabel_rs req/s | speed-up"
        " | distilabel CPU/request | distilabel_rs CPU/request |"
    )
    print("|---|---|---|---|---|---|")
    for name, theirs, ours in rows:
        speed = ours["requests_per_second"] / theirs["requests_per_second"]
        print(
            f"| `{name}` | {theirs['requests_per_second']:,.0f}"
            f" | {ours['requests_per_second']:,.0f} | {speed:.0f}x"
            f" | {theirs['cpu_us_per_request']:,.0f} µs | {ours['cpu_us_per_request']:,.1f} µs |"
        )


if __name__ == "__main__":
    main()
