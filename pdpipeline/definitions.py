"""The one code location: the campaign's assets, checks, resources and job, the search job and
the nightly schedule."""

from __future__ import annotations

import dagster as dg

from pdpipeline.defs.campaign import campaign_defs
from pdpipeline.defs.schedules import nightly_campaign
from pdpipeline.defs.search import search

defs = dg.Definitions.merge(
    campaign_defs,
    dg.Definitions(jobs=[search], schedules=[nightly_campaign]),
)
