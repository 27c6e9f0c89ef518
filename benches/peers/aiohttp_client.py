"""A plain asyncio + aiohttp script: one task per request, a semaphore for the concurrency."""

import asyncio
import os

import aiohttp
from _lines import arguments, read_requests, write_result


async def main() -> None:
    input_path, output_path, base_url, concurrency = arguments()
    requests = read_requests(input_path)
    url = base_url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}"}
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:
        with open(output_path, "a") as output:

            async def one(request: dict) -> None:
                async with semaphore:
                    try:
                        async with session.post(url, json=request["body"]) as response:
                            response.raise_for_status()
                            body = await response.json()
                    except Exception as e:  # noqa: BLE001 - written as an error line
                        write_result(output, request["custom_id"], error=e)
                        return
                write_result(output, request["custom_id"], body)

            await asyncio.gather(*(one(request) for request in requests))


if __name__ == "__main__":
    asyncio.run(main())
