"""`TransformersLLM`: distilabel 1.5.3's in-process Hugging Face `transformers` LLM.

A distilabel_rs `LLM` (accepted by distilabel's pipelines, dumped, loaded and pickled like the
others); the generation itself is transformers' text-generation pipeline, in this process,
with no acceleration from the Rust core. For throughput, serve the model with vLLM or TGI
and use `distilabel_rs.OpenAILLM` against it.
"""

import os
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Union

from pydantic import Field, PrivateAttr, SecretStr, validate_call

from distilabel_rs.mixins.runtime_parameters import RuntimeParameter
from distilabel_rs.models.llms._sdk import install_hint
from distilabel_rs.models.llms.base import LLM
from distilabel_rs.models.llms.utils import compute_tokens, prepare_output
from distilabel_rs.models.mixins.cuda_device_placement import CudaDevicePlacementMixin
from distilabel_rs.models.mixins.magpie import MagpieChatTemplateMixin
from distilabel_rs.typing import GenerateOutput, OutlinesStructuredOutputType, StandardInput

if TYPE_CHECKING:
    from transformers import Pipeline
    from transformers.modeling_utils import PreTrainedModel
    from transformers.tokenization_utils import PreTrainedTokenizer

    from distilabel_rs.typing import HiddenState

__all__ = ["TransformersLLM"]

HF_TOKEN_ENV_VAR = "HF_TOKEN"


class TransformersLLM(LLM, MagpieChatTemplateMixin, CudaDevicePlacementMixin):
    """Hugging Face `transformers` library LLM implementation using the text generation
    pipeline.

    Attributes:
        model: the model Hugging Face Hub repo id or a path to a directory containing the
            model weights and configuration files.
        revision: if `model` refers to a Hugging Face Hub repository, then the revision
            (e.g. a branch name or a commit id) to use. Defaults to `"main"`.
        torch_dtype: the torch dtype to use for the model e.g. "float16", "float32", etc.
            Defaults to `"auto"`.
        trust_remote_code: whether to allow fetching and executing remote code fetched
            from the repository in the Hub. Defaults to `False`.
        model_kwargs: additional dictionary of keyword arguments that will be passed to
            the `from_pretrained` method of the model.
        tokenizer: the tokenizer Hugging Face Hub repo id or a path to a directory containing
            the tokenizer config files. If not provided, the one associated to the `model`
            will be used. Defaults to `None`.
        use_fast: whether to use a fast tokenizer or not. Defaults to `True`.
        chat_template: a chat template that will be used to build the prompts before
            sending them to the model. If not provided, the chat template defined in the
            tokenizer config will be used. Defaults to `None`.
        device: the name or index of the device where the model will be loaded. Defaults
            to `None`.
        device_map: a dictionary mapping each layer of the model to a device, or a mode
            like `"sequential"` or `"auto"`. Defaults to `None`.
        token: the Hugging Face Hub token that will be used to authenticate to the Hugging
            Face Hub. If not provided, the `HF_TOKEN` environment or `huggingface_hub` package
            local configuration will be used. Defaults to `None`.
        structured_output: a dictionary containing the structured output configuration
            (`outlines`). Defaults to None.
        use_magpie_template: a flag used to enable/disable applying the Magpie pre-query
            template. Defaults to `False`.
        magpie_pre_query_template: the pre-query template to be applied to the prompt or
            sent to the LLM to generate an instruction or a follow up user message. Valid
            values are "llama3", "qwen2" or another pre-query template provided. Defaults
            to `None`.

    Icon:
        `:hugging:`

    Examples:
        Generate text:

        ```python
        from distilabel_rs.models.llms import TransformersLLM

        llm = TransformersLLM(model="microsoft/Phi-3-mini-4k-instruct")
        llm.load()
        output = llm.generate_outputs(inputs=[[{"role": "user", "content": "Hello world!"}]])
        ```
    """

    model: str
    revision: str = "main"
    torch_dtype: str = "auto"
    trust_remote_code: bool = False
    model_kwargs: Optional[Dict[str, Any]] = None
    tokenizer: Optional[str] = None
    use_fast: bool = True
    chat_template: Optional[str] = None
    device: Optional[Union[str, int]] = None
    device_map: Optional[Union[str, Dict[str, Any]]] = None
    token: Optional[SecretStr] = Field(default_factory=lambda: os.getenv(HF_TOKEN_ENV_VAR))  # type: ignore[assignment]
    structured_output: Optional[RuntimeParameter[OutlinesStructuredOutputType]] = Field(
        default=None,
        description="The structured output format to use across all the generations.",
    )

    _pipeline: Optional["Pipeline"] = PrivateAttr(...)  # type: ignore[assignment]
    _prefix_allowed_tokens_fn: Union[Callable, None] = PrivateAttr(default=None)
    _logits_processor: Union[Callable, None] = PrivateAttr(default=None)

    def load(self) -> None:
        """Loads the model and tokenizer into a text generation pipeline, and sets the
        tokenizer's chat template and padding token.

        Raises:
            ImportError: if transformers is not installed.
        """
        if self.device == "cuda":
            CudaDevicePlacementMixin.load(self)
        try:
            from transformers import pipeline
        except ImportError as e:
            raise ImportError(
                "Transformers is not installed. Please install it using"
                f" {install_hint('hf-transformers')}."
            ) from e

        token = self.token.get_secret_value() if self.token is not None else None
        self._pipeline = pipeline(
            "text-generation",
            model=self.model,
            revision=self.revision,
            torch_dtype=self.torch_dtype,
            trust_remote_code=self.trust_remote_code,
            model_kwargs=self.model_kwargs or {},
            tokenizer=self.tokenizer or self.model,
            use_fast=self.use_fast,
            device=self.device,
            device_map=self.device_map,
            token=token,
            return_full_text=False,
        )
        tokenizer = self._pipeline.tokenizer  # type: ignore[union-attr]
        if self.chat_template is not None:
            tokenizer.chat_template = self.chat_template  # type: ignore[union-attr]
        if tokenizer.pad_token is None:  # type: ignore[union-attr]
            tokenizer.pad_token = tokenizer.eos_token  # type: ignore[union-attr]

        if self.structured_output:
            from distilabel_rs.models.llms._outlines import is_outlines_below_0_1_0

            processor = self._prepare_structured_output(self.structured_output)
            if is_outlines_below_0_1_0():
                self._prefix_allowed_tokens_fn = processor  # type: ignore[assignment]
            else:
                self._logits_processor = [processor]  # type: ignore[assignment]

        super().load()

    def unload(self) -> None:
        """Releases the CUDA devices this LLM took (if any)."""
        CudaDevicePlacementMixin.unload(self)
        super().unload()

    @property
    def model_name(self) -> str:
        """Returns the model name used for the LLM."""
        return self.model

    def _model_dump(self, obj: Any, **kwargs: Any) -> Dict[str, Any]:
        """The dump without `token` (like `api_key`: never written to a file; the loaded
        object reads `HF_TOKEN` again). distilabel 1.5.3 dumps it, and `save(format="yaml")`
        writes it in clear."""
        dump = super()._model_dump(obj, **kwargs)
        if obj is self:
            dump.pop("token", None)
        return dump

    def prepare_input(self, input: "StandardInput") -> str:
        """The prompt of a conversation: its chat template applied (with the Magpie
        pre-query template when enabled), or the first message's content if the tokenizer
        has no chat template.

        Args:
            input: the input list containing chat items.

        Returns:
            The prompt to send to the LLM.
        """
        tokenizer = self._pipeline.tokenizer  # type: ignore[union-attr]
        if tokenizer.chat_template is None:  # type: ignore[union-attr]
            return input[0]["content"]  # type: ignore[return-value]
        prompt: str = (
            tokenizer.apply_chat_template(  # type: ignore[assignment, union-attr]
                input,  # type: ignore[arg-type]
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
        inputs: List[StandardInput],
        num_generations: int = 1,
        max_new_tokens: int = 128,
        temperature: float = 0.1,
        repetition_penalty: float = 1.1,
        top_p: float = 1.0,
        top_k: int = 0,
        do_sample: bool = True,
    ) -> List[GenerateOutput]:
        """Generates `num_generations` responses for each input using the text generation
        pipeline.

        Args:
            inputs: a list of inputs in chat format to generate responses for.
            num_generations: the number of generations to create per input. Defaults to
                `1`.
            max_new_tokens: the maximum number of new tokens that the model will generate.
                Defaults to `128`.
            temperature: the temperature to use for the generation. Defaults to `0.1`.
            repetition_penalty: the repetition penalty to use for the generation. Defaults
                to `1.1`.
            top_p: the top-p value to use for the generation. Defaults to `1.0`.
            top_k: the top-k value to use for the generation. Defaults to `0`.
            do_sample: whether to use sampling or not. Defaults to `True`.

        Returns:
            One output per input: the generations, the prompt's token count and each
            generation's.
        """
        pipeline = self._pipeline
        tokenizer = pipeline.tokenizer  # type: ignore[union-attr]
        prompts = [self.prepare_input(input=input) for input in inputs]
        outputs: List[List[Dict[str, str]]] = pipeline(  # type: ignore[misc]
            prompts,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            repetition_penalty=repetition_penalty,
            top_p=top_p,
            top_k=top_k,
            do_sample=do_sample,
            num_return_sequences=num_generations,
            prefix_allowed_tokens_fn=self._prefix_allowed_tokens_fn,
            pad_token_id=tokenizer.eos_token_id,  # type: ignore[union-attr]
            logits_processor=self._logits_processor,
        )
        results = []
        for input, output in zip(inputs, outputs, strict=False):
            texts = [generation["generated_text"] for generation in output]
            results.append(
                prepare_output(
                    texts,  # type: ignore[arg-type]
                    input_tokens=[compute_tokens(input, tokenizer.encode)],  # type: ignore[union-attr]
                    output_tokens=[compute_tokens(text, tokenizer.encode) for text in texts],  # type: ignore[union-attr]
                )
            )
        return results

    def get_last_hidden_states(self, inputs: List["StandardInput"]) -> List["HiddenState"]:
        """The last hidden states of the model (without its task head) for each input.

        Args:
            inputs: a list of inputs in chat format to generate the embeddings for.

        Returns:
            A list containing the last hidden state for each sequence using a NumPy array
            with shape [num_tokens, hidden_size].
        """
        pipeline_model = self._pipeline.model  # type: ignore[union-attr]
        model: PreTrainedModel = (
            pipeline_model.model
            if hasattr(pipeline_model, "model")
            else next(pipeline_model.children())
        )
        tokenizer: PreTrainedTokenizer = self._pipeline.tokenizer  # type: ignore[union-attr,assignment]
        encoded = tokenizer(
            [self.prepare_input(input) for input in inputs],
            return_tensors="pt",
            padding=True,
        ).to(model.device)
        last_hidden_states = model(**encoded)["last_hidden_state"]
        return [
            hidden[mask.bool(), :].detach().cpu().numpy()
            for hidden, mask in zip(last_hidden_states, encoded["attention_mask"], strict=False)
        ]

    def _prepare_structured_output(  # type: ignore[override]
        self, structured_output: Optional[OutlinesStructuredOutputType] = None
    ) -> Union[Callable, List[Callable]]:
        """The `outlines` processor that guides the generation to `structured_output`.

        Args:
            structured_output: the configuration dict to prepare the structured output.

        Returns:
            The callable that will be used to guide the generation of the model.
        """
        from distilabel_rs.models.llms._outlines import prepare_guided_output

        result = prepare_guided_output(structured_output, "transformers", self._pipeline)  # type: ignore[arg-type]
        if schema := result.get("schema"):
            self.structured_output["schema"] = schema  # type: ignore[index]
        return result["processor"]
