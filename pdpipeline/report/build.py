"""A campaign's report: PNG figures, a self-contained HTML page and a markdown summary."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pdpipeline.report import plots
from pdpipeline.report.breakdown import breakdown
from pdpipeline.report.breakdown import markdown as breakdown_markdown
from pdpipeline.report.campaign import campaign_comparison, campaign_kv_cost, campaign_links
from pdpipeline.report.capacity import capacity_sentences
from pdpipeline.report.compare import POINT_KEYS, SERIES_KEYS, markdown, with_current_columns
from pdpipeline.report.frontier import frontier, frontier_sentences, leaders
from pdpipeline.report.kvcost import RUN_FACTOR, SETTING_FACTOR, setting_residuals
from pdpipeline.report.recommend import recommendations
from pdpipeline.report.regression import regressions
from pdpipeline.report.series import Series
from pdpipeline.report.transport import PREFLIGHT_TITLE, caveat_lines, preflight_markdown
from pdpipeline.report.verdict import headline, tier_verdicts, verdicts
from pdpipeline.warehouse.store import Warehouse

CAMPAIGN_TABLES = (
    "campaigns",
    "hosts",
    "kv_cache",
    "runs",
    "comparison",
    "slo_goodput",
    "regime_map",
    "recommendations",
    "kv_cost_model",
    "kv_cost_fit",
    "slo_capacity",
    "launch_servers",
)


# What each figure shows, as its caption and alt text on the page; the page shows them in this
# order, the frontier first: it answers which setup to pick for a given interactivity.
CAPTIONS = {
    "frontier": "Frontier: output tokens/s per GPU against tokens/s per user over the load "
    "sweep; each setup's front a staircase, dominated points faint, the top strip the leader",
    "regime": "Regime map: the setup serving most requests/s per GPU at each TTFT and TPOT "
    "limit (its best load within them), hatched where the gap to replicated is within the spread",
    "throughput_per_gpu": "Output tokens/s per GPU against load (error bars: run-to-run sd)",
    "throughput": "Output tokens/s against load",
    "latency": "TTFT and TPOT against load (p50 solid, p99 dashed)",
    "goodput": "Goodput: requests/s meeting the SLO, against load",
    "latency_cdf": "TTFT and TPOT distributions at the highest load",
    "kv_transfer": "KV transfer: time per transfer against prediction, and GB/s against the link",
    "kv_cost": "KV transfer cost model: each run's time per transfer against the link's fitted "
    "fixed + per-descriptor + per-byte cost (hollow: fitted without the run's setting)",
    "history": "Best output tokens/s per GPU across this profile's campaigns",
}


@dataclass
class Report:
    campaign_id: str
    directory: Path
    figures: dict[str, Path]
    html_path: Path
    summary_md: str  # verdict_md, then details_md
    verdict_md: str  # the title, the verdicts and the frontier sentence: what to read first
    details_md: str  # the per-point verdicts, the KV link and the comparison tables


def load(warehouse: Warehouse, campaign_id: str) -> dict[str, pl.DataFrame]:
    """The campaign's tables, its valid runs' requests and its profile's trend, each with the
    columns older campaigns lack filled in (`with_current_columns`)."""
    frames = {
        t: warehouse.query(f"SELECT * FROM {t} WHERE campaign_id = ?", [campaign_id])
        for t in CAMPAIGN_TABLES
    }
    # A rate search's runs sit at rates of its own per series: its answer is slo_capacity.
    frames["runs"] = frames["runs"].filter(pl.col("searched_for").is_null())
    frames["requests"] = warehouse.query(
        """
        SELECT q.arm, r.layout, r.engine_variant, r.variant, q.ok, q.ttft_s, q.tpot_s,
               r.input_len, r.output_len, r.concurrency, r.request_rate
        FROM requests q JOIN runs r USING (run_id)
        WHERE q.campaign_id = ? AND r.valid AND r.searched_for IS NULL
        """,
        [campaign_id],
    )
    profile = frames["campaigns"]["profile_name"][0]
    frames["trend"] = warehouse.query(
        """
        SELECT k.campaign_id, k.started_at, r.arm, r.layout, r.engine_variant, r.variant,
               max(r.output_throughput_per_gpu) AS output_throughput_per_gpu
        FROM runs r JOIN campaigns k USING (campaign_id)
        WHERE k.profile_name = ? AND r.valid AND r.searched_for IS NULL
        GROUP BY ALL ORDER BY k.started_at
        """,
        [profile],
    )
    if not frames["comparison"].height:
        # Its comparison_report has not run yet: compared here from its runs.
        frames["comparison"] = campaign_comparison(warehouse, campaign_id)
    if not frames["kv_cost_fit"].height and (frames["runs"]["kv_transfers"] > 0).any():
        links, layout = campaign_links(warehouse, campaign_id)
        requests = warehouse.query(
            "SELECT run_id, ok, kv_blocks, prompt_tokens FROM requests WHERE campaign_id = ?",
            [campaign_id],
        )
        frames |= campaign_kv_cost(warehouse, campaign_id, frames["runs"], requests, links, layout)
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
    front = frontier(comparison)
    figures = {
        "frontier": plots.frontier(front, out / "frontier.png", leaders(front)),
        "throughput_per_gpu": plots.throughput(
            comparison, out / "throughput_per_gpu.png", per_gpu=True
        ),
        "throughput": plots.throughput(comparison, out / "throughput.png", per_gpu=False),
        "latency": plots.latency(comparison, out / "latency.png"),
        "goodput": plots.goodput(comparison, out / "goodput.png", slo),
    }
    if f["requests"].height:
        figures["latency_cdf"] = plots.latency_cdfs(f["requests"], out / "latency_cdf.png")
    if comparison["kv_seconds_per_transfer"].drop_nulls().len():
        figures["kv_transfer"] = plots.kv_transfer(
            comparison, f["kv_cache"], out / "kv_transfer.png"
        )
    if f["kv_cost_fit"]["predicted_s"].drop_nulls().len():
        figures["kv_cost"] = plots.kv_cost(f["kv_cost_fit"], out / "kv_cost.png")
    if f["trend"]["campaign_id"].n_unique() > 1:
        regressed = regressions(warehouse, campaign_id, regression_threshold)
        marked = f["trend"].join(
            regressed.select(SERIES_KEYS).unique().with_columns(campaign_id=pl.lit(campaign_id)),
            on=["campaign_id", *SERIES_KEYS],
            nulls_equal=True,
        )
        figures["history"] = plots.history(f["trend"], out / "history.png", marked)
    if f["regime_map"].height:
        figures["regime"] = plots.regime_heatmap(f["regime_map"], out / "regime.png")
    points = verdicts(comparison)
    if not f["recommendations"].height:
        f["recommendations"] = recommendations(f["slo_goodput"], campaign_id)
    page = _Verdicts(
        recommendation=[
            *f["recommendations"]["sentence"].to_list(),
            *caveat_lines(f["recommendations"]["caveat"]),
        ],
        tiers=_tier_sentences(f),
        headline=headline(points),
        frontier=frontier_sentences(front),
        points=[p.sentence() for p in points],
        left_out=_left_out(f["kv_cost_fit"]),
        kv_cost=_kv_cost_lines(f["kv_cost_model"], f["kv_cost_fit"]),
        capacity=capacity_sentences(f["slo_capacity"]),
        breakdown=breakdown_markdown(breakdown(warehouse, campaign_id)),
        preflight=preflight_markdown(f["launch_servers"]),
    )
    verdict_md = "\n".join(
        [
            f"## Campaign {campaign_id}",
            "",
            *(["### Recommendation", ""] if page.recommendation else []),
            *(f"- {r}" for r in page.recommendation),
            *(["", "### Verdict per SLO tier", ""] if page.recommendation else []),
            *(f"- {t}" for t in page.tiers),
            *(f"- {c}" for c in page.capacity),
            *([""] if page.tiers or page.capacity else []),
            *([page.left_out, ""] if page.left_out else []),
            f"**{page.headline}**",
            "",
            f"Frontier: {' '.join(page.frontier)}",
        ]
    )
    details_md = "\n".join(
        [
            *(f"- {p}" for p in page.points),
            *_link_lines(comparison),
            "",
            markdown(comparison),
            *(["", "### KV transfer cost model", "", *page.kv_cost] if page.kv_cost else []),
            *(["", _residual_markdown(f["kv_cost_fit"])] if page.kv_cost else []),
            *(["", BREAKDOWN_TITLE, "", page.breakdown] if page.breakdown else []),
            *(["", PREFLIGHT_TITLE, "", page.preflight] if page.preflight else []),
        ]
    )
    summary = f"{verdict_md}\n\n{details_md}"
    html_path = out / "report.html"
    html_path.write_text(_html(campaign_id, f, figures, page))
    return Report(campaign_id, out, figures, html_path, summary, verdict_md, details_md)


@dataclass
class _Verdicts:
    """What the page and the summary say, in the order they say it."""

    recommendation: list[str]  # per tier and shape: what to deploy, and what it buys
    tiers: list[str]  # one sentence per SLO tier
    headline: str
    frontier: list[str]  # who leads where on the frontier, one sentence per workload shape
    points: list[str]  # one sentence per workload point
    left_out: str  # the transport-degraded runs the tier verdicts leave out; "" for none
    kv_cost: list[str]  # the KV transfer cost model per link, then the degraded runs
    capacity: list[str]  # the rate search's highest rate per GPU, per tier and shape
    breakdown: str  # where a disaggregated request's time goes, as a markdown table
    preflight: str  # the KV path each disaggregated launch found, as a markdown table


def _left_out(fit: pl.DataFrame) -> str:
    degraded = fit.filter(pl.col("degraded"))
    if not degraded.height:
        return ""
    return (
        f"Left out of the tier verdicts, the recommendation and the regime map: "
        f"{degraded.height} run(s) whose KV transport was degraded (see the KV transfer cost "
        f"model)."
    )


def _kv_cost_lines(models: pl.DataFrame, fit: pl.DataFrame) -> list[str]:
    """Per link, the fitted cost of a KV transfer, what it and the runs achieve against the
    link, and how well it predicts a setting it did not see; then the degraded runs."""
    lines = []
    for m in models.iter_rows(named=True):
        nominal = m["link_gbyte_per_s"]
        link = f"{m['link'] or 'An unknown link'}" + (
            f" ({nominal:.1f} GB/s nominal)" if nominal else ""
        )
        byte_rate = 1e-9 / m["per_byte_s"] if m["per_byte_s"] > 0 else None
        per_byte = (
            f"1 byte at {byte_rate:.1f} GB/s"
            + (f" ({byte_rate / nominal:.1%} of the link)" if nominal else "")
            if byte_rate
            else "no measurable cost per byte"
        )
        source = {"metric": "counted by vLLM", "estimate": "estimated from the KV blocks"}.get(
            m["descriptors_source"], "counted by vLLM for some runs, estimated for others"
        )
        fitted_sizes = _parsed(m["block_sizes"])
        sizes = ", ".join(str(b) for b in fitted_sizes)
        # At one block size descriptors grow with bytes: any split of their costs fits alike.
        split = (
            " (one block size: the per-descriptor and per-byte costs are not told apart, this "
            "split is one of many that fit alike)"
            if len(fitted_sizes) == 1
            else ""
        )
        achieved = m["achieved_gbyte_per_s"]
        held_out = (
            f"predicting each setting from the others misses by {m['held_out_error']:.0%} (median)"
            if m["held_out_error"] is not None
            else "no setting could be predicted from the others (too few runs, or another "
            "block size than theirs)"
        )
        lines.append(
            f"{link}: a transfer costs {m['fixed_s'] * 1e3:.2f} ms fixed + "
            f"{m['per_descriptor_s'] * 1e6:.2f} µs per descriptor + {per_byte}{split}; fitted over "
            f"{m['n_runs']} runs of {m['n_settings']} settings (block sizes {sizes}; descriptors "
            f"{source}), R² {_num(m['r2'])}; {held_out}. The runs achieved "
            f"{_num(achieved)} GB/s (median)"
            + (f", {achieved / nominal:.1%} of the link." if nominal and achieved else ".")
        )
    degraded = fit.filter(pl.col("degraded"))
    if degraded.height:
        lines.append(
            "Transport-degraded runs, left out of the tier verdicts, the recommendation and the "
            "regime map:"
        )
        lines += [
            f"- {r['run_id']}: {r['degraded_reason']}" for r in degraded.iter_rows(named=True)
        ]
    elif lines:
        lines.append(
            f"No run's KV transport is degraded: none took over {RUN_FACTOR:g}x the time per "
            "transfer that the link's model, fitted on its other runs, predicts, and no setting "
            f"over {SETTING_FACTOR:g}x what the model of the link's other settings predicts."
        )
    return lines


# The cost model's per-setting table: header and the cell of a `setting_residuals` row.
RESIDUAL_COLUMNS = {
    "Setting": lambda r: r["setting"],
    "Block": lambda r: str(r["block_size"]),
    "Runs": lambda r: str(r["runs"]),
    "Measured ms per transfer (median)": lambda r: _num(r["measured_ms"]),
    "Model ms": lambda r: _num(r["predicted_ms"]),
    "Residual": lambda r: "–" if r["residual"] is None else f"{r['residual']:+.0%}",
    "Held-out ms": lambda r: _num(r["held_out_ms"]),
    "GB/s": lambda r: _num(r["gbyte_per_s"]),
    "Degraded runs": lambda r: str(r["degraded_runs"]),
}


def _residual_markdown(fit: pl.DataFrame) -> str:
    rows = setting_residuals(fit)
    lines = [
        "| " + " | ".join(RESIDUAL_COLUMNS) + " |",
        "|---" * len(RESIDUAL_COLUMNS) + "|",
    ]
    for r in rows.iter_rows(named=True):
        lines.append("| " + " | ".join(cell(r) for cell in RESIDUAL_COLUMNS.values()) + " |")
    return "\n".join(lines)


def _kv_cost_section(page: _Verdicts, fit: pl.DataFrame) -> str:
    """The cost model's paragraph, its per-setting table (medians over the runs) and the
    degraded runs, as the page's section."""
    if not page.kv_cost:
        return ""
    head = "".join(
        f'<th class="text">{html.escape(c)}</th>'
        if c == "Setting"
        else f"<th>{html.escape(c)}</th>"
        for c in RESIDUAL_COLUMNS
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="text">{html.escape(cell(r))}</td>'
            if name == "Setting"
            else f"<td>{html.escape(cell(r))}</td>"
            for name, cell in RESIDUAL_COLUMNS.items()
        )
        + "</tr>"
        for r in setting_residuals(fit).iter_rows(named=True)
    )
    paragraphs = [line for line in page.kv_cost if not line.startswith("- ")]
    degraded = [line[2:] for line in page.kv_cost if line.startswith("- ")]
    return (
        '<section id="kv-cost"><h2>KV transfer cost model</h2>'
        + "".join(f'<p class="note">{html.escape(p)}</p>' for p in paragraphs)
        + (
            "<ul>" + "".join(f"<li>{html.escape(d)}</li>" for d in degraded) + "</ul>"
            if degraded
            else ""
        )
        + f'<table id="kv-cost-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        + "</section>"
    )


def _tier_sentences(f: dict[str, pl.DataFrame]) -> list[str]:
    """One sentence per SLO tier of the campaign's profile, the first thing the page and the
    summary say; none where comparison_report has not judged the campaign at its tiers."""
    return [v.sentence() for v in tier_verdicts(f["slo_goodput"])]


def _link_lines(comparison: pl.DataFrame) -> list[str]:
    """A line on the link the KV cache crossed, where hardware_check found its rate; where the
    layouts crossed different links, each with the layouts that crossed it."""
    known = comparison.drop_nulls("kv_link_gbyte_per_s")
    if not known.height:
        return []
    links = known.partition_by("kv_link", "kv_link_gbyte_per_s", maintain_order=True)
    if len(links) == 1:
        return ["", f"KV link between prefill and decode: {_link_text(known)}."]
    parts = []
    for rows in links:
        layouts = ", ".join(sorted(rows["layout"].drop_nulls().unique().to_list()))
        text = _link_text(rows, aside=True)
        parts.append(f"{layouts}: {text}" if layouts else text)
    return ["", f"KV links between prefill and decode: {'; '.join(parts)}."]


def _link_text(rows: pl.DataFrame, aside: bool = False) -> str:
    """'h100 NVLink, 478.1 GB/s nominal; the KV transfers achieved 1.2% to 2.3% of it' (that
    share in parentheses as an `aside`, in a list of links)."""
    link = rows.row(0, named=True)
    text = f"{link['kv_link']}, {link['kv_link_gbyte_per_s']:.1f} GB/s nominal"
    achieved = rows["kv_link_fraction"].drop_nulls()
    if not achieved.len():
        return text
    share = f"the KV transfers achieved {achieved.min():.1%} to {achieved.max():.1%} of it"
    return f"{text} ({share})" if aside else f"{text}; {share}"


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _figure(key: str, path: Path) -> str:
    caption = CAPTIONS.get(key, key)
    return (
        f'<figure id="figure-{key}">{_image(path, caption)}'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _num(value: float | None, unit: str = "") -> str:
    """Three significant figures at most, never in exponent form: what a reader compares."""
    if value is None:
        return "–"
    size = abs(value)
    text = (
        f"{value:,.0f}"
        if size >= 100
        else f"{value:.1f}"
        if size >= 10
        else f"{value:.2f}"
        if size >= 0.1 or size == 0
        else f"{value:.2g}"
    )
    return f"{text}{unit}"


def _spread(mean: float | None, sd: float | None) -> str:
    """'565.3 ± 3.5': the spread to the mean's decimals (more would claim a precision the mean
    does not show)."""
    text = _num(mean)
    if mean is None or sd is None:
        return text
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{text} ± {sd:,.{decimals}f}"


def _pair(a: float | None, b: float | None) -> str:
    return f"{_num(a)} / {_num(b)}"


def _load(row: dict) -> str:
    return (
        f"c={row['concurrency']}"
        if row["concurrency"] is not None
        else f"{row['request_rate']:g} req/s"
    )


# The comparison table's columns: header (units in it) and the cell of a row. Ratios and
# per-GPU figures only: totals are per GPU times GPUs, and the summary's markdown has them.
COMPARISON_COLUMNS = {
    "Setup": lambda r: Series.of(r).label,
    "GPUs": lambda r: str(r["gpus"]),
    "Valid runs": lambda r: str(r["valid_repeats"]),
    "Output tok/s per GPU (± sd)": lambda r: _spread(
        r["output_throughput_per_gpu"], r["output_throughput_per_gpu_std"]
    ),
    "vs replicated": lambda r: _num(r["per_gpu_vs_replicated"], "x"),
    "TTFT p50 / p99 (ms)": lambda r: _pair(r["ttft_p50_ms"], r["ttft_p99_ms"]),
    "TPOT p50 / p99 (ms)": lambda r: _pair(r["tpot_p50_ms"], r["tpot_p99_ms"]),
    "Goodput (req/s in SLO)": lambda r: _num(r["goodput"]),
    "KV MB per transfer (predicted)": lambda r: (
        "–"
        if r["kv_bytes_per_transfer"] is None
        else f"{_num(r['kv_bytes_per_transfer'] / 1e6)} "
        f"({_num(r['kv_predicted_bytes'] and r['kv_predicted_bytes'] / 1e6)})"
    ),
    "KV ms per transfer": lambda r: _num(
        r["kv_seconds_per_transfer"] and r["kv_seconds_per_transfer"] * 1000
    ),
    "KV GB/s (of link)": lambda r: (
        "–"
        if r["kv_gbyte_per_s"] is None
        else _num(r["kv_gbyte_per_s"])
        + (f" ({r['kv_link_fraction']:.1%})" if r["kv_link_fraction"] is not None else "")
    ),
}


def _comparison_table(comparison: pl.DataFrame) -> str:
    """One row per point and series; the point's shape and load once, spanning its rows."""
    head = "".join(
        f'<th class="text">{html.escape(c)}</th>'
        if c in ("Prompt / output tokens", "Load", "Setup")
        else f"<th>{html.escape(c)}</th>"
        for c in ["Prompt / output tokens", "Load", *COMPARISON_COLUMNS]
    )
    body = []
    ordered = comparison.sort(
        pl.col("input_len").str.extract(r"^(\d+)").cast(pl.Int64),
        pl.col("output_len").str.extract(r"^(\d+)").cast(pl.Int64),
        maintain_order=True,
    )
    for _, group in ordered.group_by(POINT_KEYS, maintain_order=True):
        rows = group.rows(named=True)
        for i, row in enumerate(rows):
            cells = "".join(
                f'<td class="setup">{html.escape(cell(row))}</td>'
                if name == "Setup"
                else f"<td>{html.escape(cell(row))}</td>"
                for name, cell in COMPARISON_COLUMNS.items()
            )
            if i == 0:
                span = f' rowspan="{len(rows)}"'
                point = (
                    f'<td{span} class="point">{html.escape(row["input_len"])} / '
                    f"{html.escape(row['output_len'])}</td>"
                    f'<td{span} class="point">{html.escape(_load(row))}</td>'
                )
                cells = point + cells
            body.append(f"<tr>{cells}</tr>")
    return (
        f'<table id="comparison"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _parsed(value):
    """A JSON column as stored (text) or as read back (already a list or a dict)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _gpus(row: dict) -> str:
    """The GPUs nvidia-smi listed, counted by model."""
    listed = _parsed(row.get("gpus")) or []
    if not isinstance(listed, list) or not listed:
        return str(row.get("gpu_count") or "–")
    names: dict[str, int] = {}
    for gpu in listed:
        name = gpu.get("name", "?") if isinstance(gpu, dict) else str(gpu)
        names[name] = names.get(name, 0) + 1
    return ", ".join(f"{n} × {name}" for name, n in names.items())


def _versions(row: dict) -> str:
    """'python 3.12.3, vllm 0.24.0, nixl 1.5.1': the packages found, the missing left out."""
    found = _parsed(row.get("versions")) or {}
    if not isinstance(found, dict):
        return str(found)
    return ", ".join(f"{name} {v}" for name, v in found.items() if v) or "–"


def _rate(value) -> str:
    if value is None or value == "":
        return "–"
    return _num(float(value))


HOST_COLUMNS = {
    "Host": lambda r: f"{r['host']} ({r['hostname']})" if r.get("hostname") else r["host"],
    "CPU": lambda r: f"{r.get('cpu_model') or '?'} × {r.get('cpu_count') or '?'}",
    "Memory (GB)": lambda r: _num(r["memory_bytes"] and r["memory_bytes"] / 1e9),
    "GPUs": _gpus,
    "Network (Gbit/s)": lambda r: _rate(r.get("link_gbit_per_s")),
    "NVLink (Gbit/s)": lambda r: _rate(r.get("nvlink_gbit_per_s")),
    "Versions": _versions,
    "Model": lambda r: (
        f"{r.get('model_dir') or '–'}" + ("" if r.get("model_present") else " (missing)")
    ),
}
TEXT_COLUMNS = {"Host", "CPU", "GPUs", "Versions", "Model"}


def _hosts_table(hosts: pl.DataFrame) -> str:
    head = "".join(
        f'<th class="{"text" if c in TEXT_COLUMNS else ""}">{html.escape(c)}</th>'
        for c in HOST_COLUMNS
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"text" if name in TEXT_COLUMNS else ""}">{html.escape(cell(row))}</td>'
            for name, cell in HOST_COLUMNS.items()
        )
        + "</tr>"
        for row in hosts.iter_rows(named=True)
    )
    return f'<table id="hosts"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _link_caption(comparison: pl.DataFrame) -> str:
    lines = _link_lines(comparison)
    return f'<p class="note">{html.escape(lines[-1])}</p>' if lines else ""


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; max-width: 1400px; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.6em 0 1.2em; width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.45em; text-align: right; }
th { background: #f3f3f3; vertical-align: bottom; font-weight: 600; }
td { white-space: nowrap; }
th.text, td.text, td.setup { text-align: left; } td.text { white-space: normal; }
td.point { text-align: left; background: #fafafa; font-weight: 600; }
figure { margin: 1.2em 0; } img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; }
.headline { font-size: 1.2em; font-weight: 600; }
.tiers li { font-size: 1.05em; margin: 0.3em 0; }
.frontier-sentence { font-size: 1.05em; max-width: 75em; }
.note { color: #444; }
details summary { cursor: pointer; color: #333; }
"""


BREAKDOWN_TITLE = "### Where a disaggregated request's time goes"


def _breakdown_section(table_md: str) -> str:
    return _table_section(
        "breakdown",
        "Where a disaggregated request's time goes",
        "Per setup and load, ms: the medians of the proxy's timing of each request in the steady "
        "window and the engines' means (queue, prefill, KV post and transfer), averaged over "
        "repeats; the handoff beyond the KV is decode admission and its first step.",
        table_md,
        text_columns=2,
    )


def _preflight_section(table_md: str) -> str:
    return _table_section(
        "preflight",
        "KV transport preflight",
        "Per disaggregated launch, before its first point: the UCX lanes NIXL chose for the KV "
        "reads or writes (UCX_PROTO_INFO), the block size, the KV layout vLLM logged and whether "
        "it keeps a block's layers in one region, the NIXL descriptors one handoff posted per "
        "block, and the CPU each server burns while idle.",
        table_md,
        text_columns=3,
    )


def _table_section(section_id: str, title: str, note: str, table_md: str, text_columns: int) -> str:
    """A markdown table as an HTML section; rows are many, so it scrolls inside itself."""
    if not table_md:
        return ""
    header, _, *rows = table_md.splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in [header, *rows]]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"text" if i < text_columns else ""}">{html.escape(c)}</td>'
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in cells[1:]
    )
    return (
        f'<section id="{section_id}"><h2>{html.escape(title)}</h2>'
        f'<p class="note">{html.escape(note)}</p>'
        f'<div style="overflow-x:auto"><table><tr>{head}</tr>{body}</table></div></section>'
    )


def _html(campaign_id: str, f: dict[str, pl.DataFrame], figures: dict[str, Path], page) -> str:
    campaign = f["campaigns"].row(0, named=True) if f["campaigns"].height else {}
    tiers = (
        '<ul id="tiers" class="tiers">'
        + "".join(f"<li>{html.escape(t)}</li>" for t in [*page.tiers, *page.capacity])
        + "</ul>"
        if page.tiers or page.capacity
        else ""
    )
    points = "".join(f"<li>{html.escape(p)}</li>" for p in page.points)
    recommendation = (
        '<section id="recommendation"><h2>Recommendation</h2><ul class="tiers">'
        + "".join(f"<li>{html.escape(r)}</li>" for r in page.recommendation)
        + "</ul></section>"
        if page.recommendation
        else ""
    )
    frontier = "".join(f"<li>{html.escape(s)}</li>" for s in page.frontier)
    order = list(CAPTIONS)
    others = "".join(
        _figure(k, figures[k])
        for k in sorted(figures, key=lambda k: order.index(k) if k in order else len(order))
        if k != "frontier"
    )
    main = _figure("frontier", figures["frontier"]) if "frontier" in figures else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pdpipeline — {html.escape(campaign_id)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style></head><body>
<h1>Campaign {html.escape(campaign_id)}</h1>
<p>Profile <b>{html.escape(str(campaign.get("profile_name", "")))}</b>, started
{html.escape(str(campaign.get("started_at", "")))},
git {html.escape(str(campaign.get("git_sha")))}.</p>
{recommendation}
<section id="verdicts">
<h2>Verdict</h2>
{tiers}
{f'<p class="note" id="left-out">{html.escape(page.left_out)}</p>' if page.left_out else ""}
<p class="headline" id="headline">{html.escape(page.headline)}</p>
<details><summary>Per workload point ({len(page.points)})</summary>
<ul id="verdict">{points}</ul></details>
</section>
<section id="frontier">
<h2>Throughput against interactivity</h2>
<ul class="frontier-sentence" id="frontier-sentence">{frontier}</ul>
{main}
</section>
<h2>Figures</h2>
{others}
<h2>Comparison</h2>
{_link_caption(f["comparison"])}
{_comparison_table(f["comparison"])}
{_kv_cost_section(page, f["kv_cost_fit"])}
{_breakdown_section(page.breakdown)}
{_preflight_section(page.preflight)}
<h2>Hosts</h2>
{_hosts_table(f["hosts"])}
</body></html>
"""
