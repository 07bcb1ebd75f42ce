"""Run one arm of a campaign: launch its services, measure the workload matrix, tear down.

Every arm goes through the same proxy and the same streaming client, with the same requests.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
from pdpipeline.loadgen.metrics import MetricDelta, total
from pdpipeline.loadgen.ratesearch import (
    Capacity,
    Measured,
    known_attainments,
    search_capacity,
    tier_measure,
)
from pdpipeline.loadgen.schedule import Load
from pdpipeline.loadgen.window import Sizing, Window, started_at
from pdpipeline.loadgen.workload import (
    PromptSource,
    RequestStream,
    build_requests,
    iter_requests,
    load_prompt_source,
)
from pdpipeline.plan import ArmPlan, plan_arms
from pdpipeline.preflight import describe, preflight
from pdpipeline.profile import Lengths, Profile, Workload
from pdpipeline.serving import protocol, vllm_metrics
from pdpipeline.warehouse.rows import (
    HandoffVariantRow,
    LaunchServerRow,
    RequestRow,
    RunRow,
    ServerMetricRow,
    SloCapacityRow,
)

Progress = Callable[[str], None]

# Only these metrics are kept per run: the server's own figures and the proxy's, not runtime noise.
KEPT_METRIC_PREFIXES = (vllm_metrics.PREFIX, protocol.METRIC_PREFIX)


@dataclass(frozen=True)
class Point:
    """One cell of the workload matrix, repeated `repeats` times."""

    input_len: Lengths
    output_len: Lengths
    load: Load
    repeat: int
    # The SLO tier a rate search measures this point for; None for the workload matrix.
    searched_for: str | None = None

    @property
    def shape(self) -> str:
        return f"in{self.input_len}-out{self.output_len}"

    @property
    def key(self) -> str:
        key = f"{self.shape}-{self.load.label}-rep{self.repeat}"
        return f"{key}-search" if self.searched_for else key


@dataclass
class ArmResult:
    arm: str
    runs: list[RunRow] = field(default_factory=list)
    requests: list[RequestRow] = field(default_factory=list)
    server_metrics: list[ServerMetricRow] = field(default_factory=list)
    handoff_variants: list[HandoffVariantRow] = field(default_factory=list)
    slo_capacity: list[SloCapacityRow] = field(default_factory=list)
    launch_servers: list[LaunchServerRow] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return bool(self.runs) and all(r.valid for r in self.runs)


def workload_points(workload: Workload) -> Iterator[Point]:
    loads = [Load(concurrency=c) for c in workload.concurrency] + [
        Load(
            request_rate=rate,
            burstiness=workload.burstiness,
            max_concurrency=workload.max_concurrency,
        )
        for rate in workload.request_rates
    ]
    for p in workload.points:
        for load in loads:
            for repeat in range(workload.repeats):
                yield Point(p.input_len, p.output_len, load, repeat)


def point_sizing(workload: Workload) -> Sizing:
    """How long each point of the workload runs: until its steady window is measured."""
    return Sizing(
        min_window_s=workload.min_window_s,
        min_window_requests=workload.min_window_requests,
        max_requests=workload.max_requests_per_point,
        min_requests=workload.requests_per_point,
        warmup_share=workload.open_loop_warmup_share,
    )


@dataclass
class RateSweep:
    """Stops a rate sweep at saturation: once a request rate saturates the server, the higher
    rates of the same shape are not measured on this launch; they would only queue more."""

    say: Progress
    limits: dict[str, float] = field(default_factory=dict)  # shape -> lowest saturating rate

    def points(self, points: Iterable[Point]) -> Iterator[Point]:
        for point in points:
            rate, limit = point.load.request_rate, self.limits.get(point.shape)
            if rate is not None and limit is not None and rate > limit:
                self.say(f"{point.key}: skipped, {point.shape} saturated at {limit:g} req/s")
                continue
            yield point

    def saw(self, point: Point, run: RunRow) -> None:
        rate = point.load.request_rate
        if not run.saturated or rate is None or rate >= self.limits.get(point.shape, math.inf):
            return
        self.limits[point.shape] = rate
        self.say(
            f"{point.key}: saturated (completions fell behind arrivals); "
            f"{point.shape} is not measured above {rate:g} req/s"
        )


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
    """Launch `arm` (each handoff variant of the disaggregated arm in turn), run every workload
    point through the proxy, and return its rows."""
    source = source or load_prompt_source(profile.model.tokenizer_dir, profile.workload.api)
    result = ArmResult(arm)
    for plan in plan_arms(profile, arm):
        await _run_plan(plan, profile, campaign_id, log_dir, progress, source, result)
        if (v := plan.variant) is not None and v.name not in {
            row.variant for row in result.handoff_variants
        }:
            result.handoff_variants.append(
                HandoffVariantRow(
                    campaign_id=campaign_id,
                    arm=arm,
                    variant=v.name,
                    kv_connector=v.kv_connector,
                    handoff=v.handoff,
                    kv_connector_extra_config=json.dumps(v.kv_connector_extra_config),
                    env=json.dumps(v.env),
                )
            )
    return result


async def _run_plan(
    plan: ArmPlan,
    profile: Profile,
    campaign_id: str,
    log_dir: Path,
    progress: Progress,
    source: PromptSource,
    result: ArmResult,
) -> None:
    """One launch: start the plan's services, measure every point, stop them."""
    slo = profile.slo
    name = plan.key
    launchers = launchers_for(profile, log_dir / campaign_id / name, f"{campaign_id}/{name}")
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
            services["proxy"][1].url,
            profile.model.served_name,
            profile.workload.api,
            profile.workload.request_timeout_s,
        ) as client:

            async def measure(point: Point) -> BenchResult:
                during = f"{point.key} of {name}"
                # A server that dies mid-point ends the arm with its own error, not with the
                # connection errors or failed requests that follow from it.
                run = await while_alive(
                    _measure(client, source, profile, point, metrics_urls, plan, slo),
                    watched,
                    during,
                )
                if not run.summary["valid"]:
                    await ensure_all_alive(watched, during, DEATH_GRACE_S)
                _collect(result, campaign_id, point, run, plan)
                progress(f"[{name}] {point.key}: {_one_line(result.runs[-1])}")
                return run

            # Before the first point: the KV path this launch will use, and the CPU each
            # server burns while idle.
            found = await while_alive(
                preflight(
                    plan,
                    services,
                    client,
                    source,
                    profile.workload.points[0].input_len,
                    campaign_id,
                ),
                watched,
                f"the preflight of {name}",
            )
            result.launch_servers.extend(found)
            progress(f"[{name}] {describe(found)}")
            sweep = RateSweep(lambda line: progress(f"[{name}] {line}"))
            for point in sweep.points(workload_points(profile.workload)):
                await measure(point)
                sweep.saw(point, result.runs[-1])
            if profile.workload.rate_search is not None:
                await _search_rates(profile, plan, campaign_id, measure, result, progress)


async def _search_rates(
    profile: Profile,
    plan: ArmPlan,
    campaign_id: str,
    measure: Callable[[Point], Awaitable[BenchResult]],
    result: ArmResult,
    progress: Progress,
) -> None:
    """Per shape and SLO tier of the rate search: the highest rate that meets the tier on this
    launch. One run answers every tier, so a later tier reads the runs of earlier ones."""
    workload, search = profile.workload, profile.workload.rate_search
    tiers = {name: profile.tiers[name] for name in search.tiers or profile.tiers}
    for shape in workload.points:
        input_len, output_len = shape.input_len, shape.output_len
        runs: dict[float, Measured] = {}
        try:
            for tier_name, tier in tiers.items():
                run_at = _open_loop_at(measure, workload, input_len, output_len, tier_name)
                capacity = await search_capacity(
                    tier_measure(run_at, runs, tier),
                    tier.attainment,
                    search.min_rate,
                    search.max_rate,
                    search.steps,
                    search.growth,
                    search.tolerance,
                    known=known_attainments(runs, tier),
                )
                row = _capacity_row(campaign_id, plan, shape, tier_name, tier, capacity)
                result.slo_capacity.append(row)
                found = "none" if row.max_rate is None else f"{row.max_rate:.3g} req/s"
                progress(
                    f"[{plan.key}] in{input_len}-out{output_len} {tier_name}: highest rate "
                    f"meeting the tier {found} ({capacity.bound}, {len(capacity.probes)} rate(s))"
                )
        except InvalidSearchRun as e:
            # A failed request makes a run invalid, never a result: the arm's check reports the
            # run, and the tiers of the shape not yet searched get no capacity.
            progress(f"[{plan.key}] in{input_len}-out{output_len}: rate search stopped: {e}")


class InvalidSearchRun(Exception):
    """A run of the rate search had a failed or short request."""


def _open_loop_at(
    measure: Callable[[Point], Awaitable[BenchResult]],
    workload: Workload,
    input_len: Lengths,
    output_len: Lengths,
    tier_name: str,
) -> Callable[[float], Awaitable[Measured]]:
    """A run of the shape at an open-loop rate, with the workload's arrival settings."""

    async def run_at(rate: float) -> Measured:
        load = Load(
            request_rate=rate,
            burstiness=workload.burstiness,
            max_concurrency=workload.max_concurrency,
        )
        run = await measure(Point(input_len, output_len, load, 0, tier_name))
        if not run.summary["valid"]:
            raise InvalidSearchRun(f"the run at {rate:.3g} req/s is invalid")
        return Measured(run.records, _window(run.summary))

    return run_at


def _capacity_row(campaign_id, plan, shape, tier_name, tier, capacity: Capacity) -> SloCapacityRow:
    return SloCapacityRow(
        campaign_id=campaign_id,
        arm=plan.arm,
        layout=plan.layout,
        engine_variant=plan.engine and plan.engine.name,
        variant=plan.variant and plan.variant.name,
        input_len=str(shape.input_len),
        output_len=str(shape.output_len),
        tier=tier_name,
        ttft_ms=tier.ttft_ms,
        tpot_ms=tier.tpot_ms,
        attainment_target=tier.attainment,
        gpus=plan.devices,
        max_rate=capacity.max_rate,
        max_rate_per_gpu=None if capacity.max_rate is None else capacity.max_rate / plan.devices,
        first_failing_rate=capacity.first_failing,
        bound=capacity.bound,
        probes=json.dumps([[p.rate, p.attainment] for p in capacity.probes]),
    )


def _window(summary: dict) -> Window | None:
    if summary["window_start"] is None:
        return None
    return Window(summary["window_start"], summary["window_end"])


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


async def _measure(client, source, profile, point, metrics_urls, plan, slo) -> BenchResult:
    workload = profile.workload
    salt = point.key
    requests = RequestStream(
        iter_requests(source, point.input_len, point.output_len, workload.seed, salt)
    )
    warmup = build_requests(
        source,
        workload.warmup_requests,
        point.input_len,
        point.output_len,
        workload.seed,
        salt + "/warmup",
    )
    return await bench(
        client,
        requests,
        point.load,
        warmup,
        metrics_urls,
        plan.devices,
        slo,
        workload.seed,
        point_sizing(workload),
    )


def _collect(
    result: ArmResult, campaign_id: str, point: Point, run: BenchResult, plan: ArmPlan
) -> None:
    arm = plan.arm
    variant = plan.variant.name if plan.variant else None
    series = {"layout": plan.layout, "engine_variant": plan.engine and plan.engine.name}
    run_id = f"{campaign_id}/{plan.key}/{point.key}"
    kept = [m for m in run.metrics if m.name.startswith(KEPT_METRIC_PREFIXES)]
    kv = kv_transfer_figures(kept, plan)
    summary = dict(run.summary)
    reason = summary.pop("first_error")
    window = _window(summary)
    if arm == "disaggregated" and kv["kv_params_missing"]:
        summary["valid"], reason = (
            False,
            f"{kv['kv_params_missing']:.0f} prefill(s) returned no KV params",
        )
    if kv["kv_failed_transfers"]:
        summary["valid"], reason = False, f"{kv['kv_failed_transfers']:.0f} failed NIXL transfer(s)"
    result.runs.append(
        RunRow(
            run_id=run_id,
            campaign_id=campaign_id,
            arm=arm,
            variant=variant,
            point=point.key,
            input_len=str(point.input_len),
            output_len=str(point.output_len),
            concurrency=point.load.concurrency,
            request_rate=point.load.request_rate,
            repeat=point.repeat,
            instances=len(plan.instances),
            **summary,
            invalid_reason=None if summary["valid"] else reason,
            started_at=datetime.fromtimestamp(
                min((r.sent_at for r in run.records), default=time.time()), UTC
            ),
            **kv,
            **series,
            engine_args=json.dumps(list(plan.engine.vllm_args)) if plan.engine else None,
            searched_for=point.searched_for,
            backend_requests=json.dumps(backend_requests(run.records)),
        )
    )
    for record in run.records:
        row = record.row()
        index, itl = row.pop("index"), row.pop("itl_s")
        result.requests.append(
            RequestRow(
                run_id=run_id,
                campaign_id=campaign_id,
                arm=arm,
                variant=variant,
                request_index=index,
                itl_s=json.dumps(itl),
                **row,
                in_window=None if window is None else window.holds(started_at(record)),
                **series,
            )
        )
    for m in kept:
        result.server_metrics.append(
            ServerMetricRow(
                run_id=run_id,
                campaign_id=campaign_id,
                arm=arm,
                variant=variant,
                server=m.server,
                name=m.name,
                labels=m.labels,
                before=m.before,
                after=m.after,
                delta=m.delta,
                **series,
            )
        )


def backend_requests(records: Iterable) -> dict[str, dict[str, int]]:
    """Requests each backend served, per role, from the proxy's served-by header: 'URL' for a
    standalone backend, 'prefill=URL;decode=URL' for a disaggregated pair."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for record in records:
        if not record.served_by:
            continue  # failed before any backend answered
        if "=" not in record.served_by:
            counts["standalone"][record.served_by] += 1
            continue
        for part in record.served_by.split(";"):
            role, _, url = part.partition("=")
            counts[role][url] += 1
    return {role: dict(sorted(c.items())) for role, c in sorted(counts.items())}


def kv_transfer_figures(metrics: list[MetricDelta], plan: ArmPlan) -> dict[str, float]:
    """KV moved between prefill and decode instances during one run, from their NIXL metrics,
    by the names of `RunRow`'s KV columns.

    The side that completes a transfer records it: decode in pull mode (NixlConnector), prefill
    in push mode (NixlPushConnector); summing both sides counts each transfer once either way.
    Decode always counts the prompt tokens it received."""
    roles = {i.server.name: i.server.role for i in plan.instances}
    on_pair = [m for m in metrics if roles.get(m.server) in ("prefill", "decode")]
    on_decode = [m for m in on_pair if roles[m.server] == "decode"]
    return {
        "kv_bytes": total(on_pair, vllm_metrics.NIXL_BYTES_SUM),
        "kv_transfers": total(on_pair, vllm_metrics.NIXL_BYTES_COUNT),
        "kv_xfer_time_s": total(on_pair, vllm_metrics.NIXL_XFER_TIME_SUM),
        "kv_failed_transfers": total(on_pair, vllm_metrics.NIXL_FAILED_TOTAL),
        "kv_external_tokens": total(
            on_decode,
            vllm_metrics.PROMPT_TOKENS_BY_SOURCE_TOTAL,
            source=vllm_metrics.EXTERNAL_KV_SOURCE,
        ),
        "kv_params_missing": total(metrics, protocol.KV_PARAMS_MISSING_TOTAL),
    }
