"""The Magpie pre-query template mixin (distilabel 1.5.3's fields, validation and method).

With distilabel installed, the mixin also derives from distilabel's, so that distilabel's
`Magpie` task accepts distilabel_rs LLMs that use it (it checks with `isinstance`).
"""

from typing import TYPE_CHECKING, Dict, Literal, Optional, Tuple, Union

from pydantic import BaseModel, field_validator, model_validator
from typing_extensions import Self

from distilabel_rs._interop import counterpart

if TYPE_CHECKING:
    from distilabel_rs.typing import StandardInput

__all__ = [
    "MAGPIE_PRE_QUERY_TEMPLATES",
    "MagpieAvailablePreQueryTemplates",
    "MagpieChatTemplateMixin",
]

MagpieAvailablePreQueryTemplates = Literal["llama3", "qwen2"]
"""The pre-query templates known by name."""

MAGPIE_PRE_QUERY_TEMPLATES: Dict[MagpieAvailablePreQueryTemplates, str] = {
    "llama3": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n",
    "qwen2": "<|im_start|>user\n",
}


def require_tokenizer_for_magpie(use_magpie_template: bool, tokenizer_id: Optional[str]) -> None:
    """Raises distilabel's error when the Magpie template is asked for without the
    `tokenizer_id` that renders it client-side (LLMs of a server API)."""
    if use_magpie_template and tokenizer_id is None:
        raise ValueError(
            "`use_magpie_template` cannot be `True` if `tokenizer_id` is `None`. Please,"
            " set a `tokenizer_id` and try again."
        )


_DISTILABEL_MIXIN = counterpart("models.mixins.magpie", "MagpieChatTemplateMixin")
_BASES: Tuple[type, ...] = _DISTILABEL_MIXIN or (BaseModel,)


class MagpieChatTemplateMixin(*_BASES, validate_assignment=True):  # type: ignore[misc,call-arg]
    """Adds the pre-query template that makes an instruct model write the next user turn
    (Magpie: "Alignment Data Synthesis from Scratch by Prompting Aligned LLMs with
    Nothing").

    Attributes:
        use_magpie_template: a flag used to enable/disable applying the Magpie pre-query
            template. Defaults to `False`.
        magpie_pre_query_template: the pre-query template to be applied to the prompt or
            sent to the LLM to generate an instruction or a follow up user message. Valid
            values are "llama3", "qwen2" or another pre-query template provided. Defaults
            to `None`.
    """

    use_magpie_template: bool = False
    magpie_pre_query_template: Union[MagpieAvailablePreQueryTemplates, str, None] = None

    @field_validator("magpie_pre_query_template")
    @classmethod
    def magpie_pre_query_template_validator(cls, value: str) -> str:
        """A known template name becomes its template; anything else is kept as given."""
        return MAGPIE_PRE_QUERY_TEMPLATES.get(value, value)  # type: ignore[call-overload]

    @model_validator(mode="after")
    def use_magpie_template_validation(self) -> Self:
        """`use_magpie_template=True` needs a template."""
        if self.use_magpie_template and self.magpie_pre_query_template is None:
            raise ValueError(
                f"Cannot set `use_magpie_template=True` if `magpie_pre_query_template` is"
                f" `None`. To use Magpie with `{self.__class__.__name__}` you need to set"
                f" the `magpie_pre_query_template` attribute."
            )
        return self

    def apply_magpie_pre_query_template(self, prompt: str, input: "StandardInput") -> str:
        """`prompt` followed by the pre-query template, when Magpie is on and the
        conversation does not end with a user turn.

        Args:
            prompt: the prompt rendered from `input`.
            input: the conversation the prompt was rendered from.

        Returns:
            The prompt, with the template appended when it applies.
        """
        if not self.use_magpie_template or (input and input[-1]["role"] == "user"):
            return prompt
        return prompt + self.magpie_pre_query_template  # type: ignore[operator]
