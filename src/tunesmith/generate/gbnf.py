"""A decoding constraint as a llama.cpp GBNF grammar: what ships beside each GGUF (`--grammar-file grammar.gbnf`).

    text = gbnf(constraint)     # tunesmith.generate.decoding.Constraint -> GBNF

xgrammar's own EBNF output is not GBNF (lookaheads, `{0, -1}` repeats), so this writes GBNF itself for the
JSON Schema subset replies use: objects with required and optional properties, arrays, enum, const, strings,
numbers, integers, booleans and null, in the training replies' layout when it is known (enum and const values
spelled as the evaluation's grammar spells them, compact: `value_text`). Keywords it cannot enforce (pattern,
format, numeric bounds) are listed in a comment at the top of the grammar; `$ref`, `allOf`, `not` and conditionals
are an error.
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from tunesmith.errors import Problem, TunesmithError


class ConstraintLike(Protocol):
    """What a grammar is written from (`tunesmith.generate.decoding.Constraint`, which imports this module)."""

    kind: str
    schema: dict | None
    choices: tuple[str, ...]
    separators: tuple[str, str] | None


MAX_WHITESPACE = 8  # blanks between JSON tokens: indented replies a few levels deep, never an endless run


def literal(text: str) -> str:
    """A double-quoted GBNF (and xgrammar EBNF) literal: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def value_text(value: Any) -> str:
    """An enum or const value as the evaluation's grammar (xgrammar's JSON Schema converter) spells it, whatever
    the constraint's layout: compact JSON (no blanks inside objects and arrays), non-ASCII as is, a whole float
    without its `.0`. llama.cpp held to the shipped grammar can then give exactly the replies the eval measured."""
    return json.dumps(_whole_floats(value), ensure_ascii=False, separators=(",", ":"))


def _whole_floats(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and repr(value).endswith(".0"):
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_floats(v) for v in value]
    return value


_BASE_RULES = {  # llama.cpp's own json.gbnf, with bounded blanks; {open} and the like are the layout's
    "ws": (f"[ \\t\\n\\r]{{0,{MAX_WHITESPACE}}}", ()),
    "string": ('"\\"" char* "\\""', ("char",)),
    "char": ('[^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})', ()),
    "integer": ('"-"? ("0" | [1-9] [0-9]{0,15})', ()),
    "number": ('integer ("." [0-9]+)? ([eE] [-+]? [0-9]+)?', ("integer",)),
    "boolean": ('"true" | "false"', ()),
    "null": ('"null"', ()),
    "value": (
        "object | array | string | number | boolean | null",
        ("object", "array", "string", "number", "boolean", "null"),
    ),
    "object": ("{open} ( string {colon} value ( {comma} string {colon} value )* )? {close}", ("ws", "string", "value")),
    "array": ("{aopen} ( value ( {comma} value )* )? {aclose}", ("ws", "value")),
}
_FREE_LAYOUT = {
    "open": '"{" ws',
    "close": 'ws "}"',
    "aopen": '"[" ws',
    "aclose": 'ws "]"',
    "comma": 'ws "," ws',
    "colon": 'ws ":" ws',
}
_EMPTY = '""'  # the empty string, in GBNF
_STRUCTURAL = ("$ref", "allOf", "not", "if", "then", "else", "dependentSchemas", "prefixItems", "patternProperties")
_UNENFORCED = (
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "uniqueItems",
    "contains",
    "minProperties",
    "maxProperties",
    "propertyNames",
    "dependentRequired",
)


def gbnf(constraint: ConstraintLike) -> str:
    """The constraint as a llama.cpp GBNF grammar (`llama-cli --grammar-file`, llama-cpp-python's `LlamaGrammar`):
    the schema's objects with their properties in schema order (required ones always, optional ones may be left
    out, no others), enums and consts as literals, typed strings, numbers, booleans, arrays (with min/maxItems),
    anyOf/oneOf and type lists; a label set as its literals. Value-level keywords a grammar does not enforce
    (pattern, format, numeric bounds) are listed in a comment; `$ref`, `allOf`, `not` and conditionals are a
    TunesmithError. xgrammar's own EBNF is not used: it has lookaheads and `{0, -1}` repeats llama.cpp rejects."""
    writer = _GbnfWriter(constraint.separators)
    if constraint.kind == "choice":
        root = " | ".join(literal(c) for c in constraint.choices)
    elif constraint.kind == "json_object":
        root = writer.use("object")
    else:
        root = writer.expr(constraint.schema or {}, "root", "schema")
    if writer.problems:
        raise TunesmithError("The schema has no GBNF grammar", writer.problems)
    lines = [f"# not enforced by this grammar: {', '.join(writer.unenforced)}"] if writer.unenforced else []
    lines.append(f"root ::= {root}")
    used = _reachable(root, writer.rules)
    lines += [f"{name} ::= {body}" for name, body in writer.rules.items() if name in used]
    return "\n".join(lines) + "\n"


def _reachable(root: str, rules: dict[str, str]) -> set[str]:
    """The rules `root` refers to, directly or not (the object writer makes a few it may not need)."""

    def refs(body: str) -> set[str]:
        bare = re.sub(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]', " ", body)  # literals and classes out
        return set(re.findall(r"[a-zA-Z0-9-]+", bare)) & set(rules)

    seen: set[str] = set()
    todo = refs(root)
    while todo:
        name = todo.pop()
        seen.add(name)
        todo |= refs(rules[name]) - seen
    return seen


class _GbnfWriter:
    """Turns a JSON Schema into GBNF rules (names of letters, digits and dashes, as llama.cpp wants them), in the
    constraint's layout: fixed separators, or bounded blanks around every JSON token."""

    def __init__(self, separators: tuple[str, str] | None = None) -> None:
        self.rules: dict[str, str] = {}
        self.problems: list[Problem] = []
        self.unenforced: list[str] = []
        self.layout = (
            _FREE_LAYOUT
            if separators is None
            else {
                "open": '"{"',
                "close": '"}"',
                "aopen": '"["',
                "aclose": '"]"',
                "comma": literal(separators[0]),
                "colon": literal(separators[1]),
            }
        )

    def use(self, base: str) -> str:
        body, deps = _BASE_RULES[base]
        if base not in self.rules:
            self.rules[base] = body.format(**self.layout) if base in ("object", "array") else body
            for dep in deps:
                self.use(dep)
        return base

    def rule(self, hint: str, body: str) -> str:
        name = re.sub(r"[^a-zA-Z0-9]+", "-", hint).strip("-").lower() or "r"
        name = name if name not in self.rules and name not in _BASE_RULES and name != "root" else name + "-x"
        while name in self.rules:
            name += "x"
        self.rules[name] = body
        return name

    def expr(self, schema: Any, hint: str, where: str) -> str:
        """A GBNF expression matching the JSON values `schema` allows."""
        if schema is True or schema == {}:
            return self.use("value")
        if not isinstance(schema, dict):
            self.problems.append(Problem(where, "not a schema the grammar writer reads", "use an object schema"))
            return '""'
        for key in _STRUCTURAL:
            if key in schema:
                self.problems.append(
                    Problem(
                        f"{where}.{key}",
                        "not supported in a GBNF grammar",
                        "inline the definitions, or ship without a grammar",
                    )
                )
        self.unenforced += [f"{k} at {where}" for k in _UNENFORCED if k in schema]
        if "const" in schema:
            return literal(value_text(schema["const"]))
        if "enum" in schema:
            return "(" + " | ".join(literal(value_text(v)) for v in schema["enum"]) + ")"
        for key in ("anyOf", "oneOf"):
            if key in schema:
                parts = [self.expr(s, f"{hint}-{i}", f"{where}.{key}[{i}]") for i, s in enumerate(schema[key])]
                return "(" + " | ".join(parts) + ")"
        kind = schema.get("type")
        if isinstance(kind, list):
            return "(" + " | ".join(self.expr({**schema, "type": t}, f"{hint}-{t}", where) for t in kind) + ")"
        return self._typed(schema, kind, hint, where)

    def _typed(self, schema: dict, kind: str | None, hint: str, where: str) -> str:
        if kind == "object" or (kind is None and "properties" in schema):
            return self._object(schema, hint, where)
        if kind == "array":
            return self._array(schema, hint, where)
        if kind == "string" and ("minLength" in schema or "maxLength" in schema):
            self.use("char")
            return f'"\\"" char{{{schema.get("minLength", 0)},{schema.get("maxLength", "")}}} "\\""'
        if kind in ("string", "integer", "number", "boolean", "null"):
            return self.use(kind)
        return self.use("value")

    def _object(self, schema: dict, hint: str, where: str) -> str:
        lay = self.layout
        props = schema.get("properties") or {}
        if not props:
            empty = f"{lay['open']} {lay['close']}"
            return self.use("object") if schema.get("additionalProperties") is not False else f"( {empty} )"
        self.use("ws")
        required = set(schema.get("required") or [])
        names = list(props)
        pairs = [
            self.rule(
                f"{hint}-{name}-kv",
                f"{literal(json.dumps(name, ensure_ascii=False))} {lay['colon']} "
                + self.expr(props[name], f"{hint}-{name}", f"{where}.properties.{name}"),
            )
            for name in names
        ]
        # tail(k): properties k.. after one was written (each needs a comma); head(k): none written yet
        tail: str | None = None
        head: str | None = None
        for k in reversed(range(len(names))):
            after = f" {tail}" if tail else ""
            if names[k] in required:
                tail, head = (
                    self.rule(f"{hint}-t{k}", f"{lay['comma']} {pairs[k]}{after}"),
                    self.rule(f"{hint}-h{k}", f"{pairs[k]}{after}"),
                )
            else:
                tail, head = (
                    self.rule(f"{hint}-t{k}", f"( {lay['comma']} {pairs[k]} )?{after}"),
                    self.rule(f"{hint}-h{k}", f"{pairs[k]}{after} | {head or _EMPTY}"),
                )
        return f"{lay['open']} {head} {lay['close']}"

    def _array(self, schema: dict, hint: str, where: str) -> str:
        lay = self.layout
        self.use("ws")
        item = self.expr(schema.get("items", {}), f"{hint}-item", f"{where}.items")
        low, high = int(schema.get("minItems", 0)), schema.get("maxItems")
        if high == 0:
            return f"( {lay['aopen']} {lay['aclose']} )"
        more = f"( {lay['comma']} {item} )" + (
            f"{{{max(low - 1, 0)},{int(high) - 1}}}" if high is not None else f"{{{low - 1},}}" if low > 1 else "*"
        )
        items = f"{item} {more}" if low >= 1 else f"( {item} {more} )?"
        return f"( {lay['aopen']} {items} {lay['aclose']} )"
