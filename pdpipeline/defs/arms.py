"""The three arms: the same runner, workload, client and proxy path for each."""

import dagster as dg

from pdpipeline.campaign import Campaign
from pdpipeline.defs.resources import ClusterResource, WarehouseResource
from pdpipeline.errors import HostCheckError

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
        # One arm on the cluster at a time, also across runs.
        pool="cluster",
        check_specs=[
            dg.AssetCheckSpec(
                "all_runs_valid",
                asset=ARM_ASSETS[arm],
                description="No run of the arm had a failed or short request",
            )
        ],
    )
    def run(
        context: dg.AssetExecutionContext,
        hardware_check: Campaign,
        cluster: ClusterResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        if hardware_check.unmet_needs:
            raise HostCheckError("; ".join(hardware_check.unmet_needs))
        if arm not in hardware_check.profile.enabled_arms:
            context.log.info(f"profile {hardware_check.profile.name} has no {arm} arm")
            return dg.MaterializeResult(
                metadata={"skipped": True},
                check_results=[
                    dg.AssetCheckResult(
                        check_name="all_runs_valid", passed=True, description="arm not in profile"
                    )
                ],
            )
        result = cluster.run_arm(hardware_check, arm, context.log)
        # All rows of the arm in one transaction, only after every point was measured.
        warehouse.store.replace(
            {
                "runs": result.runs,
                "requests": result.requests,
                "server_metrics": result.server_metrics,
                "handoff_variants": result.handoff_variants,
            },
            where={"campaign_id": hardware_check.id, "arm": arm},
        )
        invalid = [r for r in result.runs if not r["valid"]]
        return dg.MaterializeResult(
            metadata={
                "campaign_id": hardware_check.id,
                "runs": len(result.runs),
                "invalid_runs": len(invalid),
                "requests": len(result.requests),
                "best_output_tok_per_s": max(r["output_throughput"] for r in result.runs),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="all_runs_valid",
                    passed=not invalid,
                    description=(
                        "every run valid"
                        if not invalid
                        else f"{len(invalid)} invalid: {invalid[0]['invalid_reason']}"
                    ),
                )
            ],
        )

    return run


single_node_run, replicated_run, disaggregated_run = (
    _arm_asset(arm) for arm in ("single", "replicated", "disaggregated")
)
