"""examples/openai-migration: the hosted/ folder a team saved when leaving OpenAI fine-tuning (the job, its training
and validation files, the hosted model's recorded replies) imports into a project that loads, whose data checks
clean, and in which every prompt a held-out case can come from has a recorded reply. No training."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.config import RecordedBaseline, load_config
from tunesmith.data.formats import load_records
from tunesmith.eval.named_baselines import score_recorded
from tunesmith.eval.suite import cases_from_records
from tunesmith.migrate import read_job

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "openai-migration"
HOSTED = EXAMPLE / "hosted"
TICKETS = EXAMPLE.parent / "support-triage" / "data" / "tickets.jsonl"
runner = CliRunner()


def _import(out: Path, base: Path):
    """The README's import, with a tiny local base model (no test loads the built-in one)."""
    return runner.invoke(
        app,
        ["import", "openai-job", str(HOSTED / "job.json"), "--training-file", str(HOSTED / "train.jsonl")]
        + ["--validation-file", str(HOSTED / "validation.jsonl"), "--hosted-replies", str(HOSTED / "replies.jsonl")]
        + ["--out", str(out), "--base", str(base)],
    )


def _messages(path: Path) -> list[str]:
    return sorted(json.dumps(json.loads(line)["messages"]) for line in path.read_text().splitlines() if line)


def test_the_hosted_folder_is_a_succeeded_job_and_support_triages_tickets_in_openai_format():
    job = read_job(HOSTED / "job.json")
    assert job.status == "succeeded" and job.method_type == "supervised"
    assert job.fine_tuned_model and job.fine_tuned_model.startswith("ft:")
    for name in ("train.jsonl", "validation.jsonl"):  # OpenAI's chat format: `messages` and nothing else
        assert all(set(json.loads(line)) == {"messages"} for line in (HOSTED / name).read_text().splitlines())
    assert sorted(_messages(HOSTED / "train.jsonl") + _messages(HOSTED / "validation.jsonl")) == _messages(TICKETS)


def test_the_example_imports_into_a_project_that_loads_checks_clean_and_has_every_reply(tmp_path, tiny_model_dir):
    out = tmp_path / "migrated"
    res = _import(out, tiny_model_dir)
    assert res.exit_code == 0, res.output
    assert "warning:" not in res.output  # every training prompt has a reply, every reply answers a prompt

    cfg, project = load_config(out)
    assert cfg.task.type == "json" and cfg.task.match_fields == ["queue", "priority"]
    hosted = cfg.eval.baselines[-1]
    assert isinstance(hosted, RecordedBaseline) and hosted.responses == "data/hosted-replies.jsonl"
    assert cfg.eval.gates[-1].vs == "hosted" and cfg.eval.gates[-1].min_delta == -0.02

    # every data check but the token-length ones, which need the built-in model's tokenizer (`tunesmith run`'s
    # check stage, with it: no error either; the tiny test tokenizer cuts 7 of the long tickets at 512 tokens)
    check = runner.invoke(app, ["data", "check", *(str(out / name) for name in cfg.data.train + cfg.data.validation)])
    assert check.exit_code == 0, check.output  # exit 1 on an error finding

    # every case the held-out split (or validation) can draw has a reply, matched as `tunesmith run` matches them
    records = load_records([project / name for name in cfg.data.train + cfg.data.validation])
    cases = cases_from_records(records, cfg.task)
    rec = score_recorded(hosted, project, cases, cfg, None)
    assert len(cases) == 460 and rec.missing == [] and rec.unmatched == []
    assert all(row["output"] is not None for row in rec.rows)
