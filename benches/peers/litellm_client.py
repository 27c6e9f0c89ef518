"""LiteLLM: `litellm.acompletion` (OpenAI-compatible route) with one task per request and a
semaphore."""

import asyncio
import os

import litellm
from _lines import arguments, read_requests, write_result


async def main() -> None:
    input_path, output_path, base_url, concurrency = arguments()
    requests = read_requests(input_path)
    api_key = os.environ["OPENAI_API_KEY"]
    semaphore = asyncio.Semaphore(concurrency)
    with open(output_path, "a") as output:

        async def one(request: dict) -> None:
            body = dict(request["body"])
            model = "openai/" + body.pop("model")
            async with semaphore:
                try:
                    response = await litellm.acompletion(
                        model=model, api_base=base_url, api_key=api_key, **body
                    )
                except Exception as e:  # noqa: BLE001 - written as an error line
                    write_result(output, request["custom_id"], error=e)
                    return
            write_result(output, request["custom_id"], response.model_dump())

        await asyncio.gather(*(one(request) for request in requests))


if __name__ == "__main__":
    litellm.suppress_debug_info = True
    asyncio.run(main())
