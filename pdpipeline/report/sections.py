"""What the report says, built once as data from a campaign: the verdicts in the order a reader
wants them, then its sections (each a title, what to read in it, and a table), which the markdown
summary (report/markdown.py) and the HTML page (report/page.py) both render."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from pdpipeline.report import tables
from pdpipeline.report.breakdown import per_setup
from pdpipeline.report.capacity import capacity_sentences
from pdpipeline.report.formats import num
from pdpipeline.report.frontier import frontier, frontier_sentences
from pdpipeline.report.kvcost import RUN_FACTOR, SETTING_FACTOR
from pdpipeline.report.load import Campaign
from pdpipeline.report.tables import Table
from pdpipeline.report.transport import caveat_lines
from pdpipeline.report.verdict import headline, tier_verdicts, verdicts


@dataclass(frozen=True)
class Section:
    """A titled part of the report below its verdicts."""

    id: str
    title: str
    note: str = ""  # how to read its table (the page says it above the table)
    paragraphs: tuple[str, ...] = ()
    items: tuple[str, ...] = ()
    table: Table | None = None
    scroll: bool = False  # many rows: on the page the table scrolls inside itself


@dataclass(frozen=True)
class Page:
    """What the page and the summary say, in the order they say it."""

    campaign_id: str
    campaign: dict  # its `campaigns` row: profile, start, git
    recommendation: list[str]  # per tier and shape: what to deploy, and what it buys
    tiers: list[str]  # one sentence per SLO tier
    capacity: list[str]  # the rate search's highest rate per GPU, per tier and shape
    left_out: str  # the transport-degraded runs the tier verdicts leave out; "" for none
    headline: str
    frontier: list[str]  # who leads where on the frontier, one sentence per workload shape
    points: list[str]  # one sentence per workload point
    link: str | None  # the link the KV crossed, where hardware_check found its rate
    comparison: Table  # the page's: per-GPU figures and ratios
    summary_comparison: list[Table]  # the summary's: with totals, and KV transfer
    hosts: Table
    sections: list[Section] = field(default_factory=list)  # cost model, breakdown, preflight


def page_of(campaign: Campaign) -> Page:
    """The report of a campaign whose derived tables are in place (`analysis.completed`)."""
    comparison, fit = campaign["comparison"], campaign["kv_cost_fit"]
    recommendations = campaign["recommendations"]
    points = verdicts(comparison)
    kv_cost = kv_cost_lines(campaign["kv_cost_model"], fit)
    sections = [
        Section(
            "kv-cost",
            "KV transfer cost model",
            paragraphs=tuple(line for line in kv_cost if not line.startswith("- ")),
            items=tuple(line[2:] for line in kv_cost if line.startswith("- ")),
            table=tables.residuals(fit),
        )
        if kv_cost
        else None,
        _table_section(
            "breakdown",
            "Where a disaggregated request's time goes",
            "Per setup and load, ms: the medians of the proxy's timing of each request in the "
            "steady window and the engines' means (queue, prefill, KV post and transfer), "
            "averaged over repeats; the handoff beyond the KV is decode admission and its first "
            "step.",
            tables.breakdown(per_setup(campaign.handoffs)),
        ),
        _table_section(
            "preflight",
            "KV transport preflight",
            "Per disaggregated launch, before its first point: the UCX lanes NIXL chose for the "
            "KV reads or writes (UCX_PROTO_INFO), the block size, the KV layout vLLM logged and "
            "whether it keeps a block's layers in one region, the NIXL descriptors one handoff "
            "posted per block, and the CPU each server burns while idle.",
            tables.preflight(campaign["launch_servers"]),
        ),
    ]
    return Page(
        campaign_id=campaign.campaign_id,
        campaign=campaign["campaigns"].row(0, named=True) if campaign["campaigns"].height else {},
        recommendation=[
            *recommendations["sentence"].to_list(),
            *caveat_lines(recommendations["caveat"]),
        ],
        tiers=[v.sentence() for v in tier_verdicts(campaign["slo_goodput"])],
        capacity=capacity_sentences(campaign["slo_capacity"]),
        left_out=left_out(fit),
        headline=headline(points),
        frontier=frontier_sentences(frontier(comparison)),
        points=[p.sentence() for p in points],
        link=link_sentence(comparison),
        comparison=tables.page_comparison(comparison),
        summary_comparison=tables.summary_comparison(comparison),
        hosts=tables.hosts(campaign["hosts"]),
        sections=[s for s in sections if s is not None],
    )


def _table_section(id: str, title: str, note: str, table: Table | None) -> Section | None:
    return None if table is None else Section(id, title, note, table=table, scroll=True)


def left_out(fit: pl.DataFrame) -> str:
    """The transport-degraded runs the tier verdicts leave out, as a sentence; "" for none."""
    degraded = fit.filter(pl.col("degraded"))
    if not degraded.height:
        return ""
    return (
        f"Left out of the tier verdicts, the recommendation and the regime map: "
        f"{degraded.height} run(s) whose KV transport was degraded (see the KV transfer cost "
        f"model)."
    )


def kv_cost_lines(models: pl.DataFrame, fit: pl.DataFrame) -> list[str]:
    """Per link, the fitted cost of a KV transfer, what it and the runs achieve against the
    link, and how well it predicts a setting it did not see; then the degraded runs (each a
    line starting "- ")."""
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
        fitted_sizes = tables.parsed(m["block_sizes"])
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
            f"{source}), R² {num(m['r2'])}; {held_out}. The runs achieved "
            f"{num(achieved)} GB/s (median)"
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


def link_sentence(comparison: pl.DataFrame) -> str | None:
    """The link the KV cache crossed, where hardware_check found its rate; where the layouts
    crossed different links, each with the layouts that crossed it."""
    known = comparison.drop_nulls("kv_link_gbyte_per_s")
    if not known.height:
        return None
    links = known.partition_by("kv_link", "kv_link_gbyte_per_s", maintain_order=True)
    if len(links) == 1:
        return f"KV link between prefill and decode: {_link_text(known)}."
    parts = []
    for rows in links:
        layouts = ", ".join(sorted(rows["layout"].drop_nulls().unique().to_list()))
        text = _link_text(rows, aside=True)
        parts.append(f"{layouts}: {text}" if layouts else text)
    return f"KV links between prefill and decode: {'; '.join(parts)}."


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
