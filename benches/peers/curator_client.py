"""Curator (bespokelabs-curator): an `LLM` over the requests' messages, the OpenAI backend at
the given base URL, `max_concurrent_requests` for the concurrency and rate limits set out of
the way. Curator writes its own output: each response appended to `responses_*.jsonl` in the
working directory as it lands, then an Arrow dataset of the parsed rows."""

import json
import os
import sys

from bespokelabs import curator


class Chat(curator.LLM):
    """The request's messages as the prompt; the custom id and the answer as the row."""

    def prompt(self, row: dict) -> list:
        return row["messages"]

    def parse(self, row: dict, response: str) -> dict:
        return {"custom_id": row["custom_id"], "response": response}


def main() -> None:
    input_path, working_dir, base_url, concurrency = sys.argv[1:5]
    with open(input_path) as lines:
        requests = [json.loads(line) for line in lines if line.strip()]
    rows = [
        {"custom_id": request["custom_id"], "messages": request["body"]["messages"]}
        for request in requests
    ]
    llm = Chat(
        model_name=requests[0]["body"]["model"],
        backend="openai",
        backend_params={
            "base_url": base_url,
            "api_key": os.environ["OPENAI_API_KEY"],
            "max_concurrent_requests": int(concurrency),
            "max_requests_per_minute": 1_000_000_000,
            "max_tokens_per_minute": 1_000_000_000_000,
        },
    )
    result = llm(rows, working_dir=working_dir)
    assert len(result.dataset) == len(rows), (len(result.dataset), len(rows))


if __name__ == "__main__":
    main()
