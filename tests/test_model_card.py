"""Model cards and `export --push-to-hub`: the card beside every exported folder holds the run's facts (base model,
model-index, gate, verdict, data counts, recipe, parity) in YAML that parses; the push uploads each folder to its
place through HfApi (replaced by a recording fake) without writing the token anywhere; an unreachable endpoint,
offline mode, a bad repo id and a missing token are clear errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from conftest import routing_rows, write_tiny_project
from tunesmith.errors import TunesmithError

SECRET = "hf_tunesmithTestToken0123456789"
HELDOUT_ACCURACY = ("heldout", "task_accuracy")
FORMATS = ["export.formats=[adapter, merged, gguf, ollama]", "export.gguf_types=[q8_0]"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory, tiny_model_dir):
    """A tiny project through `tunesmith run` with every export format (and parity): (project, summary)."""
    from tunesmith.pipeline import run_project

    project = write_tiny_project(tmp_path_factory.mktemp("card") / "proj", tiny_model_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNESMITH_HOME", str(tmp_path_factory.getbasetemp() / "tunesmith-home"))
        return project, run_project(project, FORMATS)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A recording HfApi, a token in HF_TOKEN, and no token file to fall back on."""
    import huggingface_hub
    from huggingface_hub import constants

    calls: list[tuple[str, dict]] = []

    class FakeApi:
        def __init__(self, endpoint=None, token=None):
            calls.append(("init", {"endpoint": endpoint, "token": token}))

        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", {"repo_id": repo_id, **kw}))
            return f"https://hub.example/{repo_id}"

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    return calls


def _front_matter(readme: Path) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def _stage_dir(summary: dict, stage: str) -> Path:
    return Path(next(s["run"] for s in summary["stages"] if s["stage"] == stage))


def test_every_exported_folder_has_a_card_with_the_runs_facts(ran, tiny_model_dir):
    from huggingface_hub import ModelCard

    project, summary = ran
    out = _stage_dir(summary, "export")
    manifest = json.loads((out / "manifest.json").read_text())
    libraries = {"adapter": "peft", "merged": "transformers", "gguf": "gguf", "ollama": "gguf"}
    for fmt, library in libraries.items():
        assert "README.md" in manifest["exports"][fmt]["files"]  # hashed in the manifest like every file
        meta = _front_matter(out / fmt / "README.md")
        assert meta["base_model"] == str(tiny_model_dir) and meta["library_name"] == library
        assert {"tunesmith", "lora", "sft"} <= set(meta["tags"])
        # the model-index: the tuned model's value of each metric, as the comparison measured it
        index = {
            (r["dataset"]["type"], m["type"]): m["value"]
            for r in meta["model-index"][0]["results"]
            for m in r["metrics"]
        }
        tuned = {(m["suite"], m["metric"]): m["tuned"] for m in summary["metrics"] if "#" not in m["suite"]}
        assert index == {k: round(v, 4) for k, v in tuned.items() if v is not None}
        assert ("redteam", "task_accuracy") in index  # other suites too, not only the held-out split
        assert meta["tunesmith"]["ship"] == summary["verdict"]["ship"]
        assert meta["tunesmith"]["gate"]["passed"] == summary["gate"]["passed"]
        accuracy = next(d for d in meta["tunesmith"]["vs_base"] if (d["suite"], d["metric"]) == HELDOUT_ACCURACY)
        assert accuracy["ci_low"] <= accuracy["delta"] <= accuracy["ci_high"]
    # huggingface_hub reads it back: the model-index as EvalResults
    card = ModelCard.load(out / "merged" / "README.md")
    assert card.data.eval_results and card.data.base_model == str(tiny_model_dir)
    text = card.text
    assert summary["verdict"]["headline"] in text and "gate on `heldout.task_accuracy`" in text
    split = json.loads(next(p for p in _runs(project) if "-split-" in p.name).joinpath("result.json").read_text())
    assert f"train {split['train']}, validation {split['validation']}, held-out test {split['heldout']}" in text
    assert "| lora_r | 16 |" in text and "| seed | 42 |" in text and "`data/tickets.jsonl`" in text
    assert 'AutoModelForCausalLM.from_pretrained("' + str(out / "merged") + '")' in text
    # the Ollama folder: the card, then how to decode under the task's constraint
    ollama = (out / "ollama" / "README.md").read_text()
    assert "ollama create" in ollama and ollama.index("## How to run") < ollama.index("# Constrained replies")
    assert str(out / "ollama" / "README.md") in manifest["constraint"]["files"]
    assert str(out / "gguf" / "README.md") not in manifest["constraint"]["files"]
    # counts and file names only: no training record reaches a card
    records = [m["content"] for r in routing_rows(30) for m in r["messages"] if m["role"] != "system"]
    for readme in out.glob("*/README.md"):
        assert not [c for c in records if c in readme.read_text()]


def test_a_fact_the_run_does_not_hold_is_left_out(tmp_path):
    from tunesmith.export.card import CardFacts, Place, model_card

    folder = tmp_path / "gguf"
    card = model_card("gguf", CardFacts(name="m", base_model="org/base"), Place(folder), ["model-q8_0.gguf"])
    meta = yaml.safe_load(str(card).split("---\n")[1])
    assert meta == {
        "base_model": "org/base",
        "library_name": "gguf",
        "pipeline_tag": "text-generation",
        "tags": ["tunesmith", "gguf"],
        "model_name": "m",
    }
    for absent in ("## Verdict", "## Evaluation", "## Parity", "## Training data", "## Recipe"):
        assert absent not in card.text
    assert f"cd {folder}\nllama-cli -m model-q8_0.gguf -cnv" in card.text and "--grammar-file" not in card.text


def _runs(project: Path) -> list[Path]:
    return sorted((project / ".tunesmith" / "runs").iterdir())


def test_export_pushes_each_folder_to_its_place_and_never_writes_the_token(ran, hub):
    from tunesmith.pipeline import export_run

    project, summary = ran
    train = _stage_dir(summary, "train")
    manifest = export_run(project, train.name, ["merged", "gguf"], ["q8_0"], push_to_hub="my-org/router", private=True)
    out = train / "export"
    assert manifest["hub"] == {
        "repo_id": "my-org/router",
        "url": "https://hub.example/my-org/router",
        "paths": {"merged": "", "gguf": "gguf"},
        "private": True,
    }
    assert hub[0] == ("init", {"endpoint": "https://huggingface.co", "token": SECRET})
    assert hub[1] == (
        "create_repo",
        {"repo_id": "my-org/router", "private": True, "exist_ok": True, "repo_type": "model"},
    )
    uploads = {Path(kw["folder_path"]): kw["path_in_repo"] for name, kw in hub if name == "upload_folder"}
    assert uploads == {out / "merged": None, out / "gguf": "gguf"}  # merged at the root: from_pretrained(repo)
    root = (out / "merged" / "README.md").read_text()
    assert _front_matter(out / "merged" / "README.md")["model-index"][0]["name"] == "router"
    assert 'from_pretrained("my-org/router")' in root and "- `gguf/`: GGUF files" in root
    gguf = (out / "gguf" / "README.md").read_text()
    assert 'hf download my-org/router --include "gguf/*" --local-dir router' in gguf
    # parity of the GGUF type, from the run's parity stage
    assert "## Parity" in gguf and "| q8_0 | transformers |" in gguf
    # the token went to HfApi only
    written = [p for p in project.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert written == []


def test_the_cli_pushes_and_says_where(ran, hub):
    from typer.testing import CliRunner

    from tunesmith.cli import app

    project, summary = ran
    train = _stage_dir(summary, "train")
    args = ["export", str(train), "--format", "adapter", "--push-to-hub", "my-org/router-lora", "--private"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "pushed to https://hub.example/my-org/router-lora (private)" in res.output
    upload = next(kw for name, kw in hub if name == "upload_folder")
    assert upload["folder_path"] == train / "export" / "adapter" and upload["path_in_repo"] is None
    assert 'PeftModel.from_pretrained(base, "my-org/router-lora")' in (train / "export/adapter/README.md").read_text()


def _cli_error(monkeypatch, capsys, *args: str) -> str:
    """`tunesmith ARGS` as the console runs it: the exit code 2 of a user error, its message on stderr."""
    import tunesmith.cli as cli

    monkeypatch.setattr(sys, "argv", ["tunesmith", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_an_unreachable_hub_is_a_clear_error(ran, monkeypatch, capsys, tmp_path):
    from huggingface_hub import constants

    from tunesmith.export.hub import push_folders

    folder = tmp_path / "merged"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(TunesmithError, match="Cannot reach the Hugging Face Hub") as err:
        push_folders({"merged": folder}, "my-org/router", SECRET)
    problem = err.value.problems[0]
    assert problem.where == "http://127.0.0.1:9"
    assert all(word in problem.hint for word in ("network", "HF_ENDPOINT", "HF_TOKEN"))
    # through the CLI: exported, then the push fails with the message, not a traceback
    monkeypatch.setenv("HF_TOKEN", SECRET)
    train = _stage_dir(ran[1], "train")
    err_text = _cli_error(monkeypatch, capsys, "export", str(train), "--format", "merged", "--push-to-hub", "o/n")
    assert "Cannot reach the Hugging Face Hub" in err_text and "127.0.0.1:9" in err_text
    # offline mode (HF_HUB_OFFLINE) is named as the cause
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(TunesmithError, match="Cannot push") as err:
        push_folders({"merged": folder}, "my-org/router", SECRET)
    assert "HF_HUB_OFFLINE" in err.value.problems[0].where


def test_no_token_or_a_bad_repo_id_fails_before_any_work(ran, monkeypatch, capsys, tmp_path):
    from huggingface_hub import constants

    import tunesmith.export.merge as merge
    from tunesmith.pipeline import export_run

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(merge, "export_artifacts", lambda *a, **k: pytest.fail("exported without a token"))
    project, summary = ran
    train = _stage_dir(summary, "train")
    with pytest.raises(TunesmithError, match="No Hugging Face token") as err:
        export_run(project, train.name, ["merged"], push_to_hub="my-org/router")
    assert err.value.problems[0].where == "HF_TOKEN" and "hf auth login" in err.value.problems[0].hint
    err_text = _cli_error(monkeypatch, capsys, "export", str(train), "--push-to-hub", "my-org/router")
    assert "No Hugging Face token" in err_text
    with pytest.raises(TunesmithError, match="Not a Hub repo id"):
        export_run(project, train.name, ["merged"], push_to_hub="my-org/router/extra")
    with pytest.raises(TunesmithError, match="Nothing to push"):
        export_run(project, train.name, ["merged"], private=True)
