"""Constructed request records for the window and statistics tests.

Times are binary fractions added to an epoch-like base, so every sum is exact and a token on a
window's edge is on it, not a rounding error away.
"""

from __future__ import annotations

from pdpipeline.loadgen.client import RequestRecord

T0 = 1024.0


def timed(
    index: int,
    start: float,
    ttft: float,
    gaps: list[float],
    scheduled: bool = False,
    e2e: float | None = None,
) -> RequestRecord:
    """A good request started `start` s after T0; its tokens `ttft`, then `gaps`, apart.

    `scheduled`: an open loop's request, started at its scheduled arrival."""
    tokens = 1 + len(gaps)
    return RequestRecord(
        index=index,
        request_id=f"r{index}",
        sent_at=T0 + start,
        scheduled_at=T0 + start if scheduled else None,
        queue_s=0.0 if scheduled else None,
        ttft_s=ttft,
        e2e_s=ttft + sum(gaps) if e2e is None else e2e,
        itl_s=gaps,
        prompt_tokens=64,
        output_tokens=tokens,
        expected_prompt_tokens=64,
        expected_output_tokens=tokens,
        status=200,
    )


# A closed loop at concurrency 2; five tokens per request (first token, then four gaps).
#   index start  TTFT  gaps   tokens at               end
#   0     0.00   0.50  0.25   0.50 .. 1.50            1.50
#   1     0.00   1.00  0.25   1.00 .. 2.00            2.00   <- 2nd completion: window opens
#   2     1.50   0.25  0.25   1.75 .. 2.75            2.75
#   3     2.00   0.25  0.25   2.25 .. 3.25            3.25
#   4     2.75   0.25  0.25   3.00 .. 4.00            4.00
#   5     3.25   0.25  0.25   3.50 .. 4.50            4.50   <- last start: window closes
CLOSED = [
    timed(0, 0.00, 0.50, [0.25] * 4),
    timed(1, 0.00, 1.00, [0.25] * 4),
    timed(2, 1.50, 0.25, [0.25] * 4),
    timed(3, 2.00, 0.25, [0.25] * 4),
    timed(4, 2.75, 0.25, [0.25] * 4),
    timed(5, 3.25, 0.25, [0.25] * 4),
]
