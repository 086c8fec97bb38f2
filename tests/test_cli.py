"""The command line: exit codes, messages a person can act on, nothing half-written."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import routing_rows, write_jsonl
from tunesmith.cli import app
from tunesmith.errors import TunesmithWarning

runner = CliRunner()


def tunesmith(*args, cwd=None):
    """Run the real console entry point in a subprocess (exit codes and stderr as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "tunesmith", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_help_does_not_import_the_heavy_libraries():
    code = (
        "import sys; import tunesmith.cli; "
        "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    for verb in ([], ["run"], ["data", "check"], ["runs", "list"]):
        assert runner.invoke(app, [*verb, "--help"]).exit_code == 0


def test_bad_config_is_one_screen_exit_2_and_writes_nothing(tmp_path):
    (tmp_path / "tunesmith.yaml").write_text("train:\n  lr: banana\nmodle: {}\n")
    res = tunesmith("run", tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "train.lr" in res.stderr and "modle" in res.stderr and "did you mean `model`" in res.stderr
    assert not (tmp_path / ".tunesmith").exists()


def test_missing_data_and_unknown_model_exit_2_with_hints(tmp_path):
    (tmp_path / "tunesmith.yaml").write_text("data: {train: [data/none.jsonl]}\n")
    res = tunesmith("run", tmp_path)
    assert res.returncode == 2 and "data.train[0]" in res.stderr and "matches no file" in res.stderr
    write_jsonl(tmp_path / "data" / "none.jsonl", routing_rows(10))
    res = tunesmith("run", tmp_path, "--set", "model.base=nonexistent-model")
    assert res.returncode == 2 and "Unknown model reference" in res.stderr and "builtin:" in res.stderr
    assert "Traceback" not in res.stderr


def test_malformed_jsonl_line_exit_2_names_file_and_line(tmp_path):
    (tmp_path / "tunesmith.yaml").write_text("data: {train: [data/d.jsonl]}\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.jsonl").write_text(json.dumps(routing_rows(1)[0]) + "\n{oops\n")
    res = tunesmith("run", tmp_path)
    assert res.returncode == 2 and "d.jsonl:2" in res.stderr and "not valid JSON" in res.stderr
    runs = tmp_path / ".tunesmith" / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # no half-made stage directory


def test_init_writes_a_project_that_validates(tmp_path):
    res = runner.invoke(app, ["init", str(tmp_path / "p")])
    assert res.exit_code == 0
    res = runner.invoke(app, ["config", "show", str(tmp_path / "p"), "--set", "train.lr=1e-4"])
    assert res.exit_code == 0 and "lr: 0.0001" in res.output
    assert runner.invoke(app, ["init", str(tmp_path / "p")]).exit_code != 0  # refuses to overwrite


def test_a_run_prints_where_each_recipe_value_came_from(tmp_path):
    from tunesmith.config import load_config, recipe_sources

    runner.invoke(app, ["init", str(tmp_path / "p")])
    overrides = ["train.lora.r=8"]
    sources = {
        name: (value, where)
        for name, value, where in recipe_sources(load_config(tmp_path / "p", overrides)[0], tmp_path / "p", overrides)
    }
    assert sources["lora.r"] == (8, "--set") and sources["lr"] == (1e-3, "tunesmith.yaml")
    assert sources["lora.alpha"] == (32, "default") and sources["general_data"] == (["builtin:self"], "tunesmith.yaml")
    # printed first by `tunesmith run` (here stopped right after by a data file that does not exist); the old flat
    # key is read at its new place, and said to be deprecated
    with pytest.warns(TunesmithWarning, match="train.lora_r is read as train.lora.r"):
        res = runner.invoke(
            app, ["run", str(tmp_path / "p"), "--set", "train.lora_r=8", "--set", "data.train=[nope.jsonl]"]
        )
    assert "Recipe" in res.output and "lora.r 8 (--set)" in res.output and "lora.alpha 32 (default)" in res.output


def test_a_moved_config_key_is_printed_once_as_a_warning_and_read_at_its_new_place(tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    (project / "tunesmith.yaml").write_text("train:\n  lora_r: 8\n  dpo_beta: 0.2\n")
    done = tunesmith("config", "show", project, "--set", "train.lora_alpha=4")
    assert done.returncode == 0, done.stderr
    assert "r: 8" in done.stdout and "alpha: 4" in done.stdout and "beta: 0.2" in done.stdout
    warned = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 3 and "Traceback" not in done.stderr
    assert "train.lora_r: deprecated: read as train.lora.r" in done.stderr
    assert "hint: write it as `lora: {r: 8}` under `train:`" in done.stderr
    assert "--set train.lora_alpha=4" in done.stderr and "write --set train.lora.alpha=4" in done.stderr


def test_the_train_flags_set_the_lora_sub_section(tmp_path, monkeypatch):
    import warnings

    import tunesmith.pipeline
    from tunesmith.config import load_config

    seen = []
    monkeypatch.setattr(tunesmith.pipeline, "train_project", lambda project, overrides, **kw: seen.append(overrides))
    runner.invoke(app, ["init", str(tmp_path / "p")])
    runner.invoke(app, ["train", str(tmp_path / "p"), "--method", "qlora", "--dora", "--no-rslora"])
    assert seen == [['train.method="qlora"', "train.lora.dora=true", "train.lora.rslora=false"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing said the old way
        lora = load_config(tmp_path / "p", seen[0])[0].train.lora
    assert (lora.dora, lora.rslora, lora.r) == (True, False, 16)


def test_config_schema_is_json():
    res = runner.invoke(app, ["config", "schema"])
    assert res.exit_code == 0 and "properties" in json.loads(res.output)


def _convert(source: Path, out: Path, *options: str):
    """`tunesmith data convert SOURCE OUT OPTIONS...`"""
    return runner.invoke(app, ["data", "convert", str(source), str(out), *options])


def test_data_convert_csv_and_check_and_split(tmp_path):
    src = tmp_path / "rows.csv"
    src.write_text("text,category\n" + "".join(f"message {i},{['a', 'b'][i % 2]}\n" for i in range(20)))
    before = src.read_text()
    out = tmp_path / "conv.jsonl"
    res = _convert(
        src, out, "--from", "csv", "--text-column", "text", "--label-column", "category", "--json-key", "label"
    )
    assert res.exit_code == 0 and src.read_text() == before
    first = json.loads(out.read_text().splitlines()[0])
    assert first["messages"][-1]["content"] == '{"label": "a"}' and first["meta"]["line"] == 2

    assert runner.invoke(app, ["data", "check", str(out)]).exit_code == 0
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "only a question"}]}])
    res = runner.invoke(app, ["data", "check", str(bad), "--json"])
    assert res.exit_code == 1
    finding = json.loads(res.output)["findings"][0]
    assert finding["code"] == "no_final_assistant" and finding["where"].endswith("bad.jsonl:1")

    res = runner.invoke(app, ["data", "split", str(out), "--out", str(tmp_path / "split"), "--stratify-by", "label"])
    assert res.exit_code == 0
    assert len((tmp_path / "split" / "heldout.jsonl").read_text().splitlines()) == 4


def test_data_convert_reads_a_parquet_file_through_the_column_options(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "intents.parquet"
    pq.write_table(pa.table({"utterance": ["card lost", "refund please"], "intent": ["lost_card", "refund"]}), src)
    out = tmp_path / "conv.jsonl"
    labels = ["--label-column", "intent", "--json-key", "intent"]
    res = _convert(src, out, "--prompt-column", "utterance", *labels, "--system", "Classify.")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[1]["messages"] == [
        {"role": "system", "content": "Classify."},
        {"role": "user", "content": "refund please"},
        {"role": "assistant", "content": '{"intent": "refund"}'},
    ]
    assert rows[1]["meta"]["line"] == 2

    from tunesmith.errors import TunesmithError  # `main` prints these as a message and exits 2

    res = _convert(src, out, "--prompt-column", "text", "--label-column", "intent")
    problems = res.exception.problems
    assert [p.where for p in problems] == [f"{src}:1 [text]", f"{src}:2 [text]"]
    assert "it has: intent, utterance" in problems[0].message
    res = _convert(src, out, "--prompt-column", "utterance")
    assert isinstance(res.exception, TunesmithError) and "exactly one reply" in res.exception.problems[0].message
    assert res.exception.problems[0].where == "--prompt-column utterance"


def test_runs_list_and_show(tiny_project):
    from tunesmith.pipeline import run_project

    run_project(tiny_project)
    res = runner.invoke(app, ["runs", "list", str(tiny_project)])
    assert res.exit_code == 0 and "eval-tuned" in res.output
    res = runner.invoke(app, ["runs", "show", "compare", "--project", str(tiny_project)])
    assert res.exit_code == 0 and "gate" in res.output


def test_an_internal_error_is_one_line_with_the_trace_on_disk(tmp_path, monkeypatch, capsys):
    import pytest

    import tunesmith.cli as cli

    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path))
    monkeypatch.setattr(cli, "app", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 3
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in err and "Traceback" not in err
    assert "RuntimeError: boom" in (tmp_path / "last-error.txt").read_text()


def test_model_prepare_resolves_a_local_model(tiny_model_dir):
    res = runner.invoke(app, ["model", "prepare", str(tiny_model_dir)])
    assert res.exit_code == 0 and "identity dir:" in res.output
    res = runner.invoke(app, ["model", "prepare", "builtin:nope"])
    assert res.exit_code != 0


def test_data_check_renders_with_a_model_template(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "d.jsonl", routing_rows(4))
    res = runner.invoke(app, ["data", "check", str(data), "--model", str(tiny_model_dir), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["findings"] == []
    res = runner.invoke(
        app, ["data", "check", str(data), "--model", str(tiny_model_dir), "--max-seq-len", "16", "--json"]
    )
    codes = {f["code"] for f in json.loads(res.output)["findings"]}
    assert res.exit_code == 1 and {"truncated", "empty_loss_mask"} <= codes


def test_missing_or_invalid_json_schema_exit_2(tmp_path, tiny_model_dir):
    write_jsonl(tmp_path / "data" / "d.jsonl", routing_rows(6))
    (tmp_path / "tunesmith.yaml").write_text(
        f'model: {{base: "{tiny_model_dir}"}}\ntask: {{type: json, json_schema: eval/none.json}}\n'
    )
    res = tunesmith("run", tmp_path)
    assert res.returncode == 2 and "JSON Schema not found" in res.stderr and "none.json" in res.stderr
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "none.json").write_text('{"type": "objekt"}')
    res = tunesmith("run", tmp_path)
    assert res.returncode == 2 and "Invalid JSON Schema" in res.stderr


def test_eval_score_scores_recorded_outputs_without_generating(tiny_project, tmp_path):
    suite = write_jsonl(
        tmp_path / "golden.jsonl",
        [
            {
                "id": "a",
                "messages": [{"role": "user", "content": "card charged twice"}],
                "expected": {"queue": "billing", "priority": "high"},
            },
            {
                "id": "b",
                "messages": [{"role": "user", "content": "app crashes"}],
                "expected": {"queue": "technical", "priority": "normal"},
            },
            {
                "id": "c",
                "messages": [{"role": "user", "content": "where is my parcel"}],
                "expected": {"queue": "shipping", "priority": "low"},
            },
        ],
    )
    responses = write_jsonl(
        tmp_path / "api.jsonl",
        [
            {"id": "a", "output": '{"queue": "billing", "priority": "high"}', "latency_s": 0.5},
            {"id": "b", "output": "I think this is a billing question."},
        ],
    )  # c: no response recorded
    out = tmp_path / "results.jsonl"
    res = runner.invoke(
        app,
        [
            "eval",
            "score",
            "--suite",
            str(suite),
            "--responses",
            str(responses),
            "--project",
            str(tiny_project),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    m = report["metrics"]
    assert report["missing"] == 1 and m["cases"] == 3
    assert (
        m["task_accuracy"] == 1 / 3 and m["format_validity"] == 0.5 and m["latency_s"] == 0.5
    )  # b recorded no timing: not a zero
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[2]["error"] == "no response recorded for this case" and rows[2]["output"] is None

    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "zzz", "output": "x"}, {"output": "no id"}])
    res = tunesmith("eval", "score", "--suite", suite, "--responses", bad, "--project", tiny_project)
    assert res.returncode == 2 and "bad.jsonl:2" in res.stderr and "Traceback" not in res.stderr
    # a response for no case is left out and listed; the rest are scored
    unknown = write_jsonl(tmp_path / "unknown.jsonl", [{"id": "zzz", "output": "x"}])
    res = tunesmith("eval", "score", "--suite", suite, "--responses", unknown, "--project", tiny_project)
    assert res.returncode == 0 and "left out" in res.stdout and "no case 'zzz'" in res.stdout
    # no project needed to score a suite that carries its own expectations (the defaults score it)
    res = tunesmith("eval", "score", "--suite", suite, "--responses", unknown, "--project", tmp_path)
    assert res.returncode == 0, res.stderr


def test_data_verbs_never_write_over_their_input(tmp_path):
    from tunesmith.data.convert import convert_file
    from tunesmith.errors import TunesmithError

    data = write_jsonl(tmp_path / "d" / "train.jsonl", routing_rows(4))
    before = data.read_bytes()
    for verb, *rest in (
        ("dedup", "--out", data),
        ("scrub", "--out", data),
        ("split", "--out", data.parent),  # its train.jsonl is the input
        ("distill", "--out", data),
        ("synth", "--out", tmp_path / "s.jsonl", "--n", "2", "--rejected", data),
        ("convert", data),  # its output is positional
    ):
        res = runner.invoke(app, ["data", verb, str(data), *map(str, rest)])
        assert isinstance(res.exception, TunesmithError), (verb, res.output)
        assert res.exception.title == "Refusing to overwrite the input", verb
    assert data.read_bytes() == before and sorted(p.name for p in data.parent.iterdir()) == ["train.jsonl"]
    for verb, *out in (("dedup", "--out"), ("convert",)):
        res = runner.invoke(app, ["data", verb, str(data), *out, str(tmp_path)])
        assert res.exception.problems[0].message == "is a directory", verb
    (tmp_path / "link.jsonl").hardlink_to(data)  # another name of the input: convert_file (the API) refuses it too
    with pytest.raises(TunesmithError, match="Refusing to overwrite"):
        convert_file(data, tmp_path / "link.jsonl")
    assert data.read_bytes() == before
    res = runner.invoke(app, ["data", "split", str(data), "--out", str(tmp_path / "file.jsonl")])
    assert not isinstance(res.exception, TunesmithError)  # a new directory is fine
    res = runner.invoke(app, ["data", "split", str(data), "--out", str(data)])
    assert res.exception.problems[0].message == "is a file, not a directory"


def test_os_errors_are_user_errors_not_internal_ones(tmp_path, monkeypatch, capsys):
    import tunesmith.cli as cli

    (tmp_path / "afile").write_text("x")
    res = tunesmith("init", "afile", cwd=tmp_path)
    assert res.returncode == 2 and "afile: file exists" in res.stderr and "internal error" not in res.stderr
    res = tunesmith("init", "afile/x", cwd=tmp_path)
    assert res.returncode == 2 and "afile/x: not a directory" in res.stderr
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path))
    denied = PermissionError(13, "Permission denied", "data/x.jsonl")
    monkeypatch.setattr(cli, "app", lambda: (_ for _ in ()).throw(denied))
    with pytest.raises(SystemExit) as info:
        cli.main()
    err = capsys.readouterr().err
    assert info.value.code == 2 and "data/x.jsonl: permission denied" in err and "internal error" not in err


def test_ctrl_c_says_what_is_kept(tmp_path, monkeypatch, capsys):
    import tunesmith.cli as cli
    import tunesmith.config

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tunesmith.config, "load_config", interrupt)
    monkeypatch.setattr(sys, "argv", ["tunesmith", "config", "show", str(tmp_path)])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 130 and "interrupted; completed stages are kept" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, option",
    [
        (["eval", "run", ".", "--concurrency", "0"], "--concurrency"),
        (["data", "dedup", "a.jsonl", "--out", "b.jsonl", "--near-dup-threshold", "7"], "--near-dup-threshold"),
        (["data", "check", "a.jsonl", "--workers", "0"], "--workers"),
        (["serve", "m", "--port", "99999"], "--port"),
        (["serve", "m", "--precision", "fp64"], "--precision"),
        (["serve", "m", "--precision", "BF16"], "--precision"),
        (["serve", "m", "--max-context", "-5"], "--max-context"),
        (["tune", "nope", "--trials", "0"], "--trials"),
        (["train", "nope", "--nproc", "0"], "--nproc"),
        (["train", "nope", "--method", "LoRA"], "--method"),
    ],
)
def test_option_values_out_of_range_are_usage_errors(args, option):
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and option in res.output, res.output


def test_an_unknown_precision_is_an_error_not_fp32():
    from tunesmith.errors import TunesmithError
    from tunesmith.models import resolve_precision

    assert resolve_precision("fp32") == "fp32"
    with pytest.raises(TunesmithError, match="auto, bf16, fp32"):
        resolve_precision("BF16")


def test_a_missing_adapter_is_refused_before_anything_starts(tmp_path, monkeypatch):
    import tunesmith.pipeline
    from tunesmith.errors import TunesmithError

    started = []
    monkeypatch.setattr(tunesmith.pipeline, "evaluate_model", lambda *a, **k: started.append("eval"))
    monkeypatch.setattr(tunesmith.pipeline, "serve_target", lambda *a, **k: started.append("serve"))
    runner.invoke(app, ["init", str(tmp_path / "p"), "--target", "0.8"])
    res = runner.invoke(app, ["eval", "run", str(tmp_path / "p"), "--adapter", str(tmp_path / "none")])
    assert isinstance(res.exception, TunesmithError) and res.exception.problems[0].message == "does not exist"
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["serve", "m", "--adapter", str(tmp_path / "empty")])
    assert isinstance(res.exception, TunesmithError) and "adapter_config.json" in str(res.exception)
    assert started == []


def test_a_directory_as_data_is_an_error_with_a_glob_to_try(tmp_path):
    from tunesmith.errors import TunesmithError

    write_jsonl(tmp_path / "data" / "a.jsonl", routing_rows(4))
    (tmp_path / "tunesmith.yaml").write_text("data: {train: [data]}\n")
    res = runner.invoke(app, ["data", "check", str(tmp_path)])
    assert isinstance(res.exception, TunesmithError), res.output
    (problem,) = res.exception.problems
    assert problem.where == "data.train[0]" and "is a directory" in problem.message
    assert problem.hint == "did you mean data/*.jsonl?"
    (tmp_path / "tunesmith.yaml").write_text("data: {train: []}\n")
    res = runner.invoke(app, ["data", "check", str(tmp_path)])
    assert isinstance(res.exception, TunesmithError) and "names no data file" in str(res.exception)


def test_a_file_or_a_missing_directory_is_not_taken_for_a_project(tmp_path):
    from tunesmith.errors import TunesmithError

    data = write_jsonl(tmp_path / "three.jsonl", routing_rows(3))
    for args in (["train", str(data)], ["config", "show", str(data)], ["runs", "list", str(tmp_path / "nope")]):
        res = runner.invoke(app, args)
        assert isinstance(res.exception, TunesmithError), (args, res.output)
        assert res.exception.problems[0].message in ("is a file, not a project directory", "does not exist")
