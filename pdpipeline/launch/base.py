"""One launcher interface: start a service, wait until it is the healthy one we started, stop it."""

from __future__ import annotations

import abc
import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp

from pdpipeline.errors import HostUnreachableError, ServerDiedError, ServerStartError

# While a measurement runs, every service is checked this often; a death cancels the measurement.
WATCH_INTERVAL_S = 1.0
# A connection reset can reach the client a moment before the launcher sees the process gone:
# after a failed measurement, deaths are looked for this long before the failure itself stands.
DEATH_GRACE_S = 3.0

T = TypeVar("T")


@dataclass(frozen=True)
class ServiceSpec:
    """A long-running HTTP service (a vLLM server or the proxy) to launch on one host."""

    name: str
    argv: tuple[str, ...]
    host: str
    ports: tuple[int, ...]  # the first is the HTTP port; all are checked free before launch
    env: dict[str, str] = field(default_factory=dict)
    health_path: str = "/health"
    # GET identity_path must mention identity_token: proves the answer comes from this launch.
    identity_path: str = "/health"
    identity_token: str = ""
    start_timeout_s: float = 300.0
    stop_grace_s: float = 20.0

    @property
    def port(self) -> int:
        return self.ports[0]


@dataclass
class Service:
    """A launched service; `url` is where this controller reaches it."""

    spec: ServiceSpec
    pid: int
    url: str
    log_path: str

    @property
    def name(self) -> str:
        return self.spec.name


class Launcher(abc.ABC):
    """Starts and stops services on one host; `running` owns a service for a `with` block."""

    host_name: str

    @asynccontextmanager
    async def running(self, spec: ServiceSpec) -> AsyncIterator[Service]:
        await self.check_ports_free(spec)
        service = await self.spawn(spec)
        try:
            await self.wait_ready(service)
            yield service
        finally:
            await self.stop(service)

    @abc.abstractmethod
    async def check_ports_free(self, spec: ServiceSpec) -> None:
        """Raise PortInUseError naming the first taken port."""

    @abc.abstractmethod
    async def spawn(self, spec: ServiceSpec) -> Service:
        """Start the process detached in its own process group, output to a log file."""

    @abc.abstractmethod
    async def ended(self, service: Service) -> str | None:
        """How the service's main process ended ("exited with status 1", "killed by SIGKILL"),
        or None while it runs."""

    @abc.abstractmethod
    async def log_tail(self, service: Service, lines: int = 30) -> str:
        """The last lines of the service's log."""

    def log_file(self, service: Service) -> str:
        """The service's log as a path on its host (`log_path` also names a remote host)."""
        return service.log_path

    @abc.abstractmethod
    async def run_command(
        self, argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None
    ) -> str:
        """Run a short command on the host and return its stdout; raise on failure."""

    @abc.abstractmethod
    async def stop(self, service: Service) -> None:
        """TERM the process group, KILL after the grace period, verify processes and ports gone."""

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op for local hosts
        """Release connections to the host."""

    async def stop_leftovers(self) -> list[str]:
        """Stop services an earlier, interrupted attempt left running; their names.

        Local services die with the controller's process group handling; remote ones are
        found by their pid files."""
        return []

    async def wait_ready(self, service: Service) -> None:
        """Poll health until it answers 200, failing fast when the process exits first."""
        spec = service.spec
        deadline = time.monotonic() + spec.start_timeout_s
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                ended = await self._ended(service, f"while {spec.name} was starting")
                if ended is not None:
                    raise ServerStartError(
                        f"{spec.name} on {self.host_name}:{spec.port} {ended} "
                        f"before becoming healthy (log: {service.log_path})",
                        await self.log_tail(service),
                    )
                if await _answers(session, service.url + spec.health_path):
                    break
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"{spec.name} on {self.host_name}:{spec.port} not healthy after "
                        f"{spec.start_timeout_s:.0f} s (log: {service.log_path})",
                        await self.log_tail(service),
                    )
                await asyncio.sleep(0.5)
            await self._confirm_identity(session, service)

    async def _confirm_identity(self, session: aiohttp.ClientSession, service: Service) -> None:
        spec = service.spec
        if not spec.identity_token:
            return
        async with session.get(service.url + spec.identity_path) as response:
            body = await response.text()
        if spec.identity_token not in body:
            raise ServerStartError(
                f"{self.host_name}:{spec.port} answers, but not as {spec.name} launched now "
                "(a stale server from an earlier run?)"
            )

    async def ensure_alive(self, service: Service, role: str = "", during: str = "") -> None:
        """Raise ServerDiedError, naming the service (as `role`, e.g. "decode instance"), how it
        ended and when (`during`), with its log tail, if it has ended."""
        name = f"{role} {service.name}" if role else service.name
        ended = await self._ended(
            service, f"during {during} (running there: {name})" if during else f"with {name} on it"
        )
        if ended is not None:
            raise ServerDiedError(
                f"{name} on host {self.host_name} port {service.spec.port} ended ({ended})"
                + (f" during {during}" if during else "")
                + f" (log: {service.log_path})",
                await self.log_tail(service),
            )

    async def _ended(self, service: Service, when: str) -> str | None:
        """`ended`, where losing the host says `when` it was lost (a stage, a service)."""
        try:
            return await self.ended(service)
        except HostUnreachableError as lost:
            raise HostUnreachableError(f"{lost}; lost {when}") from None


def how_ended(returncode: int) -> str:
    """A return code in words; negative is a signal's number, as asyncio and subprocess report."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


@dataclass(frozen=True)
class Watched:
    """A running service, and how a message names it ("decode instance", "proxy")."""

    launcher: Launcher
    service: Service
    role: str = ""


async def ensure_all_alive(
    watched: Sequence[Watched], during: str = "", grace_s: float = 0.0
) -> None:
    """Raise the ServerDiedError of the first service found ended; look again for up to
    `grace_s` before concluding that every service is alive."""
    deadline = time.monotonic() + grace_s
    while True:
        for w in watched:
            await w.launcher.ensure_alive(w.service, w.role, during)
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(min(0.2, grace_s))


async def while_alive(
    measurement: Awaitable[T],
    watched: Sequence[Watched],
    during: str,
    interval_s: float = WATCH_INTERVAL_S,
) -> T:
    """Await `measurement` while checking every service each `interval_s`.

    A service that ends cancels the measurement and its ServerDiedError is raised: the dead
    server is the cause, the connection errors and failed requests it leads to are symptoms.
    When the measurement fails first, the services are checked before its error stands."""
    task = asyncio.ensure_future(measurement)
    watcher = asyncio.create_task(_watch(watched, during, interval_s))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, watcher):
            if not pending.done():
                pending.cancel()
                with suppress(asyncio.CancelledError):
                    await pending
    if not task.cancelled() and task.exception() is None:
        await ensure_all_alive(watched, during)
        return task.result()
    if watcher.done() and not watcher.cancelled() and watcher.exception() is not None:
        raise watcher.exception()  # type: ignore[misc]
    try:
        await ensure_all_alive(watched, during, DEATH_GRACE_S)
    except ServerDiedError as died:
        raise died from None
    return task.result()


async def _watch(watched: Sequence[Watched], during: str, interval_s: float) -> None:
    """Return only by raising: the ServerDiedError of the first service that ends."""
    while True:
        await asyncio.sleep(interval_s)
        await ensure_all_alive(watched, during)


async def _answers(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url) as response:
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False


def tail_of(path: str | Path, lines: int) -> str:
    """The last `lines` lines of a text file (empty when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
