"""Where a campaign's outputs go by default, relative to where it runs (the project root)."""

from __future__ import annotations

from pathlib import Path

WAREHOUSE_PATH = Path("warehouse/pdpipeline.duckdb")
LOGS_DIR = Path(".runs/logs")


def reports_dir(warehouse_path: str | Path) -> Path:
    """HTML reports live beside the database file: <warehouse dir>/reports/<campaign>/."""
    return Path(warehouse_path).parent / "reports"


REPORTS_DIR = reports_dir(WAREHOUSE_PATH)
