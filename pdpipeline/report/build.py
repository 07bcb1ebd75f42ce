"""A campaign's report: PNG figures, a self-contained HTML page and a markdown summary, from the
campaign as the report reads it (report/load.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pdpipeline.report import markdown, page
from pdpipeline.report.analysis import completed
from pdpipeline.report.figures import Inputs, draw
from pdpipeline.report.load import Campaign, read_campaign
from pdpipeline.report.sections import page_of
from pdpipeline.warehouse.store import Warehouse


@dataclass
class Report:
    campaign_id: str
    directory: Path
    figures: dict[str, Path]
    html_path: Path
    summary_md: str  # verdict_md, then details_md
    verdict_md: str  # the title, the verdicts and the frontier sentence: what to read first
    details_md: str  # the per-point verdicts, the KV link and the comparison tables


def build(
    warehouse: Warehouse,
    campaign_id: str,
    directory: str | Path,
    regression_threshold: float = 0.10,
) -> Report:
    """Write the figures and `report.html` for one stored campaign into `directory`."""
    return render(read_campaign(warehouse, campaign_id), directory, regression_threshold)


def render(campaign: Campaign, directory: str | Path, regression_threshold: float = 0.10) -> Report:
    """`build`, of a campaign already read: what an older campaign lacks derived first."""
    campaign = completed(campaign)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    figures = draw(Inputs(campaign, regression_threshold), out)
    said = page_of(campaign)
    verdict_md, details_md = markdown.verdict(said), markdown.details(said)
    html_path = out / "report.html"
    html_path.write_text(page.render(said, figures))
    return Report(
        campaign.campaign_id,
        out,
        figures,
        html_path,
        f"{verdict_md}\n\n{details_md}",
        verdict_md,
        details_md,
    )
