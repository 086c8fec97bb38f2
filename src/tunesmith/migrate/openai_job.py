"""`tunesmith import openai-job`: a tunesmith project made from a saved OpenAI fine-tuning job and its data.

    result = import_openai_job("ftjob.json", "train.jsonl", "my-project", validation_file="valid.jsonl")
    result.files      # my-project/data/train.jsonl, ..., my-project/tunesmith.yaml
    result.mapping    # each hyperparameter: where in the job, its value, the tunesmith.yaml key and value, how
    result.warnings   # e.g. a grader type tunesmith does not support yet (the project is written all the same)

The project starts from the starter's sections (`tunesmith init`: its suites, general probe and gates). The job's
method picks `train.objective` (supervised -> sft, dpo -> dpo, reinforcement -> grpo), its hyperparameters map
through `HYPERPARAMETERS` (one table: `auto` becomes tunesmith's own default), the data is copied into `data/`
(converted where tunesmith's reader needs it: `tunesmith.migrate.job_data`), a validation file becomes
`data.validation`. A reinforcement job's grader becomes the GRPO reward (`train.rewards`) and the scorer of the test
set: the import holds out `data.heldout_fraction` of the training lines as `data/test.jsonl` (`data.test`), which
is also the suite `test` scored by the grader and judged by the gate (the held-out suite itself takes no scorers).
The hosted base model and fine-tuned model are recorded in the file's header; the fine-tuned model becomes an
endpoint baseline in `eval.baselines` when `WRITE_ENDPOINT_BASELINE` is on, and is printed as a note until then.
Local training keeps tunesmith's built-in base model unless `base` is given.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tunesmith.config import CONFIG_NAME, Config
from tunesmith.config.problems import problems_from
from tunesmith.errors import Problem, TunesmithError, fail
from tunesmith.files import atomic_write_jsonl, atomic_write_text
from tunesmith.migrate.job import METHODS, FineTuningJob, read_job
from tunesmith.migrate.job_data import convert_lines, split_off
from tunesmith.starter import starter_sections

# The hosted fine-tuned model as an endpoint entry in `eval.baselines` (the agreed shape: name, base_url, model,
# api_key_env). Off until the config's eval.baselines takes endpoint entries (they are rejected today); meanwhile
# the entry is printed, and written in the file's header as a comment, for the user to add.
WRITE_ENDPOINT_BASELINE = False
OPENAI_BASE_URL = "https://api.openai.com/v1"
OBJECTIVES = {"supervised": "sft", "dpo": "dpo", "reinforcement": "grpo"}
TEST_FILE = "data/test.jsonl"  # a reinforcement job's test set, scored by its grader


def _as_is(value: Any, default: Any) -> Any:
    return value


def _times_default(value: Any, default: Any) -> Any:
    return float(f"{float(value) * default:.6g}")


@dataclass(frozen=True)
class Hyperparameter:
    """One row of the mapping: the job's key, the tunesmith.yaml key it becomes, how its value converts
    (`convert(job value, tunesmith's default)`), in words for the table (`{default}` filled in)."""

    job_key: str
    config_key: str
    convert: Callable[[Any, Any], Any]
    how: str
    methods: tuple[str, ...] = METHODS
    top_level: bool = False  # a field of the job itself, not of the method's hyperparameters


HYPERPARAMETERS: tuple[Hyperparameter, ...] = (
    Hyperparameter("n_epochs", "train.epochs", _as_is, "as is"),
    Hyperparameter("batch_size", "train.batch_size", _as_is, "as is"),
    Hyperparameter(
        "learning_rate_multiplier", "train.lr", _times_default, "{value} x tunesmith's default lr {default}"
    ),
    Hyperparameter("beta", "train.dpo_beta", _as_is, "as is", methods=("dpo",)),
    Hyperparameter("seed", "train.seed", _as_is, "as is", top_level=True),
)


@dataclass(frozen=True)
class MappedValue:
    """A job setting and what became of it: `config_key` None when tunesmith has no equivalent (not used)."""

    source: str  # where in the job, e.g. method.dpo.hyperparameters.beta
    given: Any  # the job's value: a number, "auto", or None when the job has none
    config_key: str | None
    value: Any  # what tunesmith.yaml gets
    how: str


@dataclass
class ImportResult:
    job: FineTuningJob
    out: Path
    files: list[Path]
    mapping: list[MappedValue]
    warnings: list[str]
    notes: list[str]
    config: dict[str, Any]  # the sections written to tunesmith.yaml


def config_default(path: str) -> Any:
    """tunesmith's default for a dotted config key (`train.lr`), as `tunesmith config show` fills it in."""
    return functools.reduce(getattr, path.split("."), Config())


def map_hyperparameters(job: FineTuningJob) -> list[MappedValue]:
    """Every `HYPERPARAMETERS` row that applies to the job's method, then the job's other hyperparameters."""
    given, where = job.hyperparameters_given(), job.hyperparameters_path()
    rows = []
    for h in HYPERPARAMETERS:
        if job.method_type not in h.methods:
            continue
        value = getattr(job, h.job_key) if h.top_level else given.get(h.job_key)
        source = h.job_key if h.top_level else f"{where}.{h.job_key}"
        default = config_default(h.config_key)
        if value is None or value == "auto":
            why = "auto" if value == "auto" else "not in the job"
            rows.append(MappedValue(source, value, h.config_key, default, f"{why}: tunesmith's default"))
        else:
            how = h.how.format(value=value, default=default)
            rows.append(MappedValue(source, value, h.config_key, h.convert(value, default), how))
    known = {h.job_key for h in HYPERPARAMETERS}
    rows += [
        MappedValue(f"{where}.{k}", v, None, None, "no tunesmith equivalent: not used")
        for k, v in given.items()
        if k not in known
    ]
    return rows


def hosted_baseline(job: FineTuningJob) -> dict[str, str] | None:
    """The hosted fine-tuned model as an `eval.baselines` endpoint entry, or None when the job made none."""
    if not job.fine_tuned_model:
        return None
    return {
        "name": "hosted",
        "base_url": OPENAI_BASE_URL,
        "model": job.fine_tuned_model,
        "api_key_env": "OPENAI_API_KEY",
    }


def import_openai_job(
    job_file: str | Path,
    training_file: str | Path,
    out: str | Path,
    validation_file: str | Path | None = None,
    force: bool = False,
    base: str | None = None,
) -> ImportResult:
    """Write a project to `out` from a saved job object and its data files (never modified); refuse a non-empty
    `out` unless `force`. `base` is the local base model (default: tunesmith's built-in one)."""
    job, out = read_job(job_file), Path(out)
    training, validation = Path(training_file), Path(validation_file) if validation_file else None
    data = _project_data(job, training, validation)
    inputs = [training] + ([validation] if validation else [])
    _require_writable(out, force, [out / name for name in data] + [out / CONFIG_NAME], inputs)
    mapping = map_hyperparameters(job)
    sections = project_sections(job, base or config_default("model.base"), mapping, list(data))
    warnings = _config_warnings(sections) + _job_warnings(job, validation_file)
    notes = _notes(job, data)
    files = [atomic_write_jsonl(out / name, rows) for name, rows in data.items()]
    files.append(atomic_write_text(out / CONFIG_NAME, _header(job, mapping) + _yaml(sections)))
    (out / "eval").mkdir(exist_ok=True)
    return ImportResult(job, out, files, mapping, warnings, notes, sections)


def _project_data(job: FineTuningJob, training: Path, validation: Path | None) -> dict[str, list[dict]]:
    """{path in the project: rows}: the training lines (a reinforcement job's split into train and test) and the
    validation lines, each converted for the job's method."""
    method = job.method_type
    rows = convert_lines(training, method, "--training-file")
    data = {"data/train.jsonl": rows}
    if method == "reinforcement":
        fraction, seed = starter_sections()["data"]["heldout_fraction"], config_default("data.seed")
        data["data/train.jsonl"], data[TEST_FILE] = split_off(rows, fraction, seed, str(training))
    if validation is not None:
        data["data/validation.jsonl"] = convert_lines(validation, method, "--validation-file")
    return data


def _require_writable(out: Path, force: bool, outputs: list[Path], inputs: list[Path]) -> None:
    if out.exists() and not out.is_dir():
        raise fail("Not a directory", str(out), "--out is a file", "name a new or empty directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise fail(
            "Output directory is not empty",
            str(out),
            "it already holds files",
            "name a new or empty directory, or pass --force to write into it (files of the same name are replaced)",
        )
    clash = [p for p in inputs if any(p.resolve() == o.resolve() for o in outputs)]
    if clash:
        raise fail("Would overwrite an input", str(clash[0]), "the import would write over it", "choose another --out")


def project_sections(job: FineTuningJob, base: str, mapping: list[MappedValue], files: list[str]) -> dict[str, Any]:
    """The starter's sections with the job's model, task, data files, objective and hyperparameters."""
    method, sections = job.method_type, starter_sections()
    starter_train = sections["train"]
    sections["model"] = {"base": base}
    sections["task"] = {"type": "json" if method == "reinforcement" else "chat"}
    data = {k: v for k, v in sections["data"].items() if k != "train"}
    sections["data"] = {Path(f).stem: [f] for f in files} | data
    train = {"method": starter_train["method"], "objective": OBJECTIVES[method], "lora_r": starter_train["lora_r"]}
    if method == "supervised":  # general data is mixed into SFT only (it has no preference pairs, no grader item)
        train |= {k: starter_train[k] for k in ("general_data", "general_share")}
    sections["train"] = train
    for row in mapping:
        if row.config_key:
            _set(sections, row.config_key, row.value)
    if method == "reinforcement":
        sections["train"]["rewards"] = [job.grader()]
        sections["eval"] = _graded_eval(sections["eval"], job.grader())
    endpoint = hosted_baseline(job)
    if WRITE_ENDPOINT_BASELINE and endpoint:
        given = sections["eval"].get("baselines")
        sections["eval"]["baselines"] = (given if isinstance(given, list) else []) + [endpoint]
    return sections


def _graded_eval(section: dict[str, Any], grader: dict[str, Any]) -> dict[str, Any]:
    """The eval of a reinforcement job: the test set scored by the grader and judged by the gate, decoded freely
    (its replies are not the item's JSON), without the label-task baselines."""
    suite = Path(TEST_FILE).stem
    return {
        **section,
        "suites": [{"path": TEST_FILE, "scorers": [grader]}],
        "decoding": "free",
        "baselines": [],
        "gate": {**section["gate"], "metric": f"{suite}.task_accuracy"},
    }


def _set(sections: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = sections
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def _config_warnings(sections: dict[str, Any]) -> list[str]:
    """What the config rejects of what the import copies as it is: the job's grader (a type tunesmith does not
    support yet) and the endpoint baseline (before `eval.baselines` takes endpoints). Anything else it rejects is
    an error in the import itself."""
    rejected = _rejections(sections)
    if not rejected:
        return []
    plain = copy.deepcopy(sections)
    plain["train"].pop("rewards", None)
    plain["eval"].pop("baselines", None)
    wrong = _rejections(plain)
    if wrong:
        raise TunesmithError("The imported config does not validate", wrong)
    return [
        f"{p.where}: {p.message}: written as it is (the project loads once tunesmith supports it)" for p in rejected
    ]


def _rejections(sections: dict[str, Any]) -> list[Problem]:
    try:
        Config.model_validate(sections)
    except ValidationError as err:
        return [replace(p, message=p.message.removeprefix("Value error, ")) for p in problems_from(err, CONFIG_NAME)]
    return []


def _job_warnings(job: FineTuningJob, validation_file: str | Path | None) -> list[str]:
    out = []
    if job.validation_file and not validation_file:
        out.append(f"the job had a validation file ({job.validation_file}); pass --validation-file to bring it")
    if job.status and job.status != "succeeded":
        out.append(f"the job's status is {job.status!r}: its settings are imported, it may have made no model")
    return out


def _notes(job: FineTuningJob, data: dict[str, list[dict]]) -> list[str]:
    notes = []
    if TEST_FILE in data:
        n, total = len(data[TEST_FILE]), len(data[TEST_FILE]) + len(data["data/train.jsonl"])
        notes.append(
            f"{n} of {total} training lines held out as {TEST_FILE} (data.test): the suite `test`, scored by the "
            "job's grader, is what the gate judges"
        )
    endpoint = hosted_baseline(job)
    if endpoint and not WRITE_ENDPOINT_BASELINE:
        notes.append("to compare with the hosted fine-tuned model, add to tunesmith.yaml:\n" + _baseline_yaml(endpoint))
    return notes


def _baseline_yaml(endpoint: dict[str, str]) -> str:
    entry = yaml.safe_dump(endpoint, default_flow_style=True, sort_keys=False, width=1000).strip()
    return f"eval:\n  baselines:\n    - {entry}"


def _header(job: FineTuningJob, mapping: list[MappedValue]) -> str:
    """The file's opening comment: where the project came from, the hosted models, the mapping."""
    lines = [
        f"tunesmith project imported from OpenAI fine-tuning job {job.id} (method: {job.method_type}).",
        f"Hosted base model: {job.model} (local training uses model.base below).",
        f"Hosted fine-tuned model: {job.fine_tuned_model or 'none (the job made none)'}.",
        "The job's settings -> tunesmith's:",
        *(
            f"  {m.source} = {m.given if m.given is not None else '(none)'} -> "
            + (f"{m.config_key}: {m.value} ({m.how})" if m.config_key else m.how)
            for m in mapping
        ),
    ]
    endpoint = hosted_baseline(job)
    if endpoint and not WRITE_ENDPOINT_BASELINE:
        lines.append("The hosted fine-tuned model as a baseline, once eval.baselines takes endpoint entries:")
        lines += ["  " + line for line in _baseline_yaml(endpoint).splitlines()]
    lines.append("Every field is optional; `tunesmith config schema` lists them all with their docs.")
    return "".join(f"# {line}\n" for line in lines)


class _Dumper(yaml.SafeDumper):
    """Sections as blocks, lists of plain values on one line (as the starter writes them), no YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(x, (dict, list)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _list)


def _yaml(sections: dict[str, Any]) -> str:
    return yaml.dump(sections, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)
