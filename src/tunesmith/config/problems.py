"""A pydantic `ValidationError` as `Problem`s a person can act on: the YAML path, the message, a hint."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from tunesmith.config.root import Config
from tunesmith.errors import Problem


def problems_from(err: ValidationError, source: str) -> list[Problem]:
    problems = []
    for item in err.errors():
        loc = tuple(p for p in item["loc"] if not _is_union_tag(p))
        dotted = ".".join(_path_part(p) for p in loc).replace(".[", "[")
        hint = ""
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _known_fields(loc[:-1]), n=1)
            hint = f"did you mean `{close[0]}`?" if close else "remove it; `tunesmith config schema` lists the fields"
            message = "unknown field"
        else:
            message = item["msg"]
            if "input" in item and not isinstance(item["input"], dict):
                message += f" (got {item['input']!r})"
        problems.append(Problem(f"{source}: {dotted or '(top level)'}", message, hint))  # `"": x` has no path
    return problems


def _is_union_tag(part: Any) -> bool:
    """A tagged union's member (`<endpoint>`, `tunesmith.config.section.union_tag`): not a step of the YAML path."""
    return isinstance(part, str) and part.startswith("<") and part.endswith(">")


def _known_fields(path: tuple) -> list[str]:
    model: type[BaseModel] = Config
    for part in path:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _path_part(part: Any) -> str:
    """One step of a YAML path as a person can read it: `[2]`, `train`, or a quoted key (`' '`, `'a.b'`)."""
    if isinstance(part, int):
        return f"[{part}]"
    text = str(part)
    if not text:  # `"": x` at the top: reported as the top level
        return ""
    return text if text.strip() == text and text.isprintable() and "." not in text else repr(text)
