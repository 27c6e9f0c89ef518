"""Local stand-ins for the SDKs and engines the LLM classes import in `load()`.

Each `fake_*` function builds modules shaped like the real package (the names, call
signatures and response objects the classes use), records every call, and is installed in
`sys.modules` with `install(monkeypatch, modules)`, so that distilabel's classes and ours
import the same fake and can be compared call for call.
"""

import importlib.machinery
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import pytest

__all__ = [
    "Recorder",
    "fake_litellm",
    "fake_llama_cpp",
    "fake_mlx",
    "fake_pynvml",
    "fake_vertexai",
    "fake_vllm",
    "install",
    "module",
    "word_count",
]


def word_count(text: Optional[str]) -> int:
    """The fakes' tokenizer: one token per whitespace-separated word."""
    return len((text or "").split())


@dataclass
class Recorder:
    """What a fake was asked, in order; `fail` maps a call number (0-based) to the error
    that call raises."""

    calls: List[Dict[str, Any]] = field(default_factory=list)
    fail: Dict[int, BaseException] = field(default_factory=dict)

    def record(self, **kwargs: Any) -> None:
        index = len(self.calls)
        self.calls.append(kwargs)
        if index in self.fail:
            raise self.fail[index]


def module(name: str, **attributes: Any) -> types.ModuleType:
    """A module object with a spec (so that `importlib.util.find_spec` accepts it)."""
    created = types.ModuleType(name)
    created.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
    for key, value in attributes.items():
        setattr(created, key, value)
    return created


def install(
    monkeypatch: pytest.MonkeyPatch, modules: Dict[str, Optional[types.ModuleType]]
) -> None:
    """Puts `modules` in `sys.modules` for the test (`None` makes an import fail)."""
    for name, value in modules.items():
        monkeypatch.setitem(sys.modules, name, value)


def _last_user_text(messages: Any) -> str:
    if isinstance(messages, str):
        return messages
    return str(messages[-1]["content"])


# -- litellm -------------------------------------------------------------------------------


def fake_litellm(
    recorder: Recorder, choices_per_call: Optional[int] = None
) -> Dict[str, types.ModuleType]:
    """`litellm` with `acompletion` (echoing the last message, one choice per `n` or
    `choices_per_call`), `token_counter`, its exception classes and module flags."""

    class APIError(Exception):
        def __init__(self, message: str = "", status_code: int = 500) -> None:
            super().__init__(message)
            self.status_code = status_code

    class RateLimitError(APIError):
        def __init__(self, message: str = "rate limited") -> None:
            super().__init__(message, status_code=429)

    class Timeout(APIError):
        def __init__(self, message: str = "timed out") -> None:
            super().__init__(message, status_code=408)

    class BadRequestError(APIError):
        def __init__(self, message: str = "bad request") -> None:
            super().__init__(message, status_code=400)

    async def acompletion(**kwargs: Any) -> Any:
        recorder.record(**kwargs)
        text = _last_user_text(kwargs["messages"])
        count = choices_per_call if choices_per_call is not None else kwargs.get("n") or 1
        return types.SimpleNamespace(
            choices=[
                types.SimpleNamespace(
                    message=types.SimpleNamespace(content=f"litellm {i}: {text}"),
                    finish_reason="stop",
                )
                for i in range(count)
            ]
        )

    def token_counter(model: str = "", messages: Any = None, text: Any = None) -> int:
        if messages is not None:
            return sum(word_count(m["content"]) for m in messages)
        return word_count(text)

    exceptions = module(
        "litellm.exceptions",
        APIError=APIError,
        RateLimitError=RateLimitError,
        Timeout=Timeout,
        BadRequestError=BadRequestError,
    )
    litellm = module(
        "litellm",
        acompletion=acompletion,
        token_counter=token_counter,
        exceptions=exceptions,
        APIError=APIError,
        RateLimitError=RateLimitError,
        Timeout=Timeout,
        BadRequestError=BadRequestError,
        telemetry=True,
        suppress_debug_info=False,
        drop_params=None,
    )
    return {"litellm": litellm, "litellm.exceptions": exceptions}


# -- vertexai ------------------------------------------------------------------------------


def fake_vertexai(recorder: Recorder, blocked: Callable[[str], bool] = lambda text: False):
    """`vertexai.generative_models` with `GenerativeModel.generate_content_async` (echoing
    the last part; a candidate whose `.text` raises `ValueError` when `blocked(text)`), plus
    `google.api_core.exceptions` with the quota error."""

    class GenerationConfig:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

        def __eq__(self, other: object) -> bool:
            return isinstance(other, GenerationConfig) and other.kwargs == self.kwargs

        def __repr__(self) -> str:
            return f"GenerationConfig({self.kwargs})"

    class Part:
        def __init__(self, text: str) -> None:
            self.text = text

        @classmethod
        def from_text(cls, text: str) -> "Part":
            return cls(text)

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Part) and other.text == self.text

        def __repr__(self) -> str:
            return f"Part({self.text!r})"

    class Content:
        def __init__(self, role: str, parts: List[Part]) -> None:
            self.role, self.parts = role, parts

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Content) and (other.role, other.parts) == (
                self.role,
                self.parts,
            )

        def __repr__(self) -> str:
            return f"Content({self.role!r}, {self.parts})"

    class Candidate:
        def __init__(self, text: str, is_blocked: bool) -> None:
            self._text, self._blocked = text, is_blocked
            self.finish_reason = "SAFETY" if is_blocked else "STOP"

        @property
        def text(self) -> str:
            if self._blocked:
                raise ValueError("Cannot get the response text.")
            return self._text

    class GenerativeModel:
        def __init__(self, model_name: str) -> None:
            self.model_name = model_name

        async def generate_content_async(self, **kwargs: Any) -> Any:
            recorder.record(model_name=self.model_name, **kwargs)
            text = kwargs["contents"][-1].parts[0].text
            return types.SimpleNamespace(
                candidates=[Candidate(f"gemini: {text}", blocked(text))],
                usage_metadata=types.SimpleNamespace(
                    prompt_token_count=sum(word_count(c.parts[0].text) for c in kwargs["contents"]),
                    candidates_token_count=word_count(text) + 1,
                ),
            )

    class ResourceExhausted(Exception):
        code = 429

    class InvalidArgument(Exception):
        code = 400

    generative_models = module(
        "vertexai.generative_models",
        GenerationConfig=GenerationConfig,
        GenerativeModel=GenerativeModel,
        Content=Content,
        Part=Part,
    )
    exceptions = module(
        "google.api_core.exceptions",
        ResourceExhausted=ResourceExhausted,
        InvalidArgument=InvalidArgument,
    )
    return {
        "vertexai": module("vertexai", generative_models=generative_models),
        "vertexai.generative_models": generative_models,
        "google": module("google"),
        "google.api_core": module("google.api_core", exceptions=exceptions),
        "google.api_core.exceptions": exceptions,
    }


# -- in-process engines --------------------------------------------------------------------


class FakeTokenizer:
    """A Hugging Face-like tokenizer: a simple chat template, word-count encoding."""

    def __init__(self, chat_template: Optional[str] = "simple") -> None:
        self.chat_template = chat_template
        self.eos_token = "</s>"
        self.eos_token_id = 2
        self.pad_token: Optional[str] = None

    def apply_chat_template(
        self, conversation: Any, tokenize: bool = False, add_generation_prompt: bool = False
    ) -> str:
        text = "".join(f"<{m['role']}>{m['content']}" for m in conversation)
        return text + ("<assistant>" if add_generation_prompt else "")

    def encode(self, text: str) -> List[int]:
        return list(range(word_count(text)))


def fake_llama_cpp(recorder: Recorder) -> Dict[str, types.ModuleType]:
    """`llama_cpp.Llama` answering `create_chat_completion` and `create_completion`."""

    class Llama:
        def __init__(self, model_path: str, **kwargs: Any) -> None:
            recorder.record(call="Llama", model_path=model_path, **kwargs)
            self.model_path = model_path

        def create_chat_completion(self, messages: Any, **kwargs: Any) -> Dict[str, Any]:
            recorder.record(call="create_chat_completion", messages=messages, **kwargs)
            text = f"llama: {_last_user_text(messages)}"
            return {
                "choices": [{"message": {"role": "assistant", "content": text}}],
                "usage": {
                    "prompt_tokens": sum(word_count(m["content"]) for m in messages),
                    "completion_tokens": word_count(text),
                },
            }

        def create_completion(self, prompt: str, **kwargs: Any) -> Dict[str, Any]:
            recorder.record(call="create_completion", prompt=prompt, **kwargs)
            text = f"llama completes: {prompt}"
            return {
                "choices": [{"text": text}],
                "usage": {"prompt_tokens": word_count(prompt), "completion_tokens": 3},
            }

    return {"llama_cpp": module("llama_cpp", Llama=Llama)}


def fake_vllm(recorder: Recorder) -> Dict[str, types.ModuleType]:
    """`vllm.LLM` (with `generate` returning `RequestOutput`-like objects, with logprobs
    when asked) and `vllm.SamplingParams`."""

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    class Logprob:
        def __init__(self, token: str, logprob: float) -> None:
            self.decoded_token, self.logprob = token, logprob

    class LLM:
        def __init__(self, model: str, **kwargs: Any) -> None:
            recorder.record(call="LLM", model=model, **kwargs)
            self.tokenizer = FakeTokenizer()

        def get_tokenizer(self) -> FakeTokenizer:
            return self.tokenizer

        def generate(self, prompts: List[str], sampling_params: Any, use_tqdm: bool) -> Any:
            params = dict(sampling_params.kwargs)
            # A copy: the caller may change its list of processors afterwards.
            params["logits_processors"] = list(params.get("logits_processors") or [])
            recorder.record(call="generate", prompts=prompts, use_tqdm=use_tqdm, **params)
            outputs = []
            for prompt in prompts:
                completions = []
                for i in range(params["n"]):
                    text = f"vllm {i}: {prompt}"
                    logprobs = None
                    if params.get("logprobs"):
                        logprobs = [{7: Logprob("tok", -0.5), 8: Logprob("alt", -1.5)}]
                    completions.append(
                        types.SimpleNamespace(text=text, token_ids=[1, 2, 3], logprobs=logprobs)
                    )
                prompt_logprobs = None
                if params.get("prompt_logprobs"):
                    prompt_logprobs = [None, {3: Logprob("p", -0.1)}]
                outputs.append(
                    types.SimpleNamespace(outputs=completions, prompt_logprobs=prompt_logprobs)
                )
            return outputs

    return {"vllm": module("vllm", LLM=LLM, SamplingParams=SamplingParams)}


def fake_mlx(recorder: Recorder) -> Dict[str, types.ModuleType]:
    """`mlx` and `mlx_lm` (`utils.load`, `utils.generate`, `sample_utils.make_sampler`)."""

    def load(path_or_hf_repo: str, **kwargs: Any) -> Any:
        recorder.record(call="load", path_or_hf_repo=path_or_hf_repo, **kwargs)
        return object(), FakeTokenizer()

    def generate(**kwargs: Any) -> str:
        recorder.record(
            call="generate",
            **{k: v for k, v in kwargs.items() if k not in ("model", "tokenizer")},
            tokenizer=type(kwargs["tokenizer"]).__name__,
        )
        return f"mlx: {kwargs['prompt']}"

    def make_sampler(**kwargs: Any) -> Any:
        recorder.record(call="make_sampler", **kwargs)
        return ("sampler", tuple(sorted(kwargs.items())))

    utils = module("mlx_lm.utils", load=load, generate=generate)
    sample_utils = module("mlx_lm.sample_utils", make_sampler=make_sampler)
    return {
        "mlx": module("mlx"),
        "mlx_lm": module("mlx_lm", utils=utils, sample_utils=sample_utils),
        "mlx_lm.utils": utils,
        "mlx_lm.sample_utils": sample_utils,
    }


def fake_pynvml(device_count: int) -> Dict[str, types.ModuleType]:
    """`pynvml` reporting `device_count` CUDA devices."""
    return {
        "pynvml": module("pynvml", nvmlInit=lambda: None, nvmlDeviceGetCount=lambda: device_count)
    }
