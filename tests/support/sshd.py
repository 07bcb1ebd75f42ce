"""A real OpenSSH server on a loopback port, with a throwaway host key and user key."""

from __future__ import annotations

import getpass
import shutil
import subprocess
import time
from pathlib import Path

from tests.support.local import free_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


class Sshd:
    """sshd -D on 127.0.0.1:port that accepts only `user_key` for the current user."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        host_pub = keygen(directory / "host_key")
        user_pub = keygen(directory / "user_key")
        self.user_key = directory / "user_key"
        (directory / "authorized_keys").write_text(user_pub + "\n")
        self.known_hosts = directory / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub}\n")
        config = directory / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host_key'}\n"
            f"AuthorizedKeysFile {directory / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\n"
            "MaxSessions 100\nMaxStartups 100\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(directory / "sshd.log", "wb"),
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        from pdpipeline.launch.local import port_is_free

        deadline = time.monotonic() + 20
        while port_is_free("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(self.dir / 'sshd.log').read_text()}")
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
