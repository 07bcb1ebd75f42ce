"""The report as one self-contained HTML page (figures inlined), rendered from the sections
(report/sections.py) and the figures (report/figures)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from pdpipeline.report.figures import BY_KEY, FIGURES, MAIN
from pdpipeline.report.sections import Page, Section
from pdpipeline.report.tables import Column, Table

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

e = html.escape


def _cell(column: Column, text: str, attributes: str = "") -> str:
    kind = "" if column.kind == "number" else f' class="{column.kind}"'
    return f"<td{attributes}{kind}>{e(text)}</td>"


def table(t: Table) -> str:
    """An HTML table; its "point" columns once per span of rows where it has spans."""
    head = "".join(
        f"<th>{e(c.header)}</th>" if c.kind == "number" else f'<th class="text">{e(c.header)}</th>'
        for c in t.columns
    )
    spanned = sum(c.kind == "point" for c in t.columns) if t.spans else 0
    starts = {sum(t.spans[:i]): n for i, n in enumerate(t.spans)}
    body = []
    for i, row in enumerate(t.rows):
        cells = "".join(
            _cell(c, text, f' rowspan="{starts[i]}"') if j < spanned else _cell(c, text)
            for j, (c, text) in enumerate(zip(t.columns, row, strict=True))
            if j >= spanned or i in starts
        )
        body.append(f"<tr>{cells}</tr>")
    id = f' id="{t.id}"' if t.id else ""
    return f"<table{id}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section(section: Section) -> str:
    shown = table(section.table) if section.table else ""
    if section.scroll:
        shown = f'<div style="overflow-x:auto">{shown}</div>'
    return (
        f'<section id="{section.id}"><h2>{e(section.title)}</h2>'
        + (f'<p class="note">{e(section.note)}</p>' if section.note else "")
        + "".join(f'<p class="note">{e(p)}</p>' for p in section.paragraphs)
        + (
            "<ul>" + "".join(f"<li>{e(item)}</li>" for item in section.items) + "</ul>"
            if section.items
            else ""
        )
        + shown
        + "</section>"
    )


def _figure(key: str, path: Path) -> str:
    caption = BY_KEY[key].caption
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure id="figure-{key}"><img alt="{e(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{e(caption)}</figcaption></figure>"
    )


def _items(lines: list[str]) -> str:
    return "".join(f"<li>{e(line)}</li>" for line in lines)


def render(page: Page, figures: dict[str, Path]) -> str:
    """The page: the recommendation, the verdicts, the frontier and its figure, the other
    figures in the registry's order, the comparison, the sections and the hosts."""
    campaign = page.campaign
    tiers = [*page.tiers, *page.capacity]
    others = [f.key for f in FIGURES if f.key in figures and f is not MAIN]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pdpipeline — {e(page.campaign_id)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style></head><body>
<h1>Campaign {e(page.campaign_id)}</h1>
<p>Profile <b>{e(str(campaign.get("profile_name", "")))}</b>, started
{e(str(campaign.get("started_at", "")))},
git {e(str(campaign.get("git_sha")))}.</p>
{
        '<section id="recommendation"><h2>Recommendation</h2><ul class="tiers">'
        + _items(page.recommendation)
        + "</ul></section>"
        if page.recommendation
        else ""
    }
<section id="verdicts">
<h2>Verdict</h2>
{'<ul id="tiers" class="tiers">' + _items(tiers) + "</ul>" if tiers else ""}
{f'<p class="note" id="left-out">{e(page.left_out)}</p>' if page.left_out else ""}
<p class="headline" id="headline">{e(page.headline)}</p>
<details><summary>Per workload point ({len(page.points)})</summary>
<ul id="verdict">{_items(page.points)}</ul></details>
</section>
<section id="frontier">
<h2>Throughput against interactivity</h2>
<ul class="frontier-sentence" id="frontier-sentence">{_items(page.frontier)}</ul>
{_figure(MAIN.key, figures[MAIN.key]) if MAIN.key in figures else ""}
</section>
<h2>Figures</h2>
{"".join(_figure(k, figures[k]) for k in others)}
<h2>Comparison</h2>
{f'<p class="note">{e(page.link)}</p>' if page.link else ""}
{table(page.comparison)}
{"".join(_section(s) for s in page.sections)}
<h2>Hosts</h2>
{table(page.hosts)}
</body></html>
"""
