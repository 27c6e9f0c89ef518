"""The APIs the native client speaks, by the name the `distilabel-rs` command uses: the core
provider kind and profile, where the API is by default, where the key comes from, and
where the project's mock server serves it. The native LLM classes take their profiles from
here too, so that each profile is written once.
"""

from typing import Any, Dict, NamedTuple, Optional

__all__ = ["PROVIDERS", "ProviderSpec"]


class ProviderSpec(NamedTuple):
    """One API, as `_core.NativeClient(kind, base_url, profile=profile)` reaches it."""

    kind: str
    profile: Dict[str, Any]
    default_base_url: str
    # Environment variable overriding the default base URL, if the API has one.
    base_url_env: Optional[str]
    # Environment variable holding the API key; `None` for APIs without keys.
    api_key_env: Optional[str]
    # Path under the mock server's origin where it serves this API.
    mock_path: str
    description: str


# The profile fields are those of `rust/core/src/providers/openai/mod.rs` (`OpenAi`), and for
# the "anthropic" kind those of `rust/core/src/providers/anthropic/mod.rs` (`Anthropic`), for
# the "tgi" kind those of `rust/core/src/providers/tgi/mod.rs` (`Tgi`); the "ollama" kind
# takes none.
_NO_BATCH_API: Dict[str, Any] = {"batch": None}

PROVIDERS: Dict[str, ProviderSpec] = {
    "openai": ProviderSpec(
        kind="openai",
        profile={},
        default_base_url="https://api.openai.com/v1",
        base_url_env="OPENAI_BASE_URL",
        api_key_env="OPENAI_API_KEY",
        mock_path="/v1",
        description="OpenAI, or any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp...)",
    ),
    "groq": ProviderSpec(
        kind="openai",
        # Groq cannot return several generations per request; its Batch API is OpenAI's.
        profile={
            "name": "groq",
            "chat_path": "openai/v1/chat/completions",
            "text_path": None,
            "supports_n": False,
            "batch": {"path_prefix": "openai/v1/"},
        },
        default_base_url="https://api.groq.com",
        base_url_env="GROQ_BASE_URL",
        api_key_env="GROQ_API_KEY",
        mock_path="",
        description="Groq (OpenAI-compatible chat under /openai/v1, no `n`)",
    ),
    "together": ProviderSpec(
        kind="openai",
        # Together's Batch API is not OpenAI's (other statuses and shapes).
        profile={"name": "together", **_NO_BATCH_API},
        default_base_url="https://api.together.xyz/v1",
        base_url_env="TOGETHER_BASE_URL",
        api_key_env="TOGETHER_API_KEY",
        mock_path="/together/v1",
        description="Together AI (OpenAI-compatible)",
    ),
    "anyscale": ProviderSpec(
        kind="openai",
        profile={"name": "anyscale", **_NO_BATCH_API},
        default_base_url="https://api.endpoints.anyscale.com/v1",
        base_url_env="ANYSCALE_BASE_URL",
        api_key_env="ANYSCALE_API_KEY",
        mock_path="/v1",
        description="Anyscale Endpoints (OpenAI-compatible)",
    ),
    "mistral": ProviderSpec(
        kind="openai",
        # Mistral's chat endpoint is OpenAI-shaped; its Batch API is its own.
        profile={
            "name": "mistral",
            "chat_path": "v1/chat/completions",
            "text_path": None,
            "supports_n": False,
            **_NO_BATCH_API,
        },
        default_base_url="https://api.mistral.ai",
        base_url_env=None,
        api_key_env="MISTRAL_API_KEY",
        mock_path="",
        description="Mistral AI (OpenAI-shaped chat at /v1/chat/completions, no `n`)",
    ),
    "anthropic": ProviderSpec(
        kind="anthropic",
        # Messages API; no `n`; Message Batches for --batch-api (split at 100,000 requests
        # and 256 MB).
        profile={},
        default_base_url="https://api.anthropic.com",
        base_url_env="ANTHROPIC_BASE_URL",
        api_key_env="ANTHROPIC_API_KEY",
        mock_path="",
        description="Anthropic Messages API (no `n`; max_tokens defaults to 1024; a leading"
        " system message becomes `system`; --batch-api: Message Batches)",
    ),
    "vllm": ProviderSpec(
        kind="openai",
        # vLLM's OpenAI-compatible server takes any key and has no batch endpoints.
        profile={"name": "vllm", **_NO_BATCH_API},
        default_base_url="http://localhost:8000/v1",
        base_url_env=None,
        api_key_env=None,
        mock_path="/v1",
        description="vLLM's OpenAI-compatible server",
    ),
    "inference-endpoints": ProviderSpec(
        kind="tgi",
        # Text Generation Inference: conversations to its Messages API
        # (`{base}/v1/chat/completions`), prompts to its generate API (`POST {base}`).
        # The default is the Hugging Face router, whose chat endpoint routes `--model` (a Hub
        # model id) to a provider serving it; pass a TGI server's or an endpoint's URL with
        # `--base-url` for prompts.
        profile={"name": "inference-endpoints"},
        default_base_url="https://router.huggingface.co/v1",
        base_url_env=None,
        api_key_env="HF_TOKEN",
        mock_path="/tgi",
        description="Hugging Face Inference Endpoints, TGI servers and the HF router"
        " (TGI's Messages API for conversations, its generate API for prompts)",
    ),
    "ollama": ProviderSpec(
        kind="ollama",
        # Ollama's own API: chat records go to /api/chat, prompt records to /api/generate;
        # the command's generation options become `options` (max tokens: `num_predict`).
        # `OLLAMA_HOST` may lack a scheme or port: the core resolves it as the ollama SDK.
        profile={},
        default_base_url="http://127.0.0.1:11434",
        base_url_env="OLLAMA_HOST",
        api_key_env=None,
        mock_path="",
        description="Ollama's own API (/api/chat, /api/generate; no `n`, no key)",
    ),
}
