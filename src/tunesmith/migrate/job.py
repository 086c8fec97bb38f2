"""An OpenAI fine-tuning job object (what `GET /v1/fine_tuning/jobs/{id}` returns), read and checked.

    job = read_job("ftjob-abc.json")
    job.method_type, job.hyperparameters(), job.grader()   # "dpo", {"n_epochs": 3, "beta": "auto", ...}, None

A file of another shape (a chat completion, a file object, the list of jobs, an array) is a `TunesmithError` naming
the file and what was expected; so is an unknown `method.type` (the three known ones are named). A job saved before
OpenAI added `method` is a supervised job with its top-level `hyperparameters`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from tunesmith.errors import Problem, TunesmithError

METHODS = ("supervised", "dpo", "reinforcement")
JOB_OBJECT = "fine_tuning.job"
EXPECTED = f"the JSON that `GET /v1/fine_tuning/jobs/{{id}}` returns: one object with `object: {JOB_OBJECT}`"
Auto = Literal["auto"]


class Hyperparameters(BaseModel):
    """A method's hyperparameters: each a value, `auto` (OpenAI chose), or absent. Others (reinforcement's
    `compute_multiplier`, `reasoning_effort`, ...) are kept as they are."""

    model_config = ConfigDict(extra="allow")

    n_epochs: int | Auto | None = None
    batch_size: int | Auto | None = None
    learning_rate_multiplier: float | Auto | None = None
    beta: float | Auto | None = None

    @field_validator("n_epochs", "batch_size", "learning_rate_multiplier", "beta", mode="before")
    @classmethod
    def _value_or_auto(cls, value: Any, info: ValidationInfo) -> Any:
        whole = info.field_name in ("n_epochs", "batch_size")
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if value is None or value == "auto" or (number and value > 0 and (not whole or value == int(value))):
            return value
        kind = "a whole number of at least 1" if whole else "a number above 0"
        raise ValueError(f"{value!r} is not {kind} or 'auto'")


class MethodSettings(BaseModel):
    """`method.<type>`: its hyperparameters and, for reinforcement, the grader (an OpenAI grader spec)."""

    model_config = ConfigDict(extra="allow")

    hyperparameters: Hyperparameters | None = None
    grader: dict[str, Any] | None = None


class Method(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    supervised: MethodSettings | None = None
    dpo: MethodSettings | None = None
    reinforcement: MethodSettings | None = None

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in METHODS:
            raise ValueError(f"unknown method {value!r}: expected supervised, dpo or reinforcement")
        return value


class FineTuningJob(BaseModel):
    """The fields of a job tunesmith reads; the rest (status, timestamps, result files) are kept, unread."""

    model_config = ConfigDict(extra="allow")

    object: Literal["fine_tuning.job"] = JOB_OBJECT
    id: str
    model: str
    training_file: str
    fine_tuned_model: str | None = None
    validation_file: str | None = None
    seed: int | None = None
    status: str | None = None
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None

    @property
    def method_type(self) -> str:
        return self.method.type if self.method else "supervised"

    @property
    def settings(self) -> MethodSettings | None:
        return getattr(self.method, self.method_type) if self.method else None

    def hyperparameters_path(self) -> str:
        """Where the method's hyperparameters are in the job (as the mapping table names their source)."""
        own = self.settings is not None and self.settings.hyperparameters is not None
        return f"method.{self.method_type}.hyperparameters" if own else "hyperparameters"

    def hyperparameters_given(self) -> dict[str, Any]:
        """The method's hyperparameters as the job gives them (`method.<type>.hyperparameters`, else the
        top-level `hyperparameters`), absent ones left out."""
        own = self.settings.hyperparameters if self.settings else None
        chosen = own or self.hyperparameters
        return chosen.model_dump(exclude_none=True) if chosen else {}

    def grader(self) -> dict[str, Any] | None:
        return self.settings.grader if self.settings else None


def read_job(path: str | Path) -> FineTuningJob:
    """The job object in `path`, checked; every way it is not one is a TunesmithError naming the file."""
    path = Path(path)
    raw = _read_json(path)
    _require_job_shape(raw, path)
    try:
        job = FineTuningJob.model_validate(raw)
    except ValidationError as err:
        raise TunesmithError(f"{path} is not a usable fine-tuning job", _problems(err, path)) from None
    if job.method_type == "reinforcement" and not job.grader():
        raise TunesmithError(
            f"{path} is not a usable fine-tuning job",
            [Problem(f"{path}: method.reinforcement.grader", "a reinforcement job needs its grader", EXPECTED)],
        )
    return job


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise TunesmithError(
            "Job file not found",
            [Problem(str(path), "no such file", "save the job first: GET /v1/fine_tuning/jobs/{id} > job.json")],
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise TunesmithError("Job file is not UTF-8", [Problem(str(path), "not UTF-8 text", EXPECTED)]) from None
    except json.JSONDecodeError as exc:
        raise TunesmithError(
            "Job file is not JSON", [Problem(f"{path}:{exc.lineno}", f"not valid JSON ({exc.msg})", EXPECTED)]
        ) from None


def _require_job_shape(raw: Any, path: Path) -> None:
    """A clear word for the files most often given instead of a job: an array, the list of jobs, another object."""
    title = f"{path} is not a fine-tuning job"
    if isinstance(raw, list):
        raise TunesmithError(title, [Problem(str(path), "it holds a JSON array", f"expected {EXPECTED}")])
    if not isinstance(raw, dict):
        raise TunesmithError(
            title, [Problem(str(path), f"it holds a JSON {type(raw).__name__}", f"expected {EXPECTED}")]
        )
    kind = raw.get("object")
    if kind == "list":
        raise TunesmithError(
            title,
            [Problem(str(path), "it is a list of objects (a list response)", f"save one job from it: {EXPECTED}")],
        )
    if kind is not None and kind != JOB_OBJECT:
        raise TunesmithError(title, [Problem(f"{path}: object", f"it is a {kind!r} object", f"expected {EXPECTED}")])


def _problems(err: ValidationError, path: Path) -> list[Problem]:
    out = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        hint = EXPECTED if item["type"] == "missing" else ""
        out.append(Problem(f"{path}: {where}", message, hint))
    return out
