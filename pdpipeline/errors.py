"""Failures a user can act on, one type per kind; messages name the host, port, file or field."""

from __future__ import annotations

from pdpipeline.serving.engine import UCX_PROTO_LINE


class PdPipelineError(Exception):
    """Base of every error the tool reports to users as one line."""


class ProfileError(PdPipelineError):
    """A profile file is missing, unparsable or has an invalid field."""


class PortInUseError(PdPipelineError):
    """A port a service needs is already taken on its host."""


# How much of a log tail a one-line message carries; the whole tail stays on `log_tail`.
TAIL_LINES_IN_MESSAGE = 8
TAIL_CHARS_IN_MESSAGE = 800


def one_line_tail(log_tail: str) -> str:
    """The last non-empty lines of a log joined with " | ", its end kept when it is too long.
    UCX's protocol tables (diagnostics the preflight reads) are left out: never a cause."""
    lines = [
        " ".join(line.split())
        for line in log_tail.splitlines()
        if line.strip() and not UCX_PROTO_LINE.match(line.strip())
    ]
    text = " | ".join(lines[-TAIL_LINES_IN_MESSAGE:])
    if len(text) > TAIL_CHARS_IN_MESSAGE:
        text = "..." + text[-(TAIL_CHARS_IN_MESSAGE - 3) :]
    return text


class ServiceLogError(PdPipelineError):
    """A service failed; the message, one line, ends with the tail of the service's log."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        tail = one_line_tail(log_tail)
        super().__init__(message + (f"; log tail: {tail}" if tail else ""))
        self.log_tail = log_tail


class ServerStartError(ServiceLogError):
    """A launched service exited, timed out or was not the one answering."""


class ServerDiedError(ServiceLogError):
    """A service that was healthy ended while the arm was running: the cause that wins over the
    connection errors and failed requests it leads to."""


class MetricsScrapeError(PdPipelineError):
    """A server's /metrics could not be read."""


class TeardownError(PdPipelineError):
    """A stopped service left processes or a held port behind."""


class HostUnreachableError(PdPipelineError):
    """A host in the profile cannot be reached."""


class CommandError(PdPipelineError):
    """A short command on a host (a probe, a stop) failed."""


class HostCheckError(PdPipelineError):
    """A host does not meet what the profile's arms need (model, engine, NIXL, devices)."""


class CampaignNotFoundError(PdPipelineError):
    """A campaign id (partition key) has no stored record in the warehouse."""


class CampaignFailedError(PdPipelineError):
    """A step of the campaign failed; the message is that step's first error line."""
