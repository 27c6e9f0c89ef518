"""`VertexAILLM`: distilabel 1.5.3's Gemini-on-Vertex-AI wrapper.

The requests go through `vertexai.generative_models.GenerativeModel` of the
`google-cloud-aiplatform` SDK (`pip install 'distilabel-rs[vertexai]'`), imported in
`load()`; what distilabel_rs adds is the engine around `agenerate`: at most
`max_concurrency` requests in flight, retries of Google's quota, timeout and server errors
with backoff, `requests_per_minute` and the `error_policy`.
"""

from typing import TYPE_CHECKING, Any, Dict, List, Literal, Optional

from pydantic import PrivateAttr, validate_call
from typing_extensions import TypedDict

from distilabel_rs.models.llms._sdk import install_hint, sdk_errors
from distilabel_rs.models.llms.base import AsyncLLM
from distilabel_rs.models.llms.utils import prepare_output
from distilabel_rs.typing import GenerateOutput, StandardInput

if TYPE_CHECKING:
    from vertexai.generative_models import Content, GenerationResponse, GenerativeModel

    from distilabel_rs.typing import LLMStatistics

__all__ = ["VertexAILLM", "VertexChatItem", "VertexChatType"]

# google-api-core's errors worth a retry: quota (429), server errors and deadlines.
_RETRYABLE_ERRORS = (
    "TooManyRequests",
    "ResourceExhausted",
    "InternalServerError",
    "BadGateway",
    "ServiceUnavailable",
    "GatewayTimeout",
    "DeadlineExceeded",
)


class VertexChatItem(TypedDict):
    """One message of a conversation in Vertex AI's format."""

    role: Literal["user", "model"]
    content: str


VertexChatType = List[VertexChatItem]
"""A conversation in the VertexAI format (a list of `VertexChatItem`)."""


class VertexAILLM(AsyncLLM):
    """VertexAI LLM implementation running the async API clients for Gemini.

    - Gemini API: https://cloud.google.com/vertex-ai/docs/generative-ai/model-reference/gemini

    Google Cloud authentication must be configured, with one of:

    - the `GOOGLE_APPLICATION_CREDENTIALS` environment variable,
    - `gcloud auth application-default login`,
    - `vertexai.init` from the `google-cloud-aiplatform` library.

    Attributes:
        model: the model name to use for the LLM e.g. "gemini-1.0-pro".
        _aclient: the `GenerativeModel` to use for the Vertex AI Gemini API. It is meant
            to be used internally. Set in the `load` method.

    Icon:
        `:simple-googlecloud:`

    Examples:
        Generate text:

        ```python
        from distilabel_rs.models.llms import VertexAILLM

        llm = VertexAILLM(model="gemini-1.5-pro")
        llm.load()
        output = llm.generate(inputs=[[{"role": "user", "content": "Hello world!"}]])
        ```
    """

    model: str

    _num_generations_param_supported = False

    _aclient: Optional["GenerativeModel"] = PrivateAttr(...)  # type: ignore[assignment]

    def load(self) -> None:
        """Creates the `GenerativeModel` (whose `generate_content_async` sends the requests).

        Raises:
            ImportError: if `google-cloud-aiplatform` is not installed.
            NotImplementedError: if `model` is not a Gemini model.
        """
        super().load()
        try:
            from vertexai.generative_models import GenerativeModel
        except ImportError as e:
            raise ImportError(
                f"vertexai is not installed. Please install it using {install_hint('vertexai')}."
            ) from e
        if not _is_gemini_model(self.model):
            raise NotImplementedError(
                "`VertexAILLM` is only implemented for `gemini` models that allow for"
                " `ChatType` data."
            )
        self._aclient = GenerativeModel(model_name=self.model)

    @property
    def model_name(self) -> str:
        """Returns the model name used for the LLM."""
        return self.model

    def _is_retryable(self, error: BaseException) -> bool:
        """Quota (429), 5xx and deadline errors of Google's API core are retried."""
        return super()._is_retryable(error) or isinstance(
            error, sdk_errors("google.api_core.exceptions", _RETRYABLE_ERRORS)
        )

    def _chattype_to_content(self, input: "StandardInput") -> List["Content"]:
        """Converts a chat type to a list of content items expected by the API.

        Args:
            input: the chat type to be converted.

        Returns:
            List[str]: a list of content items expected by the API.
        """
        from vertexai.generative_models import Content, Part

        contents = []
        for message in input:
            if message["role"] not in ["user", "model"]:
                raise ValueError("`VertexAILLM only supports the roles 'user' or 'model'.")
            contents.append(
                Content(
                    role=message["role"],
                    parts=[Part.from_text(message["content"])],  # type: ignore[arg-type]
                )
            )
        return contents

    @validate_call
    async def agenerate(  # type: ignore[override]
        self,
        input: VertexChatType,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[int] = None,
        max_output_tokens: Optional[int] = None,
        stop_sequences: Optional[List[str]] = None,
        safety_settings: Optional[Dict[str, Any]] = None,
        tools: Optional[List[Dict[str, Any]]] = None,
    ) -> GenerateOutput:
        """Generates one response for the given input with the Vertex AI async client.

        Args:
            input: a single input in chat format to generate responses for.
            temperature: Controls the randomness of predictions. Range: [0.0, 1.0]. Defaults to `None`.
            top_p: If specified, nucleus sampling will be used. Range: (0.0, 1.0]. Defaults to `None`.
            top_k: If specified, top-k sampling will be used. Defaults to `None`.
            max_output_tokens: The maximum number of output tokens to generate per message. Defaults to `None`.
            stop_sequences: A list of stop sequences. Defaults to `None`.
            safety_settings: Safety configuration for returned content from the API. Defaults to `None`.
            tools: A potential list of tools that can be used by the API. Defaults to `None`.

        Returns:
            The generation (`None` when the response has no text) and its token counts.
        """  # noqa: E501 (distilabel's parameter descriptions, each on one line)
        from vertexai.generative_models import GenerationConfig

        content: GenerationResponse = await self._aclient.generate_content_async(  # type: ignore[union-attr,call-overload]
            contents=self._chattype_to_content(input),  # type: ignore[arg-type]
            generation_config=GenerationConfig(
                candidate_count=1,  # one candidate per call
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                max_output_tokens=max_output_tokens,
                stop_sequences=stop_sequences,
            ),
            safety_settings=safety_settings,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
            stream=False,
        )
        text = None
        try:
            text = content.candidates[0].text
        except ValueError:
            self._logger.warning(
                f"Received no response using VertexAI client (model: '{self.model}')."
                f" Finish reason was: '{content.candidates[0].finish_reason}'."
            )
        return prepare_output([text], **self._get_llm_statistics(content))

    @staticmethod
    def _get_llm_statistics(content: "GenerationResponse") -> "LLMStatistics":
        return {
            "input_tokens": [content.usage_metadata.prompt_token_count],
            "output_tokens": [content.usage_metadata.candidates_token_count],
        }


def _is_gemini_model(model: str) -> bool:
    """Whether `model` is a Gemini model of Vertex AI.

    Args:
        model: the model name.

    Returns:
        Whether "gemini" is in the name.
    """
    return "gemini" in model
