"""The three arms: the same runner, workload, client and proxy path for each."""

from collections.abc import Iterator

import dagster as dg

from pdpipeline.defs.partitions import campaigns, stored_campaign
from pdpipeline.defs.resources import ClusterResource, WarehouseResource
from pdpipeline.preflight import describe, transport_findings

ARM_ASSETS = {
    "single": "single_node_run",
    "replicated": "replicated_run",
    "disaggregated": "disaggregated_run",
}
DESCRIPTIONS = {
    "single": "One vLLM instance behind the proxy.",
    "replicated": "N independent instances behind the round-robin proxy: the fair baseline.",
    "disaggregated": "Prefill and decode instances, KV cache moved over NIXL, proxy handoff; "
    "each handoff variant (pull, push, transport settings) measured in turn.",
}


def _arm_asset(arm: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=ARM_ASSETS[arm],
        group_name="benchmark",
        description=DESCRIPTIONS[arm],
        partitions_def=campaigns,
        deps=["hardware_check"],
        # One arm on the cluster at a time, also across runs.
        pool="cluster",
        check_specs=[
            dg.AssetCheckSpec(
                "all_runs_valid",
                asset=ARM_ASSETS[arm],
                description="No run of the arm had a failed or short request",
            ),
            *(
                [
                    dg.AssetCheckSpec(
                        "kv_transport_preflight",
                        asset=ARM_ASSETS[arm],
                        description="Before each launch's first point, UCX named the lanes of "
                        "the KV reads or writes, none is TCP alone, and the preflight handoff "
                        "succeeded",
                    )
                ]
                if arm == "disaggregated"
                else []
            ),
        ],
    )
    def run(
        context: dg.AssetExecutionContext,
        cluster: ClusterResource,
        warehouse: WarehouseResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        # A campaign whose hosts failed hardware_check has no record: this stops here.
        campaign = stored_campaign(context, warehouse)
        if arm not in campaign.profile.enabled_arms:
            context.log.info(f"profile {campaign.profile.name} has no {arm} arm")
            yield dg.MaterializeResult(
                metadata={"skipped": True},
                check_results=[
                    dg.AssetCheckResult(
                        check_name=name, passed=True, description="arm not in profile"
                    )
                    for name in _check_names(arm)
                ],
            )
            return
        try:
            result = cluster.run_arm(campaign, arm, context.log)
        except dg.DagsterExecutionInterruptedError:
            # Terminated (e.g. from the UI): the arm's processes were stopped on the way out.
            yield dg.AssetCheckResult(
                check_name="all_runs_valid",
                passed=False,
                description="cancelled: the run was terminated before the arm finished; "
                "no rows were written",
            )
            raise
        # All rows of the arm in one transaction, only after every point was measured.
        warehouse.store.replace(
            {
                "runs": result.runs,
                "requests": result.requests,
                "server_metrics": result.server_metrics,
                "handoff_variants": result.handoff_variants,
                "slo_capacity": result.slo_capacity,
                "launch_servers": result.launch_servers,
            },
            where={"campaign_id": campaign.id, "arm": arm},
        )
        invalid = [r for r in result.runs if not r.valid]
        yield dg.MaterializeResult(
            metadata={
                "campaign_id": campaign.id,
                "runs": len(result.runs),
                "invalid_runs": len(invalid),
                "requests": len(result.requests),
                "best_output_tok_per_s": max(r.output_throughput for r in result.runs),
                "launches": len({r.run_id.split("/")[1] for r in result.runs}),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="all_runs_valid",
                    passed=not invalid,
                    description=(
                        "every run valid"
                        if not invalid
                        else f"{len(invalid)} invalid: {invalid[0].invalid_reason}"
                    ),
                ),
                *([_preflight_check(result.launch_servers)] if arm == "disaggregated" else []),
            ],
        )

    return run


def _check_names(arm: str) -> list[str]:
    return ["all_runs_valid", *(["kv_transport_preflight"] if arm == "disaggregated" else [])]


def _preflight_check(servers: list) -> dg.AssetCheckResult:
    findings = transport_findings(servers)
    return dg.AssetCheckResult(
        check_name="kv_transport_preflight",
        passed=not findings,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(findings) or describe(servers),
    )


single_node_run, replicated_run, disaggregated_run = (
    _arm_asset(arm) for arm in ("single", "replicated", "disaggregated")
)
