"""A synthetic OpenAI-style completions upstream with no model, so that what is measured through
the proxy is HTTP and the proxy itself, not inference.

It streams `max_tokens` one-token chunks, then usage (prompt_tokens = the prompt's length) and
[DONE], so a client's exact-length check passes. Two pacings:
- "request": each request on its own, tokens back to back or `token_gap_s` apart (the proxy's
  added latency, benchmarks/proxy_overhead.py);
- "step": like a decoding batch, one token to every running request per step, a step every
  `token_gap_s` (the proxy's capacity under load, benchmarks/proxy_capacity.py).

A non-streaming request (the proxy's prefill leg) gets one token and, when it asked for
do_remote_decode, kv_transfer_params naming this upstream, as a vLLM prefill instance answers;
the kv_transfer_params each request brought are kept, so a test can see what a decode leg got.

Shared by the two benchmarks and the proxy's fast tests (tests/serving/test_proxy.py); run as a
script it serves on loopback until terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from pathlib import Path

import uvloop
from aiohttp import web

from pdpipeline.launch.base import ServiceSpec

HOST = "127.0.0.1"
PACINGS = ("request", "step")


def event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _token(model: str, finish_reason: str | None) -> bytes:
    choice = {"index": 0, "text": "x", "logprobs": None, "finish_reason": finish_reason}
    payload = {"id": "cmpl-synthetic", "object": "text_completion", "model": model}
    return event(payload | {"choices": [choice]})


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class StreamingUpstream:
    """The synthetic upstream; `pacing` is "request" or "step" (see the module's docstring)."""

    DONE = b"data: [DONE]\n\n"

    def __init__(
        self,
        instance_token: str,
        token_gap_s: float = 0.0,
        pacing: str = "request",
        model: str = "synthetic",
        url: str = "",
        offers_kv: bool = True,
    ) -> None:
        if pacing not in PACINGS:
            raise ValueError(f"pacing {pacing!r} is not one of {', '.join(PACINGS)}")
        if pacing == "step" and token_gap_s <= 0:
            raise ValueError("step pacing needs a token gap above 0")
        self.instance_token = instance_token
        self.token_gap_s = token_gap_s
        self.pacing = pacing
        self.model = model
        self.url = url  # what its kv_transfer_params name as the remote host
        # False: a prefill answers without kv_transfer_params, as vLLM does with the connector
        # off or a request that stopped at its first token.
        self.offers_kv = offers_kv
        self.token = _token(model, None)
        self.last_token = _token(model, "length")
        self.kv_params_seen: list[dict | None] = []
        self.step = asyncio.Event()
        self.steps = 0
        self.late_s = 0.0  # how far behind schedule the steps came, summed

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/stats", self.stats)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/completions", self.completions)
        if self.pacing == "step":
            app.cleanup_ctx.append(self._clock)
        return app

    async def _clock(self, _app: web.Application):
        task = asyncio.create_task(self._tick())
        yield
        task.cancel()

    async def _tick(self) -> None:
        due = time.monotonic()
        while True:
            due += self.token_gap_s
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            now = time.monotonic()
            self.steps += 1
            self.late_s += now - due
            # Waking every waiter and re-arming at once: all running requests take this step.
            self.step.set()
            self.step.clear()
            # A step that came more than a gap late is not made up with a burst: the pace holds.
            due = max(due, now - self.token_gap_s)

    async def _pace(self) -> None:
        if self.pacing == "step":
            await self.step.wait()
        elif self.token_gap_s:
            await asyncio.sleep(self.token_gap_s)

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "instance": self.instance_token})

    async def stats(self, _request: web.Request) -> web.Response:
        return web.json_response({"steps": self.steps, "late_s": self.late_s})

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model}]})

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        prompt = body["prompt"]
        prompt_tokens = len(prompt) if isinstance(prompt, list) else len(prompt.split())
        kv_params = body.get("kv_transfer_params")
        self.kv_params_seen.append(kv_params)
        if not body.get("stream"):
            return web.json_response(self._answer(prompt_tokens, kv_params))
        completion_tokens = int(body["max_tokens"])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        # One write per token, as vLLM streams them.
        for i in range(completion_tokens):
            if i or self.pacing == "step":
                await self._pace()
            await response.write(self.last_token if i == completion_tokens - 1 else self.token)
        usage = _usage(prompt_tokens, completion_tokens)
        await response.write(event({"id": "cmpl-synthetic", "choices": [], "usage": usage}))
        await response.write(self.DONE)
        await response.write_eof()
        return response

    def _answer(self, prompt_tokens: int, kv_params: dict | None) -> dict:
        """One token at once; after a prefill for remote decode, where its KV would be."""
        answer = {
            "id": "cmpl-synthetic",
            "object": "text_completion",
            "model": self.model,
            "choices": [{"index": 0, "text": "x", "logprobs": None, "finish_reason": "length"}],
            "usage": _usage(prompt_tokens, 1),
        }
        if self.offers_kv and kv_params and kv_params.get("do_remote_decode"):
            answer["kv_transfer_params"] = {
                "do_remote_prefill": True,
                "do_remote_decode": False,
                "remote_engine_id": self.instance_token,
                "remote_block_ids": list(range(max(1, prompt_tokens // 16))),
                "remote_host": self.url,
                "remote_port": 0,
            }
        return answer


def free_port() -> int:
    """A loopback port nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def upstream_service(token: str, token_gap_ms: float, pacing: str, model: str) -> ServiceSpec:
    """This file run as a process of its own, so its CPU counts for neither client nor proxy."""
    port = free_port()
    argv = (sys.executable, str(Path(__file__).resolve()), "--port", str(port))
    argv += ("--instance-token", token, "--token-gap-ms", str(token_gap_ms))
    return ServiceSpec(
        name=f"{model}-upstream",
        argv=(*argv, "--pacing", pacing, "--model", model),
        host=HOST,
        ports=(port,),
        identity_token=token,
        start_timeout_s=30.0,
        stop_grace_s=5.0,
    )


async def serve(upstream: StreamingUpstream, port: int, backlog: int = 4096) -> None:
    """Run `upstream` on loopback until cancelled."""
    runner = web.AppRunner(upstream.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port, backlog=backlog).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--instance-token", required=True)
    parser.add_argument("--token-gap-ms", type=float, default=0.0)
    parser.add_argument("--pacing", choices=PACINGS, default="request")
    parser.add_argument("--model", default="synthetic")
    args = parser.parse_args()
    upstream = StreamingUpstream(
        args.instance_token, args.token_gap_ms / 1000, args.pacing, args.model
    )
    uvloop.install()
    asyncio.run(serve(upstream, args.port))


if __name__ == "__main__":
    main()
