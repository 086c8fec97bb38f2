"""A full disk (ENOSPC raised partway through a write) during a training checkpoint, an export and a data write:
a clear TunesmithError, and the previous good state intact (the last complete checkpoint resumes to the
uninterrupted run's adapter; the previous export and output file are byte for byte the same; inputs untouched)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import routing_records, routing_rows, train_config, write_jsonl
from faults.harness import max_adapter_difference
from tunesmith.config import Config
from tunesmith.data.records import Record
from tunesmith.errors import TunesmithError
from tunesmith.models import resolve_model
from tunesmith.train.sft import train_sft
from tunesmith.train.trainer import latest_checkpoint


def _enospc(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _cfg() -> Config:
    return train_config(max_steps=3, batch_size=2, save_steps=1, lr=5e-3, lora={"r": 4, "alpha": 8})


def _records() -> list[Record]:
    return routing_records(12)


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, tiny_model_dir) -> Path:
    """An uninterrupted run of `_cfg()`: its adapter is the reference, and what the export test exports."""
    run = tmp_path_factory.mktemp("whole")
    train_sft(_cfg(), resolve_model(str(tiny_model_dir)), _records(), run)
    return run


@pytest.mark.parametrize("torn", ["optimizer.safetensors", "trainer_state.json"])
def test_a_full_disk_during_a_checkpoint_stops_clearly_and_the_last_complete_one_resumes(
    tmp_path, tiny_model_dir, whole_run, monkeypatch, torn
):
    import safetensors.torch
    from transformers.trainer_callback import TrainerState

    real_save, real_state = safetensors.torch.save_file, TrainerState.save_to_json

    def fill_up(path: Path, data: bytes):
        path.write_bytes(data[: len(data) // 2])  # half of it made it to disk
        raise _enospc(path)

    def save_file(tensors, filename, *a, **k):
        if Path(filename).name == torn and Path(filename).parent.name == "checkpoint-3":
            real_save(tensors, filename, *a, **k)
            fill_up(Path(filename), Path(filename).read_bytes())
        return real_save(tensors, filename, *a, **k)

    def save_to_json(self, json_path):
        if Path(json_path).name == torn and Path(json_path).parent.name == "checkpoint-3":
            real_state(self, json_path)
            fill_up(Path(json_path), Path(json_path).read_bytes())
        return real_state(self, json_path)

    ref, run = resolve_model(str(tiny_model_dir)), tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(safetensors.torch, "save_file", save_file)
        m.setattr(TrainerState, "save_to_json", save_to_json)
        with pytest.raises(TunesmithError) as err:
            train_sft(_cfg(), ref, _records(), run)
    assert isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC
    assert "Out of disk space" in err.value.title and "checkpoint-2" in str(err.value)
    assert (run / "checkpoints" / "checkpoint-3" / torn).exists()  # the torn file is there...
    assert latest_checkpoint(run).endswith("checkpoint-2")  # ...and never resumed from
    resumed = train_sft(_cfg(), ref, _records(), run)
    assert resumed.resumed_from.endswith("checkpoint-2") and resumed.steps == 3
    assert max_adapter_difference(whole_run, run) <= 1e-6


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_full_disk_during_an_export_keeps_the_previous_export(tmp_path, tiny_model_dir, whole_run, monkeypatch):
    from tunesmith.export import merge

    ref, out = resolve_model(str(tiny_model_dir)), tmp_path / "export"
    merge.export_artifacts(ref, whole_run / "adapter", ["adapter", "merged"], out)
    before = _files(out)
    assert "manifest.json" in before and "merged/model.safetensors" in before
    real = merge._merge

    def merge_fills_the_disk(model_ref, adapter, target, *a):
        real(model_ref, adapter, target, *a)
        weights = target / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        raise _enospc(weights)

    monkeypatch.setattr(merge, "_merge", merge_fills_the_disk)
    with pytest.raises(TunesmithError) as err:
        merge.export_artifacts(ref, whole_run / "adapter", ["adapter", "merged"], out)
    assert err.value.title == "Export failed" and "free some space" in str(err.value)
    assert _files(out) == before  # the previous export, manifest included, byte for byte
    assert not (out / ".export-staging").exists()


class _FillsUp:
    """A file handle on a disk with `room` characters left: the write that crosses it raises ENOSPC."""

    def __init__(self, fh, room: int) -> None:
        self._fh, self._room = fh, room

    def write(self, text: str) -> int:
        if len(text) > self._room:
            self._fh.write(text[: self._room])
            self._fh.flush()
            raise _enospc(self._fh.name)
        self._room -= len(text)
        return self._fh.write(text)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._fh.__exit__(*exc)


def test_a_full_disk_during_a_data_write_keeps_the_input_and_the_previous_output(tmp_path, monkeypatch):
    from tunesmith.cli import app

    source = write_jsonl(tmp_path / "tickets.jsonl", routing_rows(30))
    out = tmp_path / "deduped.jsonl"
    out.write_text("the previous output\n")
    source_bytes = source.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _FillsUp(real_fdopen(fd, *a, **k), room=500))
    result = CliRunner().invoke(app, ["data", "dedup", str(source), "--out", str(out)])
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert isinstance(result.exception, TunesmithError), result.output
    assert "Out of disk space" in result.exception.title and str(out) in str(result.exception)
    assert out.read_text() == "the previous output\n" and source.read_bytes() == source_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deduped.jsonl", "tickets.jsonl"]  # no temp file left
