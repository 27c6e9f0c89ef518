"""vLLM, at distilabel's module path: `ClientvLLM`, a native client of vLLM's
OpenAI-compatible server.

`ClientvLLM` renders each conversation with the model's chat template on the client (the
tokenizer is loaded with `transformers`, an optional extra, at `load()`), sends it to the
server's `/completions` endpoint and asks the server (`GET /models`) which model it serves.
"""

import json
from functools import cached_property
from typing import TYPE_CHECKING, Any, Dict, Optional

from pydantic import PrivateAttr, SecretStr, validate_call

from distilabel_rs._providers import PROVIDERS
from distilabel_rs.models.llms._native import Request
from distilabel_rs.models.llms.openai import OpenAILLM
from distilabel_rs.models.mixins.magpie import MagpieChatTemplateMixin
from distilabel_rs.typing import FormattedInput, GenerateOutput

if TYPE_CHECKING:
    from distilabel_rs.typing import StandardInput

__all__ = ["ClientvLLM"]


class ClientvLLM(OpenAILLM, MagpieChatTemplateMixin):
    """A client for the `vLLM` server implementing the OpenAI API specification, with the
    request path in Rust.

    Attributes:
        base_url: the base URL of the `vLLM` server. Defaults to the value of
            `OPENAI_BASE_URL`, or "https://api.openai.com/v1" (as in distilabel: set it).
        max_retries: the maximum number of times to retry the request to the API before
            failing. Defaults to `6`.
        timeout: the maximum time in seconds to wait for a response from the API. Defaults
            to `120`.
        tokenizer: the Hugging Face Hub repo id or path of the tokenizer that will be used
            to apply the chat template and tokenize the inputs before sending it to the
            server. Defaults to `None`.
        tokenizer_revision: the revision of the tokenizer to load. Defaults to `None`.

    Runtime parameters:
        - `base_url`: the base url of the `vLLM` server.
        - `max_retries`: the maximum number of times to retry the request to the API before
            failing. Defaults to `6`.
        - `timeout`: the maximum time in seconds to wait for a response from the API. Defaults
            to `120`.
    """

    model: str = ""  # Not needed: the server says which model it serves.
    tokenizer: Optional[str] = None
    tokenizer_revision: Optional[str] = None

    _tokenizer: Any = PrivateAttr(None)
    _process_local = (*OpenAILLM._process_local, "_tokenizer")

    def load(self) -> None:
        """Loads the tokenizer (`transformers`) and builds the native client."""
        # vLLM's server takes any key; distilabel sends "EMPTY".
        self.api_key = SecretStr("EMPTY")
        super().load()
        try:
            from transformers import AutoTokenizer
        except ImportError as ie:
            raise ImportError(
                "To use `ClientvLLM` you need to install `transformers`. Please install it"
                " using `pip install 'distilabel-rs[hf-transformers]'`."
            ) from ie
        self._tokenizer = AutoTokenizer.from_pretrained(
            self.tokenizer, revision=self.tokenizer_revision
        )

    def _client_settings(self) -> Dict[str, Any]:
        return {**super()._client_settings(), "profile": PROVIDERS["vllm"].profile}

    @cached_property
    def model_name(self) -> str:
        """The name of the model the vLLM server serves (its first model)."""
        models = json.loads(self._native_client().get("models"))
        return models["data"][0]["id"]

    def _prepare_input(self, input: "StandardInput") -> str:
        """The prompt for `input`: its chat template rendered, plus the Magpie pre-query
        template when it applies.

        Args:
            input: the conversation.

        Returns:
            The prompt to send to the server.
        """
        prompt: str = (
            self._tokenizer.apply_chat_template(input, tokenize=False, add_generation_prompt=True)
            if input
            else ""
        )
        return self.apply_magpie_pre_query_template(prompt, input)

    @validate_call
    async def agenerate(  # type: ignore[override]
        self,
        input: FormattedInput,
        num_generations: int = 1,
        max_new_tokens: int = 128,
        frequency_penalty: float = 0.0,
        logit_bias: Optional[Dict[str, int]] = None,
        presence_penalty: float = 0.0,
        temperature: float = 1.0,
        top_p: float = 1.0,
    ) -> GenerateOutput:
        """Generates `num_generations` responses for each input.

        Args:
            input: a single input in chat format to generate responses for.
            num_generations: the number of generations to create per input. Defaults to
                `1`.
            max_new_tokens: the maximum number of new tokens that the model will generate.
                Defaults to `128`.
            frequency_penalty: the repetition penalty to use for the generation. Defaults
                to `0.0`.
            logit_bias: modify the likelihood of specified tokens appearing in the completion.
                Defaults to ``
            presence_penalty: the presence penalty to use for the generation. Defaults to
                `0.0`.
            temperature: the temperature to use for the generation. Defaults to `0.1`.
            top_p: nucleus sampling. The value refers to the top-p tokens that should be
                considered for sampling. Defaults to `1.0`.

        Returns:
            A list of lists of strings containing the generated responses for each input.
        """
        return await self._agenerate_one(locals())

    def _batch_context(self) -> str:
        return self.model_name  # asked of the server once, not per request

    def _request(self, parameters: Dict[str, Any], context: Any) -> Request:
        return "text", {
            "model": context,
            "prompt": self._prepare_input(parameters["input"]),
            "n": parameters["num_generations"],
            "max_tokens": parameters["max_new_tokens"],
            "frequency_penalty": parameters["frequency_penalty"],
            "logit_bias": parameters["logit_bias"],
            "presence_penalty": parameters["presence_penalty"],
            "temperature": parameters["temperature"],
            "top_p": parameters["top_p"],
        }
