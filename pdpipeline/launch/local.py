"""Launcher for services on this machine: own process group, log file, verified teardown."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import time
from pathlib import Path

import psutil

from pdpipeline.errors import CommandError, PortInUseError, TeardownError
from pdpipeline.launch.base import Launcher, Service, ServiceSpec, how_ended, tail_of


class LocalLauncher(Launcher):
    """Runs services as child processes of this one, each in a new session."""

    def __init__(self, log_dir: str | Path, host_name: str = "localhost") -> None:
        self.log_dir = Path(log_dir)
        self.host_name = host_name
        self._processes: dict[int, asyncio.subprocess.Process] = {}

    async def check_ports_free(self, spec: ServiceSpec) -> None:
        for port in spec.ports:
            if not port_is_free(spec.host, port):
                raise PortInUseError(
                    f"port {port} on {self.host_name} ({spec.host}) is already in use; "
                    f"{spec.name} needs it"
                )

    async def spawn(self, spec: ServiceSpec) -> Service:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{spec.name}.log"
        with open(log_path, "wb") as log:
            process = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=os.environ | spec.env,
                # A session of its own: one killpg reaches the API server and its engine workers.
                start_new_session=True,
            )
        self._processes[process.pid] = process
        return Service(spec, process.pid, f"http://{spec.host}:{spec.port}", str(log_path))

    async def ended(self, service: Service) -> str | None:
        code = self._processes[service.pid].returncode
        return None if code is None else how_ended(code)

    async def log_tail(self, service: Service, lines: int = 30) -> str:
        return tail_of(service.log_path, lines)

    async def run_command(
        self, argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None
    ) -> str:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=os.environ | (env or {}),
        )
        out, err = await process.communicate(stdin)
        if process.returncode:
            message = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise CommandError(f"{argv[0]} on {self.host_name} failed: {message[0]}")
        return out.decode()

    async def stop(self, service: Service) -> None:
        process = self._processes.pop(service.pid)
        pgid = service.pid  # the session leader's pid is its group id
        _signal_group(pgid, signal.SIGTERM)
        # A stopped (frozen) process acts on SIGTERM only once continued.
        _signal_group(pgid, signal.SIGCONT)
        if not await _group_gone(pgid, process, service.spec.stop_grace_s):
            _signal_group(pgid, signal.SIGKILL)
            if not await _group_gone(pgid, process, 10.0):
                raise TeardownError(f"{service.name}: process group {pgid} survived SIGKILL")
        for port in service.spec.ports:
            if not await _wait_port_free(service.spec.host, port, 10.0):
                raise TeardownError(
                    f"port {port} on {self.host_name} still held after stopping {service.name}"
                )


def port_is_free(host: str, port: int) -> bool:
    """True when a server could bind host:port now (as servers bind: with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # SO_REUSEADDR passes over a former listener's connections in TIME_WAIT. It does not
        # pass over an outgoing connection's local port, open or in TIME_WAIT: in the kernel's
        # ephemeral range, a port can be taken without anything listening on it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _live_members(pgid: int) -> list[int]:
    """Pids of the group that are still running (zombies awaiting a reaper do not count)."""
    members = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


async def _group_gone(pgid: int, leader: asyncio.subprocess.Process, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if leader.returncode is None:
            try:
                await asyncio.wait_for(leader.wait(), 0.2)
            except TimeoutError:
                continue
        if not _live_members(pgid):
            return True
        await asyncio.sleep(0.2)
    return False


async def _wait_port_free(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not port_is_free(host, port):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True
