"""The benchmark's HTTP front: round-robin over replicas, or the prefill->decode NIXL handoff.

Every arm is measured through this proxy, so the extra hop is the same for all of them.

Sequential handoff (vLLM's NixlConnector, pull mode; also works for NixlPushConnector):
1. prefill leg: the client's body with max_tokens=1, stream=false and
   kv_transfer_params.do_remote_decode=true, sent to a prefill instance;
2. decode leg: the original body plus the kv_transfer_params the prefill returned, sent to a
   decode instance, which pulls the KV blocks over NIXL and streams tokens to the client.
When the prefill returns no kv_transfer_params (it stopped on EOS at the first token, or the
connector is off), the decode instance recomputes the prompt itself: the request still succeeds,
and `pdpipeline_proxy_kv_params_missing_total` counts it so a run can tell KV was not moved.

Concurrent handoff (NixlPushConnector only): both legs leave at once. The decode leg names the
prefill instance's NIXL identity (engine id pinned at launch, side-channel address), so decode
allocates its blocks and registers them with the prefill while the prefill computes; the prefill
then writes the KV straight into them. vLLM pairs the two legs by request id: both carry the
same X-Request-Id. A prefill leg that fails ends the decode leg (its connection is closed, which
aborts it in vLLM) and its error is the answer.

Every leg has a time limit: a leg stuck waiting for KV that never comes ends with a 504 naming
the instance, never a hang.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from yarl import URL

from pdpipeline.serving.protocol import (
    HANDOFF_TIMING,
    KV_BLOCKS_HEADER,
    KV_PARAMS_MISSING_METRIC,
    LEG_SECONDS_METRIC,
    LEG_TIMEOUTS_METRIC,
    PREFILL_TIMING,
    PROXY_TIMING,
    REQUEST_ID_HEADER,
    REQUESTS_METRIC,
    SERVED_BY_HEADER,
    TIMING_HEADER,
    UPSTREAM_ERRORS_METRIC,
    server_timing_header,
)

HANDOFFS = ("sequential", "concurrent")

PREFILL_KV_PARAMS = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}

# Headers that describe one hop's connection, never forwarded.
HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive", "host"}
# An idle upstream connection is dropped before vLLM's server closes it (5 s,
# VLLM_HTTP_TIMEOUT_KEEP_ALIVE): one reused just as the server closes it fails the request with
# a reset or "Can not write request body". A burst leaves hundreds idle, and the next run's first
# requests pick them up about 5 s later.
UPSTREAM_KEEPALIVE_S = 3.0


# Where a request's arrival time is kept on the aiohttp request, for its Server-Timing.
ARRIVED = web.RequestKey("arrived", float)


class UpstreamError(Exception):
    """A backend answered with an error status or could not be reached."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type


@dataclass(frozen=True)
class KvPeer:
    """A prefill instance's NIXL identity, which a push-mode decode registers its blocks with."""

    engine_id: str
    host: str
    port: int
    tp_size: int = 1

    @classmethod
    def parse(cls, text: str, tp_size: int = 1) -> KvPeer:
        """From ENGINE_ID@HOST:PORT."""
        engine_id, _, address = text.rpartition("@")
        host, _, port = address.rpartition(":")
        if not (engine_id and host and port.isdigit()):
            raise ValueError(f"prefill peer {text!r} is not ENGINE_ID@HOST:PORT")
        return cls(engine_id, host, int(port), tp_size)

    def decode_params(self) -> dict:
        """The decode leg's kv_transfer_params, known before the prefill has run.

        The prefill's own request id is unknown yet (vLLM adds a random suffix); it only keys
        decode->prefill heartbeats that extend the prefill's block lease, which a decode
        registered before the prefill finishes does not need."""
        return {
            "do_remote_prefill": True,
            "do_remote_decode": False,
            "remote_engine_id": self.engine_id,
            "remote_host": self.host,
            "remote_port": self.port,
            "tp_size": self.tp_size,
            "remote_block_ids": None,
            "remote_request_id": None,
        }


@dataclass(frozen=True)
class PrefillAnswer:
    kv_params: dict | None
    seconds: float
    finished_at: float  # perf_counter

    @property
    def kv_blocks(self) -> int | None:
        """Blocks the prefill holds for decode (block ids come flat or one list per group)."""
        ids = (self.kv_params or {}).get("remote_block_ids")
        if ids is None:
            return None
        return sum(len(group) if isinstance(group, list | tuple) else 1 for group in ids)


@dataclass
class Backend:
    url: str
    session: aiohttp.ClientSession
    _endpoints: dict[str, URL] = field(default_factory=dict)

    def endpoint(self, path: str) -> URL:
        """The backend's URL for `path`, parsed once: the hot path skips URL parsing."""
        if path not in self._endpoints:
            self._endpoints[path] = URL(self.url + path)
        return self._endpoints[path]


class Pool:
    """Round-robin over a fixed set of backends."""

    def __init__(self, backends: list[Backend]) -> None:
        self.backends = backends
        self._cycle = itertools.cycle(backends)

    def next(self) -> Backend:
        return next(self._cycle)


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            REQUESTS_METRIC,
            "Requests sent to each backend, by leg",
            ["backend", "leg"],
            registry=self.registry,
        )
        self.leg_timeouts = Counter(
            LEG_TIMEOUTS_METRIC,
            "Legs that did not finish within the proxy's time limit",
            ["backend", "leg"],
            registry=self.registry,
        )
        self.leg_seconds = Histogram(
            LEG_SECONDS_METRIC,
            "Latency of each leg as seen by the proxy (decode/forward: to the last byte)",
            ["leg"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.kv_params_missing = Counter(
            KV_PARAMS_MISSING_METRIC,
            "Prefill responses without kv_transfer_params (decode recomputed the prompt)",
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            UPSTREAM_ERRORS_METRIC,
            "Error answers or connection failures from backends",
            ["backend", "status"],
            registry=self.registry,
        )


class Proxy:
    """Round-robin (`backends`) or disaggregated (`prefill` + `decode`) front for vLLM."""

    def __init__(
        self,
        backends: Sequence[str] = (),
        prefill: Sequence[str] = (),
        decode: Sequence[str] = (),
        instance_token: str = "",
        connect_timeout_s: float = 3.0,
        handoff: str = "sequential",
        prefill_peers: Sequence[KvPeer] = (),
        leg_timeout_s: float | None = 300.0,
    ) -> None:
        if bool(backends) == bool(prefill or decode) or bool(prefill) != bool(decode):
            raise ValueError("give either backends, or both prefill and decode backends")
        if handoff not in HANDOFFS:
            raise ValueError(f"handoff {handoff!r} is not one of {', '.join(HANDOFFS)}")
        if handoff == "concurrent" and len(prefill_peers) != len(prefill):
            raise ValueError("the concurrent handoff needs one prefill peer per prefill backend")
        self._urls = {"forward": list(backends), "prefill": list(prefill), "decode": list(decode)}
        self.instance_token = instance_token
        self.connect_timeout_s = connect_timeout_s
        self.handoff = handoff
        self.peers = {
            url.rstrip("/"): peer for url, peer in zip(prefill, prefill_peers, strict=False)
        }
        self.leg_timeout_s = leg_timeout_s
        self.metrics = ProxyMetrics()
        self.pools: dict[str, Pool] = {}

    @property
    def disaggregated(self) -> bool:
        return bool(self._urls["prefill"])

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/completions", self.generate)
        app.router.add_post("/v1/chat/completions", self.generate)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.prometheus)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, _app: web.Application) -> None:
        timeout = aiohttp.ClientTimeout(
            total=self.leg_timeout_s, sock_connect=self.connect_timeout_s
        )
        for leg, urls in self._urls.items():
            if urls:
                self.pools[leg] = Pool(
                    [
                        Backend(
                            url.rstrip("/"),
                            aiohttp.ClientSession(
                                connector=aiohttp.TCPConnector(
                                    limit=0,
                                    ttl_dns_cache=None,
                                    keepalive_timeout=UPSTREAM_KEEPALIVE_S,
                                ),
                                timeout=timeout,
                                cookie_jar=aiohttp.DummyCookieJar(),
                            ),
                        )
                        for url in urls
                    ]
                )

    async def _close(self, _app: web.Application) -> None:
        for pool in self.pools.values():
            for backend in pool.backends:
                await backend.session.close()

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "instance": self.instance_token})

    async def prometheus(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def models(self, _request: web.Request) -> web.Response:
        backend = self.pools["decode" if self.disaggregated else "forward"].backends[0]
        try:
            async with backend.session.get(backend.url + "/v1/models") as upstream:
                body = await upstream.read()
        except aiohttp.ClientError as e:
            error = self._unreachable(backend, e)
            return web.Response(
                status=error.status, body=error.body, content_type="application/json"
            )
        return web.Response(status=upstream.status, body=body, content_type="application/json")

    async def generate(self, request: web.Request) -> web.StreamResponse:
        request[ARRIVED] = time.perf_counter()
        request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        raw = await request.read()
        try:
            if self.disaggregated:
                return await self._disaggregated(request, raw, request_id)
            backend = self.pools["forward"].next()
            return await self._stream(request, backend, raw, request_id, "forward", backend.url)
        except UpstreamError as e:
            return web.Response(
                status=e.status,
                body=e.body,
                headers={"Content-Type": e.content_type, REQUEST_ID_HEADER: request_id},
            )

    async def _disaggregated(
        self, request: web.Request, raw: bytes, request_id: str
    ) -> web.StreamResponse:
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return _json_error(400, "request body is not JSON", request_id)
        prefill = self.pools["prefill"].next()
        decode = self.pools["decode"].next()
        served_by = f"prefill={prefill.url};decode={decode.url}"
        if self.handoff == "concurrent":
            return await self._concurrent(request, body, request_id, prefill, decode, served_by)
        answer = await self._prefill(prefill, request, body, request_id)
        if answer.kv_params is None:
            self.metrics.kv_params_missing.inc()
            decode_body = body
        else:
            decode_body = body | {"kv_transfer_params": answer.kv_params}
        done: asyncio.Future[PrefillAnswer] = asyncio.get_running_loop().create_future()
        done.set_result(answer)
        return await self._stream(
            request, decode, json.dumps(decode_body).encode(), request_id, "decode", served_by, done
        )

    async def _concurrent(
        self,
        request: web.Request,
        body: dict,
        request_id: str,
        prefill: Backend,
        decode: Backend,
        served_by: str,
    ) -> web.StreamResponse:
        """Push handoff: decode registers its blocks while the prefill computes the KV."""
        prefill_leg = asyncio.create_task(self._prefill(prefill, request, body, request_id))
        decode_body = body | {"kv_transfer_params": self.peers[prefill.url].decode_params()}
        try:
            return await self._stream(
                request,
                decode,
                json.dumps(decode_body).encode(),
                request_id,
                "decode",
                served_by,
                prefill_leg,
            )
        finally:
            if not prefill_leg.done():
                prefill_leg.cancel()
            elif not prefill_leg.cancelled() and prefill_leg.exception() is None:
                if prefill_leg.result().kv_params is None:
                    self.metrics.kv_params_missing.inc()

    async def _prefill(
        self, backend: Backend, request: web.Request, body: dict, request_id: str
    ) -> PrefillAnswer:
        prefill_body = {k: v for k, v in body.items() if k != "stream_options"}
        prefill_body |= {"max_tokens": 1, "stream": False, "kv_transfer_params": PREFILL_KV_PARAMS}
        if "max_completion_tokens" in body:
            prefill_body["max_completion_tokens"] = 1
        started = time.perf_counter()
        self.metrics.requests.labels(backend.url, "prefill").inc()
        try:
            async with backend.session.post(
                backend.endpoint(request.path),
                json=prefill_body,
                headers={REQUEST_ID_HEADER: request_id},
            ) as upstream:
                payload = await upstream.read()
                if upstream.status != 200:
                    raise self._upstream_error(backend, upstream.status, payload)
        except TimeoutError as e:
            raise self._timed_out(backend, "prefill") from e
        except aiohttp.ClientError as e:
            raise self._unreachable(backend, e) from e
        finished = time.perf_counter()
        self.metrics.leg_seconds.labels("prefill").observe(finished - started)
        return PrefillAnswer(
            json.loads(payload).get("kv_transfer_params"), finished - started, finished
        )

    async def _stream(
        self,
        request: web.Request,
        backend: Backend,
        body: bytes,
        request_id: str,
        leg: str,
        served_by: str,
        prefill_leg: asyncio.Future[PrefillAnswer] | None = None,
    ) -> web.StreamResponse:
        """Send `body` to `backend` and pass its answer through to the client as it arrives.

        After a `prefill_leg`, nothing reaches the client before the first chunk: a concurrent
        prefill that fails first answers with its own error instead, and the handoff's timing
        goes out in the headers."""
        started = time.perf_counter()
        self.metrics.requests.labels(backend.url, leg).inc()
        headers = {"Content-Type": "application/json", REQUEST_ID_HEADER: request_id}
        response: web.StreamResponse | None = None
        try:
            async with backend.session.post(
                backend.endpoint(request.path), data=body, headers=headers
            ) as upstream:
                if upstream.status != 200:
                    raise self._upstream_error(backend, upstream.status, await upstream.read())
                first = await _first_chunk(upstream, prefill_leg)
                response = web.StreamResponse(
                    headers={
                        k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS
                    }
                    | {REQUEST_ID_HEADER: request_id, SERVED_BY_HEADER: served_by}
                    | _timing_headers(request[ARRIVED], prefill_leg)
                )
                await response.prepare(request)
                await response.write(first)
                try:
                    async for chunk in upstream.content.iter_any():
                        await response.write(chunk)
                except aiohttp.ClientError:
                    # Headers are gone already: the client sees a cut stream, counted here.
                    self.metrics.upstream_errors.labels(backend.url, "cut").inc()
                    return response
                await response.write_eof()
        except TimeoutError as e:
            error = self._timed_out(backend, leg)
            if response is None:
                raise error from e
            # Mid-stream: the status is sent, so the error travels as the stream's last event.
            await response.write(b"data: " + error.body + b"\n\n")
            return response
        except aiohttp.ClientError as e:
            raise self._unreachable(backend, e) from e
        self.metrics.leg_seconds.labels(leg).observe(time.perf_counter() - started)
        return response

    def _upstream_error(self, backend: Backend, status: int, payload: bytes) -> UpstreamError:
        self.metrics.upstream_errors.labels(backend.url, str(status)).inc()
        try:
            json.loads(payload)
            return UpstreamError(status, payload)
        except json.JSONDecodeError:
            message = payload.decode(errors="replace")[:500]
            return UpstreamError(status, _error_body(f"{backend.url}: {message}", status))

    def _timed_out(self, backend: Backend, leg: str) -> UpstreamError:
        self.metrics.leg_timeouts.labels(backend.url, leg).inc()
        message = f"{leg} leg at {backend.url} did not finish within {self.leg_timeout_s:g} s"
        return UpstreamError(504, _error_body(message, 504))

    def _unreachable(self, backend: Backend, error: Exception) -> UpstreamError:
        self.metrics.upstream_errors.labels(backend.url, "unreachable").inc()
        return UpstreamError(502, _error_body(f"backend {backend.url} unreachable: {error}", 502))


def _timing_headers(
    arrived: float, prefill_leg: asyncio.Future[PrefillAnswer] | None
) -> dict[str, str]:
    """The Server-Timing of the first byte: the proxy's time since the request arrived, and
    after a prefill leg that leg's and the handoff's."""
    now = time.perf_counter()
    timings = {PROXY_TIMING: now - arrived}
    headers = {}
    if prefill_leg is not None and prefill_leg.done() and prefill_leg.exception() is None:
        answer = prefill_leg.result()
        timings |= {PREFILL_TIMING: answer.seconds, HANDOFF_TIMING: now - answer.finished_at}
        if answer.kv_blocks is not None:
            headers[KV_BLOCKS_HEADER] = str(answer.kv_blocks)
    return headers | {TIMING_HEADER: server_timing_header(timings)}


async def _first_chunk(
    upstream: aiohttp.ClientResponse, prefill_leg: asyncio.Future[PrefillAnswer] | None
) -> bytes:
    """The upstream's first bytes; raises the prefill leg's error if that leg fails first."""
    if prefill_leg is None or prefill_leg.done():
        # Forwarding, or a sequential handoff: no race, and no task on the hot path.
        if prefill_leg is not None and prefill_leg.exception() is not None:
            raise prefill_leg.exception()
        return await upstream.content.readany()
    read = asyncio.ensure_future(upstream.content.readany())
    await asyncio.wait({read, prefill_leg}, return_when=asyncio.FIRST_COMPLETED)
    if prefill_leg.done() and not read.done() and prefill_leg.exception() is not None:
        read.cancel()
        raise prefill_leg.exception()
    return await read


def _error_body(message: str, status: int) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": "proxy_error", "code": status}}
    ).encode()


def _json_error(status: int, message: str, request_id: str) -> web.Response:
    return web.Response(
        status=status,
        body=_error_body(message, status),
        headers={"Content-Type": "application/json", REQUEST_ID_HEADER: request_id},
    )


async def serve(proxy: Proxy, host: str, port: int) -> None:
    """Run the proxy until cancelled; a client that disconnects cancels its upstream request."""
    runner = web.AppRunner(proxy.app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
