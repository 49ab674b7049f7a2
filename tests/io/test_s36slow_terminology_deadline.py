"""A terminology server that answers ``$subsumes`` slowly, a few bytes at a time (each read
within httpx's timeout, which is per read), held the whole evaluation: the answer came when the
trickle ended, or the service's evaluation timeout (60 s; a CDS client has long given up) was
answered 504 instead of the code being reported unclassified. ``timeout_seconds`` is "per
request", and a timeout is "cannot tell" (``fhirtis.io._terminology``): now the whole request
is bounded. The server is an asyncio server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time

from fhirtis.io import TerminologyClient, TerminologyConfig

SNOMED = "http://snomed.info/sct"
ANSWER = json.dumps(
    {"resourceType": "Parameters", "parameter": [{"name": "outcome", "valueCode": "subsumes"}]}
).encode()


async def test_an_answer_that_trickles_in_is_cannot_tell_after_the_timeout() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            for _ in range(40):  # a byte every 0.1 s for 4 s
                writer.write(b"1\r\n \r\n")
                await writer.drain()
                await asyncio.sleep(0.1)
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(ANSWER), ANSWER))
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = TerminologyConfig(base_url=f"http://127.0.0.1:{port}/fhir", timeout_seconds=0.5)
    try:
        async with TerminologyClient(config) as client:
            started = time.monotonic()
            answer = await client.is_a(SNOMED, "128053003", "404684003")
            elapsed = time.monotonic() - started
    finally:
        server.close()
    assert answer is None  # cannot tell: the code is reported unclassified
    assert elapsed < 2  # not when the trickle ends (4 s)
    assert client.cache == {}  # a failure is not remembered
