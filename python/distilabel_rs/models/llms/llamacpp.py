"""`LlamaCppLLM`: distilabel 1.5.3's in-process llama.cpp LLM (`llama-cpp-python`).

A distilabel_rs `LLM` (accepted by distilabel's pipelines, dumped, loaded and pickled like the
others); the generation itself runs in `llama_cpp` in this process, with no acceleration
from the Rust core. For throughput, serve the model with `llama-server` (or Ollama) and use
`distilabel_rs.OpenAILLM` against its OpenAI-compatible endpoint.
"""

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

from pydantic import Field, FilePath, PrivateAttr, model_validator, validate_call
from typing_extensions import Self

from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models.llms._sdk import install_hint
from distilabel_rs.models.llms.base import LLM
from distilabel_rs.models.llms.utils import prepare_output
from distilabel_rs.models.mixins.magpie import (
    MagpieChatTemplateMixin,
    require_tokenizer_for_magpie,
)
from distilabel_rs.typing import FormattedInput, GenerateOutput, OutlinesStructuredOutputType

if TYPE_CHECKING:
    from llama_cpp import CreateChatCompletionResponse, Llama, LogitsProcessorList

    from distilabel_rs.typing import StandardInput

__all__ = ["LlamaCppLLM"]


class LlamaCppLLM(LLM, MagpieChatTemplateMixin):
    """llama.cpp LLM implementation running the Python bindings for the C++ code.

    Attributes:
        model_path: contains the path to the GGUF quantized model, compatible with the
            installed version of the `llama.cpp` Python bindings.
        n_gpu_layers: the number of layers to use for the GPU. Defaults to `-1`, meaning that
            the available GPU device will be used.
        chat_format: the chat format to use for the model. Defaults to `None`, which means the
            Llama format will be used.
        n_ctx: the context size to use for the model. Defaults to `512`.
        n_batch: the prompt processing maximum batch size to use for the model. Defaults to `512`.
        seed: random seed to use for the generation. Defaults to `4294967295`.
        verbose: whether to print verbose output. Defaults to `False`.
        structured_output: a dictionary containing the structured output configuration
            (`outlines`). Defaults to None.
        extra_kwargs: additional dictionary of keyword arguments that will be passed to the
            `Llama` class of `llama_cpp` library. Defaults to `{}`.
        tokenizer_id: the tokenizer Hugging Face Hub repo id or a path to a directory containing
            the tokenizer config files. If not provided, the one associated to the `model`
            will be used. Defaults to `None`.
        use_magpie_template: a flag used to enable/disable applying the Magpie pre-query
            template. Defaults to `False`.
        magpie_pre_query_template: the pre-query template to be applied to the prompt or
            sent to the LLM to generate an instruction or a follow up user message. Valid
            values are "llama3", "qwen2" or another pre-query template provided. Defaults
            to `None`.
        _model: the Llama model instance, set in the `load` method.

    Runtime parameters:
        - `model_path`: the path to the GGUF quantized model.
        - `n_gpu_layers`: the number of layers to use for the GPU. Defaults to `-1`.
        - `chat_format`: the chat format to use for the model. Defaults to `None`.
        - `verbose`: whether to print verbose output. Defaults to `False`.
        - `extra_kwargs`: additional dictionary of keyword arguments that will be passed to the
            `Llama` class of `llama_cpp` library. Defaults to `{}`.

    References:
        - [`llama.cpp`](https://github.com/ggerganov/llama.cpp)
        - [`llama-cpp-python`](https://github.com/abetlen/llama-cpp-python)

    Examples:
        Generate text:

        ```python
        from distilabel_rs.models.llms import LlamaCppLLM

        llm = LlamaCppLLM(model_path="openhermes-2.5-mistral-7b.Q4_K_M.gguf", n_ctx=1024)
        llm.load()
        output = llm.generate_outputs(inputs=[[{"role": "user", "content": "Hello world!"}]])
        ```
    """

    model_path: RuntimeParameter[FilePath] = Field(
        default=None, description="The path to the GGUF quantized model.", exclude=True
    )
    n_gpu_layers: RuntimeParameter[int] = Field(
        default=-1,
        description="The number of layers that will be loaded in the GPU.",
    )
    chat_format: Optional[RuntimeParameter[str]] = Field(
        default=None,
        description="The chat format to use for the model. Defaults to `None`, which means the"
        " Llama format will be used.",
    )

    n_ctx: int = 512
    n_batch: int = 512
    seed: int = 4294967295
    verbose: RuntimeParameter[bool] = Field(
        default=False,
        description="Whether to print verbose output from llama.cpp library.",
    )
    extra_kwargs: Optional[RuntimeParameter[Dict[str, Any]]] = Field(
        default_factory=dict,
        description="Additional dictionary of keyword arguments that will be passed to the"
        " `Llama` class of `llama_cpp` library. See all the supported arguments at: "
        "https://llama-cpp-python.readthedocs.io/en/latest/api-reference/#llama_cpp.Llama.__init__",
    )
    structured_output: Optional[RuntimeParameter[OutlinesStructuredOutputType]] = Field(
        default=None,
        description="The structured output format to use across all the generations.",
    )
    tokenizer_id: Optional[RuntimeParameter[str]] = Field(
        default=None,
        description="The Hugging Face Hub repo id or a path to a directory containing"
        " the tokenizer config files. If not provided, the one associated to the `model`"
        " will be used.",
    )
    _logits_processor: Optional["LogitsProcessorList"] = PrivateAttr(default=None)
    _model: Optional["Llama"] = PrivateAttr(...)
    # The Hugging Face tokenizer of `tokenizer_id` (prompts rendered client-side).
    _tokenizer: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def validate_magpie_usage(self) -> Self:
        """Magpie renders the prompt itself, with the tokenizer of `tokenizer_id`."""
        require_tokenizer_for_magpie(self.use_magpie_template, self.tokenizer_id)
        return self

    def load(self) -> None:
        """Loads the `Llama` model from `model_path` (and the tokenizer of `tokenizer_id`).

        Raises:
            ImportError: if llama-cpp-python (or, for `tokenizer_id`, transformers) is not
                installed.
            ValueError: if Magpie is enabled without `tokenizer_id`, or the tokenizer has
                no chat template.
        """
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise ImportError(
                "The `llama_cpp` package is required to use the `LlamaCppLLM` class. Please"
                f" install it using {install_hint('llama-cpp')}."
            ) from e
        if self.model_path is None:
            raise ValueError(
                "`LlamaCppLLM` needs `model_path`, the path to a GGUF model file: set the"
                " `model_path` attribute or runtime parameter."
            )

        self._model = Llama(
            model_path=self.model_path.as_posix(),
            seed=self.seed,
            n_ctx=self.n_ctx,
            n_batch=self.n_batch,
            chat_format=self.chat_format,
            n_gpu_layers=self.n_gpu_layers,
            verbose=self.verbose,
            **(self.extra_kwargs or {}),
        )

        if self.structured_output:
            self._logits_processor = self._prepare_structured_output(self.structured_output)  # type: ignore[assignment]

        if (self.use_magpie_template or self.magpie_pre_query_template) and not self.tokenizer_id:
            raise ValueError(
                "The Hugging Face Hub repo id or a path to a directory containing"
                " the tokenizer config files is required when using the `use_magpie_template`"
                " or `magpie_pre_query_template` runtime parameters."
            )

        if self.tokenizer_id:
            try:
                from transformers import AutoTokenizer
            except ImportError as e:
                raise ImportError(
                    "Transformers is not installed. Please install it using"
                    f" {install_hint('hf-transformers')}."
                ) from e
            self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_id)
            if self._tokenizer.chat_template is None:
                raise ValueError(
                    "The tokenizer does not have a chat template. Please use a tokenizer with"
                    " a chat template."
                )

        # Last: the logger is named after `model_name`, which is the loaded model's path.
        super().load()

    @property
    def model_name(self) -> str:
        """Returns the model name used for the LLM."""
        return self._model.model_path  # type: ignore[union-attr]

    def _generate_chat_completion(
        self,
        input: FormattedInput,
        max_new_tokens: int = 128,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        extra_generation_kwargs: Optional[Dict[str, Any]] = None,
    ) -> "CreateChatCompletionResponse":
        return self._model.create_chat_completion(  # type: ignore[union-attr,return-value]
            messages=input,  # type: ignore[arg-type]
            max_tokens=max_new_tokens,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            temperature=temperature,
            top_p=top_p,
            logits_processor=self._logits_processor,
            **(extra_generation_kwargs or {}),
        )

    def prepare_input(self, input: "StandardInput") -> str:
        """The prompt of a conversation, rendered with the chat template of the tokenizer of
        `tokenizer_id` (with the Magpie pre-query template when enabled).

        Args:
            input: the input list containing chat items.

        Returns:
            The prompt to send to the LLM.
        """
        prompt: str = (
            self._tokenizer.apply_chat_template(
                conversation=input,
                tokenize=False,
                add_generation_prompt=True,
            )
            if input
            else ""
        )
        return super().apply_magpie_pre_query_template(prompt, input)

    def _generate_with_text_generation(
        self,
        input: FormattedInput,
        max_new_tokens: int = 128,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        extra_generation_kwargs: Optional[Dict[str, Any]] = None,
    ) -> "CreateChatCompletionResponse":
        return self._model.create_completion(  # type: ignore[union-attr,return-value]
            prompt=self.prepare_input(input),  # type: ignore[arg-type]
            max_tokens=max_new_tokens,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            temperature=temperature,
            top_p=top_p,
            logits_processor=self._logits_processor,
            **(extra_generation_kwargs or {}),
        )

    @validate_call
    def generate(  # type: ignore[override]
        self,
        inputs: List[FormattedInput],
        num_generations: int = 1,
        max_new_tokens: int = 128,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        extra_generation_kwargs: Optional[Dict[str, Any]] = None,
    ) -> List[GenerateOutput]:
        """Generates `num_generations` responses for the given input using the Llama model.

        Args:
            inputs: a list of inputs in chat format to generate responses for.
            num_generations: the number of generations to create per input. Defaults to
                `1`.
            max_new_tokens: the maximum number of new tokens that the model will generate.
                Defaults to `128`.
            frequency_penalty: the repetition penalty to use for the generation. Defaults
                to `0.0`.
            presence_penalty: the presence penalty to use for the generation. Defaults to
                `0.0`.
            temperature: the temperature to use for the generation. Defaults to `0.1`.
            top_p: the top-p value to use for the generation. Defaults to `1.0`.
            extra_generation_kwargs: dictionary with additional arguments to be passed to
                the `create_chat_completion` method. Reference at
                https://llama-cpp-python.readthedocs.io/en/latest/api-reference/#llama_cpp.Llama.create_chat_completion

        Returns:
            One output per input; the prompt's token count is repeated per generation.
        """
        structured_output = None
        batch_outputs = []
        for input in inputs:
            if isinstance(input, tuple):
                input, structured_output = input
            elif self.structured_output:
                structured_output = self.structured_output

            generations: List[Optional[str]] = []
            output_tokens: List[int] = []
            for _ in range(num_generations):
                # An outlines processor keeps its state machine across calls: a fresh one
                # per generation (as distilabel does).
                if structured_output:
                    self._logits_processor = self._prepare_structured_output(structured_output)  # type: ignore[arg-type, assignment]
                arguments = (
                    input,
                    max_new_tokens,
                    frequency_penalty,
                    presence_penalty,
                    temperature,
                    top_p,
                    extra_generation_kwargs,
                )
                if self.tokenizer_id is None:
                    completion = self._generate_chat_completion(*arguments)  # type: ignore[arg-type]
                    generations.append(completion["choices"][0]["message"]["content"])
                else:
                    completion = self._generate_with_text_generation(*arguments)  # type: ignore[arg-type]
                    generations.append(completion["choices"][0]["text"])  # type: ignore[typeddict-item]
                output_tokens.append(completion["usage"]["completion_tokens"])
            batch_outputs.append(
                prepare_output(
                    generations,
                    input_tokens=[completion["usage"]["prompt_tokens"]] * num_generations,
                    output_tokens=output_tokens,
                )
            )
        return batch_outputs

    def _prepare_structured_output(  # type: ignore[override]
        self, structured_output: Optional[OutlinesStructuredOutputType] = None
    ) -> Union["LogitsProcessorList", List[Any]]:
        """The `outlines` logits processor that guides the generation to
        `structured_output`.

        Args:
            structured_output: the configuration dict to prepare the structured output.

        Returns:
            The list of logits processors to pass to `llama_cpp`.
        """
        from distilabel_rs.models.llms._outlines import prepare_guided_output

        result = prepare_guided_output(structured_output, "llamacpp", self._model)  # type: ignore[arg-type]
        if (schema := result.get("schema")) and self.structured_output:
            self.structured_output["schema"] = schema
        return [result["processor"]]
