"""`tunesmith import openai-job`: a tunesmith project made from a saved OpenAI fine-tuning job and its data.

    result = import_openai_job("ftjob.json", "train.jsonl", "my-project", validation_file="valid.jsonl")
    result.files      # my-project/data/train.jsonl, ..., my-project/tunesmith.yaml
    result.mapping    # each hyperparameter: where in the job, its value, the tunesmith.yaml key and value, how
    result.warnings   # e.g. a grader type tunesmith does not support yet (the project is written all the same)
    import_openai_job("ftjob.json", "train.jsonl", "p", hosted_replies="replies.jsonl")  # compared without the API

The project starts from the starter's sections (`tunesmith init`: its suites, general probe and gates). The job's
method picks `train.objective` (supervised -> sft, dpo -> dpo, reinforcement -> grpo), its hyperparameters map
through `HYPERPARAMETERS` (one table: `auto` becomes tunesmith's own default), the data is copied into `data/`
(converted where tunesmith's reader needs it: `tunesmith.migrate.job_data`), a validation file becomes
`data.validation`. A supervised job whose replies are all JSON objects is a json task comparing their label-like
fields (`reply_task`); otherwise a chat task. A reinforcement job's grader becomes the GRPO reward
(`train.grpo.rewards`) and the scorer of the test set: `task.scorers`, so the held-out (and validation) cases are graded
as the hosted job graded them.
The hosted base model and fine-tuned model are recorded in the file's header; the fine-tuned model becomes an
endpoint baseline `hosted` in `eval.baselines` (beside the cheap ones), with a gate that the tuned model may trail it
by at most `HOSTED_MARGIN` (`vs: hosted`). Given `hosted_replies` (the replies a team already has), the baseline
is those replies instead, copied to `data/hosted-replies.jsonl` (`tunesmith.migrate.hosted_replies`: checked line
by line, with a warning for the training and validation prompts they leave unanswered).
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
from tunesmith.migrate.hosted_replies import Coverage, coverage, read_replies
from tunesmith.migrate.job import METHODS, FineTuningJob, read_job
from tunesmith.migrate.job_data import convert_lines, reply_task
from tunesmith.starter import starter_sections

# The hosted fine-tuned model must be matched: the tuned model may trail it by at most this much on the gate's
# metric (a non-inferiority gate `vs: hosted`, judged on the point estimate).
HOSTED_MARGIN = 0.02
OPENAI_BASE_URL = "https://api.openai.com/v1"
OBJECTIVES = {"supervised": "sft", "dpo": "dpo", "reinforcement": "grpo"}
TRAIN_FILE = "data/train.jsonl"  # `data.train`, the file the held-out cases are drawn from
REPLIES_FILE = "data/hosted-replies.jsonl"  # where `--hosted-replies` is copied to
RECORDED = {"name": "hosted", "responses": REPLIES_FILE}
SHOWN = 3  # prompts or reply lines named in a coverage warning


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
    Hyperparameter("beta", "train.dpo.beta", _as_is, "as is", methods=("dpo",)),
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
    hosted_replies: str | Path | None = None,
) -> ImportResult:
    """Write a project to `out` from a saved job object and its data files (never modified); refuse a non-empty
    `out` unless `force`. `base` is the local base model (default: tunesmith's built-in one). `hosted_replies`, the
    hosted fine-tuned model's recorded replies, is copied to `data/hosted-replies.jsonl` and is the baseline
    `hosted` instead of the endpoint."""
    job, out = read_job(job_file), Path(out)
    training, validation = Path(training_file), Path(validation_file) if validation_file else None
    data = _project_data(job, training, validation)
    recorded = Path(hosted_replies) if hosted_replies else None
    replies = read_replies(recorded) if recorded else None
    inputs = [p for p in (training, validation, recorded) if p is not None]
    written = [*data, *([REPLIES_FILE] if replies else []), CONFIG_NAME]
    _require_writable(out, force, [out / name for name in written], inputs)
    mapping = map_hyperparameters(job)
    task = reply_task(data[TRAIN_FILE]) if job.method_type == "supervised" else None
    hosted = RECORDED if replies else hosted_baseline(job)
    sections = project_sections(job, base or config_default("model.base"), mapping, list(data), task, hosted)
    warnings = _config_warnings(sections) + _job_warnings(job, validation_file)
    if replies and recorded:
        warnings += _coverage_warnings(coverage(replies, data, TRAIN_FILE, recorded), recorded)
    notes = _task_notes(sections["task"], task) + _notes(job, hosted)
    files = [atomic_write_jsonl(out / name, rows) for name, rows in data.items()]
    if replies:
        files.append(atomic_write_jsonl(out / REPLIES_FILE, [r.row for r in replies]))
    files.append(atomic_write_text(out / CONFIG_NAME, _header(job, mapping) + _yaml(sections)))
    (out / "eval").mkdir(exist_ok=True)
    return ImportResult(job, out, files, mapping, warnings, notes, sections)


def _project_data(job: FineTuningJob, training: Path, validation: Path | None) -> dict[str, list[dict]]:
    """{path in the project: rows}: the training and validation lines, each converted for the job's method."""
    method = job.method_type
    data = {TRAIN_FILE: convert_lines(training, method, "--training-file")}
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


def project_sections(
    job: FineTuningJob,
    base: str,
    mapping: list[MappedValue],
    files: list[str],
    task: dict[str, Any] | None = None,
    hosted: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The starter's sections with the job's model, task (`task`: what the replies imply, default chat), data
    files, objective and hyperparameters, and the hosted model as the baseline `hosted` (default: the job's
    fine-tuned model as an endpoint)."""
    method, sections = job.method_type, starter_sections()
    starter_train = sections["train"]
    sections["model"] = {"base": base}
    grader_task = {"type": "json", "scorers": [job.grader()]}
    sections["task"] = grader_task if method == "reinforcement" else (task or {"type": "chat"})
    data = {k: v for k, v in sections["data"].items() if k != "train"}
    sections["data"] = {Path(f).stem: [f] for f in files} | data
    train = {"method": starter_train["method"], "objective": OBJECTIVES[method], "lora": starter_train["lora"]}
    if method == "supervised":  # general data is mixed into SFT only (it has no preference pairs, no grader item)
        train |= {k: starter_train[k] for k in ("general_data", "general_share", "general_kl")}
    sections["train"] = train
    for row in mapping:
        if row.config_key:
            _set(sections, row.config_key, row.value)
    if method == "reinforcement":
        sections["train"]["grpo"] = {"rewards": [job.grader()]}
        sections["eval"] = {**sections["eval"], "decoding": "free", "baselines": []}  # replies need not be JSON
    hosted = hosted or hosted_baseline(job)
    if hosted:
        sections["eval"] = _against_hosted(sections["eval"], hosted)
    return sections


def _against_hosted(section: dict[str, Any], hosted: dict[str, str]) -> dict[str, Any]:
    """The eval with the hosted fine-tuned model (an endpoint, or its recorded replies) as a baseline beside the
    cheap ones, and a gate that the tuned model does not trail it by more than `HOSTED_MARGIN`."""
    given = section.get("baselines", "auto")
    baselines = (given if isinstance(given, list) else [given]) + [hosted]
    gate = {
        "metric": section["gate"]["metric"],
        "min_delta": -HOSTED_MARGIN,
        "require_significant": False,
        "vs": hosted["name"],
    }
    return {**section, "baselines": baselines, "gates": [*section.get("gates", []), gate]}


def _set(sections: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = sections
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def _config_warnings(sections: dict[str, Any]) -> list[str]:
    """What the config rejects of what the import copies as it is: the job's grader (a type tunesmith does not
    support). Anything else it rejects is
    an error in the import itself."""
    rejected = _rejections(sections)
    if not rejected:
        return []
    plain = copy.deepcopy(sections)
    plain["train"].pop("grpo", None)
    plain["task"].pop("scorers", None)
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


def _notes(job: FineTuningJob, hosted: dict[str, str] | None) -> list[str]:
    if hosted and "responses" in hosted:
        return [
            f"the hosted fine-tuned model's recorded replies ({hosted['responses']}) are the baseline "
            f"`{hosted['name']}`, scored on the held-out cases without calling it; a gate requires the tuned model "
            f"to trail it by at most {HOSTED_MARGIN:g}"
        ]
    notes = []
    endpoint = hosted_baseline(job)
    if endpoint:
        notes.append(
            f"the hosted fine-tuned model {endpoint['model']} is the baseline `{endpoint['name']}` (its key read from "
            f"${endpoint['api_key_env']}); a gate requires the tuned model to trail it by at most {HOSTED_MARGIN:g} "
            "(to compare replies you already have instead, import with `--hosted-replies FILE.jsonl`)"
        )
    return notes


def _coverage_warnings(gaps: Coverage, path: Path) -> list[str]:
    """The training prompts the recorded replies leave unanswered (the held-out cases are drawn from them: those
    are left out of the comparison), and the replies that answer no prompt."""
    out = []
    if gaps.missing:
        out.append(
            f"{len(gaps.missing)} of {gaps.prompts} training prompt(s) have no reply in {path} "
            f"({_first(gaps.missing)}): the held-out cases among them are left out of the comparison with hosted"
        )
    if gaps.unmatched:
        out.append(
            f"{len(gaps.unmatched)} repl(ies) answer no prompt of the training and validation files "
            f"({_first(gaps.unmatched)}): they match no held-out case"
        )
    return out


def _first(items: list[str]) -> str:
    more = f", … and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _task_notes(section: dict[str, Any], implied: dict[str, Any] | None) -> list[str]:
    """What the import made of the replies: a json task and the fields it compares."""
    if not implied or implied.get("type") != "json":
        return []
    fields = section.get("match_fields")
    which = f"its {_and(fields)} {'match' if len(fields) > 1 else 'matches'}" if fields else "every field matches"
    return [
        f"the training replies are JSON objects: task.type json, a held-out case is correct when {which} the "
        "expected reply's (task.match_fields chooses the fields)"
    ]


def _and(words: list[str]) -> str:
    """`queue`, `queue and priority`, `queue, priority and tone`."""
    return " and ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)


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
