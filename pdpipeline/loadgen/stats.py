"""Run summaries computed from per-request records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pdpipeline.loadgen.client import RequestRecord

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class Slo:
    """Goodput targets: a request counts when it meets every one."""

    ttft_ms: float = 500.0
    tpot_ms: float = 50.0

    def met(self, record: RequestRecord) -> bool:
        return (
            record.ok
            and record.ttft_s is not None
            and record.ttft_s * 1000 <= self.ttft_ms
            and (record.tpot_s is None or record.tpot_s * 1000 <= self.tpot_ms)
        )


def _distribution(name: str, values_s: Sequence[float]) -> dict[str, float | None]:
    """mean and percentiles in milliseconds."""
    if not values_s:
        return {f"{name}_mean_ms": None} | {f"{name}_p{p}_ms": None for p in PERCENTILES}
    ms = np.asarray(values_s) * 1000.0
    out = {f"{name}_mean_ms": float(ms.mean())}
    for p, value in zip(PERCENTILES, np.percentile(ms, PERCENTILES), strict=True):
        out[f"{name}_p{p}_ms"] = float(value)
    return out


def summarize(records: Sequence[RequestRecord], gpus: int = 1, slo: Slo | None = None) -> dict:
    """Throughput, latency distributions, goodput and validity of one measured run.

    The window runs from the first request sent to the last one finished. A run with any failed
    or short request is invalid: its figures describe what happened, not a result.
    """
    slo = slo or Slo()
    ok = [r for r in records if r.ok]
    failed = len(records) - len(ok)
    starts = [r.sent_at for r in records]
    ends = [r.sent_at + r.e2e_s for r in records if r.e2e_s is not None]
    duration = (max(ends) - min(starts)) if ends else 0.0
    output_tokens = sum(r.output_tokens or 0 for r in ok)
    total_tokens = output_tokens + sum(r.prompt_tokens or 0 for r in ok)
    per_s = (lambda x: x / duration) if duration > 0 else (lambda x: 0.0)
    summary = {
        "requests": len(records),
        "failed": failed,
        "valid": failed == 0 and len(records) > 0,
        "duration_s": duration,
        "request_throughput": per_s(len(ok)),
        "output_throughput": per_s(output_tokens),
        "total_throughput": per_s(total_tokens),
        "output_throughput_per_gpu": per_s(output_tokens) / gpus,
        "total_throughput_per_gpu": per_s(total_tokens) / gpus,
        "goodput": per_s(sum(slo.met(r) for r in records)),
        "slo_ttft_ms": slo.ttft_ms,
        "slo_tpot_ms": slo.tpot_ms,
        "gpus": gpus,
    }
    summary |= _distribution("ttft", [r.ttft_s for r in ok if r.ttft_s is not None])
    summary |= _distribution("tpot", [r.tpot_s for r in ok if r.tpot_s is not None])
    summary |= _distribution("itl", [gap for r in ok for gap in r.itl_s])
    summary |= _distribution("e2e", [r.e2e_s for r in ok if r.e2e_s is not None])
    summary["first_error"] = next((_failure(r) for r in records if not r.ok), None)
    return summary


def _failure(r: RequestRecord) -> str:
    """Why one request does not count, naming it."""
    if r.error:
        why = r.error
    elif r.status != 200:
        why = f"HTTP {r.status}"
    elif r.prompt_tokens != r.expected_prompt_tokens:
        why = f"{r.prompt_tokens} prompt tokens, expected {r.expected_prompt_tokens}"
    else:
        why = f"short: {r.output_tokens} output tokens, expected {r.expected_output_tokens}"
    return f"request {r.index} ({r.request_id}): {why}"


def format_summary(summary: dict) -> str:
    """A few human lines for the terminal."""
    lines = [
        f"requests {summary['requests']}  failed {summary['failed']}  "
        f"valid {summary['valid']}  duration {summary['duration_s']:.2f} s",
        f"throughput: {summary['request_throughput']:.2f} req/s, "
        f"{summary['output_throughput']:.1f} output tok/s "
        f"({summary['output_throughput_per_gpu']:.1f} per GPU), "
        f"{summary['total_throughput']:.1f} total tok/s, goodput {summary['goodput']:.2f} req/s",
    ]
    for name in ("ttft", "tpot", "itl", "e2e"):
        if summary[f"{name}_mean_ms"] is None:
            continue
        values = "  ".join(f"p{p} {summary[f'{name}_p{p}_ms']:.2f}" for p in PERCENTILES)
        lines.append(f"{name.upper():>5} ms: mean {summary[f'{name}_mean_ms']:.2f}  {values}")
    if summary["first_error"]:
        lines.append(f"first error: {summary['first_error']}")
    return "\n".join(lines)
