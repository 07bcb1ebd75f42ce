"""comparison_report: every arm against single and against replicated, per workload point."""

import base64

import dagster as dg

from pdpipeline.campaign import Campaign
from pdpipeline.compare import compare
from pdpipeline.defs.arms import ARM_ASSETS
from pdpipeline.defs.resources import WarehouseResource
from pdpipeline.kvcache import KVLayout
from pdpipeline.report.build import build


@dg.asset(
    group_name="report",
    deps=list(ARM_ASSETS.values()),
    check_specs=[
        dg.AssetCheckSpec(
            "campaign_runs_valid",
            asset="comparison_report",
            description="Every run of every arm in the campaign is valid",
        )
    ],
)
def comparison_report(
    hardware_check: Campaign, kv_cache_analysis: KVLayout, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Throughput per GPU and latency of each arm against the single and replicated baselines."""
    runs = warehouse.store.query("SELECT * FROM runs WHERE campaign_id = ?", [hardware_check.id])
    table = compare(runs, kv_cache_analysis)
    warehouse.store.replace({"comparison": table}, where={"campaign_id": hardware_check.id})
    report = build(warehouse.store, hardware_check.id, warehouse.reports_dir / hardware_check.id)
    main_plot = base64.b64encode(report.figures["throughput_per_gpu"].read_bytes()).decode()
    invalid = runs.filter(~runs["valid"])
    return dg.MaterializeResult(
        metadata={
            "campaign_id": hardware_check.id,
            "summary": dg.MetadataValue.md(
                f"![throughput per GPU](data:image/png;base64,{main_plot})\n\n{report.summary_md}"
            ),
            "report": dg.MetadataValue.path(str(report.html_path.resolve())),
            "runs": runs.height,
            "invalid_runs": invalid.height,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="campaign_runs_valid",
                passed=invalid.height == 0 and runs.height > 0,
                description=f"{invalid.height} of {runs.height} runs invalid",
            )
        ],
    )
