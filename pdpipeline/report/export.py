"""A campaign exported as files: its tables as CSV, its requests as parquet, and its report."""

from __future__ import annotations

from pathlib import Path

from pdpipeline.report.analysis import analysed
from pdpipeline.report.build import Report, render
from pdpipeline.report.load import CAMPAIGN_TABLES
from pdpipeline.warehouse.store import Warehouse


def export_campaign(warehouse: Warehouse, campaign_id: str, out: str | Path) -> Report:
    """Write the campaign's tables, its profile and its report into `out`; the comparison is
    stored first if its comparison_report never ran."""
    campaign = analysed(warehouse, campaign_id)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for table in (*CAMPAIGN_TABLES, "handoff_variants"):
        frame = warehouse.query(f"SELECT * FROM {table} WHERE campaign_id = ?", [campaign_id])
        if table == "campaigns":
            (out / "profile.yaml").write_text(frame["profile_text"][0])
            frame = frame.drop("profile_text")
        frame.write_csv(out / f"{table}.csv")
    requests = warehouse.query("SELECT * FROM requests WHERE campaign_id = ?", [campaign_id])
    requests.write_parquet(out / "requests.parquet")
    return render(campaign, out)
