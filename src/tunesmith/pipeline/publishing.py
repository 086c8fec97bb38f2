"""What an export's model card says, read from the project's run registry, and the push of an export to the
Hugging Face Hub (`tunesmith export RUN --push-to-hub ORG/NAME`).

    compare_dir = newest_comparison(project, train_dir)       # None before `tunesmith run` compared this run
    facts = card_facts(cfg, project, train_dir, compare_dir, newest_parity(project, compare_dir))
    token = hub_login("my-org/router")                         # before any work: no token is a clear error
    pushed = push_export(manifest, "my-org/router", token, private=True)

Each fact is read from the run that holds it, and left out when there is none: the recipe (the train run's
config.yaml and result.json), the data (the split and check runs it trained from: counts, findings, file names,
never the records), the comparison (the compare run of this train run's tuned evaluation: each metric of base and
tuned with the delta's interval, the gates, the ship verdict) and parity (that evaluation's parity run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tunesmith import runs
from tunesmith.config import Config, flat_train
from tunesmith.errors import Problem, TunesmithError
from tunesmith.export.card import CardFacts, DataFacts
from tunesmith.export.hub import HubPush
from tunesmith.train.result import TrainResult

RECIPE = (
    "method",
    "objective",
    "epochs",
    "max_steps",
    "lr",
    "lora_r",
    "lora_alpha",
    "dora",
    "rslora",
    "loraplus_lr_ratio",
    "dpo_beta",
    "batch_size",
    "grad_accum",
    "precision",
    "seed",
)


def card_facts(
    cfg: Config,
    project: Path,
    train_dir: Path,
    compare_dir: Path | None = None,
    parity_dir: Path | None = None,
    repo_id: str | None = None,
) -> CardFacts:
    """The card of a train run's export: its recipe and data, the comparison and parity runs given (found with
    `newest_comparison` / `newest_parity`, or the pipeline's own stages), named for the repo it is pushed to."""
    inputs = _inputs(train_dir)["inputs"]
    return CardFacts(
        name=repo_id.split("/")[-1]
        if repo_id
        else f"{Path(project).resolve().name}-{train_dir.name.rsplit('-', 1)[-1]}",
        base_model=cfg.model.base,
        run=train_dir.name,
        recipe=train_recipe(train_dir),
        data=data_facts(project, inputs),
        comparison=runs.read_result(compare_dir) if compare_dir else None,
        parity=runs.read_result(parity_dir) if parity_dir else None,
        repo_id=repo_id,
    )


def newest_comparison(project: Path, train_dir: Path) -> Path | None:
    """The newest compare run of a tuned evaluation of this train run (`tunesmith run`'s), if any."""
    key = _inputs(train_dir)["key"]
    tuned = [_inputs(d)["key"] for d in runs.runs_with_input(project, "eval-tuned", "train", key)]
    found = [d for k in tuned for d in runs.runs_with_input(project, "compare", "tuned", k)]
    return max(found, key=lambda d: d.name, default=None)  # names start with their UTC time


def newest_parity(project: Path, compare_dir: Path | None) -> Path | None:
    """The newest parity run of the tuned evaluation a comparison was made from, if any."""
    if compare_dir is None:
        return None
    tuned = _inputs(compare_dir)["inputs"].get("tuned")
    return max(runs.runs_with_input(project, "parity", "tuned", tuned), key=lambda d: d.name, default=None)


def train_recipe(train_dir: Path) -> dict[str, Any]:
    """The resolved recipe: the train section as run (config.yaml, in the flat layout whichever layout the run
    wrote: `lora_r`, `dpo_beta`), with what training settled (result.json: the planned epochs of `epochs: auto`, the
    learning rate, the precision) and the steps and epochs it trained."""
    train = flat_train((yaml.safe_load((train_dir / "config.yaml").read_text()) or {}).get("train") or {})
    result = TrainResult.read(train_dir)
    settled = {"lr": result.details.get("lr"), "precision": result.precision}
    resolved = {**train, **{k: v for k, v in settled.items() if v is not None}}
    if result.planned_epochs is not None:
        resolved["epochs"] = result.planned_epochs
    moot = (["lora_r", "lora_alpha"] if train.get("method") == "full" else []) + (
        [] if train.get("objective") == "dpo" else ["dpo_beta"]
    )
    kept = [k for k in RECIPE if k not in moot and resolved.get(k) is not None and resolved.get(k) is not False]
    recipe = {k: resolved[k] for k in kept}  # `dora: false` says nothing; `seed: 0` does
    trained = {"steps_trained": result.steps, "epochs_trained": result.epochs}
    return {**recipe, **{k: v for k, v in trained.items() if v is not None}}


def data_facts(project: Path, train_inputs: dict[str, Any]) -> DataFacts | None:
    """The training data in numbers, from the split and check runs the train run was made from."""
    split_dir = _completed(project, "split", train_inputs.get("split"))
    if split_dir is None:
        return None
    split = runs.read_result(split_dir)
    check_dir = _completed(project, "check", _inputs(split_dir)["inputs"].get("check"))
    check = runs.read_result(check_dir) if check_dir else {}
    sources = list(_inputs(check_dir)["inputs"].get("files") or {}) if check_dir else []
    sources += [f for files in (split.get("sources") or {}).values() for f in files]
    sources += list(train_inputs.get("general") or {})
    return DataFacts(
        splits={k: split[k] for k in ("train", "validation", "heldout") if k in split},
        checked={k: check[k] for k in ("records", "kept", "rejected") if k in check},
        findings=_findings(check_dir),
        sources=list(dict.fromkeys(sources)),
    )


def hub_login(repo_id: str | None, private: bool = False) -> str:
    """Before an export that is pushed: the repo id checked and the token found (each a clear error); `private`
    without a repo is one too."""
    from tunesmith.export.hub import check_repo_id, hub_token

    if not repo_id:
        hint = "add --push-to-hub ORG/NAME, or drop --private"
        raise TunesmithError("Nothing to push", [Problem("--private", "it applies to --push-to-hub only", hint)])
    check_repo_id(repo_id)
    return hub_token()


def push_export(manifest: dict[str, Any], repo_id: str, token: str, private: bool = False) -> HubPush:
    """Upload every folder of an export (its manifest) to one Hub repo (`tunesmith.export.hub.push_folders`)."""
    from tunesmith.export.hub import push_folders

    folders = {fmt: Path(info["path"]) for fmt, info in manifest["exports"].items()}
    return push_folders(folders, repo_id, token, private)


def _findings(check_dir: Path | None) -> dict[str, int]:
    """The data check's findings counted per severity and code (its report.json)."""
    report = check_dir / "report.json" if check_dir else None
    if report is None or not report.exists():
        return {}
    return {f"{c['severity']}: {c['code']}": c["count"] for c in json.loads(report.read_text()).get("counts", [])}


def _completed(project: Path, stage: str, key: str | None) -> Path | None:
    found = runs.find_run(project, stage, key) if key else None
    return found if found is not None and runs.is_complete(found) else None


def _inputs(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "inputs.json").read_text())
