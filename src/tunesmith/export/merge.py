"""Write the adapter alone and/or the adapter merged into the base (`merge_and_unload`), as safetensors with the
tokenizer, chat template and generation config (stop tokens), so transformers and vLLM load it as it is.

    manifest = export_artifacts(model_ref, adapter_dir, ["adapter", "merged"], out_dir)
    manifest = export_artifacts(full_model_ref, None, ["merged"], out_dir)   # a full fine-tuning run
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tunesmith.data.io import atomic_write_json
from tunesmith.models import ModelRef, cached_sha256, load_model, load_tokenizer


def _swap_in(tmp: Path, final: Path) -> None:
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def export_artifacts(model_ref: ModelRef, adapter: Path | None, formats: list[str], out_dir: Path,
                     no_repeat_ngram_size: int | None = None) -> dict[str, Any]:
    """Export each requested format into `out_dir/<format>/` atomically; write and return a manifest. With no
    adapter (a full fine-tuning run), `model_ref` is the trained model and `merged` is it with its stop tokens."""
    from peft import PeftModel

    from tunesmith.errors import Problem, TunesmithError

    if adapter is None and "adapter" in formats:
        raise TunesmithError("Nothing to export as an adapter", [Problem(
            "export.formats: adapter", "train.method: full trains every weight, so there is no adapter",
            "export `merged` (the whole trained model) instead")])

    made: dict[str, Any] = {}
    for fmt in formats:
        final, tmp = out_dir / fmt, out_dir / f".{fmt}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if fmt == "adapter":
            shutil.copytree(adapter, tmp)
        elif fmt == "merged":
            tok = load_tokenizer(model_ref)
            merged = load_model(model_ref)
            if adapter is not None:
                merged = PeftModel.from_pretrained(merged, str(adapter)).merge_and_unload()
            merged.generation_config.eos_token_id = tok.convert_tokens_to_ids(tok.eos_token)
            if no_repeat_ngram_size:  # ship the decoding the eval measured
                merged.generation_config.no_repeat_ngram_size = no_repeat_ngram_size
            merged.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
        _swap_in(tmp, final)
        made[fmt] = {"path": str(final), "files": {p.name: {"bytes": p.stat().st_size, "sha256": cached_sha256(p)}
                                                    for p in sorted(final.iterdir()) if p.is_file()}}
    manifest = {"base": model_ref.ref, "base_identity": model_ref.identity,
                "adapter": str(adapter) if adapter is not None else None,
                "exports": made}
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest
