"""Resources: the profile to measure, the cluster to launch on, the warehouse to write to."""

import asyncio
import os
from pathlib import Path

import dagster as dg

from pdpipeline.campaign import Campaign
from pdpipeline.environment import probe_all
from pdpipeline.launch.hosts import launchers_for
from pdpipeline.paths import LOGS_DIR, WAREHOUSE_PATH, reports_dir
from pdpipeline.profile import LoadedProfile, load_profile
from pdpipeline.runner import run_arm
from pdpipeline.warehouse.measured import ArmResult
from pdpipeline.warehouse.store import Warehouse

DEFAULT_PROFILE = os.environ.get("PDPIPELINE_PROFILE", "profiles/local.yaml")


class ProfileResource(dg.ConfigurableResource):
    """Which profile a campaign measures (set PDPIPELINE_PROFILE, or override in the launchpad)."""

    path: str = DEFAULT_PROFILE

    def load(self) -> LoadedProfile:
        return load_profile(self.path)


class ClusterResource(dg.ConfigurableResource):
    """Launches and probes the profile's hosts: locally or over SSH, as each host says."""

    log_dir: str = str(LOGS_DIR)

    def probe(self, campaign: Campaign) -> list[dict]:
        profile = campaign.profile
        return asyncio.run(_probe(profile, Path(self.log_dir) / campaign.id, campaign.id))

    def run_arm(self, campaign: Campaign, arm: str, log: dg.DagsterLogManager) -> ArmResult:
        return asyncio.run(
            run_arm(campaign.profile, arm, campaign.id, Path(self.log_dir), progress=log.info)
        )


async def _probe(profile, log_dir: Path, campaign_id: str) -> list[dict]:
    launchers = launchers_for(profile, log_dir, f"{campaign_id}/probe")
    try:
        return await probe_all(launchers, profile)
    finally:
        for launcher in launchers.values():
            await launcher.close()


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file every asset writes into (short-lived connections, one writer at a time)."""

    path: str = str(WAREHOUSE_PATH)

    @property
    def store(self) -> Warehouse:
        return Warehouse(self.path)

    @property
    def reports_dir(self) -> Path:
        """HTML reports live beside the database file: warehouse/reports/<campaign>/."""
        return reports_dir(self.path)
