"""Export a trained run: the PEFT adapter, merged safetensors, GGUF files and an Ollama Modelfile.

    manifest = export_artifacts(model_ref, adapter_dir, ["adapter", "merged", "gguf", "ollama"], out_dir)
    manifest = export_artifacts(full_model_ref, None, ["merged"], out_dir)   # a full fine-tuning run
    manifest = export_artifacts(model_ref, adapter_dir, ["gguf"], out_dir, ExportOptions(gguf_types=["q4_0"]))

`merged` is the adapter merged into the base (`merge_and_unload`) with the tokenizer, chat template and a generation
config whose EOS is the end-of-turn token, so transformers and vLLM load it as it is; `gguf` and `ollama` are made
from it. Everything is built in a staging directory first and moved into place only when every format succeeded,
so a failure (a full disk included) leaves no partial export behind; `manifest.json` (sizes, hashes, what it was
exported from) is written last. Every exported folder gets a model card, `README.md` (`tunesmith.export.card`:
the facts of `ExportOptions(card=...)`, else the base model and how to run it).

With the `constraint` the evaluation decoded under (`ExportOptions(constraint=c)`), the `gguf` and `ollama`
folders also hold `grammar.gbnf` (llama.cpp's `--grammar-file`) and `schema.json` (the JSON Schema, or the label
list), and `ollama/README.md` shows how to get the same constrained replies from Ollama and from llama.cpp.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith.errors import Problem, TunesmithError
from tunesmith.files import atomic_write_json, file_sha256
from tunesmith.models import ModelRef, check_adapter_dir, load_model, load_tokenizer

if TYPE_CHECKING:
    from tunesmith.export.card import CardFacts
    from tunesmith.generate.decoding import Constraint

FORMATS = ("adapter", "merged", "gguf", "ollama")


@dataclass(frozen=True)
class ExportOptions:
    """How to export, beyond what and where: the decoding the eval measured (`no_repeat_ngram_size`, shipped in the
    merged generation config), the GGUF types (default f16 and q8_0) and the one Ollama uses, the Modelfile's system
    prompt and context, the decoding `constraint` whose grammar and schema ship beside the GGUF and Ollama files,
    and what the model cards say (`card`)."""

    no_repeat_ngram_size: int | None = None
    gguf_types: Sequence[str] | None = None
    ollama_type: str = "q8_0"
    system: str | None = None
    num_ctx: int | None = None
    constraint: Constraint | None = None
    card: CardFacts | None = None


def export_artifacts(
    model_ref: ModelRef,
    adapter: Path | None,
    formats: list[str],
    out_dir: Path,
    options: ExportOptions | None = None,
) -> dict[str, Any]:
    """Export each requested format into `out_dir/<format>/`; write and return the manifest. With no adapter (a
    full fine-tuning run), `model_ref` is the trained model and `merged` is it with its stop tokens. With a
    `constraint` in the options, the GGUF and Ollama folders get its grammar and schema (listed under `constraint`
    in the manifest)."""
    options = options or ExportOptions()
    gguf_types = list(options.gguf_types or ["f16", "q8_0"])
    _check_request(model_ref, adapter, formats, gguf_types + [options.ollama_type])
    # the grammar before any slow work: a schema with no GBNF form fails here, not after the merge
    shipped = _constraint_files(options.constraint, formats)
    staging = out_dir / ".export-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with _cleaned_up(staging, out_dir):
        _stage(model_ref, adapter, _Staging(staging, formats, options, gguf_types, shipped))
        _write_cards(model_ref, formats, staging, out_dir, options.card)
        made = {fmt: _describe(staging / fmt, out_dir / fmt) for fmt in formats}
    for fmt in formats:  # every format succeeded: move them into place
        shutil.rmtree(out_dir / fmt, ignore_errors=True)
        os.replace(staging / fmt, out_dir / fmt)
    shutil.rmtree(staging, ignore_errors=True)
    manifest = {
        "base": model_ref.ref,
        "base_identity": model_ref.identity,
        "adapter": str(adapter) if adapter is not None else None,
        "exports": made,
    }
    if options.constraint is not None:
        manifest["constraint"] = _constraint_entry(options.constraint, shipped, made, out_dir)
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest


def _check_request(model_ref: ModelRef, adapter: Path | None, formats: list[str], quant_types: list[str]) -> None:
    """Known formats, an adapter when one is asked for and present when given, and a model GGUF can take."""
    from tunesmith.export.gguf import check_exportable

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise TunesmithError(
            "Unknown export format",
            [Problem(f"--format {f}", "not an export format", f"one of {', '.join(FORMATS)}") for f in unknown],
        )
    if adapter is None and "adapter" in formats:
        raise TunesmithError(
            "Nothing to export as an adapter",
            [
                Problem(
                    "export.formats: adapter",
                    "train.method: full trains every weight, so there is no adapter",
                    "export `merged` (the whole trained model) instead",
                )
            ],
        )
    if adapter is not None and not (Path(adapter) / "adapter_config.json").exists():
        raise TunesmithError(
            "The adapter is missing",
            [
                Problem(
                    str(adapter),
                    "no adapter_config.json there",
                    "re-run `tunesmith train`; the run may have been cleaned",
                )
            ],
        )
    if {"gguf", "ollama"} & set(formats):
        check_exportable(Path(model_ref.path), quant_types)


def _constraint_files(constraint: Constraint | None, formats: list[str]) -> dict[str, str]:
    """{file name: text} of the constraint's grammar and schema, when GGUF or Ollama files are exported."""
    from tunesmith.export.gguf import constraint_files

    return constraint_files(constraint) if constraint is not None and {"gguf", "ollama"} & set(formats) else {}


@contextlib.contextmanager
def _cleaned_up(staging: Path, out_dir: Path):
    """On any failure the staging directory goes; an OSError (a full disk, permissions) becomes a clear error."""
    try:
        yield
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        hint = (
            "free some space (an export needs about 3x the model's size while it is written)"
            if exc.errno == errno.ENOSPC
            else "check the directory's permissions"
        )
        raise TunesmithError(
            "Export failed", [Problem(str(exc.filename or out_dir), exc.strerror or str(exc), hint)]
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@dataclass(frozen=True)
class _Staging:
    """One export's staging: the directory, the formats asked for, the options, the GGUF types and the constraint's
    files shipped beside GGUF and Ollama."""

    dir: Path
    formats: list[str]
    options: ExportOptions
    gguf_types: list[str]
    shipped: dict[str, str]


def _stage(model_ref: ModelRef, adapter: Path | None, st: _Staging) -> None:
    """Every requested format into `staging/<format>/`: the adapter copied, the merged model, then the GGUF files
    and the Ollama folder made from it."""
    if "adapter" in st.formats:
        shutil.copytree(adapter, st.dir / "adapter")
    if {"merged", "gguf", "ollama"} & set(st.formats):
        _merge(model_ref, adapter, st.dir / "merged", st.options.no_repeat_ngram_size)
    if "gguf" in st.formats or "ollama" in st.formats:
        written = _stage_gguf(model_ref, st)
    if "ollama" in st.formats:
        _stage_ollama(written[st.options.ollama_type], st)


def _stage_gguf(model_ref: ModelRef, st: _Staging) -> dict[str, Path]:
    """The GGUF files of the merged model (the requested types, plus the one Ollama needs) with the constraint's
    files beside them; {type: file}."""
    from tunesmith.export.gguf import write_gguf

    ollama_type = st.options.ollama_type
    types = st.gguf_types if "gguf" in st.formats else []
    types = types + ([ollama_type] if "ollama" in st.formats and ollama_type not in types else [])
    written = write_gguf(st.dir / "merged", st.dir / "gguf", types, source_gguf(model_ref))
    _write_files(st.dir / "gguf", st.shipped)
    return written


def _stage_ollama(gguf_file: Path, st: _Staging) -> None:
    """The Ollama folder: its GGUF file (linked; moved when it was made for Ollama only), the Modelfile, and with a
    constraint its grammar, schema and a README on using them."""
    from tunesmith.export.ollama import constraint_readme, modelfile

    options, folder = st.options, st.dir / "ollama"
    folder.mkdir()
    target = folder / gguf_file.name
    _link_or_copy(gguf_file, target)
    if "gguf" in st.formats and options.ollama_type not in st.gguf_types:
        gguf_file.unlink()  # made for Ollama only
    tok = load_tokenizer(ModelRef(str(st.dir / "merged"), st.dir / "merged", "staging"))
    (folder / "Modelfile").write_text(modelfile(tok, target.name, options.system, options.num_ctx))
    if options.constraint is not None:
        readme = constraint_readme(options.constraint, target.name)
        _write_files(folder, {**st.shipped, "README.md": readme})


def _constraint_entry(constraint: Constraint, shipped: dict[str, str], made: dict, out_dir: Path) -> dict[str, Any]:
    """The manifest's `constraint`: the constraint, its key, and the files of it that were shipped."""
    ours = {"gguf": set(shipped), "ollama": {*shipped, "README.md"}}  # the README: the card, then the constraint
    files = [
        str(out_dir / fmt / name)
        for fmt in ("gguf", "ollama")
        if fmt in made
        for name in made[fmt]["files"]
        if name in ours[fmt]
    ]
    return {**constraint.to_json(), "key": constraint.key(), "files": files}


def _write_cards(
    model_ref: ModelRef, formats: list[str], staging: Path, out_dir: Path, facts: CardFacts | None
) -> None:
    """A model card in every staged folder: the run's facts, else what the export knows (its base model)."""
    from tunesmith.export.card import CardFacts, write_cards

    write_cards(staging, out_dir, formats, facts or CardFacts(name=out_dir.name, base_model=model_ref.ref))


def _merge(model_ref: ModelRef, adapter: Path | None, target: Path, no_repeat_ngram_size: int | None) -> None:
    from peft import PeftModel

    tok = load_tokenizer(model_ref)
    merged = load_model(model_ref)
    if adapter is not None:
        merged = PeftModel.from_pretrained(merged, str(check_adapter_dir(adapter))).merge_and_unload()
    merged.generation_config.eos_token_id = tok.convert_tokens_to_ids(tok.eos_token)
    if no_repeat_ngram_size:  # ship the decoding the eval measured
        merged.generation_config.no_repeat_ngram_size = no_repeat_ngram_size
    merged.save_pretrained(target, safe_serialization=True)
    tok.save_pretrained(target)


def _write_files(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _describe(staged: Path, final: Path) -> dict[str, Any]:
    return {
        "path": str(final),
        "files": {
            p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
            for p in sorted(staged.iterdir())
            if p.is_file()
        },
    }


def source_gguf(model_ref: ModelRef) -> Path | None:
    """The GGUF file a model was converted from (the built-in model), if any."""
    import json

    marker = Path(model_ref.path) / "tunesmith-source.json"
    if not marker.exists():
        return None
    return Path(json.loads(marker.read_text())["gguf"])
