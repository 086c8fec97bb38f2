"""The one error type users see: what went wrong, where, and how to fix it.

The CLI prints a `TunesmithError` as a short panel and exits with code 2; it never shows a traceback for one.
A `TunesmithWarning` (`warn(where, message, hint)`) is the same shape for input that is still read but said the old
way; the CLI prints it in yellow and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Problem:
    """One problem: where it is (file:line, YAML path or field), what is wrong, and a hint."""

    where: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text}\n    hint: {self.hint}" if self.hint else text


@dataclass
class TunesmithError(Exception):
    """A user-facing error: a title and one or more problems. Exit code 2 in the CLI."""

    title: str
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [self.title] + [f"  - {p}" for p in self.problems]
        return "\n".join(lines)

    @classmethod
    def capped(cls, title: str, problems: list[Problem], shown: int = 10) -> TunesmithError:
        """An error listing the first `shown` problems and how many more there are (one screen, not a flood)."""
        more = [Problem("", f"... and {len(problems) - shown} more")] if len(problems) > shown else []
        return cls(title, problems[:shown] + more)


def fail(title: str, where: str = "", message: str = "", hint: str = "") -> TunesmithError:
    """Build a single-problem error: `raise fail("Cannot read data", "a.jsonl:3", "not JSON", "fix the line")`."""
    return TunesmithError(title, [Problem(where, message, hint)] if (where or message or hint) else [])


class TunesmithWarning(UserWarning):
    """A problem that is not an error: input still read, but said in a way that will stop working (a config key
    that moved). `warn(...)` issues it as a Python warning, shown once per text; the CLI prints it like a problem,
    in yellow."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def warn(where: str, message: str, hint: str = "") -> None:
    """Tell the user about `where` without stopping: `warn("tunesmith.yaml: train.lora_r", "moved to train.lora.r")`."""
    import warnings

    warnings.warn(TunesmithWarning(Problem(where, message, hint)), stacklevel=2)


def require_modules(modules: tuple[str, ...], title: str, where: str) -> None:
    """Raise a clear error naming the `modules` that cannot be imported here (and how to install them)."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise TunesmithError(
            title, [Problem(where, f"missing: {', '.join(missing)}", f"pip install {' '.join(missing)}")]
        )
