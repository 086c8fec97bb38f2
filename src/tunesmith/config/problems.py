"""A pydantic `ValidationError` as `Problem`s a person can act on: the YAML path, the message, a hint.

One problem per place in the YAML: pydantic's own steps (a union's alternatives, `constrained-float`,
`SuiteConfig`, `dict[str,constrained-int]`) are left out of the path; the alternatives of a union are folded into
one message, or, when one alternative took the value's shape (a mapping for a section), only its problems are
kept; a field reported missing next to an unknown field that is its misspelling is said once, as the "did you
mean".
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from tunesmith.config.root import Config
from tunesmith.errors import Problem


@dataclass
class _Item:
    path: tuple  # the YAML path, pydantic's steps left out
    model: type[BaseModel] | None  # the section the last step is a field of (for "did you mean")
    sites: tuple  # (union path, alternative) of every union passed on the way
    type: str
    message: str
    hint: str = ""


def problems_from(err: ValidationError, source: str | Callable[[tuple], str]) -> list[Problem]:
    """`err` as problems; `source` names where the config came from (a file), or says where a YAML path came from
    (`where(path) -> str`, e.g. a file or a `--set` override)."""
    where = source if callable(source) else (lambda path: f"{source}: {dotted(path) or '(top level)'}")
    items = _drop_shadowed(_drop_other_alternatives([_item(e) for e in err.errors()]))
    problems: dict[tuple, list[_Item]] = {}
    for item in items:
        problems.setdefault(item.path, []).append(item)
    return [Problem(where(path), *_folded(group)) for path, group in problems.items()]


def dotted(path: tuple) -> str:
    """A YAML path as a person reads it: `eval.suites[0].path` (`""` at the top level)."""
    return ".".join(_path_part(p) for p in path).replace(".[", "[")


def did_you_mean(word: str, known: list[str]) -> str:
    """ "did you mean `x`? " for the known name closest to `word`, or "" when none is close."""
    close = difflib.get_close_matches(word, known, n=1)
    return f"did you mean `{close[0]}`? " if close else ""


def _item(error: dict) -> _Item:
    path, model, sites = _walk(error["loc"])
    if error["type"] == "extra_forbidden":
        known = list(model.model_fields) if model is not None else []
        hint = did_you_mean(str(path[-1]), known).strip() or "remove it; `tunesmith config schema` lists the fields"
        return _Item(path, model, sites, "extra_forbidden", "unknown field", hint)
    message = error["msg"].removeprefix("Value error, ")
    if "input" in error and not isinstance(error["input"], dict):
        message += f" (got {error['input']!r})"
    return _Item(path, model, sites, error["type"], message)


def _walk(loc: tuple) -> tuple[tuple, type[BaseModel] | None, tuple]:
    """pydantic's error location as (YAML path, the section of its last field, the unions passed): each step is
    followed through the config's annotations, so a union's member tag is told from a key."""
    annotation: Any = Config
    path: list = []
    model: type[BaseModel] | None = None
    sites: list = []
    for part in loc:
        annotation, tags = _unwrap(annotation)
        members = _union_members(annotation)
        if members is not None:  # this step names the alternative pydantic tried, not a key
            sites.append((tuple(path), part))
            annotation = _member(members, part, tags)
            continue
        path.append(part)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field is not None else None
        elif typing.get_origin(annotation) in (list, tuple, set) and typing.get_args(annotation):
            annotation = typing.get_args(annotation)[0]
        elif typing.get_origin(annotation) is dict and typing.get_args(annotation):
            annotation = typing.get_args(annotation)[1]
        else:
            annotation = None
    if _is_union_tag(path[-1] if path else None):  # a tagged union's member tag left at the end
        path.pop()
    return tuple(path), model, tuple(sites)


def _unwrap(annotation: Any) -> tuple[Any, dict]:
    """`annotation` without `Annotated[...]` and `None` alternatives; a tagged union's members by their tags."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    members = _union_members(annotation)
    if members is not None:
        members = [m for m in members if m is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
        tags = {}
        for m in members:
            for meta in getattr(m, "__metadata__", ()):
                if getattr(meta, "tag", None) is not None:
                    tags[meta.tag] = m
        return typing.Union[tuple(members)], tags  # noqa: UP007 - built from a list
    return annotation, {}


def _union_members(annotation: Any) -> list | None:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return list(typing.get_args(annotation))
    return None


def _member(members: list, tag: Any, tags: dict) -> Any:
    """The union member pydantic names `tag`: a tagged member, a section by its class name, a list or a mapping by
    its kind; None for a scalar (nothing below it)."""
    if tag in tags:
        return tags[tag]
    for m in members:
        bare, _ = _unwrap(m)
        if isinstance(bare, type) and issubclass(bare, BaseModel) and bare.__name__ == tag:
            return bare
        origin = typing.get_origin(bare)
        if isinstance(tag, str) and origin in (list, dict) and tag.startswith(origin.__name__):
            return bare
    return None


def _drop_other_alternatives(items: list[_Item]) -> list[_Item]:
    """Where an alternative of a union went below the union's place (the value had its shape: a mapping for a
    section), the other alternatives' complaints about the value's type are noise."""
    deeper = {site for item in items for site in item.sites if len(item.path) > len(site[0])}
    shaped = {path for path, _ in deeper}
    return [i for i in items if not any(s[0] in shaped and s not in deeper and i.path == s[0] for s in i.sites)]


def _drop_shadowed(items: list[_Item]) -> list[_Item]:
    """A missing field next to the unknown field that is its misspelling (`pth` for `path`) is one mistake."""
    meant = {(i.path[:-1], i.hint.split("`")[1]) for i in items if i.type == "extra_forbidden" and "`" in i.hint}
    return [i for i in items if not (i.type == "missing" and (i.path[:-1], str(i.path[-1])) in meant)]


def _folded(group: list[_Item]) -> tuple[str, str]:
    """One message for one place: a union's alternatives as `a valid number or 'auto' (got 'three')`."""
    messages = list(dict.fromkeys(i.message for i in group))
    hint = next((i.hint for i in group if i.hint), "")
    if len(messages) == 1:
        return messages[0], hint
    got = ""
    parts = []
    for m in messages:
        text, sep, tail = m.rpartition(" (got ")
        if sep:
            m, got = text, f" (got {tail}"
        for cut in (", unable to", ", got a"):
            m = m.split(cut)[0]
        parts.append(m.removeprefix("Input should be "))
    return "Input should be " + " or ".join(dict.fromkeys(parts)) + got, hint


def _is_union_tag(part: Any) -> bool:
    """A tagged union's member (`<endpoint>`, `tunesmith.config.section.union_tag`): not a step of the YAML path."""
    return isinstance(part, str) and part.startswith("<") and part.endswith(">")


def _path_part(part: Any) -> str:
    """One step of a YAML path as a person can read it: `[2]`, `train`, or a quoted key (`' '`, `'a.b'`)."""
    if isinstance(part, int):
        return f"[{part}]"
    text = str(part)
    if not text:  # `"": x` at the top: reported as the top level
        return ""
    return text if text.strip() == text and text.isprintable() and "." not in text else repr(text)
