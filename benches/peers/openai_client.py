"""The openai SDK: `AsyncOpenAI` with one task per request and a semaphore; with a fifth
argument `aiohttp`, on the SDK's aiohttp transport (`DefaultAioHttpClient`, the
`openai[aiohttp]` extra) instead of its default httpx one."""

import asyncio
import os
import sys

from _lines import arguments, read_requests, write_result
from openai import AsyncOpenAI, DefaultAioHttpClient


async def main() -> None:
    input_path, output_path, base_url, concurrency = arguments()
    requests = read_requests(input_path)
    transport = DefaultAioHttpClient() if sys.argv[5:] == ["aiohttp"] else None
    client = AsyncOpenAI(
        base_url=base_url, api_key=os.environ["OPENAI_API_KEY"], http_client=transport
    )
    semaphore = asyncio.Semaphore(concurrency)
    with open(output_path, "a") as output:

        async def one(request: dict) -> None:
            async with semaphore:
                try:
                    completion = await client.chat.completions.create(**request["body"])
                except Exception as e:  # noqa: BLE001 - written as an error line
                    write_result(output, request["custom_id"], error=e)
                    return
            write_result(output, request["custom_id"], completion.model_dump())

        await asyncio.gather(*(one(request) for request in requests))
    await client.close()


if __name__ == "__main__":
    asyncio.run(main())
