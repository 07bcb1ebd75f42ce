"""The proxy's contract with its clients: header names, metric names and Server-Timing."""

from __future__ import annotations

from collections.abc import Mapping

REQUEST_ID_HEADER = "X-Request-Id"
SERVED_BY_HEADER = "X-Served-By"
# Per request: the proxy's own time from the request's arrival to the answer's first byte; and, of
# the disaggregated arm, the prefill leg's duration and the wait from the prefill's answer to
# decode's first byte (KV transfer plus one decode step), in ms; and the KV blocks the prefill
# offered.
TIMING_HEADER = "Server-Timing"
KV_BLOCKS_HEADER = "X-KV-Blocks"
PROXY_TIMING = "proxy"
PREFILL_TIMING = "prefill"
HANDOFF_TIMING = "handoff"

# Every metric the proxy serves on /metrics starts with this prefix.
METRIC_PREFIX = "pdpipeline_proxy_"
REQUESTS_METRIC = f"{METRIC_PREFIX}requests"
LEG_TIMEOUTS_METRIC = f"{METRIC_PREFIX}leg_timeouts"
LEG_SECONDS_METRIC = f"{METRIC_PREFIX}leg_seconds"
KV_PARAMS_MISSING_METRIC = f"{METRIC_PREFIX}kv_params_missing"
UPSTREAM_ERRORS_METRIC = f"{METRIC_PREFIX}upstream_errors"
# A counter's sample, as scraped, carries the _total suffix.
KV_PARAMS_MISSING_TOTAL = f"{KV_PARAMS_MISSING_METRIC}_total"


def server_timing_header(seconds: Mapping[str, float]) -> str:
    """A Server-Timing header ("name;dur=MS, ...") from seconds per metric."""
    return ", ".join(f"{name};dur={s * 1000:.3f}" for name, s in seconds.items())


def server_timing(header: str) -> dict[str, float]:
    """Seconds per metric of a Server-Timing header ("name;dur=MS, ..."); unknown parts skipped."""
    timings = {}
    for metric in filter(None, (part.strip() for part in header.split(","))):
        name, *params = (p.strip() for p in metric.split(";"))
        for param in params:
            key, _, value = param.partition("=")
            if key == "dur":
                try:
                    timings[name] = float(value) / 1000
                except ValueError:
                    pass
    return timings
