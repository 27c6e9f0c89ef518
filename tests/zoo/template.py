# ruff: noqa: F821
"""User code written against distilabel: run once per library by `tests.zoo.build`.

`LIB` is "distilabel" or "distilabel_rs"; everything else is what a user would write.
"""

import asyncio
import enum
import importlib
import os
from typing import Any, Dict, List, Optional

from pydantic import Field, PrivateAttr, SecretStr

_base = importlib.import_module(f"{LIB}.models.llms.base")
_mixins = importlib.import_module(f"{LIB}.mixins.runtime_parameters")
_exceptions = importlib.import_module(f"{LIB}.exceptions")

LLM = _base.LLM
AsyncLLM = _base.AsyncLLM
RuntimeParameter = _mixins.RuntimeParameter
RuntimeParametersMixin = _mixins.RuntimeParametersMixin
NotFinished = _exceptions.DistilabelOfflineBatchGenerationNotFinishedException


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class DummyLLM(LLM):
    structured_output: Any = None

    def load(self) -> None:
        super().load()

    @property
    def model_name(self) -> str:
        return "test"

    def generate(self, inputs, num_generations: int = 1):
        return [
            {
                "generations": [f"output {i}" for i in range(num_generations)],
                "statistics": {
                    "input_tokens": [12] * num_generations,
                    "output_tokens": [12] * num_generations,
                },
            }
            for _ in inputs
        ]


class KwargsLLM(LLM):
    """An LLM whose `generate` takes arbitrary kwargs."""

    @property
    def model_name(self) -> str:
        return "kwargs"

    def generate(self, inputs, num_generations: int = 1, *, seed: int, **kwargs: Any):
        """Generates.

        Args:
            seed: the random seed.
            kwargs: anything else.
        """
        return [{"generations": [str(seed)], "statistics": {}} for _ in inputs]


class DummyAsyncLLM(AsyncLLM):
    structured_output: Any = None
    n_generations_supported: bool = True
    _num_generations_param_supported: bool = PrivateAttr(default=True)

    def load(self) -> None:
        super().load()
        self._num_generations_param_supported = self.n_generations_supported

    @property
    def model_name(self) -> str:
        return "test-async"

    async def agenerate(
        self,
        input,
        num_generations: int = 1,
        temperature: float = 1.0,
        max_new_tokens: int = 128,
        stop: Optional[List[str]] = None,
    ):
        """Generates for one input.

        Args:
            input: the input.
            num_generations: how many.
            temperature: the sampling temperature, with a description
                that wraps onto a second line.
            max_new_tokens: the maximum number of new tokens.
            stop: the stop sequences.

        Returns:
            The output.
        """
        await asyncio.sleep(0)
        text = input if isinstance(input, str) else input[-1]["content"]
        return {
            "generations": [f"{text}-{i}" for i in range(num_generations)],
            "statistics": {
                "input_tokens": [len(text)] * num_generations,
                "output_tokens": [i + 1 for i in range(num_generations)],
            },
            "logprobs": [[[{"token": text, "logprob": -1.0}]] for _ in range(num_generations)],
        }


class TwoLineSummaryAsyncLLM(AsyncLLM):
    """An LLM whose docstring shape triggers distilabel's `Args` quirk."""

    @property
    def model_name(self) -> str:
        return "two-line"

    async def agenerate(self, input, num_generations: int = 1, top_p: float = 1.0):
        """Generates a response for the input, with a summary
        that runs onto a second line.

        Args:
            top_p: nucleus sampling.
        """
        return {"generations": ["x"] * num_generations, "statistics": {}}


class FailingAsyncLLM(AsyncLLM):
    fail_on: str = "boom"

    @property
    def model_name(self) -> str:
        return "failing"

    async def agenerate(self, input, num_generations: int = 1):
        await asyncio.sleep(0)
        if input == self.fail_on:
            raise RuntimeError(f"cannot generate for {input!r}")
        return {"generations": [input] * num_generations, "statistics": {}}


class Options(RuntimeParametersMixin):
    """A nested model with its own runtime parameters."""

    depth: RuntimeParameter[int] = Field(default=None, description="How deep.")
    secret: Optional[RuntimeParameter[SecretStr]] = Field(default=None, description="A secret.")


class RichLLM(LLM):
    model: str = "rich-model"
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv("ZOO_API_KEY"), description="The API key."
    )
    timeout: RuntimeParameter[int] = Field(default=120, description="Request timeout.")
    required_param: RuntimeParameter[str] = Field(default=None, description="Required.")
    undocumented: RuntimeParameter[float] = 0.5
    options: Options = Field(default_factory=Options)
    option_list: List[Options] = Field(default_factory=lambda: [Options(), Options()])
    palette: Any = Color
    tags: Dict[str, str] = Field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return self.model

    def generate(self, inputs, num_generations: int = 1, top_k: int = 50):
        """Generates.

        Args:
            top_k: how many candidates.
        """
        return [{"generations": ["rich"] * num_generations, "statistics": {}} for _ in inputs]


class BatchLLM(LLM):
    """Offline batch: the jobs finish after `rounds` calls."""

    rounds: int = 2
    _calls: int = PrivateAttr(default=0)

    @property
    def model_name(self) -> str:
        return "batch"

    def generate(self, inputs, num_generations: int = 1):
        raise AssertionError("offline batch LLMs do not call generate here")

    def offline_batch_generate(self, inputs=None, num_generations: int = 1, **kwargs):
        self._calls += 1
        if self.jobs_ids is None:
            self.jobs_ids = ("job-1", "job-2")
            raise NotFinished(jobs_ids=self.jobs_ids)
        if self._calls <= self.rounds:
            raise NotFinished(jobs_ids=self.jobs_ids)
        return [{"generations": [f"batch {x}"], "statistics": {}} for x in inputs]
