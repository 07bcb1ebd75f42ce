"""The report as markdown: the summary the CLI prints and the Dagster UI shows, rendered from
the sections (report/sections.py)."""

from __future__ import annotations

import polars as pl

from pdpipeline.report import tables
from pdpipeline.report.sections import Page, Section
from pdpipeline.report.tables import Table


def table(t: Table) -> str:
    """A markdown table: a header row, a rule, a row per row."""
    lines = ["| " + " | ".join(t.headers) + " |", "|" + "---|" * len(t.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in t.rows]
    return "\n".join(lines)


def verdict(page: Page) -> str:
    """The title, the recommendation, the verdicts and the frontier sentence: what to read
    first."""
    return "\n".join(
        [
            f"## Campaign {page.campaign_id}",
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


def details(page: Page) -> str:
    """The per-point verdicts, the KV link, the comparison tables and the sections."""
    return "\n".join(
        [
            *(f"- {p}" for p in page.points),
            *(["", page.link] if page.link else []),
            "",
            "\n\n".join(table(t) for t in page.summary_comparison),
            *(line for s in page.sections for line in ["", *_section(s)]),
        ]
    )


def _section(section: Section) -> list[str]:
    said = [*section.paragraphs, *(f"- {item}" for item in section.items)]
    return [
        f"### {section.title}",
        "",
        *said,
        *([""] if said and section.table else []),
        *([table(section.table)] if section.table else []),
    ]


def comparison(frame: pl.DataFrame) -> str:
    """A comparison (with the current columns) as the summary's tables: throughput and latency
    per point, then KV transfer."""
    return "\n\n".join(table(t) for t in tables.summary_comparison(frame))


def breakdown(per_setup: pl.DataFrame) -> str:
    """`breakdown.per_setup`'s frame as the summary's table; "" without rows."""
    found = tables.breakdown(per_setup)
    return table(found) if found else ""


def preflight(servers: pl.DataFrame) -> str:
    """The KV servers of every launch as the summary's table; "" when the campaign has none."""
    found = tables.preflight(servers)
    return table(found) if found else ""
