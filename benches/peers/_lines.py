"""What the peer clients share: reading the input, and one appended, flushed JSON line per
result in the shape `distilabel-rs generate` writes (the OpenAI Batch output format)."""

import json
import sys
from typing import Any, Dict, List, Optional, TextIO, Tuple


def arguments() -> Tuple[str, str, str, int]:
    """`INPUT OUTPUT BASE_URL CONCURRENCY` from the command line."""
    input_path, output_path, base_url, concurrency = sys.argv[1:5]
    return input_path, output_path, base_url, int(concurrency)


def read_requests(path: str) -> List[Dict[str, Any]]:
    """The Batch API requests of the JSONL file (`custom_id`, `method`, `url`, `body`)."""
    with open(path) as lines:
        return [json.loads(line) for line in lines if line.strip()]


def write_result(
    output: TextIO,
    custom_id: str,
    body: Optional[Dict[str, Any]] = None,
    error: Optional[BaseException] = None,
) -> None:
    """Appends one result line and flushes it, as the command does for each result."""
    if error is None:
        line = {
            "id": (body or {}).get("id"),
            "custom_id": custom_id,
            "response": {"status_code": 200, "body": body},
            "error": None,
        }
    else:
        line = {
            "id": None,
            "custom_id": custom_id,
            "response": None,
            "error": {"code": type(error).__name__, "message": str(error)},
        }
    output.write(json.dumps(line) + "\n")
    output.flush()
