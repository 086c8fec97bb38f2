"""`Section`: the base of every config section (unknown fields rejected, assignments validated)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def union_tag(kind: str) -> str:
    """The tag of one member of a tagged union (`<endpoint>`): pydantic puts it in an error's path, and
    `tunesmith.config.problems` leaves it out of the path it shows."""
    return f"<{kind}>"
