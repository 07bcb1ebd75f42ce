"""Campaigns as a dynamic partition: every asset is materialized per campaign id."""

import dagster as dg

from pdpipeline.campaign import Campaign, load_campaign
from pdpipeline.defs.resources import WarehouseResource
from pdpipeline.errors import CampaignNotFoundError

# A key is added when a campaign starts (the `campaign` command, the nightly schedule, or
# "Add partition" in the UI); re-running an asset for an older campaign names its key.
campaigns = dg.DynamicPartitionsDefinition(name="campaign")


def stored_campaign(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Campaign:
    """The record hardware_check stored for the run's campaign partition."""
    campaign = load_campaign(warehouse.store, context.partition_key)
    if campaign is None:
        raise CampaignNotFoundError(
            f"campaign {context.partition_key} has no record in {warehouse.path}: "
            "materialize its hardware_check first (it stores one when every host meets the "
            "arms' needs)"
        )
    return campaign
