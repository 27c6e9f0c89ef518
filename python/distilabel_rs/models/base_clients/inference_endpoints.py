"""Where an `InferenceEndpointsLLM` sends its requests and with which key (distilabel's
fields, exactly), and how a `model_id` or an `endpoint_name` becomes a URL at `load()`.

Resolving a `model_id` or an `endpoint_name` asks the Hugging Face Hub (it needs
`huggingface_hub`: `pip install 'distilabel-rs[hf-inference-endpoints]'`); a `base_url`
needs nothing. Both work with huggingface_hub 0.22 to 2.x: only its public functions
(`model_info`, `get_inference_endpoint`) are used.
"""

import os
from typing import TYPE_CHECKING, Any, Optional, Tuple

from pydantic import BaseModel, Field, PrivateAttr, SecretStr

from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.typing import StructuredOutputType

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizer

__all__ = ["HF_ROUTER_URL", "HF_TOKEN_ENV_VAR", "InferenceEndpointsBaseClient", "get_hf_token"]

HF_TOKEN_ENV_VAR = "HF_TOKEN"
# The Hugging Face router: `/v1/chat/completions` routes a model id to a provider serving it;
# `/hf-inference/models/{model_id}` is HF Inference, TGI's generate API for a model id.
HF_ROUTER_URL = "https://router.huggingface.co"
# Seconds an Inference Endpoint may take to resume or start, as in distilabel.
_ENDPOINT_WAIT_SECONDS = 300
_INSTALL_HUB = (
    "Hugging Face Hub Python client is not installed. Please install it using"
    " `pip install 'distilabel-rs[hf-inference-endpoints]'`."
)


def _hf_token_path() -> str:
    """The token file `huggingface_hub` writes at login: `HF_TOKEN_PATH`, else
    `$HF_HOME/token` (`HF_HOME` defaults to `$XDG_CACHE_HOME/huggingface`, that is
    `~/.cache/huggingface`)."""
    explicit = os.environ.get("HF_TOKEN_PATH")
    if explicit:
        return os.path.expanduser(os.path.expandvars(explicit))
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    home = os.environ.get("HF_HOME") or os.path.join(cache, "huggingface")
    return os.path.join(os.path.expanduser(os.path.expandvars(home)), "token")


def get_hf_token(cls_name: str, token_arg: str) -> str:
    """The Hugging Face token: `HF_TOKEN`, else the token file of `huggingface-cli login`.

    Args:
        cls_name: the class that needs the token (named in the error).
        token_arg: the argument that takes the token (named in the error).

    Returns:
        The token.

    Raises:
        ValueError: if there is neither.
    """
    token = os.getenv(HF_TOKEN_ENV_VAR)
    if token is not None:
        return token
    path = _hf_token_path()
    if not os.path.exists(path):
        raise ValueError(
            f"To use `{cls_name}` an API key must be provided via `{token_arg}`,"
            f" set the environment variable `{HF_TOKEN_ENV_VAR}` or use the"
            " `huggingface-hub` CLI to login with `huggingface-cli login`."
        )
    with open(path) as file:
        return file.read().strip()


class InferenceEndpointsBaseClient(BaseModel):
    """The endpoint (one of `model_id`, `endpoint_name`, `base_url`), the key and the
    tokenizer of a Hugging Face Inference Endpoints / TGI client."""

    model_id: Optional[str] = None

    endpoint_name: Optional[RuntimeParameter[str]] = Field(
        default=None,
        description="The name of the Inference Endpoint to use for the LLM.",
    )
    endpoint_namespace: Optional[RuntimeParameter[str]] = Field(
        default=None,
        description="The namespace of the Inference Endpoint to use for the LLM.",
    )
    base_url: Optional[RuntimeParameter[str]] = Field(
        default=None,
        description="The base URL to use for the Inference Endpoints API requests.",
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv(HF_TOKEN_ENV_VAR),
        description="The API key to authenticate the requests to the Inference Endpoints API.",
    )  # type: ignore

    tokenizer_id: Optional[str] = None
    model_display_name: Optional[str] = None

    structured_output: Optional[RuntimeParameter[StructuredOutputType]] = Field(
        default=None,
        description="The structured output format to use across all the generations.",
    )

    _num_generations_param_supported = False

    _model_name: Optional[str] = PrivateAttr(default=None)
    _tokenizer: Optional["PreTrainedTokenizer"] = PrivateAttr(default=None)
    _api_key_env_var: str = PrivateAttr(HF_TOKEN_ENV_VAR)
    # distilabel's `huggingface_hub.AsyncInferenceClient`. The native LLM keeps its client
    # elsewhere (process-local); this stays `None`.
    _aclient: Any = PrivateAttr(None)
    # Where conversations go when that is not under `base_url` (the router, for a
    # `model_id`), and the `model` their bodies name.
    _chat_url: Optional[str] = PrivateAttr(None)
    _chat_model: str = PrivateAttr("dummy")

    def _resolve_endpoint(self) -> None:
        """Reads the key (`HF_TOKEN`, else the token file) and resolves `model_id` or
        `endpoint_name` into the URLs requests go to; loads the tokenizer of
        `tokenizer_id`.

        Raises:
            ImportError: if `huggingface_hub` is needed and missing, or `transformers` is
                needed (for `tokenizer_id`) and missing.
            ValueError: without a key, or if the model is not served, or the endpoint has
                no URL.
        """
        if self.api_key is None:
            self.api_key = SecretStr(get_hf_token(type(self).__name__, "api_key"))
        token = self.api_key.get_secret_value()
        self._chat_url = None
        self._chat_model = "dummy"
        if self.model_id is not None:
            self.base_url, self._chat_url = _resolve_model_id(
                self.model_id, token, needs_text_generation=self.tokenizer_id is not None
            )
            self._chat_model = self.model_id
        if self.endpoint_name is not None:
            self.base_url, self._model_name = _resolve_endpoint_name(
                self.endpoint_name, self.endpoint_namespace, token
            )
        if self.tokenizer_id:
            try:
                from transformers import AutoTokenizer
            except ImportError as ie:
                raise ImportError(
                    "Transformers Python client is not installed, and `tokenizer_id` needs it"
                    " to apply the chat template. Please install it using"
                    " `pip install transformers`."
                ) from ie
            self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_id)  # type: ignore[assignment]

    @property
    def model_name(self) -> str:
        """The display name, else the endpoint's model, the model id, the endpoint name or
        the base URL."""
        return (  # type: ignore[return-value]
            self.model_display_name  # type: ignore[return-value]
            or self._model_name
            or self.model_id
            or self.endpoint_name
            or self.base_url
        )


def _resolve_model_id(model_id: str, token: str, needs_text_generation: bool) -> Tuple[str, str]:
    """`(generate URL, chat URL)` of a model served through the Hugging Face router: chat
    goes to the router's auto-routing endpoint, generate to HF Inference. Fails when no
    provider serves the model (or, for `needs_text_generation`, when HF Inference does not
    serve it for text generation)."""
    try:
        from huggingface_hub import model_info
    except ImportError as ie:
        raise ImportError(_INSTALL_HUB) from ie
    info = model_info(model_id, expand=["inferenceProviderMapping"], token=token)
    mappings = list(getattr(info, "inference_provider_mapping", None) or [])
    live = [
        mapping
        for mapping in mappings
        if getattr(mapping, "status", None) == "live"
        and getattr(mapping, "task", None) in ("conversational", "text-generation")
    ]
    if not live:
        raise ValueError(
            f"Model {model_id} is not currently deployed or is not running the TGI framework"
        )
    if needs_text_generation and not any(
        mapping.provider == "hf-inference" and mapping.task == "text-generation" for mapping in live
    ):
        raise ValueError(
            f"Model {model_id} is not served by HF Inference for text generation, which"
            " `tokenizer_id` (set by you, or from `model_id` for `structured_output`) needs:"
            " remove `tokenizer_id` to use chat completions through the router, or deploy"
            " the model on an Inference Endpoint and pass `endpoint_name`."
        )
    return (
        f"{HF_ROUTER_URL}/hf-inference/models/{model_id}",
        f"{HF_ROUTER_URL}/v1/chat/completions",
    )


def _resolve_endpoint_name(
    name: str, namespace: Optional[str], token: str
) -> Tuple[str, Optional[str]]:
    """`(URL, model repository)` of a dedicated Inference Endpoint, resumed (paused or
    scaled to zero) or awaited (initializing) first, up to five minutes."""
    try:
        from huggingface_hub import get_inference_endpoint
    except ImportError as ie:
        raise ImportError(_INSTALL_HUB) from ie
    endpoint = get_inference_endpoint(name=name, namespace=namespace, token=token)
    if endpoint.status in ("paused", "scaledToZero"):
        endpoint.resume().wait(timeout=_ENDPOINT_WAIT_SECONDS)
    elif endpoint.status == "initializing":
        endpoint.wait(timeout=_ENDPOINT_WAIT_SECONDS)
    if not endpoint.url:
        raise ValueError(
            f"The Inference Endpoint {name!r} has no URL (status: {endpoint.status}); check"
            " it on https://endpoints.huggingface.co."
        )
    return endpoint.url, endpoint.repository
