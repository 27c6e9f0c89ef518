"""Helpers for building LLM outputs."""

from typing import TYPE_CHECKING, Callable, List, Optional, Union

from distilabel_rs.typing import ChatType

if TYPE_CHECKING:
    from distilabel_rs.typing import GenerateOutput, LLMLogprobs, LLMOutput

__all__ = ["compute_tokens", "prepare_output"]


def compute_tokens(
    text_or_messages: Union[str, ChatType], tokenizer: Callable[..., List[int]]
) -> int:
    """Number of tokens of a text, or of the contents of a conversation.

    Args:
        text_or_messages: a text or a list of messages.
        tokenizer: maps a text to its token ids.

    Returns:
        The number of tokens.
    """
    if isinstance(text_or_messages, list):
        return sum(len(tokenizer(message["content"])) for message in text_or_messages)
    return len(tokenizer(text_or_messages))


def prepare_output(
    generations: "LLMOutput",
    input_tokens: Optional[List[int]] = None,
    output_tokens: Optional[List[int]] = None,
    logprobs: Optional["LLMLogprobs"] = None,
) -> "GenerateOutput":
    """A `GenerateOutput`; token counts and logprobs are included only when non-empty.

    Args:
        generations: the generations.
        input_tokens: prompt tokens.
        output_tokens: generated tokens.
        logprobs: log probabilities.

    Returns:
        The output.
    """
    output: GenerateOutput = {"generations": generations, "statistics": {}}
    if input_tokens:
        output["statistics"]["input_tokens"] = input_tokens
    if output_tokens:
        output["statistics"]["output_tokens"] = output_tokens
    if logprobs:
        output["logprobs"] = logprobs
    return output
