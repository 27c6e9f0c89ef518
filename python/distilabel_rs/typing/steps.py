"""Types of step outputs."""

from typing import Any, Dict, Iterator, List, Tuple, Union

StepOutput = Iterator[List[Dict[str, Any]]]
GeneratorStepOutput = Iterator[Tuple[List[Dict[str, Any]], bool]]
StepColumns = Union[List[str], Dict[str, bool]]
