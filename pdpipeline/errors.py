"""Failures a user can act on, one type per kind; messages name the host, port, file or field."""

from __future__ import annotations


class PdPipelineError(Exception):
    """Base of every error the tool reports to users as one line."""


class ProfileError(PdPipelineError):
    """A profile file is missing, unparsable or has an invalid field."""


class PortInUseError(PdPipelineError):
    """A port a service needs is already taken on its host."""


class ServerStartError(PdPipelineError):
    """A launched service exited, timed out or was not the one answering."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message + (f"\n--- log tail ---\n{log_tail}" if log_tail else ""))
        self.log_tail = log_tail


class ServerDiedError(ServerStartError):
    """A service that was healthy stopped while it was being measured."""


class TeardownError(PdPipelineError):
    """A stopped service left processes or a held port behind."""


class HostUnreachableError(PdPipelineError):
    """A host in the profile cannot be reached."""


class CommandError(PdPipelineError):
    """A short command on a host (a probe, a stop) failed."""


class HostCheckError(PdPipelineError):
    """A host does not meet what the profile's arms need (model, engine, NIXL, devices)."""
