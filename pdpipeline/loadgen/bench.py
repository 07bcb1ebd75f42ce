"""One measured run: warm up, scrape metrics, send the load, scrape again, summarize."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from pdpipeline.loadgen.client import Client, RequestRecord
from pdpipeline.loadgen.metrics import MetricDelta, deltas, scrape
from pdpipeline.loadgen.schedule import Load, run_load
from pdpipeline.loadgen.stats import summarize
from pdpipeline.loadgen.window import Sizing
from pdpipeline.loadgen.workload import RequestSpec, RequestStream
from pdpipeline.profile.slo import RUN_SLO, SloTier


@dataclass
class BenchResult:
    records: list[RequestRecord]
    summary: dict
    metrics: list[MetricDelta]
    warmup_failures: int


async def bench(
    client: Client,
    requests: Sequence[RequestSpec] | RequestStream,
    load: Load,
    warmup: Sequence[RequestSpec] = (),
    metrics_urls: Mapping[str, str] | None = None,
    gpus: int = 1,
    slo: SloTier = RUN_SLO,
    seed: int = 0,
    sizing: Sizing | None = None,
) -> BenchResult:
    """Measure `requests` under `load` through `client`; warm-up requests are sent first and
    left out of every figure (a failed warm-up still makes the run invalid).

    With `sizing`, requests run until the steady window is measured and the figures cover that
    window; without, every request is sent and the figures cover the whole run."""
    warm_records = await run_load(
        client.send, warmup, Load(concurrency=load.warmup_concurrency), seed
    )
    warmup_failures = sum(not r.ok for r in warm_records)
    metrics_urls = dict(metrics_urls or {})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        before = await _scrape_all(session, metrics_urls)
        records = await run_load(client.send, requests, load, seed, sizing)
        after = await _scrape_all(session, metrics_urls)
    summary = summarize(records, gpus, slo, load if sizing else None, sizing)
    if warmup_failures:
        summary["valid"] = False
        first = next(r for r in warm_records if not r.ok)
        summary["first_error"] = f"warm-up: {first.error or 'short response'}"
    metric_rows = [
        row for server in metrics_urls for row in deltas(server, before[server], after[server])
    ]
    return BenchResult(records, summary, metric_rows, warmup_failures)


async def _scrape_all(session: aiohttp.ClientSession, urls: Mapping[str, str]) -> dict:
    results = await asyncio.gather(*(scrape(session, name, url) for name, url in urls.items()))
    return dict(zip(urls, results, strict=True))


def write_records(records: Sequence[RequestRecord], path: str | Path) -> Path:
    """Per-request rows as parquet (by extension) or JSON lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [r.row() for r in records]
    if path.suffix == ".parquet":
        import polars as pl

        pl.DataFrame(rows).write_parquet(path)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
