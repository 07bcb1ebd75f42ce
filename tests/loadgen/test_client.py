"""The load generator's client against a server that never finishes a request."""

from __future__ import annotations

import asyncio

from aiohttp import web

from pdpipeline.loadgen.client import Client
from pdpipeline.loadgen.stats import summarize
from pdpipeline.loadgen.workload import RequestSpec
from pdpipeline.serving.protocol import server_timing
from tests.support.local import free_port


async def test_a_request_that_never_finishes_fails_within_the_limit():
    # Test double for a stuck KV handoff (its real cause, a push decode whose prefill is gone,
    # takes minutes of vLLM to produce): headers and one token, then silence.
    released = asyncio.Event()

    async def stuck(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"choices": [{"text": "x"}]}\n\n')
        await released.wait()  # until the test is over
        return response

    app = web.Application()
    app.router.add_post("/v1/completions", stuck)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with Client(f"http://127.0.0.1:{port}", "tiny", request_timeout_s=1.0) as client:
            record = await asyncio.wait_for(client.send(RequestSpec(0, [1, 2, 3], 3, 4)), 10)
    finally:
        released.set()
        await runner.cleanup()
    assert record.error == "no complete answer within 1 s"
    assert not record.ok
    summary = summarize([record])
    assert not summary["valid"] and "no complete answer" in summary["first_error"]


def test_server_timing_header_gives_seconds_per_metric():
    header = 'prefill;dur=12.5, handoff;desc="kv";dur=3, cache;desc=hit, bad;dur=x'
    assert server_timing(header) == {"prefill": 0.0125, "handoff": 0.003}
    assert server_timing("") == {}
