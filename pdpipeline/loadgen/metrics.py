"""Server /metrics scrapes and their before/after deltas."""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from pdpipeline.errors import MetricsScrapeError

# Sample key: (sample name, sorted label pairs as JSON)
Key = tuple[str, str]

# Counter-like samples accumulate, so a run's share is after - before; gauges are read after.
_ACCUMULATING_SUFFIXES = ("_total", "_sum", "_count", "_bucket")


@dataclass(frozen=True)
class MetricDelta:
    server: str
    name: str
    labels: str
    before: float | None
    after: float
    delta: float


def parse(text: str) -> dict[Key, float]:
    """Every sample of a Prometheus text exposition, `_created` timestamps left out."""
    samples: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = json.dumps(dict(sorted(sample.labels.items())))
            samples[(sample.name, labels)] = float(sample.value)
    return samples


async def scrape(session: aiohttp.ClientSession, server: str, base_url: str) -> dict[Key, float]:
    """Every sample `server` exposes at BASE_URL/metrics; MetricsScrapeError names it on failure."""
    url = base_url.rstrip("/") + "/metrics"
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return parse(await response.text())
    except (aiohttp.ClientError, TimeoutError) as e:
        reason = str(e) or type(e).__name__
        raise MetricsScrapeError(f"metrics of {server} at {url} unreadable: {reason}") from e


def deltas(server: str, before: dict[Key, float], after: dict[Key, float]) -> list[MetricDelta]:
    rows = []
    for (name, labels), value in after.items():
        previous = before.get((name, labels))
        accumulates = name.endswith(_ACCUMULATING_SUFFIXES)
        delta = value - (previous or 0.0) if accumulates else value
        rows.append(MetricDelta(server, name, labels, previous, value, delta))
    return rows


def total(rows: list[MetricDelta], name: str, **labels: str) -> float:
    """Sum of deltas of one sample name over rows whose labels include `labels`."""
    return sum(
        r.delta for r in rows if r.name == name and labels.items() <= json.loads(r.labels).items()
    )
