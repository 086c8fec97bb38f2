"""Child process of the fault-injection checks: one SFT run on a tiny model that may SIGKILL itself at a chosen
point, so the parent can resume it and compare the result with an uninterrupted run.

    python tests/faults/train_child.py MODEL_DIR RUN_DIR '{"steps": 6, "grad_accum": 2, "kill": ["mid_state", 2]}'

Kill points (`kill: [event, n]`, the n-th such event of this process):
  accum          between the micro-batches of one optimizer step (on_substep_end, with grad_accum >= 2)
  step           after an optimizer step, before its checkpoint (on_step_end)
  weights_saved  inside a checkpoint write: the weights are on disk, the optimizer state is not
  mid_rng        inside a checkpoint write: weights and optimizer written, the RNG state not
  mid_state      inside a checkpoint write: half of trainer_state.json written (a torn write)
  rotate         while the oldest checkpoint is being deleted (a few of its files gone)
  final          after the adapter is in place, while the checkpoints are being removed
`started` (a file in RUN_DIR) appears when training begins; `resumes.jsonl` gets the checkpoint each start resumed
from (what `latest_checkpoint` returned).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def config(spec: dict):
    """The run's config: LoRA r=4 on the tiny model, fp32, batch 2, a checkpoint every step."""
    from tunesmith.config import Config

    cfg = Config()
    cfg.data.max_seq_len = 96
    for key, value in {
        "max_steps": spec["steps"],
        "batch_size": 2,
        "grad_accum": spec.get("grad_accum", 1),
        "save_steps": 1,
        "logging_steps": 1,
        "precision": "fp32",
        "lr": 5e-3,
    }.items():
        setattr(cfg.train, key, value)
    cfg.train.lora.r, cfg.train.lora.alpha = 4, 8
    return cfg


def training_records(spec: dict):
    from conftest import routing_rows
    from tunesmith.data.records import Record

    return [
        Record(messages=r["messages"], source="t.jsonl", line=i + 1)
        for i, r in enumerate(routing_rows(spec.get("records", 16)))
    ]


def main() -> None:
    model_dir, run_dir, spec = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for conftest.routing_rows
    import shutil

    import transformers.trainer as hf_trainer
    from transformers import TrainerCallback
    from transformers.trainer_callback import TrainerState

    from tunesmith.models import resolve_model
    from tunesmith.train import checkpoint as ckpt
    from tunesmith.train import sft
    from tunesmith.train import trainer as shared

    event, nth = spec.get("kill") or (None, 0)
    seen = {"n": 0}

    def hit(name: str) -> bool:
        if name != event:
            return False
        seen["n"] += 1
        return seen["n"] == nth

    cfg, records = config(spec), training_records(spec)

    real_latest = shared.latest_checkpoint

    def logged_latest(path):
        found = real_latest(path)
        with open(run_dir / "resumes.jsonl", "a") as fh:
            fh.write(json.dumps({"resumed_from": found}) + "\n")
        return found

    shared.latest_checkpoint = logged_latest

    class Killer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            (run_dir / "started").write_text(str(state.global_step))

        def on_substep_end(self, args, state, control, **kw):
            if hit("accum"):
                die()

        def on_step_end(self, args, state, control, **kw):
            if hit("step"):
                die()

    real_make = sft.make_trainer

    def make_trainer(*a, **k):
        trainer, budget = real_make(*a, **k)
        trainer.add_callback(Killer())
        return trainer, budget

    sft.make_trainer = make_trainer

    real_save_optimizer, real_save_rng = ckpt.save_optimizer, ckpt.save_rng

    def save_optimizer(*a, **k):
        if hit("weights_saved"):
            die()
        real_save_optimizer(*a, **k)

    def save_rng(*a, **k):
        if hit("mid_rng"):
            die()
        real_save_rng(*a, **k)

    ckpt.save_optimizer, ckpt.save_rng = save_optimizer, save_rng
    real_to_json = TrainerState.save_to_json

    def save_to_json(self, json_path):
        if Path(json_path).name == "trainer_state.json" and hit("mid_state"):
            text = json.dumps({"global_step": self.global_step, "log_history": self.log_history}, indent=2)
            with open(json_path, "w") as fh:  # what an interrupted open("w") + write leaves: a torn file
                fh.write(text[: len(text) // 2])
            die()
        real_to_json(self, json_path)

    TrainerState.save_to_json = save_to_json
    real_rotate = hf_trainer.rotate_checkpoints

    def rotate(output_dir, save_total_limit=None, **k):
        ckpts = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
        if save_total_limit and len(ckpts) > save_total_limit and hit("rotate"):
            for f in sorted(ckpts[0].iterdir())[:3]:  # rmtree removes file by file: stop after a few
                f.unlink()
            die()
        real_rotate(output_dir, save_total_limit=save_total_limit, **k)

    hf_trainer.rotate_checkpoints = rotate
    real_rmtree = shutil.rmtree

    def rmtree(path, *a, **k):
        path = Path(path)
        if (
            "checkpoints" in path.name
            and path.parent == run_dir
            and (run_dir / "adapter").exists()
            and list(path.glob("checkpoint-*"))
            and hit("final")
        ):
            newest = max(path.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
            for f in newest.iterdir():
                if f.name != "trainer_state.json":  # partly deleted: its state file happens to survive
                    f.unlink()
            die()
        real_rmtree(path, *a, **k)

    shared.shutil.rmtree = rmtree
    result = sft.train_sft(cfg, resolve_model(model_dir), records, run_dir)
    (run_dir / "result.json").write_text(json.dumps({"steps": result.steps, "resumed_from": result.resumed_from}))


if __name__ == "__main__":
    main()
