"""Streaming OpenAI-API client: one request in, one timed record out."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field

import aiohttp

from pdpipeline.loadgen.workload import Api, RequestSpec
from pdpipeline.serving.protocol import (
    HANDOFF_TIMING,
    KV_BLOCKS_HEADER,
    PREFILL_TIMING,
    PROXY_TIMING,
    REQUEST_ID_HEADER,
    SERVED_BY_HEADER,
    TIMING_HEADER,
    server_timing,
)

PATHS: dict[Api, str] = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


@dataclass
class RequestRecord:
    """What one request did, as the client saw it. Times in seconds; `sent_at` is epoch.

    In an open loop `ttft_s` and `e2e_s` run from `scheduled_at`, the arrival the schedule
    planned, and `queue_s` is the wait from there to the send (for a free slot under
    `max_concurrency`): latency measured from the send alone would hide the queue a slow server
    builds (coordinated omission). In a closed loop both are None and times run from the send.
    """

    index: int
    request_id: str
    served_by: str = ""
    sent_at: float = 0.0
    ttft_s: float | None = None
    e2e_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    expected_prompt_tokens: int = 0
    expected_output_tokens: int = 0
    status: int | None = None
    error: str | None = None
    # From the proxy: its time from arrival to first byte; of a disaggregated handoff, the prefill
    # leg and prefill answer -> decode's first byte.
    proxy_s: float | None = None
    prefill_s: float | None = None
    handoff_s: float | None = None
    kv_blocks: int | None = None
    scheduled_at: float | None = None
    queue_s: float | None = None

    @property
    def ok(self) -> bool:
        """Succeeded with exactly the tokens asked for; anything else invalidates a run."""
        return (
            self.error is None
            and self.status == 200
            and self.prompt_tokens == self.expected_prompt_tokens
            and self.output_tokens == self.expected_output_tokens
        )

    @property
    def tpot_s(self) -> float | None:
        if self.ttft_s is None or self.e2e_s is None or not self.output_tokens:
            return None
        if self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)

    def row(self) -> dict:
        return asdict(self) | {"ok": self.ok, "tpot_s": self.tpot_s}


def request_body(api: Api, model: str, spec: RequestSpec) -> dict:
    """Greedy, exact-length streaming request: ignore_eos pins the output length."""
    body: dict = {
        "model": model,
        "max_tokens": spec.output_tokens,
        "ignore_eos": True,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if api == "chat":
        body["messages"] = [{"role": "user", "content": spec.prompt}]
    else:
        body["prompt"] = spec.prompt
    return body


class Client:
    """Sends requests to one OpenAI-compatible base URL over a pooled session."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api: Api = "completions",
        request_timeout_s: float | None = 600.0,
    ) -> None:
        self.url = base_url.rstrip("/") + PATHS[api]
        self.model = model
        self.api = api
        # A request that never finishes (e.g. a KV handoff whose other side is gone) ends here
        # as a failed request, which makes its run invalid, instead of hanging the campaign.
        self.request_timeout_s = request_timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=self.request_timeout_s, sock_connect=10),
        )
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._session is not None
        await self._session.close()

    async def send(self, spec: RequestSpec) -> RequestRecord:
        assert self._session is not None, "use Client as an async context manager"
        record = RequestRecord(
            index=spec.index,
            request_id=uuid.uuid4().hex,
            expected_prompt_tokens=spec.prompt_tokens,
            expected_output_tokens=spec.output_tokens,
        )
        body = json.dumps(request_body(self.api, self.model, spec))
        headers = {"Content-Type": "application/json", REQUEST_ID_HEADER: record.request_id}
        record.sent_at = time.time()
        start = time.perf_counter()
        try:
            async with self._session.post(self.url, data=body, headers=headers) as response:
                record.status = response.status
                record.served_by = response.headers.get(SERVED_BY_HEADER, "")
                timings = server_timing(response.headers.get(TIMING_HEADER, ""))
                record.proxy_s = timings.get(PROXY_TIMING)
                record.prefill_s = timings.get(PREFILL_TIMING)
                record.handoff_s = timings.get(HANDOFF_TIMING)
                if blocks := response.headers.get(KV_BLOCKS_HEADER):
                    record.kv_blocks = int(blocks)
                if response.status != 200:
                    record.error = f"HTTP {response.status}: {(await response.text())[:300]}"
                    return record
                await self._read_stream(response, record, start)
        except TimeoutError:
            record.error = f"no complete answer within {self.request_timeout_s:g} s"
        except aiohttp.ClientError as e:
            record.error = f"{type(e).__name__}: {e}"
        return record

    async def _read_stream(
        self, response: aiohttp.ClientResponse, record: RequestRecord, start: float
    ) -> None:
        last = None
        done = False
        async for line in response.content:
            if not line.startswith(b"data: "):
                continue
            data = line[6:].strip()
            if data == b"[DONE]":
                # Keep reading to the end of the chunked body, so the connection is reused and
                # the next request's TTFT holds no TCP handshake.
                done = True
                record.e2e_s = time.perf_counter() - start
                continue
            now = time.perf_counter()
            chunk = json.loads(data)
            if "error" in chunk:
                record.error = f"stream error: {chunk['error']}"
                return
            if any(_is_token(choice) for choice in chunk.get("choices", [])):
                if last is None:
                    record.ttft_s = now - start
                else:
                    record.itl_s.append(now - last)
                last = now
            if usage := chunk.get("usage"):
                record.prompt_tokens = usage.get("prompt_tokens")
                record.output_tokens = usage.get("completion_tokens")
        if not done:
            record.e2e_s = time.perf_counter() - start
            record.error = "stream ended without [DONE]"


def _is_token(choice: dict) -> bool:
    """A chunk that carries a generated token (vLLM streams one chunk per token).

    Chat streams open with a role-only delta that carries no token.
    """
    if "text" in choice:
        return True
    delta = choice.get("delta", {})
    return "content" in delta and "role" not in delta
