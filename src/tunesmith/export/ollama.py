"""An Ollama Modelfile whose TEMPLATE reproduces the chat template the model was trained with.

    text = modelfile(tok, "model-q8_0.gguf", system="You route tickets.", num_ctx=1024)
    readme = constraint_readme(constraint, "model-q8_0.gguf")   # constrained replies from Ollama and llama.cpp

Ollama renders prompts with Go templates, not Jinja, so the template is rebuilt from what the model's own chat
template renders: each role's text before and after its content (found by rendering marker contents), the
generation prompt, and the default system prompt a template inserts when there is none. A BOS token the template
writes itself (`bos_token` first, as Llama 3's does) is taken off every rendering before the split: the runtime adds
it (the GGUF's `add_bos_token`), or, for a tokenizer that does not add it, the Go template writes it first. The
rebuilt template is then checked against the Jinja one on several conversations (with and without a system
prompt, one and several turns); a template it cannot reproduce is an error, never a silently different prompt.
Stops at the end-of-turn token; greedy decoding (`temperature 0`), as the evaluation measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tunesmith.errors import Problem, TunesmithError

if TYPE_CHECKING:
    from tunesmith.generate.decoding import Constraint

_MARK = {"system": "SYSTEM\u2063MARK", "user": "USER\u2063MARK{}", "assistant": "ASSISTANT\u2063MARK{}"}
_BOS_MARK = "BOS\u2063MARK"  # rendered as the template's `bos_token`, to tell it from the same text written literally


@dataclass
class TemplateParts:
    """The text around each role's content, the generation prompt, the template's default system prompt, and the
    BOS token the Go template must write first (empty when the runtime adds it, or the template writes none)."""

    prefix: dict[str, str]
    suffix: dict[str, str]
    generation: str
    default_system: str | None
    bos: str = ""

    def render(self, system: str | None, messages: list[dict]) -> str:
        """What the rebuilt Go template renders (the same logic, in Python) — used to check it."""
        out = [self.bos]
        if system:
            out.append(self.prefix["system"] + system + self.suffix["system"])
        for m in messages:
            if m["role"] in ("user", "assistant"):
                out.append(self.prefix[m["role"]] + m["content"] + self.suffix[m["role"]])
        return "".join(out) + self.generation

    def go_template(self) -> str:
        p, s = self.prefix, self.suffix
        return (
            self.bos + "{{ if .System }}" + p["system"] + "{{ .System }}" + s["system"] + "{{ end }}"
            '{{ range .Messages }}{{ if eq .Role "user" }}'
            + p["user"]
            + "{{ .Content }}"
            + s["user"]
            + '{{ else if eq .Role "assistant" }}'
            + p["assistant"]
            + "{{ .Content }}"
            + s["assistant"]
            + "{{ end }}{{ end }}"
            + self.generation
        )


def template_parts(tok) -> TemplateParts:
    """Split the chat template's rendering into per-role prefix and suffix; raise when the split does not
    reproduce the template on test conversations."""
    from tunesmith.export.gguf import adds_bos

    eot = tok.eos_token
    convo = [
        {"role": "system", "content": _MARK["system"]},
        {"role": "user", "content": _MARK["user"].format(1)},
        {"role": "assistant", "content": _MARK["assistant"].format(1)},
        {"role": "user", "content": _MARK["user"].format(2)},
    ]
    text = _render(tok, convo)
    marks = [m["content"] for m in convo]
    at = [text.index(m) for m in marks]
    ends = [a + len(m) for a, m in zip(at, marks)]
    gaps = [text[ends[i] : at[i + 1]] for i in range(len(marks) - 1)]
    suffix, prefix = {}, {"system": text[: at[0]]}
    for (before, after), gap in zip((("system", "user"), ("user", "assistant"), ("assistant", "user")), gaps):
        cut = _turn_end(gap, eot)
        suffix.setdefault(before, gap[:cut])
        prefix.setdefault(after, gap[cut:])
    tail = text[ends[-1] :]
    cut = _turn_end(tail, eot)
    suffix.setdefault("user", tail[:cut])
    writes_bos = _writes_bos(tok, convo) or _writes_bos(tok, convo[1:2])
    parts = TemplateParts(prefix, suffix, tail[cut:], None, tok.bos_token if writes_bos and not adds_bos(tok) else "")
    # A template that inserts its own system prompt when there is none (SmolLM2 does): that is the default.
    bare = _render(tok, convo[1:2])
    head = parts.prefix["system"]
    if bare.startswith(head) and parts.suffix["system"] in bare[len(head) :]:
        candidate = bare[len(head) : bare.index(parts.suffix["system"], len(head))]
        if parts.render(candidate, convo[1:2]) == parts.bos + bare:
            parts.default_system = candidate
    _verify(tok, parts, tok.bos_token if adds_bos(tok) else "")
    return parts


def _turn_end(gap: str, eot: str) -> int:
    """Where one turn's closing text ends in the text between two contents: after the end-of-turn token and the
    line break that follows it (ChatML, Llama 3); the whole gap when there is no such token (Mistral's `[/INST]`)."""
    i = gap.find(eot) if eot else -1
    if i < 0:
        return len(gap)
    cut = i + len(eot)
    while cut < len(gap) and gap[cut] == "\n":
        cut += 1
    return cut


def _render(tok, messages: list[dict]) -> str:
    """The chat template's rendering without a BOS token it writes first (`bos_token`): `TemplateParts.bos`."""
    text = _render_marked(tok, messages)
    return text.removeprefix(_BOS_MARK).replace(_BOS_MARK, tok.bos_token or "")


def _render_marked(tok, messages: list[dict]) -> str:
    """The rendering with the template's `bos_token` as a marker (a literal `<|im_start|>` of ChatML stays)."""
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, bos_token=_BOS_MARK)


def _writes_bos(tok, messages: list[dict]) -> bool:
    return tok.bos_token is not None and _render_marked(tok, messages).startswith(_BOS_MARK)


def _verify(tok, parts: TemplateParts, runtime_bos: str) -> None:
    """The rebuilt template, after the BOS token the runtime adds (`runtime_bos`), gives the text the model's own
    template renders (what tunesmith's evaluation tokenized, without adding special tokens) on test conversations."""
    tests = [
        [{"role": "system", "content": "Route the ticket."}, {"role": "user", "content": "Where is my order?"}],
        [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
            {"role": "assistant", "content": "d"},
            {"role": "user", "content": "e"},
        ],
        [{"role": "user", "content": "Hello there"}],
    ]
    for convo in tests:
        system = convo[0]["content"] if convo[0]["role"] == "system" else parts.default_system
        expected = tok.apply_chat_template(convo, tokenize=False, add_generation_prompt=True)
        got = runtime_bos + parts.render(system, [m for m in convo if m["role"] != "system"])
        if got != expected:
            raise TunesmithError(
                "The chat template has no Ollama equivalent",
                [
                    Problem(
                        "tokenizer chat_template",
                        f"rebuilt as a Go template it renders {got[:120]!r}, the model's own "
                        f"template {expected[:120]!r}",
                        "write the Modelfile's TEMPLATE by hand for this model, or export "
                        "`gguf` and let the runtime use the template stored in it",
                    )
                ],
            )


def modelfile(tok, gguf_name: str, system: str | None = None, num_ctx: int | None = None) -> str:
    """The Modelfile text: FROM the GGUF beside it, the rebuilt TEMPLATE, the system prompt (the project's, else
    the template's default), stop at the end-of-turn token, greedy decoding."""
    parts = template_parts(tok)
    template = parts.go_template()
    system = system or parts.default_system
    for what, text in (("TEMPLATE", template), ("SYSTEM", system or "")):
        if '"""' in text:
            raise TunesmithError(
                "Cannot write the Modelfile",
                [Problem(what, 'contains """, which ends a Modelfile string', "remove it from the template or prompt")],
            )
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    if system:
        lines.append(f'SYSTEM """{system}"""')
    lines.append(f'PARAMETER stop "{tok.eos_token}"')
    lines.append("PARAMETER temperature 0")
    if num_ctx:
        lines.append(f"PARAMETER num_ctx {num_ctx}")
    return "\n".join(lines) + "\n"


def constraint_readme(constraint: Constraint, gguf_name: str) -> str:
    """The README beside the Modelfile of a model evaluated under a `Constraint`: how to get the same constrained
    replies from Ollama (`format` in the request: the schema, or `"json"`) and from llama.cpp (`grammar.gbnf`).
    Ollama's API takes no grammar, so a label set is constrained through llama.cpp only."""
    import json

    what = {
        "json_schema": "valid against the JSON Schema in `schema.json`",
        "json_object": "a JSON object",
        "choice": "exactly one of the labels in `schema.json`",
    }[constraint.kind]
    lines = [
        "# Constrained replies",
        "",
        f"tunesmith evaluated this model with every reply held to be {what}, ending when the reply is "
        "complete. Ask for the same constraint when you run it, or its replies may differ from what the "
        "evaluation measured.",
        "",
        "## Ollama",
        "",
    ]
    if constraint.kind == "choice":
        lines += [
            'Ollama\'s API takes a JSON Schema or `"json"` as `format`, not a grammar, and a label is plain '
            "text, not JSON: use llama.cpp below for constrained labels.",
            "",
        ]
    else:
        fmt = json.dumps(constraint.schema) if constraint.kind == "json_schema" else '"json"'
        fmt = fmt.replace("'", "'\\''")  # inside the shell's single quotes
        lines += [
            "```bash",
            "ollama create my-model -f Modelfile",
            'curl http://localhost:11434/api/chat -d \'{"model": "my-model", "stream": false, '
            f'"messages": [{{"role": "user", "content": "..."}}], "format": {fmt}}}\'',
            "```",
            "",
            '(In Python: `ollama.chat(model="my-model", messages=[...], format='
            + ('json.load(open("schema.json"))' if constraint.kind == "json_schema" else '"json"')
            + ")`.)",
            "",
        ]
    lines += [
        "## llama.cpp",
        "",
        "```bash",
        f"llama-cli -m {gguf_name} --grammar-file grammar.gbnf --temp 0 -cnv",
        f'llama-server -m {gguf_name}   # then send the contents of grammar.gbnf as "grammar" in a request',
        "```",
        "",
        'llama-cpp-python: `LlamaGrammar.from_file("grammar.gbnf")` as `grammar=` of `create_chat_completion`.',
        "",
    ]
    return "\n".join(lines)
