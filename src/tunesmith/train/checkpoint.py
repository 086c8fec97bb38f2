"""Checkpoint state without pickle: optimizer, scheduler and RNG states as safetensors plus JSON.

transformers' Trainer saves `optimizer.pt`, `scheduler.pt`, `rng_state.pth` and `training_args.bin` with
`torch.save` (pickle) and loads them back with `torch.load`. tunesmith's trainers write instead

    optimizer.safetensors + optimizer.json     tensors of the optimizer state + param groups and scalars
    scheduler.json                             the learning-rate scheduler's state
    rng_state[_RANK].safetensors + .json       torch's generator(s) + Python's and NumPy's states

and load only those: a checkpoint holding nothing but pickled state is refused, and a pickle planted in a
checkpoint is never opened. Exact resume (the same adapter as an uninterrupted run, to 1e-6) is a test.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from pathlib import Path
from typing import Any

OPTIMIZER, OPTIMIZER_META, SCHEDULER = "optimizer.safetensors", "optimizer.json", "scheduler.json"
PICKLED = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin", "scaler.pt")


def _write_json(path: Path, obj: Any) -> None:
    from tunesmith.files import atomic_write_json

    atomic_write_json(path, obj)


def save_optimizer(optimizer, scheduler, out: Path) -> None:
    """The optimizer's tensors as safetensors, everything else of it and the scheduler as JSON."""
    from safetensors.torch import save_file

    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if hasattr(value, "detach"):
                tensors[f"{idx}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{key}"] = value
    save_file(tensors, str(out / OPTIMIZER))
    _write_json(
        out / OPTIMIZER_META, {"param_groups": state["param_groups"], "scalars": scalars, "ids": sorted(state["state"])}
    )
    if scheduler is not None:
        _write_json(out / SCHEDULER, {k: v for k, v in scheduler.state_dict().items() if _jsonable(v)})


def load_optimizer(optimizer, scheduler, checkpoint: Path) -> None:
    from safetensors.torch import load_file

    meta = json.loads((checkpoint / OPTIMIZER_META).read_text())
    tensors = load_file(str(checkpoint / OPTIMIZER))
    state: dict[int, dict[str, Any]] = {int(i): {} for i in meta["ids"]}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state[int(idx)][key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state[int(idx)][key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    if scheduler is not None and (checkpoint / SCHEDULER).exists():
        scheduler.load_state_dict({**scheduler.state_dict(), **json.loads((checkpoint / SCHEDULER).read_text())})


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _rng_names(rank: int | None) -> tuple[str, str]:
    suffix = "" if rank is None else f"_{rank}"
    return f"rng_state{suffix}.safetensors", f"rng_state{suffix}.json"


def save_rng(out: Path, rank: int | None) -> None:
    """Python's, NumPy's and torch's (CPU, and each CUDA device's) generator states."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    tensors = {"cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.random.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensor_file, json_file = _rng_names(rank)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / tensor_file))
    _write_json(
        out / json_file,
        {"python": [version, list(internal), gauss], "numpy": [kind, keys.tolist(), pos, has_gauss, cached]},
    )


def load_rng(checkpoint: Path, rank: int | None) -> bool:
    """Restore the generators; False when the checkpoint has no such state (e.g. a different process count)."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    tensor_file, json_file = _rng_names(rank)
    if not (checkpoint / tensor_file).exists():
        return False
    tensors = load_file(str(checkpoint / tensor_file))
    states = json.loads((checkpoint / json_file).read_text())
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.random.set_rng_state(tensors["cpu"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda")]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.random.set_rng_state_all(cuda)
    return True


def refuse_pickled_only(checkpoint: Path) -> None:
    """A checkpoint with pickled optimizer state and none of ours was not written by tunesmith: refuse it rather
    than unpickle it."""
    from tunesmith.errors import Problem, TunesmithError

    if (checkpoint / "adapter_model.bin").exists() and not (checkpoint / "adapter_model.safetensors").exists():
        raise TunesmithError(
            "Refusing a pickled checkpoint",
            [
                Problem(
                    str(checkpoint / "adapter_model.bin"),
                    "the adapter weights are pickled, which tunesmith never loads",
                    "resume from a checkpoint tunesmith wrote (adapter_model.safetensors)",
                )
            ],
        )
    pickled = [name for name in PICKLED if (checkpoint / name).exists()]
    if not (checkpoint / OPTIMIZER).exists() and pickled:
        raise TunesmithError(
            "Refusing a pickled checkpoint",
            [
                Problem(
                    str(checkpoint),
                    f"its optimizer/RNG state is pickled ({', '.join(pickled)}), which tunesmith never loads",
                    "start the run afresh (delete the checkpoint), or resume from a checkpoint tunesmith wrote",
                )
            ],
        )


def drop_pickles(out: Path) -> None:
    """Remove the pickled files transformers writes on its own (training_args.bin): nothing loads them."""
    for name in PICKLED:
        with contextlib.suppress(FileNotFoundError):
            os.remove(out / name)
