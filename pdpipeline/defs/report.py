"""comparison_report: every arm against single and against replicated, per workload point."""

import base64

import dagster as dg

from pdpipeline.defs.arms import ARM_ASSETS
from pdpipeline.defs.partitions import campaigns, stored_campaign
from pdpipeline.defs.resources import WarehouseResource
from pdpipeline.report.build import build
from pdpipeline.report.campaign import campaign_comparison
from pdpipeline.report.compare import arm_label
from pdpipeline.report.regression import regressions


class ReportConfig(dg.Config):
    # A change beyond this fraction against the previous campaign counts as a regression.
    regression_threshold: float = 0.10


@dg.asset(
    group_name="benchmark",
    partitions_def=campaigns,
    deps=["kv_cache_analysis", *ARM_ASSETS.values()],
    check_specs=[
        dg.AssetCheckSpec(
            "campaign_runs_valid",
            asset="comparison_report",
            description="Every run of every arm in the campaign is valid",
        ),
        dg.AssetCheckSpec(
            "no_regression",
            asset="comparison_report",
            description="No arm lost per-GPU throughput or TTFT p50 beyond the threshold "
            "since the previous campaign of the profile",
        ),
    ],
)
def comparison_report(
    context: dg.AssetExecutionContext, config: ReportConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Throughput per GPU and latency of each arm against the single and replicated baselines."""
    campaign = stored_campaign(context, warehouse)
    runs = warehouse.store.query("SELECT * FROM runs WHERE campaign_id = ?", [campaign.id])
    table = campaign_comparison(warehouse.store, campaign.id)
    link = table.drop_nulls("kv_link_gbyte_per_s").head(1)
    warehouse.store.replace({"comparison": table}, where={"campaign_id": campaign.id})
    regressed = regressions(warehouse.store, campaign.id, config.regression_threshold)
    report = build(
        warehouse.store,
        campaign.id,
        warehouse.reports_dir / campaign.id,
        config.regression_threshold,
    )
    main_plot = base64.b64encode(report.figures["throughput_per_gpu"].read_bytes()).decode()
    invalid = runs.filter(~runs["valid"])
    return dg.MaterializeResult(
        metadata={
            "campaign_id": campaign.id,
            "summary": dg.MetadataValue.md(
                f"![throughput per GPU](data:image/png;base64,{main_plot})\n\n{report.summary_md}"
            ),
            "report": dg.MetadataValue.path(str(report.html_path.resolve())),
            "runs": runs.height,
            "invalid_runs": invalid.height,
            "kv_link": (
                f"{link['kv_link'][0]}, {link['kv_link_gbyte_per_s'][0]:.1f} GB/s"
                if link.height
                else "unknown"
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="campaign_runs_valid",
                passed=invalid.height == 0 and runs.height > 0,
                description=f"{invalid.height} of {runs.height} runs invalid",
            ),
            dg.AssetCheckResult(
                check_name="no_regression",
                passed=regressed.height == 0,
                description=_regression_text(regressed, config.regression_threshold),
            ),
        ],
    )


def _regression_text(regressed, threshold: float) -> str:
    if regressed.height == 0:
        return f"no change beyond {threshold:.0%} against the previous campaign (if any)"
    first = regressed.row(0, named=True)
    return (
        f"{regressed.height} regression(s) beyond {threshold:.0%} against {first['previous']}, "
        f"e.g. {arm_label(first['arm'], first['variant'])} {first['metric']} "
        f"{first['change']:+.0%} at {first['input_len']}/{first['output_len']}"
    )
