"""Export: GGUF written and read back (llama.cpp's pre-tokenizer name, the vocabulary padded to the embedding, RoPE
scaling, head_dim), the Ollama template rebuilt and checked (a template writing BOS itself included), the shipped
grammar against the eval's, exports from a run with parity (the Ollama GGUF checked too; a check that cannot tell
is not passed), merged weights in the base's dtype, the move into place all or nothing, and the bad inputs
(unfinished run, missing adapter, unknown format, full disk) failing cleanly."""

import errno
import importlib.util
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
    assert parity("q4_0", ckpt, rows([True] * 20, ["z"] * 20), cfg)["passed"]  # other words, same accuracy
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
    result = json.loads((parity_dir / "result.json").read_text())
    assert result["precision"] == "fp32"
    assert reports["q8_0"]["file"] == "gguf/model-q8_0.gguf"  # the very file Ollama serves: checked once
    if importlib.util.find_spec("llama_cpp") is None:  # said: the GGUFs were not run as llama.cpp / Ollama run them
        assert {u["format"] for u in result["unchecked"]} == {"gguf", "ollama"}
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


# llama.cpp's pre-tokenizer regexes (llama-vocab.cpp), each splitting the pieces of the one before
LLAMA_CPP_SPLITS = {
    "default": [
        r"[\p{P}\$\+<=>\^~\|]+",
        r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
        r"\p{N}+",
        r"[0-9][0-9][0-9]",
    ],
    "gpt-2": [r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"],
}


def _split_ids(tok, regexes: list[str], text: str) -> list[int]:
    """`text`'s token ids when split as llama.cpp splits with `regexes`, then byte-level BPE with `tok`'s merges."""
    from tokenizers import Regex, Tokenizer
    from tokenizers import pre_tokenizers as pt

    split = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    split.pre_tokenizer = pt.Sequence(
        [pt.Split(Regex(r), behavior="isolated") for r in regexes]
        + [pt.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    return split.encode(text, add_special_tokens=False).ids


def test_gguf_names_the_pre_tokenizer_llama_cpp_splits_with_as_training_did(tmp_path, tiny_model_dir):
    import gguf
    from tokenizers import pre_tokenizers as pt

    from tunesmith.export.gguf import CHECK_TEXT, pre_tokenizer_name, write_gguf
    from tunesmith.export.merge import ExportOptions, export_artifacts
    from tunesmith.models import make_tiny_model, make_tiny_tokenizer

    tok = load_tokenizer(resolve_model(str(tiny_model_dir)))
    text = CHECK_TEXT + ' {"queue": "billing", "priority": "normal", "order": 1234567}'
    ours = tok(text, add_special_tokens=False).input_ids
    # llama.cpp's `default` split (what every GGUF said before) tokenizes JSON's ` "` and digit runs differently;
    # its `gpt-2` split is the tiny tokenizer's own (GPT-2's regex, nothing else), so that is the name written
    assert _split_ids(tok, LLAMA_CPP_SPLITS["default"], text) != ours
    assert _split_ids(tok, LLAMA_CPP_SPLITS["gpt-2"], text) == ours
    path = write_gguf(tiny_model_dir, tmp_path / "g", ["f16"])["f16"]
    assert gguf.GGUFReader(str(path)).get_field("tokenizer.ggml.pre").contents() == "gpt-2"

    # a split llama.cpp's table does not know (digits one by one): refused before any work, the tokenizer named
    other_tok = make_tiny_tokenizer()
    other_tok.backend_tokenizer.pre_tokenizer = pt.Sequence(
        [pt.Digits(individual_digits=True), pt.ByteLevel(add_prefix_space=False)]
    )
    other = make_tiny_model(tmp_path / "other", tokenizer=other_tok)
    ref = resolve_model(str(other))
    with pytest.raises(TunesmithError, match="Cannot export GGUF") as err:
        export_artifacts(ref, None, ["merged", "gguf"], tmp_path / "out", ExportOptions(gguf_types=["f16"]))
    problem = err.value.problems[0]
    assert problem.where == f"the tokenizer of {other}" and '"type":"Digits"' in problem.message
    assert "`default`" in problem.message and "export.gguf_pre_tokenizer: NAME" in problem.hint
    assert not (tmp_path / "out").exists()
    # named by the caller (their word that llama.cpp's `smollm` splits the same way): written with that name
    manifest = export_artifacts(
        ref, None, ["gguf"], tmp_path / "out", ExportOptions(gguf_types=["f16"], gguf_pre_tokenizer="smollm")
    )
    written = Path(manifest["exports"]["gguf"]["path"]) / "model-f16.gguf"
    assert gguf.GGUFReader(str(written)).get_field("tokenizer.ggml.pre").contents() == "smollm"
    with pytest.raises(TunesmithError, match="not a llama.cpp pre-tokenizer name"):
        pre_tokenizer_name(other_tok, other, override="llama3ish")
    # the same word from the project's config (`export.gguf_pre_tokenizer`), as `run` and `export` pass it on
    from tunesmith.config import Config
    from tunesmith.pipeline.shipping import config_export_options

    cfg = Config.model_validate({"export": {"gguf_pre_tokenizer": "smollm", "gguf_types": ["q8_0"]}})
    options = config_export_options(cfg, gguf_types=["f16"])
    assert options.gguf_pre_tokenizer == "smollm" and options.gguf_types == ["f16"]
    assert config_export_options(Config()).gguf_pre_tokenizer is None


def test_the_check_text_hashes_as_llama_cpps_and_the_built_in_model_stays_smollm():
    """SmolLM's hash in llama.cpp's table is reproduced only by the exact check text, so this also checks that."""
    from transformers import AutoTokenizer

    from tunesmith.export.gguf import pre_tokenizer_name
    from tunesmith.models import builtin_gguf

    try:
        path = builtin_gguf("smollm2-135m-instruct")
    except TunesmithError:
        pytest.skip("the built-in model's package is not installed")
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    assert pre_tokenizer_name(tok) == "smollm"  # by the hash
    assert pre_tokenizer_name(tok, path.parent, path) == "smollm"  # the source GGUF's own name, as exported so far


def _llama_dir(path: Path, tok, **config) -> Path:
    """A random one-layer Llama with `tok` and config overrides, saved to `path`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = {
        "vocab_size": len(tok),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        **config,
    }
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**settings)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_gguf_pads_the_vocabulary_to_the_embedding_and_keeps_rope_scaling_and_head_dim(tmp_path, tiny_tok):
    import gguf
    import numpy as np
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from tunesmith.export.gguf import check_exportable, write_gguf

    llama3 = {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    model = _llama_dir(
        tmp_path / "m",
        tiny_tok,
        vocab_size=len(tiny_tok) + 40,  # padded embeddings
        head_dim=16,  # not hidden / heads (8)
        rope_parameters=llama3,
        max_position_embeddings=131072,
        tie_word_embeddings=False,
    )
    r = gguf.GGUFReader(str(write_gguf(model, tmp_path / "g", ["q8_0"])["q8_0"]))
    tokens, types = r.get_field("tokenizer.ggml.tokens").contents(), r.get_field("tokenizer.ggml.token_type")
    rows = {t.name: [int(d) for d in t.shape] for t in r.tensors}
    # one token per embedding row (llama.cpp refuses a shorter list): the rows past the tokenizer are unused
    assert len(tokens) == len(tiny_tok) + 40 == r.get_field("llama.vocab_size").contents()
    assert rows["token_embd.weight"][1] == rows["output.weight"][1] == len(tokens)
    assert tokens[-1] == f"[PAD{len(tokens) - 1}]" and types.contents()[-1] == gguf.TokenType.UNUSED
    assert tokens[: len(tiny_tok)] == [tiny_tok.convert_ids_to_tokens(i) for i in range(len(tiny_tok))]
    # llama3 RoPE: the factor llama.cpp divides each rotary frequency by, as transformers scales them in training
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](AutoConfig.from_pretrained(model), "cpu")
    plain = 1.0 / (500000.0 ** (torch.arange(0, 16, 2, dtype=torch.float32) / 16))
    freqs = next(t for t in r.tensors if t.name == "rope_freqs.weight")
    assert freqs.data.dtype == np.float32 and np.allclose(freqs.data, (plain / scaled).numpy(), rtol=1e-5)
    assert r.get_field("llama.rope.freq_base").contents() == 500000.0
    assert (
        r.get_field("llama.attention.key_length").contents()
        == 16
        == r.get_field("llama.rope.dimension_count").contents()
    )
    assert r.get_field("llama.attention.value_length").contents() == 16

    for scaling, keys in (
        (
            {"rope_type": "linear", "factor": 2.0},
            {"llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": 2.0},
        ),
        (
            {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256, "beta_fast": 32.0},
            {
                "llama.rope.scaling.type": "yarn",
                "llama.rope.scaling.factor": 4.0,
                "llama.rope.scaling.original_context_length": 256,
                "llama.rope.scaling.yarn_beta_fast": 32.0,
            },
        ),
    ):
        folder = _llama_dir(tmp_path / scaling["rope_type"], tiny_tok, rope_parameters=scaling)
        r = gguf.GGUFReader(str(write_gguf(folder, tmp_path / f"g-{scaling['rope_type']}", ["f16"])["f16"]))
        assert {k: r.get_field(k).contents() for k in keys} == keys
        assert "rope_freqs.weight" not in {t.name for t in r.tensors} and "llama.attention.key_length" not in r.fields
    # a scaling the GGUF cannot carry is refused before any work, not written as plain RoPE
    for scaling, what in (
        ({"rope_type": "dynamic", "factor": 2.0}, "'dynamic' has no GGUF form"),
        ({"rope_type": "longrope", "short_factor": [1.0], "long_factor": [2.0]}, "'longrope' has no GGUF form"),
        ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256, "mscale": 0.7}, "mscale"),
    ):
        bare = tmp_path / f"bare-{scaling['rope_type']}"
        bare.mkdir(exist_ok=True)
        (bare / "config.json").write_text(json.dumps({"model_type": "llama", "rope_scaling": scaling}))
        with pytest.raises(TunesmithError, match="Cannot export GGUF") as err:
            check_exportable(bare, ["f16"])
        assert what in err.value.problems[0].message and "convert_hf_to_gguf" in err.value.problems[0].hint


def _parity_rows(scores: list[dict], outputs: list[str]) -> list[dict]:
    return [
        {"suite": "heldout", "id": str(i), "output": o, "tags": [], "scores": {"hit_token_limit": False, **s}}
        for i, (s, o) in enumerate(zip(scores, outputs))
    ]


def test_parity_that_cannot_tell_is_not_measured_and_not_passed():
    from tunesmith.export.parity import parity

    cfg = Config()
    cfg.eval.bootstrap_samples = 200
    replies = [f'{{"queue": "q{i}"}}' for i in range(20)]
    ckpt = _parity_rows([{"task_correct": True}] * 20, replies)
    for kind in ("f16", "q4_0"):  # no case answered by both sides
        empty = parity(kind, ckpt, [], cfg)
        assert empty["n"] == 0 and not empty["passed"] and not empty["measured"]
        assert empty["cause"].startswith("not measured: no held-out case")
    # an instruction-following suite: its primary accuracy, prompt_strict, is held within the 2 points
    strict = _parity_rows([{"prompt_strict": True}] * 20, replies)
    broken = parity("q4_0", strict, _parity_rows([{"prompt_strict": False}] * 20, ["garbage"] * 20), cfg)
    assert broken["accuracy_metric"] == "prompt_strict_accuracy" and broken["task_accuracy"]["delta"] == -1.0
    assert broken["measured"] and not broken["passed"] and "quantization" in broken["cause"]
    assert "prompt_strict_accuracy within 2 points" in broken["target"]
    kept = parity("q4_0", strict, _parity_rows([{"prompt_strict": True}] * 20, ["other words"] * 20), cfg)
    assert kept["passed"] and kept["cause"] is None
    # a chat task scored 0 on both sides, every reply different: no drop could show
    chat = parity(
        "q4_0",
        _parity_rows([{"task_correct": False}] * 20, replies),
        _parity_rows([{"task_correct": False}] * 20, ["!!!"] * 20),
        cfg,
    )
    assert not chat["passed"] and not chat["measured"] and "no drop beyond 2 points could show" in chat["cause"]
    # no accuracy metric at all
    bare = parity("q4_0", _parity_rows([{}] * 20, replies), _parity_rows([{}] * 20, replies), cfg)
    assert not bare["passed"] and "no accuracy metric" in bare["cause"] and bare["task_accuracy"] is None
    # q8_0 keeps the accuracy, but must also keep at least half the replies word for word (the demo kept 74.2%)
    half = _parity_rows([{"task_correct": True}] * 20, replies[:8] + ["reworded"] * 12)
    assert (
        not parity("q8_0", ckpt, half, cfg)["passed"]
        and "identical greedy replies >= 50%" in parity("q8_0", ckpt, half, cfg)["target"]
    )
    most = _parity_rows([{"task_correct": True}] * 20, replies[:12] + ["reworded"] * 8)
    assert parity("q8_0", ckpt, most, cfg)["passed"]


def test_the_gguf_ollama_serves_is_parity_checked_too(tmp_path, tiny_model_dir):
    from types import SimpleNamespace

    from tunesmith.export.merge import ExportOptions, export_artifacts
    from tunesmith.pipeline.shipping import exported_models

    ref = resolve_model(str(tiny_model_dir))

    def checked(formats: list[str], options: ExportOptions, out: Path) -> list[tuple[str, str]]:
        manifest = export_artifacts(ref, None, formats, out, options)
        return [(k, p.relative_to(out).as_posix()) for k, p in exported_models(SimpleNamespace(result=manifest))]

    # Ollama's type is not among the GGUF types: its file is checked on its own
    assert checked(["gguf", "ollama"], ExportOptions(gguf_types=["f16"], ollama_type="q4_0"), tmp_path / "a") == [
        ("f16", "gguf/model-f16.gguf"),
        ("q4_0", "ollama/model-q4_0.gguf"),
    ]
    # Ollama alone: its file is what parity checks (nothing was, before)
    assert checked(["ollama"], ExportOptions(), tmp_path / "b") == [("q8_0", "ollama/model-q8_0.gguf")]
    # the very file of a GGUF type: checked once
    assert checked(["gguf", "ollama"], ExportOptions(gguf_types=["q8_0"]), tmp_path / "c") == [
        ("q8_0", "gguf/model-q8_0.gguf")
    ]


def test_a_merged_export_keeps_the_base_models_dtype(tmp_path, tiny_model_dir):
    import gguf
    import numpy as np
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from tunesmith.export.merge import ExportOptions, export_artifacts

    base = tmp_path / "bf16-base"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).save_pretrained(base)
    load_tokenizer(resolve_model(str(tiny_model_dir))).save_pretrained(base)
    torch.manual_seed(0)
    lora = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    lora.save_pretrained(tmp_path / "adapter")
    out = tmp_path / "out"
    export_artifacts(
        resolve_model(str(base)), tmp_path / "adapter", ["merged", "gguf"], out, ExportOptions(gguf_types=["f16"])
    )
    merged = load_file(out / "merged" / "model.safetensors")
    assert {t.dtype for t in merged.values()} == {torch.bfloat16}  # half the bytes of fp32
    assert json.loads((out / "merged" / "config.json").read_text())["dtype"] == "bfloat16"
    # merged in fp32, rounded to the base's dtype once at the end; the GGUF made from the fp32 merge, not the bf16
    expected = lora.merge_and_unload().state_dict()
    assert all(torch.equal(merged[k], expected[k].to(torch.bfloat16)) for k in merged)
    f16 = {t.name: t.data for t in gguf.GGUFReader(str(out / "gguf" / "model-f16.gguf")).tensors}
    v_proj = expected["model.layers.0.self_attn.v_proj.weight"]
    assert np.array_equal(f16["blk.0.attn_v.weight"], v_proj.half().numpy())
    assert not np.array_equal(f16["blk.0.attn_v.weight"], v_proj.to(torch.bfloat16).half().numpy())
    assert sorted(p.name for p in out.iterdir()) == ["gguf", "manifest.json", "merged"]


def test_a_failed_move_into_place_puts_the_old_export_back_and_fewer_formats_leave_no_stale_folder(
    tmp_path, tiny_model_dir, monkeypatch
):
    import os

    from tunesmith.export import merge

    ref, out = resolve_model(str(tiny_model_dir)), tmp_path / "out"
    merge.export_artifacts(ref, None, ["merged", "gguf"], out, merge.ExportOptions(gguf_types=["f16"]))
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real, failed = os.replace, []

    def fails_once(src, dst):  # the new gguf/ folder cannot be renamed into place
        if Path(dst) == out / "gguf" and not failed:
            failed.append(dst)
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(dst))
        return real(src, dst)

    monkeypatch.setattr(merge.os, "replace", fails_once)
    with pytest.raises(TunesmithError, match="Export failed") as err:
        merge.export_artifacts(
            ref, None, ["merged", "gguf"], out, merge.ExportOptions(gguf_types=["q8_0"], no_repeat_ngram_size=3)
        )
    monkeypatch.undo()
    assert failed and "one file system" in err.value.problems[0].hint
    # the old export whole (its manifest, merged/ and gguf/ as they were), nothing staged or set aside left
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(os.listdir(out)) == ["gguf", "manifest.json", "merged"]
    # fewer formats: the folders of the others go with the old manifest
    manifest = merge.export_artifacts(ref, None, ["merged"], out)
    assert sorted(os.listdir(out)) == ["manifest.json", "merged"] and list(manifest["exports"]) == ["merged"]


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": "), None])
def test_the_gbnf_grammar_spells_enum_and_const_values_as_the_eval_grammar_does(separators, tiny_tok):
    """llama.cpp held to the shipped grammar can give every reply the evaluation's grammar (xgrammar) allows, and
    no other: object and array values of enum/const included, whatever the layout."""
    import xgrammar as xgr

    from tunesmith.generate.decoding import Constraint, gbnf, settles

    schema = {
        "type": "object",
        "properties": {
            "loc": {"enum": [{"lat": 1, "tags": ["a", "b"]}, "Zürich", 2.0, 1.5]},
            "c": {"const": {"k": [1, "v"]}},
        },
        "required": ["loc", "c"],
    }
    constraint = Constraint("json_schema", schema, separators=separators)
    info = xgr.TokenizerInfo.from_huggingface(tiny_tok)
    ours = xgr.GrammarCompiler(info).compile_grammar(xgr.Grammar.from_ebnf(gbnf(constraint)))

    def gbnf_accepts(text: str) -> bool:
        matcher = xgr.GrammarMatcher(ours)
        return matcher.accept_string(text) and matcher.is_completed()

    item, key = separators or (", ", ": ")
    candidates = [
        "{" + f'"loc"{key}{loc}{item}"c"{key}{c}' + "}"
        for layout in ((",", ":"), (", ", ": "))
        for value in schema["properties"]["loc"]["enum"]
        for loc in {json.dumps(value, separators=layout, ensure_ascii=False), json.dumps(value, separators=layout)}
        for c in {json.dumps({"k": [1, "v"]}, separators=s) for s in ((",", ":"), (", ", ": "))}
    ] + ['{"loc": 2, "c": {"k":[1,"v"]}}', '{"loc":2,"c":{"k":[1,"v"]}}']
    evaluated = {text: settles(tiny_tok, constraint, text) for text in candidates}
    assert sum(evaluated.values()) >= 4  # the eval's grammar takes some of them: the comparison is not vacuous
    assert {text: gbnf_accepts(text) for text in candidates} == evaluated


def test_a_template_that_writes_the_bos_token_itself_has_an_ollama_template(tiny_model_dir):
    """Llama 3's template writes `bos_token` first: the runtime adds it (the GGUF's add_bos_token) or the Go
    template writes it, once."""
    from tokenizers import processors

    from tunesmith.export.ollama import modelfile, template_parts

    tok = load_tokenizer(resolve_model(str(tiny_model_dir)))
    tok.chat_template = (  # Meta-Llama-3-8B-Instruct's, with the tiny tokenizer's end-of-turn token
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
        "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
        "'<|im_end|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    )
    convos = [
        [{"role": "system", "content": "S"}, {"role": "user", "content": "a"}],
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
    ]

    def rendered(parts, convo):
        system = convo[0]["content"] if convo[0]["role"] == "system" else None
        return parts.render(system, [m for m in convo if m["role"] != "system"])

    parts = template_parts(tok)  # this tokenizer adds no BOS: the Go template writes it
    assert parts.bos == "<|im_start|>" and modelfile(tok, "m.gguf").split('TEMPLATE """')[1].startswith(
        "<|im_start|>{{ if .System }}<|start_header_id|>system"
    )
    for convo in convos:
        assert rendered(parts, convo) == tok.apply_chat_template(convo, tokenize=False, add_generation_prompt=True)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|im_start|> $A", special_tokens=[("<|im_start|>", tok.bos_token_id)]
    )
    parts = template_parts(tok)  # one that adds it, as Llama 3's does: the runtime writes it, the template not
    assert parts.bos == "" and 'TEMPLATE """{{ if .System }}' in modelfile(tok, "m.gguf")
    for convo in convos:
        expected = tok.apply_chat_template(convo, tokenize=False, add_generation_prompt=True)
        assert "<|im_start|>" + rendered(parts, convo) == expected and expected.count("<|im_start|>") == 1
