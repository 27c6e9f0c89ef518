"""`MlxLLM`: distilabel 1.5.3's in-process Apple MLX LLM (`mlx-lm`, Apple silicon only).

A distilabel_rs `LLM` (accepted by distilabel's pipelines, dumped, loaded and pickled like the
others); the generation itself runs in `mlx_lm` in this process, with no acceleration from
the Rust core. For throughput, serve the model (`mlx_lm.server`, llama.cpp or Ollama) and
use `distilabel_rs.OpenAILLM` against its OpenAI-compatible endpoint.
"""

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Union

from pydantic import Field, PrivateAttr, validate_call

from distilabel_rs.models.llms._sdk import install_hint
from distilabel_rs.models.llms.base import LLM
from distilabel_rs.models.llms.utils import compute_tokens, prepare_output
from distilabel_rs.models.mixins.magpie import MagpieChatTemplateMixin
from distilabel_rs.typing import GenerateOutput, StandardInput

if TYPE_CHECKING:
    import mlx.nn as nn
    from mlx_lm.tokenizer_utils import TokenizerWrapper

__all__ = ["MlxLLM"]


class MlxLLM(LLM, MagpieChatTemplateMixin):
    """Apple MLX LLM implementation.

    Attributes:
        path_or_hf_repo: the path to the model or the Hugging Face Hub repo id.
        tokenizer_config: the tokenizer configuration.
        mlx_model_config: the MLX model configuration.
        adapter_path: the path to the adapter.
        use_magpie_template: a flag used to enable/disable applying the Magpie pre-query
            template. Defaults to `False`.
        magpie_pre_query_template: the pre-query template to be applied to the prompt or
            sent to the LLM to generate an instruction or a follow up user message. Valid
            values are "llama3", "qwen2" or another pre-query template provided. Defaults
            to `None`.

    Icon:
        `:apple:`

    Examples:
        Generate text:

        ```python
        from distilabel_rs.models.llms import MlxLLM

        llm = MlxLLM(path_or_hf_repo="mlx-community/Meta-Llama-3.1-8B-Instruct-4bit")
        llm.load()
        output = llm.generate_outputs(inputs=[[{"role": "user", "content": "Hello world!"}]])
        ```
    """

    path_or_hf_repo: str
    tokenizer_config: Dict[str, Any] = Field(default_factory=dict)
    mlx_model_config: Dict[str, Any] = Field(default_factory=dict)
    adapter_path: Optional[str] = None

    _model: Optional["nn.Module"] = PrivateAttr(None)
    _tokenizer: Optional["TokenizerWrapper"] = PrivateAttr(None)
    _mlx_generate: Optional[Callable] = PrivateAttr(None)
    _make_sampler: Optional[Callable] = PrivateAttr(None)

    def load(self) -> None:
        """Loads the model and tokenizer with `mlx_lm`.

        Raises:
            ImportError: if mlx or mlx-lm is not installed.
        """
        try:
            import mlx  # noqa: F401
            from mlx_lm.sample_utils import make_sampler
            from mlx_lm.utils import generate, load
        except ImportError as e:
            raise ImportError(
                f"MLX is not installed. Please install it using {install_hint('mlx')}."
            ) from e

        self._model, self._tokenizer = load(
            self.path_or_hf_repo,
            tokenizer_config=self.tokenizer_config,
            model_config=self.mlx_model_config,
            adapter_path=self.adapter_path,
        )
        if self._tokenizer.pad_token is None:  # type: ignore[union-attr]
            self._tokenizer.pad_token = self._tokenizer.eos_token  # type: ignore[union-attr]
        self._mlx_generate = generate
        self._make_sampler = make_sampler
        super().load()

    @property
    def model_name(self) -> str:
        """Returns the model name used for the LLM."""
        return self.path_or_hf_repo

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
            self._tokenizer.apply_chat_template(  # type: ignore[union-attr]
                input,
                tokenize=False,
                add_generation_prompt=True,
            )
            if input
            else ""
        )
        return super().apply_magpie_pre_query_template(prompt, input)

    @validate_call
    def generate(  # type: ignore[override]
        self,
        inputs: List[Union[StandardInput, str]],
        num_generations: int = 1,
        max_tokens: int = 256,
        logits_processors: Optional[List[Callable]] = None,
        max_kv_size: Optional[int] = None,
        prompt_cache: Optional[Any] = None,
        prefill_step_size: int = 512,
        kv_bits: Optional[int] = None,
        kv_group_size: int = 64,
        quantized_kv_start: int = 0,
        prompt_progress_callback: Optional[Callable[[int, int], None]] = None,
        temp: float = 0.0,
        top_p: float = 0.0,
        min_p: float = 0.0,
        min_tokens_to_keep: int = 1,
        top_k: int = -1,
    ) -> List[GenerateOutput]:
        """Generates `num_generations` responses for each input using the text generation
        pipeline.

        Args:
            inputs: the inputs to generate responses for.
            num_generations: the number of generations to create per input. Defaults to
                `1`.
            max_tokens: the maximum number of new tokens that the model will generate.
                Defaults to `128`.
            logits_processors: the logits processors to use for the generation. Defaults to
                `None`.
            max_kv_size: the maximum size of the key-value cache. Defaults to `None`.
            prompt_cache: the prompt cache to use for the generation. Defaults to `None`.
            prefill_step_size: the prefill step size. Defaults to `512`.
            kv_bits: the number of bits to use for the key-value cache. Defaults to `None`.
            kv_group_size: the group size for the key-value cache. Defaults to `64`.
            quantized_kv_start: the start of the quantized key-value cache. Defaults to `0`.
            prompt_progress_callback: the callback to use for the generation. Defaults to
                `None`.
            temp: The temperature for text generation. Defaults to `0.0`.
            top_p: The top-p value used for the generation. Defaults to `0.0`.
            min_p: The min-p value used for the generation. Defaults to `0.0`.
            min_tokens_to_keep: Minimum number of tokens to keep for sampling after
                filtering. Must be at least 1. Defaults to `1`.
            top_k: The top-k value used for the generation. Defaults to `-1`.

        Returns:
            One output per input: the generations and their token counts.
        """
        sampler = self._make_sampler(  # type: ignore[misc]
            temp=temp,
            top_p=top_p,
            min_p=min_p,
            min_tokens_to_keep=min_tokens_to_keep,
            top_k=top_k,
        )
        encode = self._tokenizer.encode  # type: ignore[union-attr]
        structured_output = None
        result = []
        for input in inputs:
            if isinstance(input, tuple):
                input, structured_output = input
            generations: List[str] = []
            for _ in range(num_generations):
                if structured_output:  # raises: MLX has no guided generation
                    self._prepare_structured_output(structured_output)
                generations.append(
                    self._mlx_generate(  # type: ignore[misc]
                        prompt=self.prepare_input(input),
                        model=self._model,
                        tokenizer=self._tokenizer,
                        logits_processors=logits_processors,
                        max_tokens=max_tokens,
                        sampler=sampler,
                        max_kv_size=max_kv_size,
                        prompt_cache=prompt_cache,
                        prefill_step_size=prefill_step_size,
                        kv_bits=kv_bits,
                        kv_group_size=kv_group_size,
                        quantized_kv_start=quantized_kv_start,
                        prompt_progress_callback=prompt_progress_callback,
                    )
                )
            result.append(
                prepare_output(
                    generations=generations,  # type: ignore[arg-type]
                    input_tokens=[compute_tokens(input, encode)],
                    output_tokens=[
                        compute_tokens(text_or_messages=text, tokenizer=encode)
                        for text in generations
                    ],
                )
            )
        return result
