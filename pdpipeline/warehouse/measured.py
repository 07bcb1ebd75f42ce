"""The warehouse rows of what an arm measured: each point's run, requests and server metrics,
the rate search's capacity per tier, and the handoff variants it ran."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pdpipeline.loadgen.bench import BenchResult
from pdpipeline.loadgen.matrix import Point
from pdpipeline.loadgen.metrics import MetricDelta, total
from pdpipeline.loadgen.sweep import TierCapacity
from pdpipeline.loadgen.window import started_at, summary_window
from pdpipeline.plan import ArmPlan
from pdpipeline.serving import protocol, vllm_metrics
from pdpipeline.warehouse.rows import (
    HandoffVariantRow,
    LaunchServerRow,
    RequestRow,
    RunRow,
    ServerMetricRow,
    SloCapacityRow,
)

# Only these metrics are kept per run: the server's own figures and the proxy's, not runtime noise.
KEPT_METRIC_PREFIXES = (vllm_metrics.PREFIX, protocol.METRIC_PREFIX)


@dataclass
class ArmResult:
    """The rows of one arm, over every launch of it."""

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

    def add_point(self, campaign_id: str, point: Point, run: BenchResult, plan: ArmPlan) -> RunRow:
        """The rows of one measured point: its run (invalid where the KV did not move), its
        requests as measured and the metrics its servers kept."""
        arm = plan.arm
        variant = plan.variant.name if plan.variant else None
        series = {"layout": plan.layout, "engine_variant": plan.engine and plan.engine.name}
        run_id = f"{campaign_id}/{plan.key}/{point.key}"
        kept = [m for m in run.metrics if m.name.startswith(KEPT_METRIC_PREFIXES)]
        kv = kv_transfer_figures(kept, plan)
        summary = dict(run.summary)
        reason = summary.pop("first_error")
        window = summary_window(summary)
        if arm == "disaggregated" and kv["kv_params_missing"]:
            summary["valid"], reason = (
                False,
                f"{kv['kv_params_missing']:.0f} prefill(s) returned no KV params",
            )
        if kv["kv_failed_transfers"]:
            failed = kv["kv_failed_transfers"]
            summary["valid"], reason = False, f"{failed:.0f} failed NIXL transfer(s)"
        row = RunRow(
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
        self.runs.append(row)
        for record in run.records:
            fields = record.row()
            index, itl = fields.pop("index"), fields.pop("itl_s")
            self.requests.append(
                RequestRow(
                    run_id=run_id,
                    campaign_id=campaign_id,
                    arm=arm,
                    variant=variant,
                    request_index=index,
                    itl_s=json.dumps(itl),
                    **fields,
                    in_window=None if window is None else window.holds(started_at(record)),
                    **series,
                )
            )
        for m in kept:
            self.server_metrics.append(
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
        return row

    def add_capacity(self, campaign_id: str, plan: ArmPlan, found: TierCapacity) -> None:
        """The rate search's answer for one shape and tier on this launch."""
        tier, capacity = found.tier, found.capacity
        self.slo_capacity.append(
            SloCapacityRow(
                campaign_id=campaign_id,
                arm=plan.arm,
                layout=plan.layout,
                engine_variant=plan.engine and plan.engine.name,
                variant=plan.variant and plan.variant.name,
                input_len=str(found.shape.input_len),
                output_len=str(found.shape.output_len),
                tier=found.tier_name,
                ttft_ms=tier.ttft_ms,
                tpot_ms=tier.tpot_ms,
                attainment_target=tier.attainment,
                gpus=plan.devices,
                max_rate=capacity.max_rate,
                max_rate_per_gpu=None
                if capacity.max_rate is None
                else capacity.max_rate / plan.devices,
                first_failing_rate=capacity.first_failing,
                bound=capacity.bound,
                probes=json.dumps([[p.rate, p.attainment] for p in capacity.probes]),
            )
        )

    def add_variant(self, campaign_id: str, plan: ArmPlan) -> None:
        """The handoff variant a launch ran, once per arm."""
        v = plan.variant
        if v is None or v.name in {row.variant for row in self.handoff_variants}:
            return
        self.handoff_variants.append(
            HandoffVariantRow(
                campaign_id=campaign_id,
                arm=plan.arm,
                variant=v.name,
                kv_connector=v.kv_connector,
                handoff=v.handoff,
                kv_connector_extra_config=json.dumps(v.kv_connector_extra_config),
                env=json.dumps(v.env),
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
