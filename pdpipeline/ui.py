"""`make ui`: the Dagster UI and daemon on workspace.yaml, stopped cleanly as one process group.

`dagster dev` started from a script can inherit ignored SIGINT/SIGTERM and then orphan its
webserver, daemon and code servers when killed. So it runs in a session of its own with default
signal handlers, and stopping this wrapper stops that whole group.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def stop_group(process: subprocess.Popen, grace_s: float = 20.0) -> None:
    """TERM the group, KILL what is left after the grace period."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
            # The leader is gone; sweep any child that outlived it.
            os.killpg(process.pid, signal.SIGKILL)
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def main(argv: list[str] | None = None) -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--host", default="127.0.0.1")
    args.add_argument("--port", type=int, default=3000)
    options = args.parse_args(argv)
    home = Path(os.environ.get("DAGSTER_HOME", ROOT / ".dagster_home")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("dagster")),
        "dev",
        "-w",
        str(ROOT / "workspace.yaml"),
        "-h",
        options.host,
        "-p",
        str(options.port),
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=os.environ | {"DAGSTER_HOME": str(home)},
        start_new_session=True,
        preexec_fn=_default_signals,
    )
    print(f"Dagster UI on http://{options.host}:{options.port} (DAGSTER_HOME={home}); Ctrl-C stops")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        process.wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        stop_group(process)


if __name__ == "__main__":
    main()
