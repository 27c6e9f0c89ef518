"""A user's `AsyncLLM` built the way distilabel's own are: an SDK client (the openai SDK's
`AsyncOpenAI`: an httpx client with locks and an SSL context) created in `load()` and kept
in `_aclient`. Importable by pipeline workers."""

from typing import Any

from pydantic import PrivateAttr

from distilabel_rs.models.llms.base import AsyncLLM


class SDKClientLLM(AsyncLLM):
    """Chat completions through the openai SDK."""

    base_url: str
    model: str = "sdk-model"

    _aclient: Any = PrivateAttr(None)

    def load(self) -> None:
        super().load()
        from openai import AsyncOpenAI

        self._aclient = AsyncOpenAI(base_url=self.base_url, api_key="sk-sdk", max_retries=0)

    @property
    def model_name(self) -> str:
        return self.model

    async def agenerate(self, input: Any, num_generations: int = 1) -> Any:  # noqa: A002
        """Generates for one input.

        Args:
            input: the conversation.
            num_generations: how many generations.
        """
        answer = await self._aclient.chat.completions.create(
            model=self.model, messages=input, n=num_generations
        )
        return {
            "generations": [choice.message.content for choice in answer.choices],
            "statistics": {"input_tokens": [0], "output_tokens": [0]},
        }
