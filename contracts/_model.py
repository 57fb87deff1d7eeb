"""The base of every config model: unknown keys are errors, ids have one shape."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Model", "ID_PATTERN"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class Model(BaseModel):
    """A config section: extra keys are refused so that typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")
