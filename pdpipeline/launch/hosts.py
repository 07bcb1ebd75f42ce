"""A profile's hosts as launch targets: one launcher per host, and the Python that runs our code."""

from __future__ import annotations

import sys
from pathlib import Path

from pdpipeline.launch.base import Launcher
from pdpipeline.launch.local import LocalLauncher
from pdpipeline.profile import Host, Profile


def is_local(host: Host) -> bool:
    return host.reach == "local"


def host_python(host: Host) -> str:
    """The interpreter that runs our code (probe, proxy) on the host."""
    return host.python or (sys.executable if is_local(host) else "python3")


def launchers_for(profile: Profile, log_dir: Path, run_key: str = "") -> dict[str, Launcher]:
    """One launcher per host of the profile; logs go to `log_dir` here and, on remote hosts, to
    `WORK_DIR/logs/RUN_KEY` (e.g. campaign/arm)."""
    launchers: dict[str, Launcher] = {}
    for host in profile.hosts:
        if is_local(host):
            launchers[host.name] = LocalLauncher(log_dir / host.name, host.name)
        else:
            from pdpipeline.launch.ssh import SshLauncher

            launchers[host.name] = SshLauncher(host, run_key or log_dir.name)
    return launchers
