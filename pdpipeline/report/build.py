"""A campaign's report: PNG figures, a self-contained HTML page and a markdown summary."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pdpipeline.report import plots
from pdpipeline.report.campaign import campaign_comparison
from pdpipeline.report.compare import arm_label, markdown, with_current_columns
from pdpipeline.report.regression import regressions
from pdpipeline.report.verdict import headline, verdicts
from pdpipeline.warehouse.store import Warehouse

CAMPAIGN_TABLES = ("campaigns", "hosts", "kv_cache", "runs", "comparison")


@dataclass
class Report:
    campaign_id: str
    directory: Path
    figures: dict[str, Path]
    html_path: Path
    summary_md: str


def load(warehouse: Warehouse, campaign_id: str) -> dict[str, pl.DataFrame]:
    """The campaign's tables, its valid runs' requests and its profile's trend, each with the
    columns older campaigns lack filled in (`with_current_columns`)."""
    frames = {
        t: warehouse.query(f"SELECT * FROM {t} WHERE campaign_id = ?", [campaign_id])
        for t in CAMPAIGN_TABLES
    }
    frames["requests"] = warehouse.query(
        """
        SELECT q.arm, r.variant, q.ok, q.ttft_s, q.tpot_s, r.input_len, r.output_len,
               r.concurrency, r.request_rate
        FROM requests q JOIN runs r USING (run_id)
        WHERE q.campaign_id = ? AND r.valid
        """,
        [campaign_id],
    )
    profile = frames["campaigns"]["profile_name"][0]
    frames["trend"] = warehouse.query(
        """
        SELECT k.campaign_id, k.started_at, r.arm, r.variant,
               max(r.output_throughput_per_gpu) AS output_throughput_per_gpu
        FROM runs r JOIN campaigns k USING (campaign_id)
        WHERE k.profile_name = ? AND r.valid GROUP BY ALL ORDER BY k.started_at
        """,
        [profile],
    )
    if not frames["comparison"].height:
        # Its comparison_report has not run yet: compared here from its runs.
        frames["comparison"] = campaign_comparison(warehouse, campaign_id)
    return {name: with_current_columns(frame) for name, frame in frames.items()}


def build(
    warehouse: Warehouse,
    campaign_id: str,
    directory: str | Path,
    regression_threshold: float = 0.10,
) -> Report:
    """Write the figures and `report.html` for one campaign into `directory`."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    f = load(warehouse, campaign_id)
    comparison, runs = f["comparison"], f["runs"]
    slo = f"TTFT <= {runs['slo_ttft_ms'][0]:.0f} ms, TPOT <= {runs['slo_tpot_ms'][0]:.0f} ms"
    figures = {
        "throughput": plots.throughput(comparison, out / "throughput.png", per_gpu=False),
        "throughput_per_gpu": plots.throughput(
            comparison, out / "throughput_per_gpu.png", per_gpu=True
        ),
        "latency": plots.latency(comparison, out / "latency.png"),
        "goodput": plots.goodput(comparison, out / "goodput.png", slo),
    }
    if f["requests"].height:
        figures["latency_cdf"] = plots.latency_cdfs(f["requests"], out / "latency_cdf.png")
    if comparison["kv_seconds_per_transfer"].drop_nulls().len():
        figures["kv_transfer"] = plots.kv_transfer(
            comparison, f["kv_cache"], out / "kv_transfer.png"
        )
    if f["trend"]["campaign_id"].n_unique() > 1:
        regressed = regressions(warehouse, campaign_id, regression_threshold)
        marked = f["trend"].join(
            regressed.select("arm", "variant")
            .unique()
            .with_columns(campaign_id=pl.lit(campaign_id)),
            on=["campaign_id", "arm", "variant"],
            nulls_equal=True,
        )
        figures["history"] = plots.history(f["trend"], out / "history.png", marked)
    points = verdicts(comparison)
    summary = "\n".join(
        [
            f"## Campaign {campaign_id}",
            "",
            f"**{headline(points)}**",
            "",
            *(f"- {p.sentence()}" for p in points),
            *_link_lines(comparison),
            "",
            markdown(comparison),
        ]
    )
    html_path = out / "report.html"
    html_path.write_text(_html(campaign_id, f, figures, points, summary))
    return Report(campaign_id, out, figures, html_path, summary)


def _link_lines(comparison: pl.DataFrame) -> list[str]:
    """A line on the link the KV cache crossed, where hardware_check found its rate."""
    known = comparison.drop_nulls("kv_link_gbyte_per_s")
    if not known.height:
        return []
    link = known.row(0, named=True)
    achieved = known["kv_link_fraction"].drop_nulls()
    share = (
        f"; the KV transfers achieved {achieved.min():.1%} to {achieved.max():.1%} of it"
        if achieved.len()
        else ""
    )
    return [
        "",
        f"KV link between prefill and decode: {link['kv_link']}, "
        f"{link['kv_link_gbyte_per_s']:.1f} GB/s nominal{share}.",
    ]


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{path.stem}" src="data:image/png;base64,{data}">'


def _table(frame: pl.DataFrame, columns: list[str], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(row[c])}</td>" for c in columns) + "</tr>"
        for row in frame.iter_rows(named=True)
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _shown(comparison: pl.DataFrame) -> pl.DataFrame:
    """The comparison as the page shows it: arm and variant in one label, link share in %."""
    return comparison.with_columns(
        arm=pl.struct("arm", "variant").map_elements(
            lambda r: arm_label(r["arm"], r["variant"]), return_dtype=pl.Utf8
        ),
        of_link=pl.col("kv_link_fraction").map_elements(
            lambda f: f"{f:.2%}", return_dtype=pl.Utf8, skip_nulls=True
        ),
    )


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 10 else f"{value:,.1f}"
    return html.escape(str(value))


def _html(campaign_id, f, figures, points, summary) -> str:
    campaign = f["campaigns"].row(0, named=True) if f["campaigns"].height else {}
    comparison_columns = [
        "input_len",
        "output_len",
        "concurrency",
        "request_rate",
        "arm",
        "gpus",
        "valid_repeats",
        "output_throughput",
        "output_throughput_per_gpu",
        "output_throughput_per_gpu_std",
        "per_gpu_vs_single",
        "per_gpu_vs_replicated",
        "ttft_p50_ms",
        "ttft_p99_ms",
        "tpot_p50_ms",
        "tpot_p99_ms",
        "goodput",
        "kv_bytes_per_transfer",
        "kv_seconds_per_transfer",
        "kv_gbyte_per_s",
        "kv_link",
        "of_link",
    ]
    host_columns = [
        "host",
        "hostname",
        "cpu_model",
        "cpu_count",
        "gpu_count",
        "gpus",
        "link_gbit_per_s",
        "nvlink_gbit_per_s",
        "versions",
    ]
    verdict_items = "".join(f"<li>{html.escape(p.sentence())}</li>" for p in points)
    images = "".join(
        f"<figure>{_image(p)}<figcaption>{k}</figcaption></figure>" for k, p in figures.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pdpipeline — {html.escape(campaign_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }}
th {{ background: #f3f3f3; }} figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }}
.headline {{ font-size: 1.2em; font-weight: 600; }}
</style></head><body>
<h1>Campaign {html.escape(campaign_id)}</h1>
<p>Profile <b>{html.escape(str(campaign.get("profile_name", "")))}</b>, started
{html.escape(str(campaign.get("started_at", "")))},
git {html.escape(str(campaign.get("git_sha")))}.</p>
<p class="headline" id="headline">{html.escape(headline(points))}</p>
<ul id="verdict">{verdict_items}</ul>
<h2>Comparison</h2>
{_table(_shown(f["comparison"]), comparison_columns, "comparison")}
<h2>Figures</h2>
{images}
<h2>Hosts</h2>
{_table(f["hosts"], host_columns, "hosts")}
</body></html>
"""
