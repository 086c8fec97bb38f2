"""The model card: a `README.md` beside every exported folder, made with huggingface_hub's `ModelCard`,
`ModelCardData` and `EvalResult` (the library writes the YAML the Hub reads).

    write_cards(staging, out_dir, ["adapter", "merged", "gguf"], CardFacts(name="router", base_model="org/base"))
    card = model_card("merged", facts, Place(out_dir / "merged"), files)    # a ModelCard

Metadata: base_model, library_name (transformers; peft for the adapter; gguf), tags (tunesmith, the method, the
objective), the model-index (each metric of the tuned model on each suite, from the run's comparison) and
`tunesmith:` (the run, the gate, the ship verdict, and each delta vs the base with its interval: EvalResult has no
field for an interval). The text: the verdict and gates, base vs tuned with intervals, parity, the training data in
numbers (never the data itself), the recipe, and how to run it (transformers or peft, llama.cpp, Ollama,
`tunesmith serve`), from the Hub repo it is pushed to or the local folder. A fact the run does not hold is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.export.hub import repo_layout

LIBRARY = {"merged": "transformers", "adapter": "peft", "gguf": "gguf", "ollama": "gguf"}
WHAT = {
    "merged": "The merged weights (safetensors, with the tokenizer and chat template)",
    "adapter": "The PEFT adapter",
    "gguf": "GGUF files (llama.cpp, Ollama, LM Studio)",
    "ollama": "An Ollama model (Modelfile and GGUF)",
}
NAMES = {"lora": "LoRA", "qlora": "QLoRA", "full": "full", "sft": "SFT", "dpo": "DPO", "grpo": "GRPO"}
SUITES = {"heldout": "held-out test split", "heldout_free": "held-out test split, decoded freely"}


@dataclass(frozen=True)
class DataFacts:
    """The training data in numbers: records per split, the data check's counts and findings, the files."""

    splits: dict[str, int] = field(default_factory=dict)  # train, validation, heldout
    checked: dict[str, int] = field(default_factory=dict)  # records, kept, rejected
    findings: dict[str, int] = field(default_factory=dict)  # "warning: low_data" -> 1
    sources: list[str] = field(default_factory=list)  # project-relative files; their content never ships


@dataclass(frozen=True)
class CardFacts:
    """What a card says: the model's name and base, and what the run holds (each left out when it does not)."""

    name: str
    base_model: str
    run: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)  # method, objective, epochs, lr, lora_r, ..., seed
    data: DataFacts | None = None
    comparison: dict[str, Any] | None = None  # the compare result: metrics, gate(s), verdict, confidence
    parity: dict[str, Any] | None = None  # the parity result: precision, reports
    repo_id: str | None = None  # the Hub repo it is pushed to


@dataclass(frozen=True)
class Place:
    """Where a reader finds the folder: the Hub repo and the folder in it ("" for the root), else the local one."""

    folder: Path
    repo_id: str | None = None
    subfolder: str = ""
    layout: dict[str, str] = field(default_factory=dict)  # every exported format's folder in the repo

    @property
    def ref(self) -> str:
        return self.repo_id or str(self.folder)

    @property
    def sub_arg(self) -> str:
        """`, subfolder="gguf"` for transformers / peft when the folder is not the repo's root."""
        return f', subfolder="{self.subfolder}"' if self.repo_id and self.subfolder else ""


def write_cards(staging: Path, out_dir: Path, formats: list[str], facts: CardFacts) -> None:
    """`README.md` in each exported folder of `staging` (named for where it lands, `out_dir/<format>`); the Ollama
    folder's README on constrained decoding, when there is one, follows its card."""
    layout = repo_layout(formats)
    for fmt in formats:
        folder = staging / fmt
        readme = folder / "README.md"
        appendix = readme.read_text(encoding="utf-8") if fmt == "ollama" and readme.exists() else ""
        files = sorted(p.name for p in folder.iterdir() if p.name != "README.md")
        place = Place(out_dir / fmt, facts.repo_id, layout[fmt], layout)
        model_card(fmt, facts, place, files, appendix).save(readme)


def model_card(kind: str, facts: CardFacts, place: Place, files: list[str], appendix: str = ""):
    """The `ModelCard` of one exported folder (`kind`: merged, adapter, gguf, ollama) holding `files`."""
    from huggingface_hub import ModelCard, ModelCardData

    results = eval_results(facts.comparison)
    data = ModelCardData(
        base_model=facts.base_model,
        library_name=LIBRARY[kind],
        pipeline_tag="text-generation",
        tags=card_tags(kind, facts.recipe),
        model_name=facts.name,
        eval_results=results or None,
        **({"tunesmith": meta} if (meta := tunesmith_meta(facts)) else {}),
    )
    sections = [
        _title(kind, facts),
        _verdict(facts.comparison),
        _evaluation(facts.comparison),
        _parity(kind, facts.parity, files),
        _data(facts.data),
        _recipe(facts.recipe),
        _how_to_run(kind, facts, place, files),
        _in_this_repo(kind, place),
        appendix.strip(),
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(s for s in sections if s) + "\n")


def card_tags(kind: str, recipe: dict[str, Any]) -> list[str]:
    """tunesmith, the method (lora, qlora, full), the objective (sft, dpo, grpo), and gguf / ollama."""
    tags = ["tunesmith"] + [recipe[k] for k in ("method", "objective") if recipe.get(k)]
    return tags + {"gguf": ["gguf"], "ollama": ["gguf", "ollama"]}.get(kind, [])


def _measured(comparison: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The comparison's rows of whole suites (not their slices, "heldout#edge_case") with a tuned value."""
    from tunesmith.eval.evaluate import SLICE

    rows = (comparison or {}).get("metrics", [])
    return [m for m in rows if SLICE not in m["suite"] and m.get("tuned") is not None]


def eval_results(comparison: dict[str, Any] | None) -> list:
    """The model-index: the tuned model's value of each metric on each suite."""
    from huggingface_hub import EvalResult

    return [
        EvalResult(
            task_type="text-generation",
            dataset_type=m["suite"],
            dataset_name=SUITES.get(m["suite"], f"{m['suite']} suite"),
            dataset_split="test" if m["suite"].startswith("heldout") else None,
            metric_type=m["metric"],
            metric_name=m["metric"].replace("_", " "),
            metric_value=round(m["tuned"], 4),
        )
        for m in _measured(comparison)
    ]


def tunesmith_meta(facts: CardFacts) -> dict[str, Any]:
    """The card's `tunesmith:` metadata: the run, the gate, the verdict, each delta vs base with its interval."""
    cmp = facts.comparison or {}
    meta: dict[str, Any] = {"run": facts.run} if facts.run else {}
    if cmp.get("gate"):
        meta["gate"] = {"metric": cmp["gate"]["metric"], "passed": bool(cmp["gate"]["passed"])}
    if cmp.get("verdict"):
        meta["ship"] = bool(cmp["verdict"]["ship"])
    deltas = [m for m in _measured(cmp) if m.get("delta") is not None]
    if deltas:
        meta["confidence"] = cmp.get("confidence")
        meta["vs_base"] = [
            {
                "suite": m["suite"],
                "metric": m["metric"],
                **{k: _round(m.get(k)) for k in ("delta", "ci_low", "ci_high")},
            }
            for m in deltas
        ]
    return meta


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _title(kind: str, facts: CardFacts) -> str:
    recipe = facts.recipe
    how = " ".join(NAMES.get(str(recipe[k]), str(recipe[k])) for k in ("method", "objective") if recipe.get(k))
    lines = [
        f"# {facts.name}",
        "",
        f"{WHAT[kind]} of a {how + ' ' if how else ''}fine-tune of `{facts.base_model}`, made with tunesmith"
        + (f" (train run `{facts.run}`)." if facts.run else "."),
    ]
    return "\n".join(lines)


def _verdict(cmp: dict[str, Any] | None) -> str:
    """The ship verdict and every gate, as the run decided them."""
    if not cmp or not (cmp.get("verdict") or cmp.get("gate")):
        return ""
    verdict = cmp.get("verdict") or {}
    lines = ["## Verdict", ""] + ([f"**{verdict['headline']}**", ""] if verdict else [])
    for gate in cmp.get("gates") or [cmp["gate"]]:
        lines.append(f"- gate on `{gate['metric']}`: {'passed' if gate['passed'] else 'failed'} ({gate['reason']})")
    lines += [f"- {r}" for r in verdict.get("reasons", []) if not r.startswith("gate ")]  # the gates: above
    return "\n".join(lines)


def _evaluation(cmp: dict[str, Any] | None) -> str:
    """Base vs tuned on the same cases with the same decoding: each metric, its delta and interval."""
    rows = _measured(cmp)
    if not rows:
        return ""
    level = f"{cmp.get('confidence', 0.95):.0%}"
    lines = [
        "## Evaluation",
        "",
        f"The base and the tuned model on the same cases with the same decoding; the delta's {level} interval is a "
        "paired bootstrap. The held-out test split was never trained on nor used to choose the checkpoint.",
        "",
        f"| suite | metric | cases | base | tuned | delta | {level} interval |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for m in rows:
        interval = f"[{m['ci_low']:+.3f}, {m['ci_high']:+.3f}]" if m.get("ci_low") is not None else "-"
        delta = f"{m['delta']:+.3f}" if m.get("delta") is not None else "-"
        base = f"{m['base']:.3f}" if m.get("base") is not None else "-"
        lines.append(
            f"| {m['suite']} | {m['metric']} | {m.get('n', '-')} | {base} | {m['tuned']:.3f} | {delta} | {interval} |"
        )
    return "\n".join(lines)


def _parity(kind: str, parity: dict[str, Any] | None, files: list[str]) -> str:
    """The parity reports of the models in this folder: the held-out split re-run on the export vs the checkpoint."""
    kinds = {"merged"} if kind == "merged" else {f[len("model-") : -len(".gguf")] for f in files if f.endswith(".gguf")}
    reports = [r for r in (parity or {}).get("reports", []) if r["kind"] in kinds]
    if not reports:
        return ""
    lines = [
        "## Parity",
        "",
        "The held-out split run again on the exported model and compared with the checkpoint "
        f"(both in {parity.get('precision', 'the same precision')}).",
        "",
        "| model | runtime | cases | identical replies | accuracy delta | target | passed |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in reports:
        acc = r.get("task_accuracy")
        delta = f"{acc['delta']:+.3f} [{acc['ci_low']:+.3f}, {acc['ci_high']:+.3f}]" if acc else "-"
        if acc and r.get("accuracy_metric") not in (None, "task_accuracy"):
            delta = f"{r['accuracy_metric']} {delta}"
        row = f"| {r['kind']} | {r['runtime']} | {r['n']} | {r['identical']:.0%} | {delta} | {r['target']} |"
        lines.append(row + f" {'not measured' if r.get('measured') is False else 'yes' if r['passed'] else 'no'} |")
    lines += [
        f"\n{r['kind']} ({r['runtime']}): " + ("" if r.get("measured") is False else "likely cause: ") + r["cause"]
        for r in reports
        if r.get("cause")
    ]
    return "\n".join(lines)


def _data(data: DataFacts | None) -> str:
    """Counts and file names only: the records themselves never go into the card."""
    if data is None:
        return ""
    lines = ["## Training data", ""]
    if data.splits:
        names = {"heldout": "held-out test"}
        lines.append("- records per split: " + ", ".join(f"{names.get(k, k)} {v}" for k, v in data.splits.items()))
    if data.checked:
        lines.append("- data check: " + ", ".join(f"{k} {v}" for k, v in data.checked.items()))
    if data.findings:
        lines.append("- check findings: " + ", ".join(f"{k} ({v})" for k, v in data.findings.items()))
    if data.sources:
        lines.append("- from: " + ", ".join(f"`{s}`" for s in data.sources) + " (the data is not published here)")
    return "\n".join(lines) if len(lines) > 2 else ""


def _recipe(recipe: dict[str, Any]) -> str:
    if not recipe:
        return ""
    rows = [f"| {k} | {v} |" for k, v in recipe.items()]
    return "\n".join(["## Recipe", "", "| setting | value |", "|---|---|", *rows])


def _how_to_run(kind: str, facts: CardFacts, place: Place, files: list[str]) -> str:
    lines = ["## How to run", ""] + _fetch(kind, place, facts.name)
    if kind == "merged":
        lines += _transformers(place) + _serve(place.ref if place.repo_id and not place.subfolder else "<folder>")
    elif kind == "adapter":
        lines += _peft(facts.base_model, place) + _serve(f"{facts.base_model} --adapter <folder>")
    elif kind == "gguf":
        ggufs = [f for f in files if f.endswith(".gguf")]
        lines += _llama_cpp(ggufs[-1] if ggufs else "model.gguf", "grammar.gbnf" in files)
    else:
        lines += [
            "```bash",
            "cd <folder>",
            f"ollama create {facts.name} -f Modelfile",
            f"ollama run {facts.name}",
            "```",
        ]
    return "\n".join(lines).replace("<folder>", _local(place, facts.name))


def _local(place: Place, name: str) -> str:
    """The folder on disk: the local export, or where `hf download` put it."""
    if not place.repo_id:
        return str(place.folder)
    return f"{name}/{place.subfolder}" if place.subfolder else name


def _fetch(kind: str, place: Place, name: str) -> list[str]:
    """The download step for runtimes that read local files (everything but transformers and peft)."""
    if not place.repo_id:
        return [f"The folder: `{place.folder}`.", ""]
    if kind in ("merged", "adapter") and not place.subfolder:
        return []
    include = f' --include "{place.subfolder}/*"' if place.subfolder else ""
    return ["```bash", f"hf download {place.repo_id}{include} --local-dir {name}", "```", ""]


def _transformers(place: Place) -> list[str]:
    return [
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'tok = AutoTokenizer.from_pretrained("{place.ref}"{place.sub_arg})',
        f'model = AutoModelForCausalLM.from_pretrained("{place.ref}"{place.sub_arg})',
        'messages = [{"role": "user", "content": "..."}]',
        'inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)',
        "out = model.generate(**inputs, max_new_tokens=256)",
        'print(tok.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        "```",
        "",
    ]


def _peft(base: str, place: Place) -> list[str]:
    return [
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'base = AutoModelForCausalLM.from_pretrained("{base}")',
        f'model = PeftModel.from_pretrained(base, "{place.ref}"{place.sub_arg})',
        f'tok = AutoTokenizer.from_pretrained("{place.ref}"{place.sub_arg})',
        "```",
        "",
    ]


def _llama_cpp(gguf: str, grammar: bool) -> list[str]:
    flag = " --grammar-file grammar.gbnf" if grammar else ""
    lines = ["```bash", "cd <folder>", f"llama-cli -m {gguf}{flag} -cnv", f"tunesmith serve {gguf}", "```"]
    if grammar:
        lines += ["", "The evaluation held every reply to `grammar.gbnf` (its JSON Schema or labels: `schema.json`)."]
    return lines


def _serve(target: str) -> list[str]:
    return ["An OpenAI-compatible server:", "", "```bash", f"tunesmith serve {target}", "```"]


def _in_this_repo(kind: str, place: Place) -> str:
    """The root card lists the repo's other folders."""
    others = {f: p for f, p in place.layout.items() if p and f != kind}
    if not place.repo_id or place.subfolder or not others:
        return ""
    return "\n".join(["## In this repo", ""] + [f"- `{p}/`: {WHAT[f]}" for f, p in others.items()])
