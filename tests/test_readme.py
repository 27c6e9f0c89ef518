"""The README's quickstart runs as written."""

import re
from pathlib import Path


def test_readme_quickstart_runs() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    assert blocks, "the README has a python quickstart"
    namespace: dict = {"__name__": "readme_quickstart"}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    outputs = namespace["outputs"]
    assert outputs[0]["generations"] == ["echo: hi"] * 4
    assert namespace["llm"].runtime_parameters_names["generation_kwargs"] == {"temperature": True}
