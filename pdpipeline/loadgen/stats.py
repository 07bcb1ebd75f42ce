"""Run summaries computed from per-request records."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from pdpipeline.loadgen.client import RequestRecord
from pdpipeline.loadgen.schedule import Load
from pdpipeline.loadgen.window import (
    Sizing,
    Window,
    finished_at,
    saturated,
    started_at,
    steady_window,
    token_times,
    tokens_inside,
    whole_run,
)
from pdpipeline.profile.slo import RUN_SLO, SloTier

PERCENTILES = (50, 90, 95, 99)


def meets(record: RequestRecord, tier: SloTier) -> bool:
    """Whether one request meets `tier` (the tier's rule, on this record's latencies)."""
    return tier.meets(record.ok, _ms(record.ttft_s), _ms(record.tpot_s))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _distribution(name: str, values_s: Sequence[float]) -> dict[str, float | None]:
    """mean and percentiles in milliseconds."""
    if not values_s:
        return {f"{name}_mean_ms": None} | {f"{name}_p{p}_ms": None for p in PERCENTILES}
    ms = np.asarray(values_s) * 1000.0
    out = {f"{name}_mean_ms": float(ms.mean())}
    for p, value in zip(PERCENTILES, np.percentile(ms, PERCENTILES), strict=True):
        out[f"{name}_p{p}_ms"] = float(value)
    return out


def summarize(
    records: Sequence[RequestRecord],
    gpus: int = 1,
    slo: SloTier = RUN_SLO,
    load: Load | None = None,
    sizing: Sizing | None = None,
) -> dict:
    """Throughput, latency distributions, goodput and validity of one measured run.

    With a `load`, the figures cover the run's steady window (window.py): output tokens that
    arrived inside it, requests that finished inside it (throughput, goodput), latencies of the
    requests that started inside it. A run with no steady part falls back to the whole run and
    is flagged `window_short`, as is one whose window missed `sizing`'s minimums. Without a
    load, the window is the whole run, first start to last finish. The `whole_run_*` figures
    are over that span either way.

    A run with any failed or short request is invalid: its figures describe what happened, not
    a result.
    """
    sizing = sizing or Sizing()
    ok = [r for r in records if r.ok]
    failed = len(records) - len(ok)
    whole = whole_run(records)
    steady = None
    if load is not None:
        steady = steady_window(records, load.concurrency, sizing.warmup_share)
    found = steady or whole
    window = found or Window(0.0, 0.0)  # nothing finished: every figure is zero
    started = [r for r in records if window.holds(started_at(r))]
    started_ok = [r for r in started if r.ok]
    finished_ok = [r for r in ok if (t := finished_at(r)) is not None and window.after_start(t)]
    # A prompt counts once its prefill is over: when the request's first token arrived.
    prompt_tokens = sum(
        r.prompt_tokens or 0 for r in ok if (t := token_times(r)) and window.after_start(t[0])
    )
    output_tokens = sum(tokens_inside(r, window) for r in ok)
    per_s = _rate(window.seconds)
    summary = {
        "requests": len(records),
        "failed": failed,
        "valid": failed == 0 and len(records) > 0,
        "duration_s": window.seconds,
        "request_throughput": per_s(len(finished_ok)),
        "output_throughput": per_s(output_tokens),
        "total_throughput": per_s(output_tokens + prompt_tokens),
        "output_throughput_per_gpu": per_s(output_tokens) / gpus,
        "total_throughput_per_gpu": per_s(output_tokens + prompt_tokens) / gpus,
        "goodput": per_s(sum(meets(r, slo) for r in finished_ok)),
        "slo_ttft_ms": slo.ttft_ms,
        "slo_tpot_ms": slo.tpot_ms,
        "gpus": gpus,
    }
    summary |= _distribution("ttft", [r.ttft_s for r in started_ok if r.ttft_s is not None])
    summary |= _distribution("tpot", [r.tpot_s for r in started_ok if r.tpot_s is not None])
    summary |= _distribution("itl", [gap for r in started_ok for gap in r.itl_s])
    summary |= _distribution("e2e", [r.e2e_s for r in started_ok if r.e2e_s is not None])
    whole_s = whole.seconds if whole else 0.0
    summary |= {
        "window_start": found.start if found else None,
        "window_end": found.end if found else None,
        "window_s": window.seconds,
        "window_requests": len(started),
        "window_short": None
        if load is None
        else steady is None or not sizing.window_met(steady.seconds, len(started)),
        "saturated": None
        if load is None or load.request_rate is None
        else steady is not None and saturated(records, steady),
        "whole_run_duration_s": whole_s,
        "whole_run_output_throughput": _rate(whole_s)(sum(r.output_tokens or 0 for r in ok)),
        "whole_run_request_throughput": _rate(whole_s)(len(ok)),
    }
    summary["first_error"] = next((_failure(r) for r in records if not r.ok), None)
    return summary


def _rate(seconds: float) -> Callable[[float], float]:
    return (lambda x: x / seconds) if seconds > 0 else (lambda x: 0.0)


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
    flags = [
        flag
        for flag, on in (
            ("SHORT WINDOW", summary["window_short"]),
            ("SATURATED", summary["saturated"]),
        )
        if on
    ]
    lines = [
        f"requests {summary['requests']}  failed {summary['failed']}  "
        f"valid {summary['valid']}  window {summary['window_s']:.2f} s "
        f"({summary['window_requests']} requests started in it) of "
        f"{summary['whole_run_duration_s']:.2f} s" + "".join(f"  {flag}" for flag in flags),
        f"throughput: {summary['request_throughput']:.2f} req/s, "
        f"{summary['output_throughput']:.1f} output tok/s "
        f"({summary['output_throughput_per_gpu']:.1f} per GPU), "
        f"{summary['total_throughput']:.1f} total tok/s, goodput {summary['goodput']:.2f} req/s",
        f"whole run: {summary['whole_run_request_throughput']:.2f} req/s, "
        f"{summary['whole_run_output_throughput']:.1f} output tok/s",
    ]
    for name in ("ttft", "tpot", "itl", "e2e"):
        if summary[f"{name}_mean_ms"] is None:
            continue
        values = "  ".join(f"p{p} {summary[f'{name}_p{p}_ms']:.2f}" for p in PERCENTILES)
        lines.append(f"{name.upper():>5} ms: mean {summary[f'{name}_mean_ms']:.2f}  {values}")
    if summary["first_error"]:
        lines.append(f"first error: {summary['first_error']}")
    return "\n".join(lines)
