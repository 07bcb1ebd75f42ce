"""The Dagster UI on an instance, started the way `make ui` starts it, for the tests needing it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.support.browser import wait_for_http
from tests.support.local import ROOT, free_port


@dataclass
class Ui:
    """The Dagster UI running on an instance."""

    port: int
    process: subprocess.Popen
    processes: list[int]  # what the webserver started (its code server)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def dagster_ui(home: Path, profile_path: str) -> Iterator[Ui]:
    """The UI on the instance at `home` (DAGSTER_HOME) with `profile_path` as its profile,
    stopped when the block ends."""
    port = free_port()
    env = os.environ | {"DAGSTER_HOME": str(home), "PDPIPELINE_PROFILE": profile_path}
    process = subprocess.Popen(
        [sys.executable, "-m", "pdpipeline.ui", "--port", str(port)], env=env, cwd=ROOT
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/server_info", 180)
        yield Ui(port, process, [c.pid for c in psutil.Process(process.pid).children()])
    finally:
        process.terminate()
        process.wait(60)
