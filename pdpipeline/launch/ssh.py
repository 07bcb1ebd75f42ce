"""Launcher for services on a remote host over SSH (asyncssh): detached, pid-filed, verified stop.

Each service runs under `setsid` in a session of its own on the host, with its log, pid file and
exit-status file in a per-campaign remote directory. A small shell, in a session apart from the
service's, waits for it and writes its exit status, so the status is known even when the whole
service group was killed. Stopping signals the service's process group and then checks that no
member is left and that the ports are free. The pid files make a stop work after the SSH
connection dropped: the launcher reconnects and stops by them.

A host that stops answering (its link dropped) is found by SSH keepalives within about the
profile's connect_timeout_s, rather than after TCP's retransmissions give up (many minutes):
every command on it then fails with HostUnreachableError naming it. A stop waits a while for
such a host to come back before it gives up and names what it left running.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import time
from pathlib import PurePosixPath

import asyncssh

from pdpipeline.errors import (
    CommandError,
    HostUnreachableError,
    PortInUseError,
    TeardownError,
)
from pdpipeline.launch.base import Launcher, Service, ServiceSpec, how_ended
from pdpipeline.profile import Host

CONNECT_ATTEMPTS = 3
# Keepalives a host may leave unanswered; sent every connect_timeout_s / (this + 1), so a host
# silent for about connect_timeout_s is lost.
KEEPALIVE_COUNT_MAX = 2
# How long a stop keeps trying to reach a host that stopped answering (a link that flapped).
UNREACHABLE_STOP_WAIT_S = 120.0
RETRY_INTERVAL_S = 2.0
# How long a spawn waits for the waiting shell to write the service's pid file.
PID_FILE_WAIT_S = 10
# A shell reports a process killed by signal N as exit status 128 + N.
_SIGNAL_STATUS_BASE = 128

# Prints the ports among argv that something listens on (a bind fails), one per line.
_TAKEN_PORTS = (
    "import socket,sys\n"
    "for p in sys.argv[2:]:\n"
    "    s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "    try: s.bind((sys.argv[1], int(p)))\n"
    "    except OSError: print(p)\n"
    "    finally: s.close()\n"
)


class SshLauncher(Launcher):
    """One SSH connection per host, opened on first use and reused for every service."""

    def __init__(self, host: Host, run_key: str | PurePosixPath) -> None:
        assert host.ssh is not None
        self.host = host
        self.host_name = host.name
        # Logs, pid and exit files of one run (e.g. campaign/arm) under the host's work_dir.
        self.remote_dir = PurePosixPath(host.work_dir) / "logs" / run_key
        self._conn: asyncssh.SSHClientConnection | None = None
        self._forwards: dict[int, asyncssh.SSHListener] = {}
        # Since when stops have failed to reach the host: one wait for all of its services.
        self._unreachable_since: float | None = None

    # -- connection -------------------------------------------------------------------------

    def _connect_options(self) -> dict:
        ssh = self.host.ssh
        assert ssh is not None
        options: dict = {
            "port": ssh.port,
            "username": ssh.user,
            "connect_timeout": ssh.connect_timeout_s,
            "keepalive_interval": ssh.connect_timeout_s / (KEEPALIVE_COUNT_MAX + 1),
            "keepalive_count_max": KEEPALIVE_COUNT_MAX,
            # None turns host key checking off: only on the profile's explicit, named opt-out.
            "known_hosts": (
                None
                if ssh.insecure_skip_host_key_check
                else os.path.expanduser(ssh.known_hosts or "~/.ssh/known_hosts")
            ),
        }
        if ssh.key_file:
            options["client_keys"] = [os.path.expanduser(ssh.key_file)]
        if ssh.jump_host:
            options["tunnel"] = ssh.jump_host
        return options

    async def _connection(self) -> asyncssh.SSHClientConnection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        ssh = self.host.ssh
        assert ssh is not None
        options = self._connect_options()
        delay = 1.0
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                self._conn = await asyncssh.connect(self.host.address, **options)
                return self._conn
            except (asyncssh.HostKeyNotVerifiable, asyncssh.PermissionDenied) as e:
                # Retrying cannot fix a key: say so at once.
                raise HostUnreachableError(
                    f"host {self.host_name} ({self.host.address}:{ssh.port}) refused: {e.reason}"
                ) from None
            except (OSError, asyncssh.Error, TimeoutError) as e:
                if attempt == CONNECT_ATTEMPTS:
                    reason = getattr(e, "reason", None) or str(e) or type(e).__name__
                    raise HostUnreachableError(
                        f"host {self.host_name} ({self.host.address}:{ssh.port}) unreachable "
                        f"after {attempt} attempts: {reason}"
                    ) from None
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for listener in self._forwards.values():
            listener.close()
        self._forwards.clear()
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()
            self._conn = None

    def _lost(self, reason: str) -> HostUnreachableError:
        ssh = self.host.ssh
        assert ssh is not None
        return HostUnreachableError(
            f"host {self.host_name} ({self.host.address}:{ssh.port}) stopped answering: {reason}"
        )

    async def _run(self, command: str, stdin: bytes = b"", check: bool = True) -> str:
        conn = await self._connection()
        try:
            result = await conn.run(command, input=stdin.decode() if stdin else None, check=False)
        except (OSError, asyncssh.Error) as e:
            raise self._lost(getattr(e, "reason", None) or str(e) or type(e).__name__) from None
        if result.exit_status is None and result.exit_signal is None:
            # The connection closed under a running command: no status, and no error either.
            raise self._lost("SSH connection closed during a command")
        if check and result.exit_status != 0:
            error = (result.stderr or result.stdout or "").strip().splitlines()[-1:] or ["-"]
            raise CommandError(
                f"on {self.host_name}: `{command[:80]}` exited {result.exit_status}: {error[0]}"
            )
        return str(result.stdout or "")

    async def run_command(
        self, argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None
    ) -> str:
        return await self._run(_with_env(argv, env or {}), stdin)

    def log_file(self, service: Service) -> str:
        return str(self._paths(service.name)["log"])

    # -- services ---------------------------------------------------------------------------

    def _paths(self, name: str) -> dict[str, PurePosixPath]:
        return {kind: self.remote_dir / f"{name}.{kind}" for kind in ("log", "pid", "exit")}

    async def check_ports_free(self, spec: ServiceSpec) -> None:
        # Remote services listen on every interface, so any listener on the port conflicts.
        python = self.host.python or "python3"
        taken = await self._run(
            shlex.join([python, "-c", _TAKEN_PORTS, "0.0.0.0", *map(str, spec.ports)])
        )
        if taken.split():
            raise PortInUseError(
                f"port {taken.split()[0]} on {self.host_name} ({self.host.address}) is already "
                f"in use; {spec.name} needs it"
            )

    async def spawn(self, spec: ServiceSpec) -> Service:
        paths = {kind: shlex.quote(str(path)) for kind, path in self._paths(spec.name).items()}
        # The waiting shell starts the service in a session (and process group) of its own, so
        # a stop or a kill of that group leaves the shell to record how the service ended.
        waiter = (
            f"setsid {_with_env(list(spec.argv), spec.env)} & "
            f"echo $! > {paths['pid']}.new && mv {paths['pid']}.new {paths['pid']}; "
            f"wait $!; echo $? > {paths['exit']}"
        )
        # setsid: the waiter's own session; nohup and </dev/null: it outlives this SSH channel,
        # which otherwise waits on its stdin.
        script = (
            f"mkdir -p {shlex.quote(str(self.remote_dir))} || exit 1; "
            f"rm -f {paths['exit']} {paths['pid']}; "
            f"setsid nohup sh -c {shlex.quote(waiter)} > {paths['log']} 2>&1 < /dev/null & "
            f"i=0; while [ ! -s {paths['pid']} ] && [ $i -lt {PID_FILE_WAIT_S * 20} ]; do "
            "sleep 0.05; i=$((i+1)); done; "
            f"cat {paths['pid']}"
        )
        await self._connection()
        try:
            pid = int((await self._run(script)).strip())
            url = await self._url(spec)
        except asyncio.CancelledError:
            # Cancelled once the script was sent, the service may be running with no owner here
            # yet: its pid file is the one handle on it.
            await self._kill_spawned(spec.name)
            raise
        return Service(spec, pid, url, f"{self.host_name}:{paths['log']}")

    async def _kill_spawned(self, name: str) -> None:
        """Kill a service whose spawn was interrupted, once its waiting shell names its pid."""
        pid_file = shlex.quote(str(self._paths(name)["pid"]))
        out = await self._run(
            f"i=0; while [ ! -s {pid_file} ] && [ $i -lt {PID_FILE_WAIT_S * 20} ]; do "
            f"sleep 0.05; i=$((i+1)); done; cat {pid_file} 2>/dev/null",
            check=False,
        )
        if out.strip().isdigit():
            await self._kill(name, int(out.strip()))

    async def _url(self, spec: ServiceSpec) -> str:
        ssh = self.host.ssh
        assert ssh is not None
        if not ssh.forward_ports:
            return f"http://{self.host.address}:{spec.port}"
        conn = await self._connection()
        listener = await conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", spec.port)
        self._forwards[spec.port] = listener
        return f"http://127.0.0.1:{listener.get_port()}"

    async def ended(self, service: Service) -> str | None:
        exit_file = shlex.quote(str(self._paths(service.name)["exit"]))
        # Gone without a status file: the waiter may be writing it right now, so look once more.
        out = await self._run(
            f"cat {exit_file} 2>/dev/null || "
            f"(ps -o stat= -p {service.pid} | grep -qv Z && echo running) || "
            f"(sleep 1; cat {exit_file} 2>/dev/null) || echo gone"
        )
        word = out.strip().splitlines()[-1] if out.strip() else "gone"
        if word == "running":
            return None
        if not word.isdigit():
            return "ended without an exit status (its waiting shell was killed too)"
        status = int(word)
        if 0 < status - _SIGNAL_STATUS_BASE < signal.NSIG:
            return how_ended(_SIGNAL_STATUS_BASE - status)
        return how_ended(status)

    async def log_tail(self, service: Service, lines: int = 30) -> str:
        log = self._paths(service.name)["log"]
        return await self._run(f"tail -n {lines} {shlex.quote(str(log))}", check=False)

    async def stop(self, service: Service) -> None:
        """Stop by process group; reconnects (and so works after a dropped connection), and
        keeps trying for UNREACHABLE_STOP_WAIT_S while the host does not answer."""
        listener = self._forwards.pop(service.spec.port, None)
        if listener is not None:
            listener.close()
        while True:
            try:
                await self._stop_group(service)
                self._unreachable_since = None
                return
            except HostUnreachableError as e:
                now = time.monotonic()
                self._unreachable_since = self._unreachable_since or now
                if now - self._unreachable_since >= UNREACHABLE_STOP_WAIT_S:
                    pid_file = self._paths(service.name)["pid"]
                    raise TeardownError(
                        f"{service.name} on {self.host_name} left running, the host not "
                        f"answering for {now - self._unreachable_since:.0f} s ({e}); a rerun of "
                        f"the arm stops it by its pid file {pid_file}"
                    ) from None
                await asyncio.sleep(RETRY_INTERVAL_S)

    async def _stop_group(self, service: Service) -> None:
        await self._signal_group(service.pid, "TERM")
        # A stopped (frozen) process acts on SIGTERM only once continued.
        await self._signal_group(service.pid, "CONT")
        if not await self._group_gone(service.pid, service.spec.stop_grace_s):
            await self._signal_group(service.pid, "KILL")
            if not await self._group_gone(service.pid, 10.0):
                raise TeardownError(
                    f"{service.name} on {self.host_name}: process group {service.pid} survived KILL"
                )
        deadline = time.monotonic() + 10.0
        while True:
            try:
                await self.check_ports_free(service.spec)
                break
            except PortInUseError as e:
                if time.monotonic() > deadline:
                    raise TeardownError(f"after stopping {service.name}: {e}") from None
                await asyncio.sleep(0.5)
        await self._forget(service.name)

    async def stop_leftovers(self) -> list[str]:
        """Stop every service whose pid file is still in this campaign's remote directory."""
        out = await self._run(
            f"cd {shlex.quote(str(self.remote_dir))} 2>/dev/null && "
            'for f in *.pid; do [ -f "$f" ] && echo "${f%.pid} $(cat "$f")"; done',
            check=False,
        )
        stopped = []
        for line in out.splitlines():
            name, pid = line.split()
            await self._kill(name, int(pid))
            stopped.append(name)
        return stopped

    async def _kill(self, name: str, pgid: int) -> None:
        await self._signal_group(pgid, "KILL")
        await self._group_gone(pgid, 10.0)
        await self._forget(name)

    async def _forget(self, name: str) -> None:
        """Once the waiting shell has written the exit status (and so ends), drop the pid file."""
        paths = {kind: shlex.quote(str(path)) for kind, path in self._paths(name).items()}
        await self._run(
            f"i=0; while [ ! -f {paths['exit']} ] && [ $i -lt 50 ]; do "
            f"sleep 0.1; i=$((i+1)); done; rm -f {paths['pid']}"
        )

    async def _signal_group(self, pgid: int, signal: str) -> None:
        # dash's kill takes `-SIG -PGID` (not `-- -PGID`); a vanished group is not an error.
        await self._run(f"kill -{signal} -{pgid} 2>/dev/null || true")

    async def _group_gone(self, pgid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            # Members of the group that are not zombies (`kill -0` would count zombies).
            out = await self._run(f"ps -e -o pgid=,stat= | awk '$1 == {pgid} && $2 !~ /Z/'")
            if not out.strip():
                return True
            await asyncio.sleep(0.3)
        return False


def _with_env(argv: list[str], env: dict[str, str]) -> str:
    assignments = [f"{k}={v}" for k, v in sorted(env.items())]
    return shlex.join(["env", *assignments, *argv]) if assignments else shlex.join(argv)
