"""Quickstart: a distilabel `AsyncLLM` subclass ported by changing its imports.

Runs without any API key: the "provider" below answers locally. It shows what stays the same
(fields, runtime parameters, dump) and the fan-out-and-group path, grouped in the Rust core.

    make demo
"""

import asyncio
import time
import warnings
from typing import Any, Dict, Union

# pydantic >= 2.12 warns about distilabel's `Optional[RuntimeParameter[...]]` fields (in
# distilabel itself too); harmless, silenced to keep the demo readable.
warnings.filterwarnings("ignore", message=".*'default' attribute with value None.*")

# Before: from distilabel.models.llms.base import AsyncLLM
from distilabel_rs.models.llms.base import AsyncLLM  # noqa: E402

# Before: from distilabel.typing import FormattedInput, GenerateOutput
from distilabel_rs.typing import FormattedInput, GenerateOutput  # noqa: E402


class EchoLLM(AsyncLLM):
    """A provider that returns one generation per request (like Anthropic or Ollama)."""

    model: str = "echo-1"

    def load(self) -> None:
        super().load()
        # One generation per request: `generate` fans out input x generation, then groups.
        self._num_generations_param_supported = False

    @property
    def model_name(self) -> str:
        return self.model

    async def agenerate(self, input: FormattedInput, temperature: float = 1.0) -> GenerateOutput:
        """Echoes the last user message.

        Args:
            temperature: ignored by this provider.
        """
        await asyncio.sleep(0)  # a real provider awaits its HTTP call here
        text: Union[str, Any] = input if isinstance(input, str) else input[-1]["content"]
        return {
            "generations": [f"echo: {text}"],
            "statistics": {"input_tokens": [len(text.split())], "output_tokens": [2]},
        }


def main() -> None:
    llm = EchoLLM(generation_kwargs={"temperature": 0.7})
    llm.load()

    inputs = [[{"role": "user", "content": f"question {i}"}] for i in range(20_000)]
    start = time.perf_counter()
    outputs = llm.generate_outputs(inputs=inputs, num_generations=4, **llm.get_generation_kwargs())
    elapsed = time.perf_counter() - start

    first: Dict[str, Any] = dict(outputs[0])
    print(f"{len(inputs):,} inputs x 4 generations -> {len(outputs):,} outputs in {elapsed:.2f} s")
    print("first output:", first)
    print("runtime parameters:", llm.runtime_parameters_names)
    print("dump:", llm.dump())
    assert len(outputs) == len(inputs)
    assert all(len(o["generations"]) == 4 for o in outputs)


if __name__ == "__main__":
    main()
