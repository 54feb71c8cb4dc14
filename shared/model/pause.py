"""An operator's pause of a source or of the whole historical cycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Pause:
    """A pause of a source (``experiment/datatype``) or of the whole historical cycle."""

    #: What is paused: ``historical`` or a source name.
    target: str
    #: Who paused it.
    who: str
    #: Since when.
    since: datetime
    #: Why, as the operator gave it.
    reason: str = ""
    #: Who last changed the reason of the pause in force ("": the reason is the pauser's).
    reason_by: str = ""
    #: When they changed it (None: never changed).
    reason_at: datetime | None = None
