"""vLLM LLMs, at the same import path as `distilabel.models.llms.vllm`.

`vLLM` is distilabel 1.5.3's in-process vLLM engine: a distilabel_rs `LLM` (accepted by
distilabel's pipelines, dumped, loaded and pickled like the others) whose generation runs in
`vllm` in this process, with no acceleration from the Rust core. To share one model between
pipelines and workers, serve it with `vllm serve` and use `ClientvLLM` or
`distilabel_rs.OpenAILLM` against its OpenAI-compatible endpoint.

`ClientvLLM` is a native client of that server: it renders each conversation with the model's
chat template on the client (the tokenizer is loaded with `transformers`, an optional extra,
at `load()`), sends it to the server's `/completions` endpoint and asks the server
(`GET /models`) which model it serves.
"""

import contextlib
import gc
import json
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Literal, Optional, Tuple, Union

from pydantic import Field, PositiveInt, PrivateAttr, SecretStr, validate_call

from distilabel_rs._providers import PROVIDERS
from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models.llms._native import Request
from distilabel_rs.models.llms._sdk import install_hint
from distilabel_rs.models.llms.base import LLM
from distilabel_rs.models.llms.openai import OpenAILLM
from distilabel_rs.models.llms.utils import compute_tokens, prepare_output
from distilabel_rs.models.mixins.cuda_device_placement import CudaDevicePlacementMixin
from distilabel_rs.models.mixins.magpie import MagpieChatTemplateMixin
from distilabel_rs.typing import (
    FormattedInput,
    GenerateOutput,
    Logprob,
    OutlinesStructuredOutputType,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizer
    from vllm import LLM as _vLLM
    from vllm.outputs import RequestOutput
    from vllm.sequence import PromptLogprobs, SampleLogprobs

    from distilabel_rs.typing import (
        LLMLogprobs,
        LLMOutput,
        LLMStatistics,
        StandardInput,
        StructuredInput,
    )

__all__ = ["ClientvLLM", "LogitsProcessorFn", "LogitsProcessors", "vLLM"]

LogitsProcessorFn = Union[
    Callable[[List[int], Any], Any],
    Callable[[List[int], List[int], Any], Any],
]
"""A vLLM logits processor: `(generated token ids, logits)` or `(prompt token ids, generated
token ids, logits)` to new logits."""

LogitsProcessors = List[LogitsProcessorFn]


class vLLM(LLM, MagpieChatTemplateMixin, CudaDevicePlacementMixin):
    """`vLLM` library LLM implementation.

    Attributes:
        model: the model Hugging Face Hub repo id or a path to a directory containing the
            model weights and configuration files.
        dtype: the data type to use for the model. Defaults to `auto`.
        trust_remote_code: whether to trust the remote code when loading the model. Defaults
            to `False`.
        quantization: the quantization mode to use for the model. Defaults to `None`.
        revision: the revision of the model to load. Defaults to `None`.
        tokenizer: the tokenizer Hugging Face Hub repo id or a path to a directory containing
            the tokenizer files. If not provided, the tokenizer will be loaded from the
            model directory. Defaults to `None`.
        tokenizer_mode: the mode to use for the tokenizer. Defaults to `auto`.
        tokenizer_revision: the revision of the tokenizer to load. Defaults to `None`.
        skip_tokenizer_init: whether to skip the initialization of the tokenizer. Defaults
            to `False`.
        chat_template: a chat template that will be used to build the prompts before
            sending them to the model. If not provided, the chat template defined in the
            tokenizer config will be used. Defaults to `None`.
        structured_output: a dictionary containing the structured output configuration
            (`outlines`). Defaults to None.
        seed: the seed to use for the random number generator. Defaults to `0`.
        extra_kwargs: additional dictionary of keyword arguments that will be passed to the
            `LLM` class of `vllm` library. Defaults to `{}`.
        _model: the `vLLM` model instance, set in the `load` method.
        _tokenizer: the tokenizer used to format the prompts, set in the `load` method.
        use_magpie_template: a flag used to enable/disable applying the Magpie pre-query
            template. Defaults to `False`.
        magpie_pre_query_template: the pre-query template to be applied to the prompt or
            sent to the LLM to generate an instruction or a follow up user message. Valid
            values are "llama3", "qwen2" or another pre-query template provided. Defaults
            to `None`.

    References:
        - https://github.com/vllm-project/vllm/blob/main/vllm/entrypoints/llm.py

    Runtime parameters:
        - `extra_kwargs`: additional dictionary of keyword arguments that will be passed to
            the `LLM` class of `vllm` library.

    Examples:
        Generate text:

        ```python
        from distilabel_rs.models.llms import vLLM

        llm = vLLM(model="prometheus-eval/prometheus-7b-v2.0")
        llm.load()
        output = llm.generate_outputs(inputs=[[{"role": "user", "content": "Hello world!"}]])
        ```
    """

    model: str
    dtype: str = "auto"
    trust_remote_code: bool = False
    quantization: Optional[str] = None
    revision: Optional[str] = None

    tokenizer: Optional[str] = None
    tokenizer_mode: Literal["auto", "slow"] = "auto"
    tokenizer_revision: Optional[str] = None
    skip_tokenizer_init: bool = False
    chat_template: Optional[str] = None

    seed: int = 0

    extra_kwargs: Optional[RuntimeParameter[Dict[str, Any]]] = Field(
        default_factory=dict,
        description="Additional dictionary of keyword arguments that will be passed to the"
        " `vLLM` class of `vllm` library. See all the supported arguments at: "
        "https://github.com/vllm-project/vllm/blob/main/vllm/entrypoints/llm.py",
    )
    structured_output: Optional[RuntimeParameter[OutlinesStructuredOutputType]] = Field(
        default=None,
        description="The structured output format to use across all the generations.",
    )

    _model: "_vLLM" = PrivateAttr(None)
    _tokenizer: "PreTrainedTokenizer" = PrivateAttr(None)  # type: ignore[assignment]
    _structured_output_logits_processor: Optional[Callable] = PrivateAttr(default=None)

    def load(self) -> None:
        """Takes CUDA devices, loads the model with `vllm.LLM` and sets the tokenizer's chat
        template (when `chat_template` is given).

        Raises:
            ImportError: if vllm is not installed (or `pynvml`, for automatic devices).
        """
        super().load()
        CudaDevicePlacementMixin.load(self)
        try:
            from vllm import LLM as _vLLM
        except ImportError as e:
            raise ImportError(
                f"vLLM is not installed. Please install it using {install_hint('vllm')}."
            ) from e

        self._model = _vLLM(
            self.model,
            dtype=self.dtype,
            trust_remote_code=self.trust_remote_code,
            quantization=self.quantization,
            revision=self.revision,
            tokenizer=self.tokenizer,
            tokenizer_mode=self.tokenizer_mode,
            tokenizer_revision=self.tokenizer_revision,
            skip_tokenizer_init=self.skip_tokenizer_init,
            seed=self.seed,
            **(self.extra_kwargs or {}),
        )
        self._tokenizer = self._model.get_tokenizer()  # type: ignore[assignment]
        if self.chat_template is not None:
            self._tokenizer.chat_template = self.chat_template
        if self.structured_output:
            self._structured_output_logits_processor = self._prepare_structured_output(
                self.structured_output
            )

    def unload(self) -> None:
        """Frees the model (and its GPU memory) and releases the CUDA devices."""
        self._cleanup_vllm_model()
        self._model = None  # type: ignore[assignment]
        self._tokenizer = None  # type: ignore[assignment]
        CudaDevicePlacementMixin.unload(self)
        super().unload()

    def _cleanup_vllm_model(self) -> None:
        if self._model is None:
            return
        import torch
        from vllm.distributed.parallel_state import (
            destroy_distributed_environment,
            destroy_model_parallel,
        )

        destroy_model_parallel()
        destroy_distributed_environment()
        del self._model.llm_engine.model_executor
        del self._model
        with contextlib.suppress(AssertionError):
            torch.distributed.destroy_process_group()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.synchronize()

    @property
    def model_name(self) -> str:
        """Returns the model name used for the LLM."""
        return self.model

    def prepare_input(self, input: Union["StandardInput", str]) -> str:
        """The prompt of an input: a string as is, a conversation with the tokenizer's chat
        template applied (and the Magpie pre-query template when enabled).

        Args:
            input: the input list containing chat items.

        Returns:
            The prompt to send to the LLM.
        """
        if isinstance(input, str):
            return input
        prompt: str = (
            self._tokenizer.apply_chat_template(  # type: ignore[assignment]
                input,  # type: ignore[arg-type]
                tokenize=False,
                add_generation_prompt=True,
            )
            if input
            else ""
        )
        return super().apply_magpie_pre_query_template(prompt, input)

    def _prepare_batches(
        self, inputs: List["StructuredInput"]
    ) -> Tuple[List[Tuple[List[str], "OutlinesStructuredOutputType"]], List[int]]:
        """Groups structured inputs by their structured output, so that each group is one
        batch for the engine.

        Args:
            inputs: the conversations, each with its structured output.

        Returns:
            The batches (prompts and their structured output), and for each prompt in batch
            order, the index of the input it came from.
        """
        instruction_order = {}
        batches: Dict[str, List[str]] = {}
        for i, (instruction, structured_output) in enumerate(inputs):
            prompt = self.prepare_input(instruction)
            # As distilabel: identical prompts share one entry (the last one's index).
            instruction_order[prompt] = i
            batches.setdefault(json.dumps(structured_output), []).append(prompt)
        flat = [prompt for group in batches.values() for prompt in group]
        sorted_indices = [instruction_order[prompt] for prompt in flat]
        return [(batch, json.loads(schema)) for schema, batch in batches.items()], sorted_indices

    @validate_call
    def generate(  # type: ignore[override]
        self,
        inputs: List[FormattedInput],
        num_generations: int = 1,
        max_new_tokens: int = 128,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        repetition_penalty: float = 1.0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = -1,
        min_p: float = 0.0,
        logprobs: Optional[PositiveInt] = None,
        stop: Optional[List[str]] = None,
        stop_token_ids: Optional[List[int]] = None,
        include_stop_str_in_output: bool = False,
        skip_special_tokens: bool = True,
        logits_processors: Optional[LogitsProcessors] = None,
        extra_sampling_params: Optional[Dict[str, Any]] = None,
        echo: bool = False,
    ) -> List[GenerateOutput]:
        """Generates `num_generations` responses for each input.

        Args:
            inputs: a list of inputs in chat format to generate responses for.
            num_generations: the number of generations to create per input. Defaults to
                `1`.
            max_new_tokens: the maximum number of new tokens that the model will generate.
                Defaults to `128`.
            presence_penalty: the presence penalty to use for the generation. Defaults to
                `0.0`.
            frequency_penalty: the repetition penalty to use for the generation. Defaults
                to `0.0`.
            repetition_penalty: the repetition penalty to use for the generation Defaults to
                `1.0`.
            temperature: the temperature to use for the generation. Defaults to `0.1`.
            top_p: the top-p value to use for the generation. Defaults to `1.0`.
            top_k: the top-k value to use for the generation. Defaults to `0`.
            min_p: the minimum probability to use for the generation. Defaults to `0.0`.
            logprobs: number of log probabilities to return per output token. If `None`,
                then no log probability won't be returned. Defaults to `None`.
            stop: a list of strings that will be used to stop the generation when found.
                Defaults to `None`.
            stop_token_ids: a list of token ids that will be used to stop the generation
                when found. Defaults to `None`.
            include_stop_str_in_output: whether to include the stop string in the output.
                Defaults to `False`.
            skip_special_tokens: whether to exclude special tokens from the output. Defaults
                to `False`.
            logits_processors: a list of functions to process the logits before sampling.
                Defaults to `None`.
            extra_sampling_params: dictionary with additional arguments to be passed to
                the `SamplingParams` class from `vllm`.
            echo: whether to echo the include the prompt in the response or not. Defaults
                to `False`.

        Returns:
            One output per input, in input order: the generations, their token counts and
            (when asked) their logprobs.
        """
        from vllm import SamplingParams

        logits_processors = list(logits_processors or [])
        extra_sampling_params = extra_sampling_params or {}

        if isinstance(inputs[0], tuple):
            # Structured inputs: one batch per structured output.
            batches, sorted_indices = self._prepare_batches(inputs)  # type: ignore[arg-type]
        else:
            batches = [([self.prepare_input(input) for input in inputs], None)]  # type: ignore[list-item,arg-type]
            sorted_indices = None

        # The LLM's own structured output applies to every batch.
        if self._structured_output_logits_processor:
            logits_processors.append(self._structured_output_logits_processor)

        generations: List[GenerateOutput] = []
        for prompts, structured_output in batches:
            if self.structured_output is not None and structured_output is not None:
                self._logger.warning(
                    "An `structured_output` was provided in the model configuration, but"
                    " one was also provided in the input. The input structured output will"
                    " be used."
                )
            if structured_output is not None:
                logits_processors.append(self._prepare_structured_output(structured_output))  # type: ignore[arg-type]

            sampling_params = SamplingParams(
                n=num_generations,
                presence_penalty=presence_penalty,
                frequency_penalty=frequency_penalty,
                repetition_penalty=repetition_penalty,
                temperature=temperature,
                top_p=top_p,
                top_k=top_k,
                min_p=min_p,
                max_tokens=max_new_tokens,
                prompt_logprobs=logprobs if echo else None,
                logprobs=logprobs,
                stop=stop,
                stop_token_ids=stop_token_ids,
                include_stop_str_in_output=include_stop_str_in_output,
                skip_special_tokens=skip_special_tokens,
                logits_processors=logits_processors,
                **extra_sampling_params,
            )
            batch_outputs: List[RequestOutput] = self._model.generate(
                prompts=prompts,
                sampling_params=sampling_params,
                use_tqdm=False,
            )
            # Each batch's own structured output processor goes: they must not stack up.
            if structured_output is not None:
                logits_processors.pop(-1)

            for prompt, outputs in zip(prompts, batch_outputs, strict=False):
                prompt_logprobs = []
                if outputs.prompt_logprobs is not None:
                    prompt_logprobs = self._get_llm_logprobs(outputs.prompt_logprobs)
                texts, statistics, outputs_logprobs = self._process_outputs(
                    input=prompt,
                    outputs=outputs,
                    echo=echo,
                    prompt_logprobs=prompt_logprobs,  # type: ignore[arg-type]
                )
                generations.append(
                    prepare_output(
                        generations=texts,
                        input_tokens=statistics["input_tokens"],  # type: ignore[arg-type]
                        output_tokens=statistics["output_tokens"],  # type: ignore[arg-type]
                        logprobs=outputs_logprobs,
                    )
                )

        if sorted_indices is not None:
            order = sorted(enumerate(sorted_indices), key=lambda pair: pair[1])
            generations = [generations[position] for position, _ in order]
        return generations

    def _process_outputs(
        self,
        input: str,
        outputs: "RequestOutput",
        prompt_logprobs: List[List["Logprob"]],
        echo: bool = False,
    ) -> Tuple["LLMOutput", "LLMStatistics", "LLMLogprobs"]:
        texts = []
        outputs_logprobs = []
        statistics = {
            "input_tokens": [compute_tokens(input, self._tokenizer.encode)] * len(outputs.outputs),
            "output_tokens": [],
        }
        for output in outputs.outputs:
            text = output.text
            if echo:
                text = input + text
            texts.append(text)
            statistics["output_tokens"].append(len(output.token_ids))
            if output.logprobs is not None:
                outputs_logprobs.append(prompt_logprobs + self._get_llm_logprobs(output.logprobs))
        return texts, statistics, outputs_logprobs  # type: ignore[return-value]

    def _prepare_structured_output(  # type: ignore[override]
        self, structured_output: "OutlinesStructuredOutputType"
    ) -> Union[Callable, None]:
        """The `outlines` logits processor that guides the generation to
        `structured_output`.

        Args:
            structured_output: the configuration dict to prepare the structured output.

        Returns:
            The callable that will be used to guide the generation of the model.
        """
        from distilabel_rs.models.llms._outlines import prepare_guided_output

        assert structured_output is not None, "`structured_output` cannot be `None`"
        result = prepare_guided_output(structured_output, "vllm", self._model)
        if (schema := result.get("schema")) and self.structured_output:
            self.structured_output["schema"] = schema
        return result["processor"]

    def _get_llm_logprobs(
        self, logprobs: Union["PromptLogprobs", "SampleLogprobs"]
    ) -> List[List["Logprob"]]:
        processed: List[Any] = []
        for token_logprobs in logprobs:  # type: ignore[union-attr]
            if token_logprobs is None:
                processed.append(None)
                continue
            processed.append(
                [
                    {"token": logprob.decoded_token, "logprob": logprob.logprob}
                    for logprob in token_logprobs.values()
                ]
            )
        return processed


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

    def _template(self, parameters: Dict[str, Any], context: Any, inputs: List[Any]) -> None:
        return None  # prompts rendered from each conversation by the tokenizer

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
