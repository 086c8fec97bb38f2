"""Multi-process training through `accelerate launch` (never a home-made launcher).

The parent process (the `train` stage) writes `launch.json` into the run directory — the resolved config, the
model directory, the training records and the task's schema — and runs

    accelerate launch [--config_file FILE] --multi_gpu --num_processes N -m tunesmith.train.launch RUN_DIR

Every process runs the objective's recipe on the same records; the Trainer shards the batches (DDP: gloo on CPU,
NCCL on GPUs; FSDP or DeepSpeed when the accelerate config file says so). Process 0 writes the artifact,
`metrics.jsonl` and `train_result.json`, which the parent reads back as the stage's result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tunesmith.errors import Problem, TunesmithError
from tunesmith.train.result import TrainResult

SPEC, RESULT = "launch.json", "train_result.json"


def launch(
    cfg,
    model_ref,
    records_path: Path,
    run_dir: Path,
    schema: dict | None,
    project: Path,
    validation_path: Path | None = None,
) -> TrainResult:
    """Run the recipe in `cfg.train.nproc` processes; return process 0's result. `validation_path` (the split's
    validation records) chooses an SFT run's checkpoint in every process alike."""
    from tunesmith.files import atomic_write_json

    t = cfg.train
    validation = (
        str(validation_path)
        if validation_path is not None and validation_path.exists() and validation_path.stat().st_size
        else None
    )
    atomic_write_json(
        run_dir / SPEC,
        {
            "config": cfg.model_dump(mode="json"),
            "model": str(model_ref.path),
            "trust_remote_code": model_ref.trust_remote_code,
            "records": str(records_path),
            "schema": schema,
            "validation": validation,
        },
    )
    (run_dir / RESULT).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if t.accelerate_config:
        cmd += ["--config_file", str(project / t.accelerate_config)]
    else:
        # accelerate's multi-process DDP launcher (torch.distributed.run); on a CPU-only machine the Trainer
        # picks the gloo backend itself.
        cmd += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd += ["--num_processes", str(t.nproc), "-m", "tunesmith.train.launch", str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(cmd, env=env)
    if done.returncode != 0 or not (run_dir / RESULT).exists():
        raise TunesmithError(
            "Multi-process training failed",
            [
                Problem(
                    f"train.nproc: {t.nproc}",
                    f"accelerate launch exited with {done.returncode}",
                    "see the output above; try train.nproc: 1 to rule the launcher out",
                )
            ],
        )
    return TrainResult.from_json(json.loads((run_dir / RESULT).read_text()))


def main(run_dir: str) -> None:
    """One process of a launched run (what `accelerate launch -m tunesmith.train.launch RUN_DIR` executes)."""
    from tunesmith.config import Config
    from tunesmith.data.formats import load_records
    from tunesmith.files import atomic_write_json
    from tunesmith.models import resolve_model

    run = Path(run_dir)
    spec = json.loads((run / SPEC).read_text())
    cfg = Config.model_validate(spec["config"])
    model_ref = resolve_model(spec["model"], spec["trust_remote_code"])
    records = load_records([Path(spec["records"])])
    from tunesmith.train import run_recipe

    plan = None
    if spec.get("validation") and cfg.train.objective == "sft":
        from tunesmith.models import load_tokenizer
        from tunesmith.train.selection import validation_plan

        plan = validation_plan(
            cfg,
            load_records([Path(spec["validation"])]),
            [r.reply or "" for r in records],
            load_tokenizer(model_ref),
            spec["schema"],
        )
    result = run_recipe(cfg, model_ref, records, run, spec["schema"], plan)
    if int(os.environ.get("RANK", "0")) == 0:
        atomic_write_json(run / RESULT, {**result.to_json(), "nproc": int(os.environ.get("WORLD_SIZE", "1"))})


if __name__ == "__main__":
    main(sys.argv[1])
