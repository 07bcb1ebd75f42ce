"""Proxy and client capacity: streamed tokens/s per core against a token-paced upstream.

A four-GPU campaign streams about 10k output tokens/s through one proxy (and into one client).
This measures how many streamed tokens/s `pdpipeline proxy` and our load generator's client
sustain per core, by raising the concurrency until the streamed tokens/s stops growing.

The upstream streams the way vLLM decodes: every `--token-gap-ms` it takes one decode step, and
every running request gets one token (one SSE event, OpenAI completions format) at that step, so
the load grows with the concurrency just as a server's batch does. It is the aiohttp server of
benchmarks/upstream.py, in a process of its own so that its CPU counts for neither the client nor
the proxy.

Two paths, each ramped: client -> upstream (the client alone), and client -> `pdpipeline proxy`
-> upstream. "Per core" is streamed tokens per CPU-second of that process: client and proxy are
each one event loop, so that is what one core given wholly to it would stream. Client, proxy and
upstream share this machine's cores, so the machine's own plateau sits below either capacity;
the table shows each process's share of a core at every step. The closing lines give each
process's figure at its path's peak; a process's cost per token falls as load rises (tokens
queued behind a busy loop go out in one read and one write), so the line before them gives the
proxy's cost near the campaign's own 10k tokens/s. A run takes about 90 s.

    .venv/bin/python benchmarks/proxy_capacity.py [--step-s S] [--token-gap-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np
import psutil
import uvloop

# The same SSE framing, free port and proxy launch as the overhead benchmark beside this file.
from proxy_overhead import proxy_service
from upstream import upstream_service

from pdpipeline.errors import PdPipelineError
from pdpipeline.launch.base import ServiceSpec
from pdpipeline.launch.local import LocalLauncher
from pdpipeline.loadgen.client import Client, RequestRecord
from pdpipeline.loadgen.schedule import Load, run_load
from pdpipeline.loadgen.workload import Lengths, RequestSpec, TokenIdPrompts, build_requests

MODEL = "paced"
VOCAB = 32000
# What one proxy must carry in a four-GPU campaign (the figure the verdict lines compare with).
CAMPAIGN_TOKENS_PER_S = 10_000
CONCURRENCIES = (8, 16, 32, 64, 128, 256, 512, 1024)
# A step that adds less than this to the best streamed tokens/s so far ends the ramp.
MIN_GROWTH = 0.10
# Share of the machine's CPU others may use before the figures are flagged as disturbed.
OTHERS_WARN_SHARE = 0.05


# --- services -------------------------------------------------------------------------------


def paced_upstream_service(token: str, token_gap_ms: float) -> ServiceSpec:
    return upstream_service(token, token_gap_ms, "step", MODEL)


# --- CPU accounting ---------------------------------------------------------------------------


def _busy_s(times) -> float:
    return times.user + times.nice + times.system + times.irq + times.softirq


def _cpu_s(pid: int) -> float:
    """CPU seconds used so far by one process (this one: the client)."""
    if pid == os.getpid():
        # Finer than the clock ticks psutil reads for other processes.
        return time.process_time()
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


class CpuAccount:
    """CPU seconds of each of our processes, and of everything else on the machine, meanwhile."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def __enter__(self) -> CpuAccount:
        self._wall = time.monotonic()
        self._machine = psutil.cpu_times()
        self._ours = {name: _cpu_s(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc) -> None:
        self.wall_s = time.monotonic() - self._wall
        self.by_process = {name: _cpu_s(pid) - self._ours[name] for name, pid in self.pids.items()}
        busy = _busy_s(psutil.cpu_times()) - _busy_s(self._machine)
        self.others_s = max(0.0, busy - sum(self.by_process.values()))


# --- measurement ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    step_s: float
    token_gap_ms: float
    output_tokens: int
    input_tokens: int
    max_concurrency: int

    @property
    def tokens_per_s_per_stream(self) -> float:
        return 1000.0 / self.token_gap_ms


@dataclass
class Step:
    """One closed-loop run of one path at one concurrency."""

    path: str
    concurrency: int
    wall_s: float
    tokens: int
    cpu_s: dict[str, float]  # by process
    others_s: float
    itl_p99_ms: float
    late_ms: float  # the upstream's mean lateness per decode step

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s

    def cores(self, process: str) -> float:
        return self.cpu_s[process] / self.wall_s

    def per_core(self, process: str) -> float:
        """Streamed tokens per CPU-second of `process`."""
        return self.tokens / self.cpu_s[process] if self.cpu_s[process] else float("nan")


class InvalidStepError(PdPipelineError):
    """A step had a failed or short request: no figure comes from it."""


class Workload:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.source = TokenIdPrompts(VOCAB)

    def requests(self, concurrency: int, salt: str) -> list[RequestSpec]:
        """More than `concurrency` workers can start within a step, so none runs dry."""
        s = self.settings
        seconds_per_request = s.output_tokens * s.token_gap_ms / 1000.0
        count = concurrency * (int(s.step_s / seconds_per_request) + 2)
        lengths = Lengths(s.input_tokens, s.input_tokens), Lengths(s.output_tokens, s.output_tokens)
        return build_requests(self.source, count, *lengths, seed=0, salt=salt)


async def upstream_stats(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(url + "/stats") as response:
        return await response.json()


async def measure(
    client: Client,
    path: str,
    concurrency: int,
    workload: Workload,
    pids: dict[str, int],
    stats: tuple[aiohttp.ClientSession, str],
) -> Step:
    requests = workload.requests(concurrency, f"{path}-c{concurrency}")
    load = Load(concurrency=concurrency, duration_s=workload.settings.step_s)
    before = await upstream_stats(*stats)
    with CpuAccount(pids) as cpu:
        records = await run_load(client.send, requests, load)
    after = await upstream_stats(*stats)
    check(records, path, concurrency)
    steps = after["steps"] - before["steps"]
    return Step(
        path=path,
        concurrency=concurrency,
        wall_s=cpu.wall_s,
        tokens=sum(r.output_tokens or 0 for r in records),
        cpu_s=cpu.by_process,
        others_s=cpu.others_s,
        itl_p99_ms=float(np.percentile([g for r in records for g in r.itl_s], 99) * 1000),
        late_ms=1000 * (after["late_s"] - before["late_s"]) / max(1, steps),
    )


def check(records: Sequence[RequestRecord], path: str, concurrency: int) -> None:
    failed = [r for r in records if not r.ok]
    if failed:
        first = failed[0]
        raise InvalidStepError(
            f"{path} at concurrency {concurrency}: {len(failed)} of {len(records)} requests "
            f"failed or were short; first: {first.error or f'{first.output_tokens} tokens'}"
        )


async def ramp(
    client: Client,
    path: str,
    workload: Workload,
    pids: dict[str, int],
    stats: tuple[aiohttp.ClientSession, str],
) -> list[Step]:
    """Raise the concurrency until streamed tokens/s stops growing."""
    steps: list[Step] = []
    best = 0.0
    for concurrency in CONCURRENCIES:
        if concurrency > workload.settings.max_concurrency:
            break
        step = await measure(client, path, concurrency, workload, pids, stats)
        steps.append(step)
        print(row(step, workload.settings), flush=True)
        if step.tokens_per_s < best * (1 + MIN_GROWTH):
            break
        best = max(best, step.tokens_per_s)
    return steps


# --- report ---------------------------------------------------------------------------------

COLUMNS = (
    f"{'path':<7} {'conc':>5} {'paced':>8} {'streamed':>9} {'of pace':>7}  "
    f"{'client':>6} {'proxy':>6} {'upstr':>6} {'others':>6}  "
    f"{'client/core':>11} {'proxy/core':>11}  {'ITL p99':>8} {'late':>6}"
)
UNITS = (
    f"{'':<7} {'':>5} {'tok/s':>8} {'tok/s':>9} {'':>7}  "
    f"{'cores':>6} {'cores':>6} {'cores':>6} {'cores':>6}  "
    f"{'tok/s':>11} {'tok/s':>11}  {'ms':>8} {'ms':>6}"
)


def row(step: Step, settings: Settings) -> str:
    paced = step.concurrency * settings.tokens_per_s_per_stream
    proxy = "proxy" in step.cpu_s
    return (
        f"{step.path:<7} {step.concurrency:>5} {paced:>8.0f} {step.tokens_per_s:>9.0f} "
        f"{step.tokens_per_s / paced:>7.0%}  "
        f"{step.cores('client'):>6.2f} "
        + (f"{step.cores('proxy'):>6.2f} " if proxy else f"{'-':>6} ")
        + f"{step.cores('upstream'):>6.2f} {step.others_s / step.wall_s:>6.2f}  "
        f"{step.per_core('client'):>11.0f} "
        + (f"{step.per_core('proxy'):>11.0f}" if proxy else f"{'-':>11}")
        + f"  {step.itl_p99_ms:>8.1f} {step.late_ms:>6.2f}"
    )


def peak(steps: list[Step]) -> Step:
    return max(steps, key=lambda s: s.tokens_per_s)


def verdict(name: str, tokens_per_core: float) -> str:
    return (
        f"{name}: {tokens_per_core:,.0f} tokens/s per core "
        f"({tokens_per_core / CAMPAIGN_TOKENS_PER_S:.1f} x the "
        f"{CAMPAIGN_TOKENS_PER_S // 1000}k tokens/s a four-GPU campaign needs)"
    )


def header(settings: Settings, log_dir: Path) -> str:
    cores = len(os.sched_getaffinity(0))
    return "\n".join(
        [
            "proxy and client capacity: streamed tokens/s per core, concurrency raised until it "
            "stops growing",
            "upstream: paced (aiohttp, own process): a decode step every "
            f"{settings.token_gap_ms:g} ms, one token to every running request; "
            f"{settings.output_tokens} tokens per request, prompts of "
            f"{settings.input_tokens} token ids",
            f"machine: {cores} usable core(s), {platform.processor() or platform.machine()}; "
            "client, proxy and upstream share them, unpinned",
            f"steps of {settings.step_s:g} s (closed loop); a step adding under "
            f"{MIN_GROWTH:.0%} to the best streamed tokens/s ends the ramp; event loops: uvloop; "
            f"python {platform.python_version()}, aiohttp {aiohttp.__version__}",
            "cores: CPU-seconds per second of each process; per core: streamed tokens per "
            "CPU-second; late: the upstream's mean delay per decode step",
            f"service logs: {log_dir}",
        ]
    )


async def run(args: argparse.Namespace) -> None:
    settings = Settings(
        step_s=args.step_s,
        token_gap_ms=args.token_gap_ms,
        output_tokens=args.output_tokens,
        input_tokens=args.input_tokens,
        max_concurrency=args.max_concurrency,
    )
    # SIGTERM unwinds like Ctrl-C, so the launcher stops what it started (own sessions: nothing
    # else would reach them).
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    token = uuid.uuid4().hex[:12]
    log_dir = Path(tempfile.mkdtemp(prefix="proxy-capacity-"))
    print(header(settings, log_dir), flush=True)
    launcher = LocalLauncher(log_dir)
    workload = Workload(settings)
    async with AsyncExitStack() as stack:
        upstream = await stack.enter_async_context(
            launcher.running(paced_upstream_service(f"paced-{token}", settings.token_gap_ms))
        )
        proxy = await stack.enter_async_context(
            launcher.running(proxy_service(upstream.url, f"proxy-{token}"))
        )
        session = await stack.enter_async_context(aiohttp.ClientSession())
        stats = (session, upstream.url)
        print(f"upstream {upstream.url}  proxy {proxy.url}\n\n{COLUMNS}\n{UNITS}", flush=True)
        steps: dict[str, list[Step]] = {}
        for path, url, pids in (
            ("direct", upstream.url, {"client": os.getpid(), "upstream": upstream.pid}),
            (
                "proxy",
                proxy.url,
                {"client": os.getpid(), "proxy": proxy.pid, "upstream": upstream.pid},
            ),
        ):
            client = await stack.enter_async_context(Client(url, MODEL))
            # Opens the connections and warms every code path before anything is counted.
            await run_load(
                client.send, workload.requests(8, f"warm-{path}")[:64], Load(concurrency=8)
            )
            steps[path] = await ramp(client, path, workload, pids, stats)
        for service in (upstream, proxy):
            await launcher.ensure_alive(service)
    report(steps)


def report(steps: dict[str, list[Step]]) -> None:
    direct, proxied = peak(steps["direct"]), peak(steps["proxy"])
    print()
    print(
        f"peak on this machine: {direct.tokens_per_s:,.0f} tokens/s client -> upstream "
        f"(c={direct.concurrency}), {proxied.tokens_per_s:,.0f} tokens/s through the proxy "
        f"(c={proxied.concurrency})"
    )
    cores = len(os.sched_getaffinity(0))
    disturbed = [
        s
        for s in steps["direct"] + steps["proxy"]
        if s.others_s / s.wall_s > OTHERS_WARN_SHARE * cores
    ]
    if disturbed:
        print(
            f"WARNING: other work ran during {len(disturbed)} step(s) (the 'others' column); "
            "tokens/s there is low, per-core figures less so; rerun on a quiet machine"
        )
    # The peak's per-core figure is the ceiling (cost per token falls with load): this is the
    # cost at the campaign's own rate.
    near = min(steps["proxy"], key=lambda s: abs(s.tokens_per_s - CAMPAIGN_TOKENS_PER_S))
    print(
        f"near a four-GPU campaign's rate (c={near.concurrency}, {near.tokens_per_s:,.0f} "
        f"tokens/s through the proxy): proxy {near.cores('proxy'):.2f} of a core "
        f"({near.per_core('proxy'):,.0f} tokens/s per core), client {near.cores('client'):.2f} "
        f"({near.per_core('client'):,.0f} tokens/s per core)"
    )
    print(verdict("client", direct.per_core("client")))
    print(verdict("proxy", proxied.per_core("proxy")))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--step-s", type=float, default=4.0, help="seconds per step (default 4)")
    parser.add_argument(
        "--token-gap-ms",
        type=float,
        default=10.0,
        help="the upstream's decode step, i.e. each stream's inter-token gap (default 10)",
    )
    parser.add_argument("--output-tokens", type=int, default=64, help="per request (default 64)")
    parser.add_argument(
        "--input-tokens", type=int, default=16, help="prompt token ids (default 16)"
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=CONCURRENCIES[-1],
        help=f"last step of the ramp at most (default {CONCURRENCIES[-1]})",
    )
    args = parser.parse_args(argv)
    if args.step_s <= 0 or args.token_gap_ms <= 0:
        parser.error("--step-s and --token-gap-ms must be positive")
    if args.output_tokens < 1 or args.input_tokens < 1:
        parser.error("--output-tokens and --input-tokens must be at least 1")
    if args.max_concurrency < CONCURRENCIES[0]:
        parser.error(f"--max-concurrency must be at least {CONCURRENCIES[0]}")
    return args


def main() -> None:
    args = parse_args()
    try:
        uvloop.run(run(args))
    except PdPipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: services stopped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
