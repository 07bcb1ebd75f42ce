"""Loading a profile from its file, or from the text a campaign stored."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydantic
import yaml
from pydantic import BaseModel

from pdpipeline.errors import ProfileError
from pdpipeline.profile.profile import Profile


class LoadedProfile(BaseModel):
    """A validated profile with the text it came from (stored with every campaign)."""

    profile: Profile
    path: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def load_profile(path: str | Path) -> LoadedProfile:
    """Read and validate a profile; every bad field is one line naming it."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ProfileError(f"profile {path}: cannot read ({e.strerror})") from e
    return LoadedProfile(profile=_validated(text, f"profile {path}"), path=str(path), text=text)


def stored_profile(text: str) -> Profile:
    """The profile a campaign stored (its text in the warehouse), read as every consumer of a
    stored campaign reads it; a ProfileError where the text no longer validates (a profile of an
    older format), so that a reader falls back or fails with one error."""
    return _validated(text, "stored profile")


def _validated(text: str, source: str) -> Profile:
    """The profile in `text`; every bad field is one line starting with `source`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ProfileError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from e
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: expected a mapping at the top level")
    try:
        return Profile.model_validate(data)
    except pydantic.ValidationError as e:
        raise ProfileError(_validation_lines(source, e)) from None


def _validation_lines(source: str, error: pydantic.ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        # Cross-field problems (empty loc) already start with the field they name.
        prefix = f"{source}: {where}: " if where else f"{source}: "
        lines += [prefix + line for line in message.splitlines()]
    return "\n".join(lines)
