"""`MixtureOfAgentsLLM`: distilabel 1.5.3's Mixture-of-Agents composition.

Proposer LLMs answer the user's query (over `rounds` rounds, each seeing the previous
round's answers); the aggregator LLM synthesizes the final answers from the last round's.
Each member runs its own requests through its own `_agenerate`: native members
(`distilabel_rs.OpenAILLM`) in Rust, Python `AsyncLLM`s through the fan-out engine with
their own concurrency, retry and error settings. The proposers of a round run concurrently.
"""

import asyncio
from typing import TYPE_CHECKING, Any, Awaitable, Dict, List, Optional, Tuple, Union, cast

from pydantic import Field

from distilabel_rs._interop import counterpart
from distilabel_rs.models.llms import _fanout
from distilabel_rs.models.llms.base import LLM, AsyncLLM

if TYPE_CHECKING:
    from distilabel_rs.mixins.runtime_parameters import RuntimeParametersNames
    from distilabel_rs.typing import FormattedInput, GenerateOutput, StandardInput

__all__ = ["MOA_SYSTEM_PROMPT", "MixtureOfAgentsLLM"]

# The system prompt of the Mixture-of-Agents paper, plus distilabel's instruction not to
# mention the previous responses.
MOA_SYSTEM_PROMPT = (
    "You have been provided with a set of responses from various open-source models to the"
    " latest user query. Your task is to synthesize these responses into a single, high-quality"
    " response. It is crucial to critically evaluate the information provided in these responses,"
    " recognizing that some of it may be biased or incorrect. Your response should not simply"
    " replicate the given answers but should offer a refined, accurate, and comprehensive"
    " reply to the instruction. Ensure your response is well-structured, coherent, and adheres"
    " to the highest standards of accuracy and reliability. Do not mention that you have used"
    " the responses from previous models."
    "\nResponses from models:"
)

# Members may be distilabel_rs LLMs or, when distilabel is installed, distilabel's own
# (distilabel_rs's derive from them then, so the annotation accepts both).
_MEMBER_LLM: Any = (counterpart("models.llms.base", "LLM") or (LLM,))[0]
_MEMBER_ASYNC_LLM: Any = (counterpart("models.llms.base", "AsyncLLM") or (AsyncLLM,))[0]
_ASYNC_LLM_CLASSES: Tuple[type, ...] = (AsyncLLM, _MEMBER_ASYNC_LLM)


class MixtureOfAgentsLLM(AsyncLLM):
    """`Mixture-of-Agents` implementation.

    An `LLM` that leverages the collective strengths of several `LLM`s, as described in the
    "Mixture-of-Agents Enhances Large Language Model Capabilities" paper: the proposer
    `LLM`s generate answers that the proposers of the next round use as auxiliary
    information, and finally the aggregator `LLM` synthesizes the last round's answers into
    the response.

    Attributes:
        aggregator_llm: The `LLM` that aggregates the outputs of the proposer `LLM`s.
        proposers_llms: The list of `LLM`s that propose outputs to be aggregated.
        rounds: The number of layers or rounds that the `proposers_llms` will generate
            outputs. Defaults to `1`.

    References:
        - [Mixture-of-Agents Enhances Large Language Model Capabilities](https://arxiv.org/abs/2406.04692)

    Examples:
        Generate text:

        ```python
        from distilabel_rs.models.llms import MixtureOfAgentsLLM, OpenAILLM

        llm = MixtureOfAgentsLLM(
            aggregator_llm=OpenAILLM(model="gpt-4o"),
            proposers_llms=[OpenAILLM(model="gpt-4o-mini"), OpenAILLM(model="o3-mini")],
            rounds=2,
        )
        llm.load()
        output = llm.generate_outputs(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    aggregator_llm: _MEMBER_LLM
    proposers_llms: List[_MEMBER_ASYNC_LLM] = Field(default_factory=list)
    rounds: int = 1

    @property
    def runtime_parameters_names(self) -> "RuntimeParametersNames":
        """Returns the runtime parameters of the `LLM`, which are a combination of the
        `RuntimeParameter`s of the `LLM`, the `aggregator_llm` and the `proposers_llms`.

        Returns:
            The runtime parameters of the `LLM`.
        """
        names = super().runtime_parameters_names
        del names["generation_kwargs"]
        return names

    def load(self) -> None:
        """Loads all the `LLM`s in the `MixtureOfAgents`."""
        super().load()
        for llm in self.proposers_llms:
            self._logger.debug(f"Loading proposer LLM in MoA: {llm}")
            llm.load()
        self._logger.debug(f"Loading aggregator LLM in MoA: {self.aggregator_llm}")
        self.aggregator_llm.load()

    @property
    def model_name(self) -> str:
        """Returns the aggregated model name."""
        proposers = "-".join(llm.model_name for llm in self.proposers_llms)
        return f"moa-{self.aggregator_llm.model_name}-{proposers}"

    def get_generation_kwargs(self) -> Dict[str, Any]:
        """Returns the generation kwargs of the `MixtureOfAgents` as a dictionary.

        Returns:
            The generation kwargs of the `MixtureOfAgents`.
        """
        return {
            "aggregator_llm": self.aggregator_llm.get_generation_kwargs(),
            "proposers_llms": [llm.get_generation_kwargs() for llm in self.proposers_llms],
        }

    # Abstract in `AsyncLLM`: the members' `_agenerate` do the work.
    async def agenerate(  # type: ignore[override]
        self, input: "FormattedInput", num_generations: int = 1, **kwargs: Any
    ) -> List[Union[str, None]]:
        raise NotImplementedError("`agenerate` method is not implemented for `MixtureOfAgents`")

    def _build_moa_system_prompt(self, prev_outputs: List[Optional[str]]) -> str:
        """Builds the Mixture-of-Agents system prompt.

        Args:
            prev_outputs: The list of previous outputs to use as references.

        Returns:
            The Mixture-of-Agents system prompt.
        """
        prompt = MOA_SYSTEM_PROMPT
        for i, prev_output in enumerate(prev_outputs):
            if prev_output is not None:
                prompt += f"\n{i + 1}. {prev_output}"
        return prompt

    def _inject_moa_system_prompt(
        self, input: "StandardInput", prev_outputs: List[Optional[str]]
    ) -> "StandardInput":
        """The conversation with the Mixture-of-Agents system prompt before its own system
        prompt (or as a new first message). The given conversation is left unchanged.

        Args:
            input: The input to inject the system prompt into.
            prev_outputs: The list of previous outputs to use as references.

        Returns:
            The input with the Mixture-of-Agents system prompt injected.
        """
        if len(prev_outputs) == 0:
            return input
        moa_system_prompt = self._build_moa_system_prompt(prev_outputs)
        conversation = list(input)
        for index, message in enumerate(conversation):
            if message["role"] == "system":
                conversation[index] = {  # type: ignore[call-overload]
                    **message,
                    "content": f"{moa_system_prompt}\n\n{message['content']}",
                }
                return conversation
        return [{"role": "system", "content": moa_system_prompt}, *conversation]  # type: ignore[list-item]

    def _with_references(
        self, inputs: List["FormattedInput"], prev_outputs: List[List[Optional[str]]]
    ) -> List["FormattedInput"]:
        """Each input with the previous round's answers to it (none in the first round)."""
        return [
            self._inject_moa_system_prompt(
                cast("StandardInput", input), prev_outputs[i] if i < len(prev_outputs) else []
            )
            for i, input in enumerate(inputs)
        ]

    async def _agenerate(
        self,
        inputs: List["FormattedInput"],
        num_generations: int = 1,
        **kwargs: Any,
    ) -> List["GenerateOutput"]:
        """Runs the proposers round by round, then the aggregator.

        Args:
            inputs: the list of inputs to generate responses for.
            num_generations: the number of generations to generate per input.
            **kwargs: `aggregator_llm` (the aggregator's generation kwargs) and
                `proposers_llms` (one dict of generation kwargs per proposer).

        Returns:
            A list containing the generations for each input.
        """
        aggregator_llm_kwargs: Dict[str, Any] = kwargs.get("aggregator_llm", {})
        proposers_llms_kwargs: List[Dict[str, Any]] = kwargs.get(
            "proposers_llms", [{}] * len(self.proposers_llms)
        )

        # The answers of the previous round to each input, in proposer order.
        prev_outputs: List[List[Optional[str]]] = []
        for round in range(self.rounds):
            self._logger.debug(f"Generating round {round + 1}/{self.rounds} in MoA")
            round_inputs = self._with_references(inputs, prev_outputs)
            outputs = await _all_or_nothing(
                [
                    llm._agenerate(inputs=round_inputs, num_generations=1, **generation_kwargs)
                    for llm, generation_kwargs in zip(
                        self.proposers_llms, proposers_llms_kwargs, strict=False
                    )
                ]
            )
            prev_outputs = [
                [generation for output in per_proposer for generation in output["generations"]]
                for per_proposer in zip(*outputs, strict=False)
            ]

        self._logger.debug("Aggregating outputs in MoA")
        aggregator_inputs = self._with_references(inputs, prev_outputs)
        if isinstance(self.aggregator_llm, _ASYNC_LLM_CLASSES):
            return await self.aggregator_llm._agenerate(  # type: ignore[attr-defined]
                inputs=aggregator_inputs, num_generations=num_generations, **aggregator_llm_kwargs
            )
        return self.aggregator_llm.generate(
            inputs=aggregator_inputs, num_generations=num_generations, **aggregator_llm_kwargs
        )


async def _all_or_nothing(calls: List[Awaitable[Any]]) -> List[Any]:
    """The results of `calls`, run concurrently; when one fails (or the caller is
    cancelled), the others are cancelled rather than left running, and the error raised."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    if tasks:
        await _fanout._run_workers(tasks)
    return [task.result() for task in tasks]
