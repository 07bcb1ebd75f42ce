"""comparison_report: every arm against single and against replicated, per workload point."""

import base64

import dagster as dg
import polars as pl

from pdpipeline.defs.arms import ARM_ASSETS
from pdpipeline.defs.partitions import campaigns, stored_campaign
from pdpipeline.defs.resources import WarehouseResource
from pdpipeline.report.analysis import analysed
from pdpipeline.report.build import render
from pdpipeline.report.figures import MAIN
from pdpipeline.report.kvcost import degraded_runs
from pdpipeline.report.regression import moved_cells, regressed
from pdpipeline.report.series import Series


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
            description="No arm lost per-GPU throughput or TTFT p50 beyond the threshold, and no "
            "cell of the regime map changed winner, since the previous campaign of the profile",
        ),
        dg.AssetCheckSpec(
            "kv_transport_not_degraded",
            asset="comparison_report",
            blocking=False,
            description="No disaggregated run moved its KV cache far slower than the link's "
            "fitted cost model allows (degraded runs are left out of the tier verdicts)",
        ),
    ],
)
def comparison_report(
    context: dg.AssetExecutionContext, config: ReportConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Throughput per GPU and latency of each arm against the single and replicated baselines."""
    campaign = stored_campaign(context, warehouse)
    read = analysed(warehouse.store, campaign.id, again=True)
    runs = read["runs"]  # every run, the rate search's too
    link = read["comparison"].drop_nulls("kv_link_gbyte_per_s").head(1)
    regressions = regressed(read, config.regression_threshold)
    moved = moved_cells(read)
    report = render(read, warehouse.reports_dir / campaign.id, config.regression_threshold)
    main_plot = base64.b64encode(report.figures[MAIN.key].read_bytes()).decode()
    invalid = runs.filter(~runs["valid"])
    return dg.MaterializeResult(
        metadata={
            "campaign_id": campaign.id,
            # The verdicts and the frontier sentence, then the frontier they read off, then
            # the per-point detail and the tables.
            "summary": dg.MetadataValue.md(
                f"{report.verdict_md}\n\n![{MAIN.key}](data:image/png;base64,{main_plot})\n\n"
                f"{report.details_md}"
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
                passed=regressions.height == 0 and moved.height == 0,
                description=_regression_text(regressions, moved, config.regression_threshold),
            ),
            _transport_check(read["kv_cost_fit"]),
        ],
    )


def _transport_check(fit: pl.DataFrame) -> dg.AssetCheckResult:
    """Passed unless a run's KV transport is degraded (report/kvcost.py): the runs, each with
    its reason."""
    degraded = degraded_runs(fit)
    if not fit.height:
        text = "no KV transfer measured"
    elif not degraded.height:
        text = f"none of {fit.height} disaggregated runs degraded"
    else:
        text = f"{degraded.height} of {fit.height} disaggregated runs degraded: " + "; ".join(
            f"{r['run_id']}: {r['degraded_reason']}" for r in degraded.iter_rows(named=True)
        )
    return dg.AssetCheckResult(
        check_name="kv_transport_not_degraded",
        passed=degraded.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=text,
        metadata={"degraded_runs": dg.MetadataValue.json(degraded["run_id"].to_list())},
    )


def _regression_text(regressed, moved, threshold: float) -> str:
    if regressed.height == 0 and moved.height == 0:
        return (
            f"no change beyond {threshold:.0%} and no regime map cell changing winner against "
            "the previous campaign (if any)"
        )
    lines = []
    if regressed.height:
        first = regressed.row(0, named=True)
        lines.append(
            f"{regressed.height} regression(s) beyond {threshold:.0%} against "
            f"{first['previous']}, e.g. {Series.of(first).label} "
            f"{first['metric']} {first['change']:+.0%} at {first['input_len']}/"
            f"{first['output_len']}"
        )
    if moved.height:
        cell = moved.row(0, named=True)
        lines.append(
            f"{moved.height} regime map cell(s) changed winner against {cell['previous']}, e.g. "
            f"at {cell['input_len']}/{cell['output_len']}, TTFT <= {round(cell['ttft_ms'], 1):g} "
            f"ms and TPOT <= {round(cell['tpot_ms'], 1):g} ms: "
            f"{Series.of(cell, 'winner_', '_before').label} before, "
            f"{Series.of(cell, 'winner_').label} now"
        )
    return "; ".join(lines)
