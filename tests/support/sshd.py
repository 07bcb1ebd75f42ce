"""A real OpenSSH server with a throwaway host key and user key: on a loopback port, or on its
own address inside a network namespace."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.local import free_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH_PORT = 22


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


class Sshd:
    """sshd -D on `address`:port that accepts only `user_key` for the current user.

    By default on 127.0.0.1 and a free port; with `netns`, inside that network namespace on
    port 22 of the namespace's own `address` (every process it starts runs in the namespace)."""

    def __init__(self, directory: Path, address: str = "127.0.0.1", netns: str | None = None):
        self.dir = directory
        self.address = address
        self.port = SSH_PORT if netns else free_port()
        host_pub = keygen(directory / "host_key")
        user_pub = keygen(directory / "user_key")
        self.user_key = directory / "user_key"
        (directory / "authorized_keys").write_text(user_pub + "\n")
        self.known_hosts = directory / "known_hosts"
        # known_hosts names a host on port 22 by its address alone, on another port as [addr]:port.
        known = address if self.port == SSH_PORT else f"[{address}]:{self.port}"
        self.known_hosts.write_text(f"{known} {host_pub}\n")
        config = directory / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress {address}\nHostKey {directory / 'host_key'}\n"
            f"AuthorizedKeysFile {directory / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\n"
            "MaxSessions 100\nMaxStartups 100\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
        inside = ["ip", "netns", "exec", netns] if netns else []
        self.process = subprocess.Popen(
            [*inside, SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(directory / "sshd.log", "wb"),
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((self.address, self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.dir / "sshd.log").read_text()
                    raise RuntimeError(f"sshd did not start: {log}") from None
                time.sleep(0.1)

    def settings(self, **overrides) -> dict:
        """The profile's `ssh:` block for this server."""
        return {
            "user": getpass.getuser(),
            "port": self.port,
            "key_file": str(self.user_key),
            "known_hosts": str(self.known_hosts),
            "connect_timeout_s": 5,
        } | overrides

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
