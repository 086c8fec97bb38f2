"""Export: GGUF written and read back, the Ollama template rebuilt and checked, exports from a run with parity, and
the bad inputs (unfinished run, missing adapter, unknown format, full disk) failing cleanly."""

import errno
import json
from pathlib import Path

import pytest
import torch

from tunesmith.config import Config
from tunesmith.errors import TunesmithError
from tunesmith.models import load_tokenizer, resolve_model


def _load_gguf(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (
        AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32),
        AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name),
    )


def test_gguf_files_load_back_with_the_same_weights_tokenizer_template_and_replies(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from tunesmith.chat import render_prompt
    from tunesmith.export.gguf import write_gguf

    paths = write_gguf(tiny_model_dir, tmp_path, ["f16", "q8_0", "q4_0"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model-f16.gguf", "model-q4_0.gguf", "model-q8_0.gguf"]
    assert paths["q4_0"].stat().st_size < paths["q8_0"].stat().st_size < paths["f16"].stat().st_size
    ours = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    tok = load_tokenizer(resolve_model(str(tiny_model_dir)))
    messages = [{"role": "system", "content": "Route the ticket."}, {"role": "user", "content": "my invoice"}]
    prompt = render_prompt(tok, messages)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    reference = ours.generate(ids, max_new_tokens=12, do_sample=False)
    errors = {}
    for qtype, path in paths.items():
        model, gtok = _load_gguf(path)
        theirs = model.state_dict()
        errors[qtype] = max((theirs[k] - v).abs().max().item() for k, v in ours.state_dict().items())
        # the tokenizer, chat template and stop token travel in the metadata
        assert render_prompt(gtok, messages) == prompt and gtok.eos_token == tok.eos_token == "<|im_end|>"
        assert gtok(prompt, add_special_tokens=False).input_ids == ids[0].tolist()
        if qtype == "f16":  # q/k in llama.cpp's rotary layout, undone on load: the same model
            assert torch.equal(model.generate(ids, max_new_tokens=12, do_sample=False), reference)
    assert errors["f16"] < 1e-3 < errors["q4_0"] and errors["q8_0"] < errors["q4_0"] < 0.1


def test_gguf_names_what_it_supports_for_other_architectures(tmp_path):
    from tunesmith.export.gguf import check_exportable

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(TunesmithError, match="Cannot export GGUF") as err:
        check_exportable(tmp_path, ["f16", "q3_k"])
    problems = {p.where: p for p in err.value.problems}
    assert "llama family" in problems[str(tmp_path / "config.json")].hint
    assert "q3_k" in next(w for w in problems if "gguf_types" in w)


def test_the_ollama_template_reproduces_the_chat_template(tiny_model_dir):
    from tunesmith.export.ollama import modelfile, template_parts

    tok = load_tokenizer(resolve_model(str(tiny_model_dir)))
    parts = template_parts(tok)
    assert parts.default_system.startswith("You are a helpful AI assistant named SmolLM")  # SmolLM2's own default
    convo = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert parts.render("S", convo) == tok.apply_chat_template(
        [{"role": "system", "content": "S"}, *convo], tokenize=False, add_generation_prompt=True
    )
    text = modelfile(tok, "model-q8_0.gguf", system="Route tickets.", num_ctx=512)
    assert text.splitlines()[0] == "FROM ./model-q8_0.gguf"
    assert (
        '{{ range .Messages }}{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
        '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n{{ .Content }}<|im_end|>\n{{ end }}{{ end }}'
        '<|im_start|>assistant\n"""'
    ) in text
    assert 'SYSTEM """Route tickets."""' in text and 'PARAMETER stop "<|im_end|>"' in text
    assert "PARAMETER temperature 0" in text and "PARAMETER num_ctx 512" in text
    # the template's count of {{ if / range }} and {{ end }} match (a Go template that parses)
    opened = text.count("{{ if ") + text.count("{{ range ")
    assert opened == text.count("{{ end }}") == 3


def test_a_template_go_cannot_express_is_an_error_not_a_different_prompt(tiny_model_dir):
    from tunesmith.export.ollama import template_parts

    tok = load_tokenizer(resolve_model(str(tiny_model_dir)))
    tok.chat_template = tok.chat_template.replace("message['content']", "message['content'] | upper")
    with pytest.raises(TunesmithError, match="no Ollama equivalent"):
        template_parts(tok)


def test_parity_names_the_likely_cause():
    from tunesmith.export.parity import parity

    cfg = Config()
    cfg.eval.bootstrap_samples = 200

    def rows(correct, outputs, limit=None):
        return [
            {
                "suite": "heldout",
                "id": str(i),
                "output": o,
                "tags": [],
                "scores": {"task_correct": c, "hit_token_limit": bool(limit and i < limit)},
            }
            for i, (c, o) in enumerate(zip(correct, outputs))
        ]

    ckpt = rows([True] * 20, [f"reply {i}" for i in range(20)])
    same = parity("f16", ckpt, rows([True] * 20, [f"reply {i}" for i in range(20)]), cfg)
    assert same["passed"] and same["identical"] == 1.0 and same["cause"] is None
    drifted = rows([True] * 18 + [False] * 2, [f"reply {i}" for i in range(18)] + ["x", "y"])
    assert parity("f16", ckpt, drifted, cfg)["identical"] == 0.9
    assert "template" in parity("f16", ckpt, drifted, cfg, template_same=False)["cause"]
    assert "stop token" in parity("f16", ckpt, drifted, cfg, eos_same=False)["cause"]
    assert "half precision" in parity("f16", ckpt, drifted, cfg)["cause"]
    quant = parity("q4_0", ckpt, drifted, cfg)  # 10 points of accuracy lost
    assert not quant["passed"] and "quantization" in quant["cause"]
    assert quant["task_accuracy"]["delta"] == pytest.approx(-0.1)
    assert parity("q8_0", ckpt, rows([True] * 20, ["z"] * 20), cfg)["passed"]  # other words, same accuracy
    looping = rows([True] * 18 + [False] * 2, ["a"] * 20, limit=6)
    assert "stop token" in parity("q8_0", ckpt, looping, cfg)["cause"]
    other = parity("f16", ckpt, drifted, cfg, runtime="llama.cpp", decoding_same=False)
    assert other["runtime"] == "llama.cpp" and "no_repeat_ngram_size" in other["cause"]


def test_run_exports_every_format_and_proves_parity(tiny_project):
    from tunesmith.pipeline import run_project

    summary = run_project(
        tiny_project, ["export.formats=[adapter, merged, gguf, ollama]", "export.gguf_types=[f16, q8_0]"]
    )
    stages = {s["stage"]: s for s in summary["stages"]}
    out = Path(stages["export"]["run"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["exports"]) == {"adapter", "merged", "gguf", "ollama"}
    # the task decodes constrained to its reply schema, so its grammar and schema ship beside every GGUF; every
    # folder has its model card (tests/test_model_card.py)
    shipped = {"grammar.gbnf", "schema.json", "README.md"}
    assert set(manifest["exports"]["gguf"]["files"]) == {"model-f16.gguf", "model-q8_0.gguf"} | shipped
    assert set(manifest["exports"]["ollama"]["files"]) == {"Modelfile", "model-q8_0.gguf"} | shipped
    assert 'root-queue-kv ::= "\\"queue\\""' in (out / "gguf" / "grammar.gbnf").read_text()
    modelfile = (out / "ollama" / "Modelfile").read_text()
    assert "FROM ./model-q8_0.gguf" in modelfile and (out / "ollama" / "model-q8_0.gguf").exists()
    assert not list(out.glob(".*"))  # no staging left
    reports = {r["kind"]: r for r in summary["parity"]}
    assert set(reports) == {"merged", "f16", "q8_0"}
    assert reports["merged"]["identical"] == 1.0 and reports["merged"]["passed"]
    assert reports["f16"]["n"] == reports["merged"]["n"] > 0 and reports["f16"]["identical"] >= 0.95
    assert reports["q8_0"]["task_accuracy"] is not None
    parity_dir = Path(stages["parity"]["run"])
    assert (parity_dir / "q8_0" / "results.jsonl").exists()
    # the checkpoint is measured again in the parity precision, so only the export differs
    assert (parity_dir / "checkpoint" / "results.jsonl").exists()
    assert json.loads((parity_dir / "result.json").read_text())["precision"] == "fp32"
    # cached on a second run, parity included
    again = {
        s["stage"]: s["cached"]
        for s in run_project(
            tiny_project, ["export.formats=[adapter, merged, gguf, ollama]", "export.gguf_types=[f16, q8_0]"]
        )["stages"]
    }
    assert again["export"] and again["parity"]


def test_export_verb_and_its_bad_inputs(tiny_project, monkeypatch):
    from typer.testing import CliRunner

    from tunesmith.cli import app
    from tunesmith.pipeline import export_run, train_project
    from tunesmith.runs import runs_root

    st = train_project(tiny_project)
    run = st.run_dir.name
    res = CliRunner().invoke(
        app,
        [
            "export",
            run,
            "--project",
            str(tiny_project),
            "--format",
            "merged",
            "--format",
            "gguf",
            "--gguf-type",
            "q8_0",
        ],
    )
    assert res.exit_code == 0, res.output
    export_dir = st.run_dir / "export"
    assert (export_dir / "gguf" / "model-q8_0.gguf").exists() and (export_dir / "merged" / "config.json").exists()
    with pytest.raises(TunesmithError, match="Unknown export format"):
        export_run(tiny_project, run, ["onnx"])
    # a run's path finds its project: no --project needed (for serve too)
    monkeypatch.chdir(tiny_project.parent)
    res = CliRunner().invoke(app, ["export", str(st.run_dir), "--format", "adapter"])
    assert res.exit_code == 0, res.output
    from tunesmith.pipeline import serve_target

    ref, adapter, name = serve_target(".", str(st.run_dir))
    assert adapter == st.run_dir / "adapter" and name.startswith(tiny_project.name)

    # a full disk in the middle of writing the GGUF: a clear error, nothing half-written, the old export intact
    import gguf

    before = sorted(p.name for p in export_dir.rglob("*"))

    def full_disk(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(export_dir / "x"))

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", full_disk)
    with pytest.raises(TunesmithError, match="Export failed") as err:
        export_run(tiny_project, run, ["merged", "gguf"], ["f16"])
    assert "free some space" in err.value.problems[0].hint
    assert sorted(p.name for p in export_dir.rglob("*")) == before
    monkeypatch.undo()

    (st.run_dir / "COMPLETED").unlink()
    with pytest.raises(TunesmithError, match="not finished") as err:
        export_run(tiny_project, run)
    assert "--resume" in err.value.problems[0].hint
    (st.run_dir / "COMPLETED").write_text("done\n")
    for f in (st.run_dir / "adapter").iterdir():
        f.unlink()
    with pytest.raises(TunesmithError, match="adapter is missing"):
        export_run(tiny_project, run, ["adapter"])
    split = next(d for d in runs_root(tiny_project).iterdir() if "-split-" in d.name)
    with pytest.raises(TunesmithError, match="Not a training run"):
        export_run(tiny_project, split.name)


def test_llama_cpp_runs_the_exported_gguf_like_transformers(tmp_path, tiny_model_dir, tiny_project):
    """The GGUF as Ollama runs it: llama.cpp's tokenizer and the chat template stored in the file."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is optional (it builds llama.cpp from source)")
    from tunesmith.eval.suite import EvalCase
    from tunesmith.export.gguf import write_gguf
    from tunesmith.generate.backends import LlamaCppBackend, TransformersBackend
    from tunesmith.pipeline import evaluate_model

    path = write_gguf(tiny_model_dir, tmp_path, ["f16"])["f16"]
    cases = [EvalCase(id=str(i), messages=[{"role": "user", "content": f"ticket {i}: my invoice"}]) for i in range(3)]
    llama = LlamaCppBackend(path, n_ctx=256).generate(cases, max_new_tokens=8)
    ours = TransformersBackend(resolve_model(str(path)), precision="fp32").generate(cases, max_new_tokens=8)
    assert all(g.error is None for g in llama)
    assert [g.output for g in llama] == [g.output for g in ours]
    st = evaluate_model(tiny_project, str(path), backend="llamacpp")
    assert st.result.details["backend"] == "llamacpp" and st.result.metrics["heldout"]["cases"] > 0
    rows = [json.loads(line) for line in (st.run_dir / "results.jsonl").read_text().splitlines()]
    assert not [r for r in rows if "llama.cpp failed" in (r.get("error") or "")]


def test_a_constrained_export_ships_the_grammar_the_schema_and_how_to_use_them(tmp_path, tiny_model_dir):
    from tunesmith.export.gguf import constraint_files
    from tunesmith.export.merge import ExportOptions, export_artifacts
    from tunesmith.generate.decoding import Constraint, gbnf

    schema = {
        "type": "object",
        "properties": {"queue": {"enum": ["billing", "shipping"]}},
        "required": ["queue"],
        "additionalProperties": False,
    }
    constraint = Constraint("json_schema", schema)
    manifest = export_artifacts(
        resolve_model(str(tiny_model_dir)),
        None,
        ["gguf", "ollama"],
        tmp_path,
        ExportOptions(gguf_types=["f16"], constraint=constraint),
    )
    assert set(manifest["exports"]["gguf"]["files"]) == {"model-f16.gguf", "grammar.gbnf", "schema.json", "README.md"}
    assert set(manifest["exports"]["ollama"]["files"]) == {
        "Modelfile",
        "model-q8_0.gguf",
        "grammar.gbnf",
        "schema.json",
        "README.md",
    }
    assert manifest["constraint"]["key"] == constraint.key() and manifest["constraint"]["schema"] == schema
    assert sorted(manifest["constraint"]["files"]) == sorted(
        str(tmp_path / f)
        for f in (
            "gguf/grammar.gbnf",
            "gguf/schema.json",
            "ollama/grammar.gbnf",
            "ollama/schema.json",
            "ollama/README.md",
        )
    )
    assert json.loads((tmp_path / "manifest.json").read_text())["constraint"] == manifest["constraint"]
    for folder in ("gguf", "ollama"):
        assert (tmp_path / folder / "grammar.gbnf").read_text() == gbnf(constraint)
        assert json.loads((tmp_path / folder / "schema.json").read_text()) == schema
    readme = (tmp_path / "ollama" / "README.md").read_text()
    assert f'"format": {json.dumps(schema)}' in readme and "/api/chat" in readme
    assert "llama-cli -m model-q8_0.gguf --grammar-file grammar.gbnf" in readme
    # a label set ships its labels; a schema with no grammar form fails before any work is done
    labels = constraint_files(Constraint("choice", choices=("billing", "shipping")))
    assert (
        json.loads(labels["schema.json"]) == ["billing", "shipping"]
        and '"billing" | "shipping"' in labels["grammar.gbnf"]
    )
    with pytest.raises(TunesmithError, match="no GBNF grammar"):
        export_artifacts(
            resolve_model(str(tiny_model_dir)),
            None,
            ["gguf"],
            tmp_path / "bad",
            ExportOptions(constraint=Constraint("json_schema", {"$ref": "#/$defs/x", "$defs": {"x": {}}})),
        )
    assert not (tmp_path / "bad").exists()
