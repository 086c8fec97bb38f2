"""`budget:`: the machine's price and the training time limit."""

from __future__ import annotations

from pydantic import Field

from tunesmith.config.section import Section


class BudgetConfig(Section):
    hourly_usd: float | None = Field(
        None, ge=0, description="Price per hour of the machine the stages run on; turns measured time into dollars."
    )
    max_train_minutes: float | None = Field(
        None, gt=0, description="Stop training at this wall time (the adapter so far is saved and marked so)."
    )
