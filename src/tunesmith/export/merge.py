"""Export a trained run: the PEFT adapter, merged safetensors, GGUF files and an Ollama Modelfile.

    manifest = export_artifacts(model_ref, adapter_dir, ["adapter", "merged", "gguf", "ollama"], out_dir)
    manifest = export_artifacts(full_model_ref, None, ["merged"], out_dir)   # a full fine-tuning run
    manifest = export_artifacts(model_ref, adapter_dir, ["gguf"], out_dir, ExportOptions(gguf_types=["q4_0"]))

`merged` is the adapter merged into the base (`merge_and_unload`, in fp32) with the tokenizer, chat template and a
generation config whose EOS is the end-of-turn token, saved in the base model's own dtype (its config's `dtype`, e.g.
bf16: an 8B model stays 16 GB, not 32), so transformers and vLLM load it as it is; `gguf` and `ollama` are made
from it. Everything is built in a staging directory first and moved into place only when every format succeeded,
so a failure (a full disk included) leaves no partial export behind. Moving into place is all or nothing too: the
old manifest and every old format folder are moved aside first, the new folders moved in, the new `manifest.json`
(sizes, hashes, what it was exported from) written last; a failure on the way puts the old export back, and a
re-export of fewer formats removes the folders of the others, so the folder holds exactly what its manifest lists.
Every exported folder gets a model card, `README.md` (`tunesmith.export.card`: the facts of
`ExportOptions(card=...)`, else the base model and how to run it).

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
    and what the model cards say (`card`). `gguf_pre_tokenizer` names llama.cpp's pre-tokenizer for a tokenizer
    `tunesmith.export.gguf.pre_tokenizer_name` does not recognise (your word that it splits text the same way)."""

    no_repeat_ngram_size: int | None = None
    gguf_types: Sequence[str] | None = None
    ollama_type: str = "q8_0"
    system: str | None = None
    num_ctx: int | None = None
    constraint: Constraint | None = None
    card: CardFacts | None = None
    gguf_pre_tokenizer: str | None = None  # llama.cpp's pre-tokenizer name, when tunesmith cannot tell it


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
    _check_request(model_ref, adapter, formats, gguf_types + [options.ollama_type], options.gguf_pre_tokenizer)
    # the grammar before any slow work: a schema with no GBNF form fails here, not after the merge
    shipped = _constraint_files(options.constraint, formats)
    staging = out_dir / ".export-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with _cleaned_up(staging, out_dir):
        _stage(model_ref, adapter, _Staging(staging, formats, options, gguf_types, shipped))
        _write_cards(model_ref, formats, staging, out_dir, options.card)
        made = {fmt: _describe(staging / fmt, out_dir / fmt) for fmt in formats}
    manifest = {
        "base": model_ref.ref,
        "base_identity": model_ref.identity,
        "adapter": str(adapter) if adapter is not None else None,
        "exports": made,
    }
    if options.constraint is not None:
        manifest["constraint"] = _constraint_entry(options.constraint, shipped, made, out_dir)
    _install(staging, out_dir, formats, manifest)  # every format succeeded: into place, all or nothing
    return manifest


def _install(staging: Path, out_dir: Path, formats: list[str], manifest: dict[str, Any]) -> None:
    """Replace the export in `out_dir` with the staged one: the old manifest and every old format folder moved
    aside (so no manifest claims a half-moved folder), the staged folders moved in, the new manifest written; on
    any failure the new folders go and the old ones come back. Format folders the new export does not have are
    removed with the old manifest, so the folder holds what `manifest.json` lists."""
    previous = out_dir / ".export-previous"
    shutil.rmtree(previous, ignore_errors=True)
    aside: list[str] = []
    placed: list[str] = []
    try:
        previous.mkdir()
        for name in ("manifest.json", *FORMATS):
            if (out_dir / name).exists():
                os.replace(out_dir / name, previous / name)
                aside.append(name)
        for fmt in formats:
            os.replace(staging / fmt, out_dir / fmt)
            placed.append(fmt)
        atomic_write_json(out_dir / "manifest.json", manifest)
    except BaseException as exc:
        restored = _roll_back(out_dir, previous, placed, aside)
        shutil.rmtree(staging, ignore_errors=True)
        if not isinstance(exc, OSError):
            raise
        hint = _os_hint(exc)
        if not restored:
            hint += f"; the previous export could not all be put back: what is left of it is in {previous}"
        raise _export_failed(exc, out_dir, hint) from None
    shutil.rmtree(previous, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def _roll_back(out_dir: Path, previous: Path, placed: list[str], aside: list[str]) -> bool:
    """Undo a partial `_install`: the new folders removed, the old ones and the old manifest put back; whether all
    of it came back (if not, what did not stays in `previous`)."""
    for fmt in placed:
        shutil.rmtree(out_dir / fmt, ignore_errors=True)
    if "manifest.json" not in aside:
        with contextlib.suppress(OSError):
            (out_dir / "manifest.json").unlink(missing_ok=True)
    restored = True
    for name in aside:
        try:
            if (out_dir / name).is_dir():
                shutil.rmtree(out_dir / name)
            _move(previous / name, out_dir / name)
        except OSError:
            restored = False
    if restored:
        shutil.rmtree(previous, ignore_errors=True)
    return restored


def _check_request(
    model_ref: ModelRef,
    adapter: Path | None,
    formats: list[str],
    quant_types: list[str],
    pre_tokenizer: str | None = None,
) -> None:
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
        check_exportable(Path(model_ref.path), quant_types, source_gguf(model_ref), pre_tokenizer)


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
        raise _export_failed(exc, out_dir, _os_hint(exc)) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _export_failed(exc: OSError, out_dir: Path, hint: str) -> TunesmithError:
    """The error of an export an OS error stopped, naming the file it was at (else the export folder)."""
    return TunesmithError("Export failed", [Problem(str(exc.filename or out_dir), exc.strerror or str(exc), hint)])


def _move(src: Path, dst: Path) -> None:
    """A rename, else (another file system, a rename refused) shutil's copy-and-delete move."""
    try:
        os.replace(src, dst)
    except OSError:
        shutil.move(str(src), str(dst))


def _os_hint(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "free some space (an export needs about 3x the model's size while it is written)"
    return "check the directory's permissions, and that it is on one file system"


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
    ggufs = "gguf" in st.formats or "ollama" in st.formats
    fp32 = st.dir / ".merged-fp32"  # the GGUF files' source when `merged` is saved narrower: rounded once, not twice
    if "merged" in st.formats or ggufs:
        _merge(model_ref, adapter, st.dir / "merged", st.options.no_repeat_ngram_size, fp32 if ggufs else None)
    if ggufs:
        written = _stage_gguf(model_ref, st, fp32 if fp32.exists() else st.dir / "merged")
        shutil.rmtree(fp32, ignore_errors=True)
    if "ollama" in st.formats:
        _stage_ollama(written[st.options.ollama_type], st)


def _stage_gguf(model_ref: ModelRef, st: _Staging, merged: Path) -> dict[str, Path]:
    """The GGUF files of the merged model in `merged` (the requested types, plus the one Ollama needs) with the
    constraint's files beside them; {type: file}."""
    from tunesmith.export.gguf import write_gguf

    ollama_type = st.options.ollama_type
    types = st.gguf_types if "gguf" in st.formats else []
    types = types + ([ollama_type] if "ollama" in st.formats and ollama_type not in types else [])
    written = write_gguf(
        merged, st.dir / "gguf", types, source_gguf(model_ref), pre_tokenizer=st.options.gguf_pre_tokenizer
    )
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


def _merge(
    model_ref: ModelRef,
    adapter: Path | None,
    target: Path,
    no_repeat_ngram_size: int | None,
    fp32_copy: Path | None = None,
) -> None:
    """The adapter merged into the base in fp32, saved in the base model's dtype (`saved_dtype`); with `fp32_copy`,
    the fp32 merge saved there too when that dtype is narrower (what GGUF files are made from)."""
    from peft import PeftModel

    tok = load_tokenizer(model_ref)
    merged = load_model(model_ref)
    if adapter is not None:
        merged = PeftModel.from_pretrained(merged, str(check_adapter_dir(adapter))).merge_and_unload()
    merged.generation_config.eos_token_id = tok.convert_tokens_to_ids(tok.eos_token)
    if no_repeat_ngram_size:  # ship the decoding the eval measured
        merged.generation_config.no_repeat_ngram_size = no_repeat_ngram_size
    dtype = saved_dtype(Path(model_ref.path))
    if fp32_copy is not None and dtype != merged.dtype:
        merged.save_pretrained(fp32_copy, safe_serialization=True)
        tok.save_pretrained(fp32_copy)
    merged.to(dtype)
    merged.save_pretrained(target, safe_serialization=True)
    tok.save_pretrained(target)


def saved_dtype(model_dir: Path):
    """The torch dtype a model's weights are stored in, from its config (`dtype`, formerly `torch_dtype`): what a
    merged export is saved in. float32 when the config names none (or `auto`)."""
    import json

    import torch

    config = json.loads((model_dir / "config.json").read_text()) if (model_dir / "config.json").exists() else {}
    name = config.get("dtype") or config.get("torch_dtype")
    return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(str(name).removeprefix("torch."), torch.float32)


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
