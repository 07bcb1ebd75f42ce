"""kv_cache_analysis: KV bytes per prompt length and predicted transfer times."""

from pathlib import Path

import dagster as dg

from pdpipeline.defs.partitions import campaigns, stored_campaign
from pdpipeline.defs.resources import WarehouseResource
from pdpipeline.kvcache import LINK_CATALOGUE, Link, kv_layout, kv_rows, load_config
from pdpipeline.report.compare import fixed_length
from pdpipeline.warehouse.rows import KvCacheRow

STANDARD_TOKENS = (128, 512, 1024, 2048, 4096, 8192, 32768)


@dg.asset(group_name="benchmark", partitions_def=campaigns, deps=["hardware_check"])
def kv_cache_analysis(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """KV cache bytes from the model config, and their transfer time over found and common links."""
    campaign = stored_campaign(context, warehouse)
    profile = campaign.profile
    config = load_config(Path(profile.model.tokenizer_dir))
    layout = kv_layout(config, profile.model.kv_cache_dtype)
    workload_tokens = {
        n for p in profile.workload.points if (n := fixed_length(p.input_len)) is not None
    }
    tokens = sorted(workload_tokens | set(STANDARD_TOKENS))
    hosts = warehouse.store.query(
        "SELECT host, link_gbit_per_s, nvlink_gbit_per_s FROM hosts WHERE campaign_id = ?",
        [campaign.id],
    )
    # Found links are assumed to reach the catalogue's efficiency for their kind.
    found = [
        link
        for host, network, nvlink in hosts.iter_rows()
        for link in (
            Link(f"{host} network (found)", network, 0.9) if network else None,
            Link(f"{host} NVLink (found)", nvlink, 0.8) if nvlink else None,
        )
        if link is not None
    ]
    rows = [
        KvCacheRow(
            **row,
            link_source="host" if row["link"].endswith("(found)") else "catalogue",
            campaign_id=campaign.id,
            bytes_per_token=layout.bytes_per_token,
            architecture=layout.architecture,
            kv_dtype=layout.dtype,
        )
        for row in kv_rows(layout, tokens, [*found, *LINK_CATALOGUE])
    ]
    warehouse.store.replace({"kv_cache": rows}, where={"campaign_id": campaign.id})
    lines = [
        "| tokens | MiB | " + " | ".join(link.name for link in [*found, *LINK_CATALOGUE]) + " |"
    ]
    lines.append("|---" * (2 + len(found) + len(LINK_CATALOGUE)) + "|")
    for n in tokens:
        cells = [r for r in rows if r.tokens == n]
        times = " | ".join(f"{r.predicted_seconds * 1000:.2f} ms" for r in cells)
        lines.append(f"| {n} | {cells[0].bytes / 2**20:.2f} | {times} |")
    return dg.MaterializeResult(
        metadata={
            "bytes_per_token": layout.bytes_per_token,
            "architecture": layout.architecture,
            "kv_dtype": layout.dtype,
            "predicted": dg.MetadataValue.md("\n".join(lines)),
        },
    )
