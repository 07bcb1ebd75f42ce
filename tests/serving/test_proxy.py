"""The proxy against benchmarks/upstream.py's synthetic streaming upstream, all in this process:
fast checks of routing, the handoff's protocol, timing headers and errors. The same behaviour
on real vLLM servers is tested in test_serving_stack.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
from aiohttp import web

from benchmarks.upstream import StreamingUpstream
from pdpipeline.loadgen.client import Client
from pdpipeline.loadgen.metrics import parse
from pdpipeline.loadgen.workload import RequestSpec
from pdpipeline.serving.protocol import KV_PARAMS_MISSING_TOTAL
from pdpipeline.serving.proxy import PREFILL_KV_PARAMS, KvPeer, Proxy
from tests.support.local import free_port

MODEL = "synthetic"


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """`app` on a free loopback port for the block; yields its base URL."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def upstreams(count: int, **kwargs) -> AsyncIterator[list[tuple[str, StreamingUpstream]]]:
    async with AsyncExitStack() as stack:
        started = []
        for i in range(count):
            upstream = StreamingUpstream(f"up{i}", model=MODEL, **kwargs)
            url = await stack.enter_async_context(serving(upstream.app()))
            upstream.url = url
            started.append((url, upstream))
        yield started


def spec(index: int, prompt_tokens: int = 8, output_tokens: int = 4) -> RequestSpec:
    return RequestSpec(index, list(range(100, 100 + prompt_tokens)), prompt_tokens, output_tokens)


async def send_all(url: str, specs: list[RequestSpec]):
    async with Client(url, MODEL, request_timeout_s=30) as client:
        return [await client.send(s) for s in specs]


async def test_round_robin_spreads_requests_and_streams_exact_tokens():
    async with upstreams(2) as ups, serving(Proxy(backends=[u for u, _ in ups]).app()) as proxy:
        records = await send_all(proxy, [spec(i) for i in range(6)])
    assert all(r.ok for r in records), [r.error for r in records]
    assert [r.served_by for r in records] == [ups[i % 2][0] for i in range(6)]
    assert [len(up.kv_params_seen) for _, up in ups] == [3, 3]
    assert all(len(r.itl_s) == 3 and r.ttft_s is not None for r in records)
    # The proxy's own time to first byte, from its Server-Timing: no handoff in a forward.
    assert all(r.proxy_s is not None and r.prefill_s is None for r in records)


async def test_sequential_handoff_sends_the_prefills_kv_params_to_decode():
    async with (
        upstreams(1) as prefill,
        upstreams(1) as decode,
        serving(Proxy(prefill=[prefill[0][0]], decode=[decode[0][0]]).app()) as proxy,
    ):
        records = await send_all(proxy, [spec(i, prompt_tokens=64) for i in range(3)])
        metrics = await _metrics(proxy)
    assert all(r.ok for r in records), [r.error for r in records]
    assert {r.served_by for r in records} == {f"prefill={prefill[0][0]};decode={decode[0][0]}"}
    # The prefill leg asks for remote decode; the decode leg carries what the prefill returned.
    assert prefill[0][1].kv_params_seen == [PREFILL_KV_PARAMS] * 3
    sent = decode[0][1].kv_params_seen
    assert [p["remote_engine_id"] for p in sent] == ["up0"] * 3
    assert all(p["do_remote_prefill"] and len(p["remote_block_ids"]) == 4 for p in sent)
    assert all(r.kv_blocks == 4 for r in records)
    assert all(r.prefill_s is not None and r.handoff_s is not None for r in records)
    assert all(r.proxy_s >= r.prefill_s for r in records)
    assert metrics.get(KV_PARAMS_MISSING_TOTAL, 0.0) == 0.0


async def test_concurrent_handoff_names_the_prefill_peer_to_decode():
    async with upstreams(1) as prefill, upstreams(1) as decode:
        peer = KvPeer.parse("engine-p0@127.0.0.1:5600")
        proxy_app = Proxy(
            prefill=[prefill[0][0]],
            decode=[decode[0][0]],
            handoff="concurrent",
            prefill_peers=[peer],
        ).app()
        async with serving(proxy_app) as proxy:
            records = await send_all(proxy, [spec(i) for i in range(2)])
    assert all(r.ok for r in records), [r.error for r in records]
    assert decode[0][1].kv_params_seen == [peer.decode_params()] * 2
    assert prefill[0][1].kv_params_seen == [PREFILL_KV_PARAMS] * 2


async def test_a_prefill_without_kv_params_is_counted_and_decode_recomputes():
    # A prefill that answers without kv_transfer_params: the request succeeds, the metric tells.
    async with upstreams(1, offers_kv=False) as prefill, upstreams(1) as decode:
        proxy_app = Proxy(prefill=[prefill[0][0]], decode=[decode[0][0]]).app()
        async with serving(proxy_app) as proxy:
            records = await send_all(proxy, [spec(0)])
            metrics = await _metrics(proxy)
    assert records[0].ok
    assert decode[0][1].kv_params_seen == [None]
    assert metrics[KV_PARAMS_MISSING_TOTAL] == 1.0


async def test_an_unreachable_backend_answers_502_naming_it():
    dead = f"http://127.0.0.1:{free_port()}"
    async with serving(Proxy(backends=[dead]).app()) as proxy:
        (record,) = await send_all(proxy, [spec(0)])
    assert record.status == 502 and not record.ok
    assert f"backend {dead} unreachable" in record.error


async def test_a_leg_past_its_limit_answers_504_naming_the_leg():
    async with upstreams(1, token_gap_s=1.0) as slow:
        proxy_app = Proxy(backends=[slow[0][0]], leg_timeout_s=0.3).app()
        async with serving(proxy_app) as proxy:
            (record,) = await send_all(proxy, [spec(0, output_tokens=3)])
    assert not record.ok
    assert "forward leg at" in record.error and "did not finish within 0.3 s" in record.error


async def test_a_disaggregated_request_that_is_not_json_is_refused_with_400():
    async with upstreams(1) as prefill, upstreams(1) as decode:
        proxy_app = Proxy(prefill=[prefill[0][0]], decode=[decode[0][0]]).app()
        async with serving(proxy_app) as proxy, aiohttp.ClientSession() as session:
            async with session.post(proxy + "/v1/completions", data=b"not json") as response:
                status, answer = response.status, json.loads(await response.text())
    assert status == 400
    assert answer["error"]["message"] == "request body is not JSON"
    assert prefill[0][1].kv_params_seen == decode[0][1].kv_params_seen == []


async def _metrics(proxy: str) -> dict[str, float]:
    """The proxy's samples by name (its metrics have no labels where these tests read them)."""
    async with aiohttp.ClientSession() as session, session.get(proxy + "/metrics") as response:
        samples = parse(await response.text())
    return {name: value for (name, _labels), value in samples.items()}
