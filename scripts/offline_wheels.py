"""Download the project's runtime dependencies as wheels for an offline Python 3.12 x86_64 host.

Leaves out what the host already has (a name list, one per line), and packs the rest into
part folders of at most --part-mib each, for hosts reached by size-limited transfers.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_5_x86_64",
    "manylinux1_x86_64",
]
# What pdpipeline imports at run time on a host that runs the pipeline (not vLLM: it comes from
# the host's own engine install).
REQUIREMENTS = ["dagster==1.13.28", "duckdb==2.0.1", "polars==2.1.0", "pydantic>=2.6", "pyyaml"]


def project_name(wheel: Path) -> str:
    return re.sub(r"[-_.]+", "-", wheel.name.split("-")[0].lower())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".whl")
    parser.add_argument("--python-version", default="3.12")
    parser.add_argument("--skip", default="scripts/gpu-host-packages.txt")
    parser.add_argument("--part-mib", type=int, default=60)
    args = parser.parse_args()
    skip = {
        line.strip()
        for line in Path(args.skip).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "-q", "-d", tmp, "--only-binary=:all:"]
        command += ["--python-version", args.python_version, "--implementation", "cp"]
        for platform in PLATFORMS:
            command += ["--platform", platform]
        subprocess.run(command + REQUIREMENTS, check=True)
        wheels = sorted(
            (w for w in Path(tmp).glob("*.whl") if project_name(w) not in skip),
            key=lambda w: -w.stat().st_size,
        )
        out = Path(args.out)
        shutil.rmtree(out, ignore_errors=True)
        parts: list[list[Path]] = []
        limit = args.part_mib * 2**20
        for wheel in wheels:  # first fit, largest first
            part = next(
                (
                    p
                    for p in parts
                    if sum(w.stat().st_size for w in p) + wheel.stat().st_size <= limit
                ),
                None,
            )
            if part is None:
                parts.append(part := [])
            part.append(wheel)
        for number, part in enumerate(parts, 1):
            folder = out / f"part{number}"
            folder.mkdir(parents=True)
            for wheel in part:
                shutil.copy2(wheel, folder)
            size = sum(w.stat().st_size for w in part) / 2**20
            print(f"{folder}: {len(part)} wheels, {size:.1f} MiB")


if __name__ == "__main__":
    main()
