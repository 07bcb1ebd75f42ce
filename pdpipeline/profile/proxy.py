"""proxy: the host and port of the proxy every arm's requests go through."""

from __future__ import annotations

from pydantic import Field

from pdpipeline.profile.strict import Port, Strict


class ProxySettings(Strict):
    host: str
    port: Port = 8200
    # Each leg (prefill; decode to its last byte) ends with a 504 naming the instance after this.
    leg_timeout_s: float = Field(300.0, gt=0)
