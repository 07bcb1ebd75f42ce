"""kv_cache_analysis: KV bytes per prompt length and predicted transfer times."""

from pathlib import Path

import dagster as dg

from pdpipeline.defs.partitions import campaigns, stored_campaign
from pdpipeline.defs.resources import WarehouseResource
from pdpipeline.kvcache import LINK_CATALOGUE, KVLayout, Link, kv_layout, kv_rows, load_config
from pdpipeline.profile import Profile
from pdpipeline.report.analysis import kv_links
from pdpipeline.report.kvcost import block_size, latest_model, predict
from pdpipeline.warehouse.rows import KvCacheRow
from pdpipeline.warehouse.store import Warehouse

STANDARD_TOKENS = (128, 512, 1024, 2048, 4096, 8192, 32768)


@dg.asset(group_name="benchmark", partitions_def=campaigns, deps=["hardware_check"])
def kv_cache_analysis(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """KV cache bytes from the model config, and their transfer time over found and common links
    and by the profile's latest KV transfer cost model of each found link."""
    campaign = stored_campaign(context, warehouse)
    profile = campaign.profile
    config = load_config(Path(profile.model.tokenizer_dir))
    layout = kv_layout(config, profile.model.kv_cache_dtype)
    workload_tokens = {n for p in profile.workload.points if (n := p.input_len.fixed) is not None}
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
    rows += modelled_rows(warehouse.store, campaign.id, profile, layout, tokens)
    warehouse.store.replace({"kv_cache": rows}, where={"campaign_id": campaign.id})
    names = list(dict.fromkeys(r.link for r in rows))
    lines = ["| tokens | MiB | " + " | ".join(names) + " |"]
    lines.append("|---" * (2 + len(names)) + "|")
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


def modelled_rows(
    store: Warehouse, campaign_id: str, profile: Profile, layout: KVLayout, tokens: list[int]
) -> list[KvCacheRow]:
    """Transfer times by the most recent cost model this profile's campaigns fitted for each
    KV link of this campaign (report/kvcost.py; this campaign's own once its report ran), at
    each block size its engine variants give: rows of link_source 'model', the link named with
    the block size and the campaign that fitted it. None before any campaign fitted one."""
    hosts = store.query("SELECT * FROM hosts WHERE campaign_id = ?", [campaign_id])
    links = {link.name: link for link in kv_links(profile, hosts).values() if link is not None}
    sizes = sorted(
        {
            block_size([*profile.vllm.extra_args, *(e.vllm_args if e else [])])
            for e in profile.engines
        }
    )
    rows = []
    for link in links.values():
        model = latest_model(store, profile.name, link.name)
        if model is None:
            continue
        for size in sizes:
            if len(model.block_sizes) == 1 and size not in model.block_sizes:
                continue  # fitted on one block size: another's descriptor cost is unknown
            rows += [
                KvCacheRow(
                    campaign_id=campaign_id,
                    tokens=n,
                    bytes=layout.bytes_for(n),
                    bytes_per_token=layout.bytes_per_token,
                    architecture=layout.architecture,
                    kv_dtype=layout.dtype,
                    link=f"{link.name}, block {size}, cost model of {model.campaign_id}",
                    link_source="model",
                    link_gbit_per_s=link.gbyte_per_s * 8,
                    predicted_seconds=predict(
                        model, n, size, layout.bytes_per_token, layout.num_layers
                    ),
                )
                for n in tokens
            ]
    return rows
