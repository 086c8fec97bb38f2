"""`load_config`: `tunesmith.yaml` read, overridden and validated, every way it can be unreadable named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tunesmith.config.metrics import check_metrics
from tunesmith.config.moved import moved_override, nest_moved, read_moved
from tunesmith.config.overrides import apply_overrides
from tunesmith.config.problems import dotted, problems_from
from tunesmith.config.root import Config
from tunesmith.errors import Problem, TunesmithError

CONFIG_NAME = "tunesmith.yaml"
CONFIG_SUFFIXES = (".yaml", ".yml")


def load_config(path: str | Path, overrides: list[str] | None = None) -> tuple[Config, Path]:
    """Read `tunesmith.yaml` (a project dir or the file itself), apply overrides, validate everything at once.

    Returns the config and the project directory that relative paths are resolved against. A problem is named by
    the file and its YAML path, or by the `--set` override it came from.
    """
    file = _config_file(Path(path))
    overrides = overrides or []
    sections, lines = _read_sections(file)
    raw = apply_overrides(_with_moved_keys(sections, file), overrides)
    where = _locator(file, overrides, lines)
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        problems = problems_from(err, where)
        raise TunesmithError(f"Bad config: {len(problems)} problem(s)", problems) from None
    check_metrics(cfg, where)
    return cfg, file.parent


def _locator(file: Path, overrides: list[str], lines: dict[tuple[str, ...], int]):
    """`where(path)`: the `--set` override that set a YAML path (the last one, as it wins), else the file with the
    line of the path's key (`FILE:LINE [PATH]`; of the nearest enclosing key the file has, for a field it lacks),
    else the file."""
    keys = [(item, tuple(moved_override(item.partition("=")[0].strip()).split("."))) for item in overrides]

    def where(path: tuple) -> str:
        text = tuple(str(p) for p in path)
        for item, key in reversed(keys):
            if text[: len(key)] == key:
                return f"--set {item}" + ("" if text == key else f": {dotted(path)}")
        line = next((lines[text[:n]] for n in range(len(text), 0, -1) if text[:n] in lines), None)
        if line is not None:
            return f"{file}:{line} [{dotted(path) or '(top level)'}]"
        return f"{file}: {dotted(path) or '(top level)'}"

    return where


RECIPE_FIELDS = (
    "method",
    "objective",
    "epochs",
    "lr",
    "lora.r",
    "lora.alpha",
    "batch_size",
    "grad_accum",
    "general_data",
    "general_share",
    "oversample",
    "precision",
    "batching",
)


def recipe_sources(cfg: Config, path: str | Path, overrides: list[str] | None = None) -> list[tuple[str, Any, str]]:
    """(field, value, where it came from) for the recipe's main `train` fields, as `tunesmith run` prints them:
    `--set` (an override), `tunesmith.yaml` (the project's file), or `default` (tunesmith's). A field of a
    sub-section reads `lora.r`; an old flat key (`lora_r`) counts as its new place."""
    from operator import attrgetter

    written = nest_moved(_read_sections(_config_file(Path(path)))[0].get("train") or {}, quiet=True)
    overridden = {moved_override(item.partition("=")[0].strip()) for item in overrides or []}
    out = []
    for name in RECIPE_FIELDS:
        where = "--set" if f"train.{name}" in overridden else CONFIG_NAME if _written(written, name) else "default"
        out.append((name, attrgetter(name)(cfg.train), where))
    return out


def _written(section: dict, dotted: str) -> bool:
    """Whether the file's mapping sets `dotted` (`lr`, `lora.r`)."""
    node: object = section
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _with_moved_keys(raw: dict, file: Path) -> dict:
    """The file's sections with `train`'s old flat keys at their new place (a warning each; an error naming both
    keys when they disagree)."""
    return {**raw, "train": read_moved(raw["train"], f"{file}: train")} if "train" in raw else raw


def _config_file(path: Path) -> Path:
    """`path` itself (a `.yaml` file) or the `tunesmith.yaml` in it; a missing project or file says how to create
    one, and another kind of file (a data file given as the project) is refused, not read as a config."""
    file = path / CONFIG_NAME if path.is_dir() else path
    if path.is_file() and path.suffix.lower() not in CONFIG_SUFFIXES:
        raise TunesmithError(
            "Not a project",
            [Problem(str(path), "is a file, not a project directory", "give the directory that holds tunesmith.yaml")],
        )
    if not file.exists():
        where = str(file)
        if not path.exists():
            raise TunesmithError(
                "No such project", [Problem(str(path), "does not exist", f"create one with `tunesmith init {path}`")]
            )
        raise TunesmithError(
            "No tunesmith.yaml", [Problem(where, "file not found", f"create one with `tunesmith init {path}`")]
        )
    return file


def _read_sections(file: Path) -> tuple[dict, dict[tuple[str, ...], int]]:
    """(the file's YAML as a mapping of sections, the line of each YAML path: `_key_lines`); a file that is not
    UTF-8, not YAML, nested or numbered past what can be read, or not a mapping raises with the line to look at."""
    try:
        data = file.read_bytes()
    except OSError as exc:  # a directory called tunesmith.yaml, no permission to read it
        from tunesmith.files import os_error

        raise os_error(exc, "Cannot read tunesmith.yaml") from None
    raw, node = _parse_yaml(file, data)
    if not isinstance(raw, dict):
        raise TunesmithError(
            "Bad config",
            [
                Problem(
                    f"{file}: (top level)",
                    "the top level must be a mapping of sections",
                    "e.g. `model:` and `data:` at the start of a line",
                )
            ],
        )
    return raw, _key_lines(node)


def _key_lines(root: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """{YAML path (keys and list indices as text): the line it is written on} of a composed document, so a problem
    can name its line. Each node is walked once (an alias is not followed again, nor a node that holds itself)."""
    lines: dict[tuple[str, ...], int] = {}
    stack, seen = [((), root)], set()
    while stack:
        path, node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            items = [(k.value, k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.tag != MERGE]
        elif isinstance(node, yaml.SequenceNode):
            items = [(str(i), v, v) for i, v in enumerate(node.value)]
        else:
            continue
        for key, at, value in items:
            lines.setdefault((*path, key), at.start_mark.line + 1)
            stack.append(((*path, key), value))
    return lines


MERGE = "tag:yaml.org,2002:merge"


class DuplicateKey(yaml.MarkedYAMLError):
    """A key written twice in one mapping (PyYAML keeps the last and says nothing)."""

    def __init__(self, key: Any, first_line: int, mark: yaml.Mark) -> None:
        super().__init__(problem=f"duplicate key {key!r}", problem_mark=mark)
        self.key, self.first_line = key, first_line


class UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key written twice in one mapping, naming the line of the second (keys a
    merge `<<:` brings in may still be overridden, as YAML means them to be)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:  # an unhashable key: the constructor says so
                continue
            if key in seen:
                raise DuplicateKey(key, seen[key], key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _parse_yaml(file: Path, data: bytes) -> tuple[Any, yaml.Node | None]:
    """(the YAML of `data`, the bytes of `file`; its composed node, for the lines of its keys), or one problem
    naming the line that cannot be read. Composed once and constructed from that node, as `yaml.load` does."""
    try:
        loader = UniqueKeyLoader(data.decode("utf-8"))
        try:
            node = loader.get_single_node()
            return (loader.construct_document(node) if node is not None else None) or {}, node
        finally:
            loader.dispose()
    except DuplicateKey as exc:
        raise TunesmithError(
            "tunesmith.yaml sets a key twice",
            [
                Problem(
                    f"{file}:{exc.problem_mark.line + 1}",
                    f"`{exc.key}` is already set on line {exc.first_line}",
                    "keep one of them: YAML would silently drop the first",
                )
            ],
        ) from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TunesmithError(
            "tunesmith.yaml is not UTF-8",
            [Problem(f"{file}:{line}", f"byte 0x{data[exc.start]:02x} is not UTF-8", "save the file as UTF-8")],
        ) from None
    except (RecursionError, ValueError) as exc:  # nesting deeper than Python's stack, an int of 4,300+ digits
        text = data.decode("utf-8")
        line = _deepest_line(text) if isinstance(exc, RecursionError) else _long_number_line(text)
        message = "nested too deeply" if isinstance(exc, RecursionError) else "a number too long to read"
        raise TunesmithError(
            "tunesmith.yaml cannot be read",
            [Problem(f"{file}:{line}", message, "a config is a few levels of sections and short values")],
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else str(file)
        if mark is None and isinstance(getattr(exc, "position", None), int):  # a ReaderError: a character
            where = f"{file}:{data.decode('utf-8')[: exc.position].count(chr(10)) + 1}"
        raise TunesmithError(
            "tunesmith.yaml is not valid YAML",
            [Problem(where, str(getattr(exc, "problem", exc)), "check indentation and quoting on that line")],
        ) from None


def _deepest_line(text: str) -> int:
    """The line where bracket (flow) nesting, or else indentation, is deepest: where YAML nests too deeply."""
    depth, best, line, best_line = 0, 0, 1, 1
    for ch in text:
        if ch == "\n":
            line += 1
        elif ch in "[{":
            depth += 1
            if depth > best:
                best, best_line = depth, line
        elif ch in "]}":
            depth = max(depth - 1, 0)
    if best >= 50:
        return best_line
    indents = [len(ln) - len(ln.lstrip(" -")) for ln in text.splitlines()] or [0]
    return indents.index(max(indents)) + 1


def _long_number_line(text: str) -> int:
    import re

    m = re.search(r"[0-9_]{4300,}", text)
    return text[: m.start()].count("\n") + 1 if m else 1
