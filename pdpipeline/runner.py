"""Run one arm of a campaign: launch its services, measure the workload matrix, tear down.

Every arm goes through the same proxy and the same streaming client, with the same requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

from pdpipeline.launch.base import (
    DEATH_GRACE_S,
    Launcher,
    Service,
    Watched,
    ensure_all_alive,
    while_alive,
)
from pdpipeline.launch.hosts import launchers_for
from pdpipeline.loadgen.bench import BenchResult, bench
from pdpipeline.loadgen.client import Client
from pdpipeline.loadgen.matrix import Point
from pdpipeline.loadgen.sweep import RateSweep, search_rates
from pdpipeline.loadgen.workload import (
    PromptSource,
    RequestStream,
    build_requests,
    iter_requests,
    load_prompt_source,
)
from pdpipeline.plan import ArmPlan, plan_arms
from pdpipeline.preflight import describe, preflight
from pdpipeline.profile import Profile
from pdpipeline.warehouse.measured import ArmResult
from pdpipeline.warehouse.rows import RunRow

Progress = Callable[[str], None]


async def start_all(stack: AsyncExitStack, launchers: dict[str, Launcher], plan: ArmPlan) -> dict:
    """Start every instance concurrently, then the proxy; the stack stops them on any exit."""
    starts = [
        stack.enter_async_context(launchers[i.host.name].running(i.service)) for i in plan.instances
    ]
    results = await asyncio.gather(*starts, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    services: dict[str, tuple[Launcher, Service]] = {
        i.server.name: (launchers[i.host.name], s)
        for i, s in zip(plan.instances, results, strict=True)
    }
    proxy_launcher = launchers[plan.proxy_host.name]
    services["proxy"] = (
        proxy_launcher,
        await stack.enter_async_context(proxy_launcher.running(plan.proxy)),
    )
    return services


async def run_arm(
    profile: Profile,
    arm: str,
    campaign_id: str,
    log_dir: Path,
    progress: Progress = print,
    source: PromptSource | None = None,
) -> ArmResult:
    """Plan `arm`'s launches (each handoff variant of the disaggregated arm in turn), then run
    each: every workload point through the proxy; returns the arm's rows."""
    source = source or load_prompt_source(profile.model.tokenizer_dir, profile.workload.api)
    result = ArmResult(arm)
    for plan in plan_arms(profile, arm):
        name = plan.key
        launchers = launchers_for(profile, log_dir / campaign_id / name, f"{campaign_id}/{name}")
        await _run_plan(plan, launchers, campaign_id, progress, source, result)
        result.add_variant(campaign_id, plan)
    return result


async def _run_plan(
    plan: ArmPlan,
    launchers: dict[str, Launcher],
    campaign_id: str,
    progress: Progress,
    source: PromptSource,
    result: ArmResult,
) -> None:
    """One launch: start the plan's services, measure every point, stop them."""
    name, load = plan.key, plan.load
    async with AsyncExitStack() as stack:
        for launcher in launchers.values():
            stack.push_async_callback(launcher.close)
            # Leftovers of an earlier attempt at this arm (a cancelled run, a dropped
            # connection) are stopped by their pid files before anything starts.
            for leftover in await launcher.stop_leftovers():
                progress(f"[{name}] stopped {leftover} left by an earlier attempt")
        started = time.monotonic()
        progress(f"[{name}] starting {len(plan.instances)} vLLM instance(s) and the proxy")
        services = await start_all(stack, launchers, plan)
        progress(f"[{name}] ready in {time.monotonic() - started:.0f} s")
        metrics_urls = {
            service_name: service.url for service_name, (_, service) in services.items()
        }
        watched = _watched(services, plan)
        async with Client(
            services["proxy"][1].url, load.served_name, load.api, load.request_timeout_s
        ) as client:

            async def measure(point: Point) -> BenchResult:
                during = f"{point.key} of {name}"
                # A server that dies mid-point ends the arm with its own error, not with the
                # connection errors or failed requests that follow from it.
                run = await while_alive(
                    _measure(client, source, plan, point, metrics_urls), watched, during
                )
                if not run.summary["valid"]:
                    await ensure_all_alive(watched, during, DEATH_GRACE_S)
                row = result.add_point(campaign_id, point, run, plan)
                progress(f"[{name}] {point.key}: {_one_line(row)}")
                return run

            # Before the first point: the KV path this launch will use, and the CPU each
            # server burns while idle.
            found = await while_alive(
                preflight(plan, services, client, source, load.shapes[0].input_len, campaign_id),
                watched,
                f"the preflight of {name}",
            )
            result.launch_servers.extend(found)
            progress(f"[{name}] {describe(found)}")
            sweep = RateSweep(lambda line: progress(f"[{name}] {line}"))
            for point in sweep.points(load.points):
                await measure(point)
                sweep.saw(point, result.runs[-1])
            if load.rate_search is not None:
                await _search_rates(plan, campaign_id, measure, result, progress)


async def _search_rates(
    plan: ArmPlan,
    campaign_id: str,
    measure: Callable[[Point], Awaitable[BenchResult]],
    result: ArmResult,
    progress: Progress,
) -> None:
    """The rate search of the plan on this launch, its capacities kept as rows."""
    found = await search_rates(
        plan.load.shapes,
        plan.load.rate_search,
        measure,
        lambda line: progress(f"[{plan.key}] {line}"),
    )
    for tier_capacity in found:
        result.add_capacity(campaign_id, plan, tier_capacity)


def _watched(services: dict[str, tuple[Launcher, Service]], plan: ArmPlan) -> list[Watched]:
    """Every service of the plan, named by its role: "decode instance", "proxy"."""
    roles = {i.server.name: f"{i.server.role} instance" for i in plan.instances}
    return [
        Watched(launcher, service, roles.get(name, ""))
        for name, (launcher, service) in services.items()
    ]


def _one_line(run: RunRow) -> str:
    verdict = "valid" if run.valid else f"INVALID: {run.invalid_reason}"
    ttft = run.ttft_p50_ms or 0.0
    window = f"{run.window_s or 0.0:.1f} s window of {run.window_requests} requests"
    if run.window_short:
        window += " (SHORT: fewer than the minimums)"
    return (
        f"{run.output_throughput:.0f} output tok/s, TTFT p50 {ttft:.1f} ms over a {window}, "
        f"{verdict}"
    )


async def _measure(
    client: Client,
    source: PromptSource,
    plan: ArmPlan,
    point: Point,
    metrics_urls: dict[str, str],
) -> BenchResult:
    load = plan.load
    salt = point.key
    requests = RequestStream(
        iter_requests(source, point.input_len, point.output_len, load.seed, salt)
    )
    warmup = build_requests(
        source, load.warmup_requests, point.input_len, point.output_len, load.seed, f"{salt}/warmup"
    )
    return await bench(
        client,
        requests,
        point.load,
        warmup,
        metrics_urls,
        plan.devices,
        load.slo,
        load.seed,
        load.sizing,
    )
