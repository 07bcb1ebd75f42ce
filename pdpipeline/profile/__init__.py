"""The campaign profile (pydantic): one module per section of its YAML, the whole, its loading."""

from pdpipeline.profile.arms import HandoffVariant, Placement, layout_counts
from pdpipeline.profile.engines import EngineVariant
from pdpipeline.profile.hosts import Host
from pdpipeline.profile.load import LoadedProfile, load_profile, stored_profile
from pdpipeline.profile.profile import Profile
from pdpipeline.profile.slo import DEFAULT_TIER, RUN_SLO, SloTier
from pdpipeline.profile.workload import Lengths, Workload, WorkloadPoint

__all__ = [
    "DEFAULT_TIER",
    "RUN_SLO",
    "EngineVariant",
    "HandoffVariant",
    "Host",
    "Lengths",
    "LoadedProfile",
    "Placement",
    "Profile",
    "SloTier",
    "Workload",
    "WorkloadPoint",
    "layout_counts",
    "load_profile",
    "stored_profile",
]
