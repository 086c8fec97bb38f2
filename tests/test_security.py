"""Security properties, each tested the way an attacker or an accident would hit it:

- pickles planted in a model directory or a checkpoint (a payload that would create a marker file when
  unpickled) never run: next to safetensors they are ignored, instead of them they are refused naming the file;
- `trust_remote_code` is off unless the config turns it on, and then a warning is printed;
- an API key (eval on an endpoint, the judge, the synth teacher; with a failing endpoint that echoes the key
  back) never reaches a file under the project, the cache, or the console; the review token never reaches the
  review directory;
- the review app and the server listen on 127.0.0.1 by default, and paths or ids from requests never leave them;
- the data doctor's PII / secret detectors run in `tunesmith run`'s check stage by default, with an opt-out.
"""

from __future__ import annotations

import contextlib
import http.client
import inspect
import json
import pathlib
import pickle
import shutil

import pytest
from typer.testing import CliRunner

from chat_server import ChatServer
from conftest import (
    interrupted_training,
    judged_compare_args,
    routing_records,
    routing_rows,
    synthetic_review,
    train_config,
    write_jsonl,
)
from tunesmith.cli import app
from tunesmith.errors import TunesmithError
from tunesmith.models import load_model, resolve_model

runner = CliRunner()
KEY = "tsk-CANARY-q7Zx4Vw9Lm2Rb8Tn"  # distinctive: any occurrence anywhere is a leak
TOKEN = "review-token-CANARY-5hJ2kP9s"


# ------------------------------------------------------------------------------------------- planted pickles


class _Payload:
    """Unpickling this creates `marker`: proof that a pickle was opened."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def plant(path: pathlib.Path, marker: pathlib.Path) -> None:
    path.write_bytes(pickle.dumps(_Payload(marker)))


def test_the_payload_is_live(tmp_path):
    # The control: the planted bytes really do create the marker when anything unpickles them.
    plant(tmp_path / "p.pkl", tmp_path / "control")
    pickle.loads((tmp_path / "p.pkl").read_bytes())
    assert (tmp_path / "control").exists()


def test_pickled_weights_in_a_model_dir_never_run(tmp_path, tiny_model_dir, capsys):
    marker = tmp_path / "pwned"
    # next to safetensors: refused with a message, never opened; the safetensors load
    both = shutil.copytree(tiny_model_dir, tmp_path / "both")
    for name in ("pytorch_model.bin", "training_args.bin", "optimizer.pt", "rng_state.pth"):
        plant(both / name, marker)
    model = load_model(resolve_model(str(both)))
    assert model.num_parameters() > 0 and not marker.exists()
    warned = capsys.readouterr().err
    assert "pickled files refused, never opened" in warned and "pytorch_model.bin" in warned
    # instead of safetensors: refused, naming the file
    only = shutil.copytree(tiny_model_dir, tmp_path / "only")
    (only / "model.safetensors").unlink()
    plant(only / "pytorch_model.bin", marker)
    with pytest.raises(TunesmithError) as err:
        resolve_model(str(only))
    assert "pytorch_model.bin" in str(err.value) and "safetensors" in str(err.value)
    # even past resolve_model (a ModelRef built by hand), loading insists on safetensors
    from tunesmith.models import ModelRef

    with pytest.raises(Exception):  # noqa: B017 - whichever loader error, as long as nothing is unpickled
        load_model(ModelRef(str(only), only, "x"))
    assert not marker.exists()


def test_a_pickled_adapter_is_refused_before_peft_opens_it(tmp_path, tiny_model_dir):
    from tunesmith.generate.backends import TransformersBackend
    from tunesmith.models import check_adapter_dir
    from tunesmith.serve import ServedModel

    marker = tmp_path / "pwned"
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps(
            {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "task_type": "CAUSAL_LM"}
        )
    )
    plant(adapter / "adapter_model.bin", marker)
    ref = resolve_model(str(tiny_model_dir))
    for load in (
        lambda: check_adapter_dir(adapter),
        lambda: TransformersBackend(ref, adapter=adapter, precision="fp32"),
        lambda: ServedModel(ref, adapter=adapter, precision="fp32"),
    ):
        with pytest.raises(TunesmithError) as err:
            load()
        assert "adapter_model.bin" in str(err.value)
    assert not marker.exists()


def _checkpoint(out: pathlib.Path) -> None:
    import torch

    from tunesmith.train import checkpoint as ckpt

    layer = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(layer.parameters(), lr=1e-2)
    layer(torch.ones(1, 4)).sum().backward()
    opt.step()
    out.mkdir(parents=True)
    ckpt.save_optimizer(opt, None, out)
    ckpt.save_rng(out, None)


def test_pickled_state_in_a_checkpoint_never_runs(tmp_path):
    import torch

    from tunesmith.train import checkpoint as ckpt

    marker = tmp_path / "pwned"
    saved = tmp_path / "checkpoint-2"
    _checkpoint(saved)
    for name in ckpt.PICKLED:
        plant(saved / name, marker)
    # next to tunesmith's own state: the pickles are never opened, ours load
    ckpt.refuse_pickled_only(saved)
    layer = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(layer.parameters(), lr=1e-2)
    ckpt.load_optimizer(opt, None, saved)
    assert ckpt.load_rng(saved, None) and opt.state_dict()["state"]
    assert not marker.exists()
    # instead of it: refused, naming the files
    for name in ("optimizer.safetensors", "optimizer.json", "rng_state.safetensors", "rng_state.json"):
        (saved / name).unlink()
    with pytest.raises(TunesmithError, match="Refusing a pickled checkpoint") as err:
        ckpt.refuse_pickled_only(saved)
    assert "optimizer.pt" in str(err.value) and "rng_state.pth" in str(err.value)
    assert ckpt.load_rng(saved, None) is False  # the pickled RNG state is not a fallback
    assert not marker.exists()
    # a LoRA checkpoint whose adapter weights are pickled instead of safetensors
    lora = tmp_path / "checkpoint-4"
    _checkpoint(lora)
    plant(lora / "adapter_model.bin", marker)
    with pytest.raises(TunesmithError, match="adapter_model.bin"):
        ckpt.refuse_pickled_only(lora)
    assert not marker.exists()


def test_resuming_from_a_pickled_checkpoint_is_refused_and_runs_nothing(tmp_path, tiny_model_dir):
    from tunesmith.train.sft import train_sft

    ref = resolve_model(str(tiny_model_dir))
    cfg = train_config(max_steps=2, save_steps=1)
    saved = interrupted_training(cfg, ref, routing_records(), tmp_path / "out", at_step=1)
    for name in ("optimizer.safetensors", "optimizer.json", "rng_state.safetensors", "rng_state.json"):
        (saved / name).unlink(missing_ok=True)
    marker = tmp_path / "pwned"
    plant(saved / "optimizer.pt", marker)
    plant(saved / "rng_state.pth", marker)
    with pytest.raises(TunesmithError, match="Refusing a pickled checkpoint") as err:
        train_sft(cfg, ref, routing_records(), tmp_path / "out")
    assert "optimizer.pt" in str(err.value)
    assert not marker.exists()
    # the adapter weights swapped for a pickle: refused before transformers loads the checkpoint's weights
    _checkpoint(tmp_path / "state")
    for f in (tmp_path / "state").iterdir():
        shutil.copy(f, saved / f.name)
    (saved / "adapter_model.safetensors").unlink()
    plant(saved / "adapter_model.bin", marker)
    with pytest.raises(TunesmithError, match="adapter_model.bin"):
        train_sft(cfg, ref, routing_records(), tmp_path / "out")
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ trust_remote_code


def test_trust_remote_code_is_off_by_default_and_warns_when_on(tmp_path, tiny_model_dir, capsys, monkeypatch):
    from transformers import AutoModelForCausalLM

    from tunesmith.config import load_config

    seen = []
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda *a, **kw: seen.append(kw))
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "m")
    (tmp_path / "tunesmith.yaml").write_text(f'model: {{base: "{model_dir}"}}\n')
    cfg, _ = load_config(tmp_path)
    assert cfg.model.trust_remote_code is False
    load_model(resolve_model(cfg.model.base, cfg.model.trust_remote_code))
    assert seen[-1]["trust_remote_code"] is False and seen[-1]["use_safetensors"] is True
    assert "trust_remote_code" not in capsys.readouterr().err

    (tmp_path / "tunesmith.yaml").write_text(f'model: {{base: "{model_dir}", trust_remote_code: true}}\n')
    cfg, _ = load_config(tmp_path)
    ref = resolve_model(cfg.model.base, cfg.model.trust_remote_code)
    load_model(ref)
    assert seen[-1]["trust_remote_code"] is True and seen[-1]["use_safetensors"] is True
    err = capsys.readouterr().err
    assert "warning" in err and "trust_remote_code" in err and str(model_dir) in err


# ----------------------------------------------------------------------------------------- keys never leak


def _scan(roots: list[pathlib.Path], needle: str, *texts: str) -> list[str]:
    """Every file under `roots` (bytes, so caches and sqlite too) and every text that contains `needle`."""
    found = [
        str(p)
        for root in roots
        if root.exists()
        for p in root.rglob("*")
        if p.is_file() and needle.encode() in p.read_bytes()
    ]
    return found + [f"output #{i}" for i, t in enumerate(texts) if t and needle in t]


def _echoing(messages, tools):
    # A failing endpoint that echoes the key back in its error body, as some proxies and APIs do.
    return {"status": 401, "message": f"Incorrect API key provided: {KEY}"}


def _outputs(res) -> list[str]:
    out = [res.output]
    for name in ("stdout", "stderr"):
        with contextlib.suppress(ValueError, AttributeError):
            out.append(getattr(res, name))
    return out


def test_the_endpoint_key_never_reaches_runs_caches_or_output(tiny_project, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("CANARY_KEY", KEY)
    home = tmp_path.parent / "tunesmith-home"
    answer = json.dumps({"queue": "billing", "priority": "normal"})
    texts: list[str] = []
    with ChatServer(lambda m, t: {"content": answer}) as good, ChatServer(_echoing) as bad:
        for server in (good, bad):
            res = runner.invoke(
                app,
                [
                    "eval",
                    "run",
                    str(tiny_project),
                    "--endpoint",
                    server.base_url,
                    "--endpoint-model",
                    "rules",
                    "--api-key-env",
                    "CANARY_KEY",
                    "--json",
                ],
            )
            assert res.exit_code == 0, res.output
            texts += _outputs(res)
        # the key was really sent (so a leak would have been possible), and the failures really happened
        assert all(r["authorization"] == f"Bearer {KEY}" for r in good.requests + bad.requests)
        runs = sorted((tiny_project / ".tunesmith" / "runs").glob("*eval*"))
        errors = [
            json.loads(line).get("error")
            for d in runs
            if (d / "results.jsonl").exists()
            for line in (d / "results.jsonl").read_text().splitlines()
        ]
        assert any(e and "HTTP 401" in e and "[redacted]" in e for e in errors)
    texts.append("".join(capfd.readouterr()))
    assert not _scan([tiny_project, home], KEY, *texts)


def _judge_ok(messages, tools):
    return {"content": "Verdict: [[1]]"}


def test_the_judge_key_never_leaks(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("CANARY_KEY", KEY)
    rows = [
        {
            "suite": "heldout",
            "id": str(i),
            "tags": [],
            "scores": {"task_correct": bool(i % 2)},
            "latency_s": 0.1,
            "new_tokens": 1,
            "prompt": f"p{i}",
            "output": f"out {i}",
            "behavior": "answer",
        }
        for i in range(6)
    ]
    write_jsonl(tmp_path / "a.jsonl", rows)
    write_jsonl(tmp_path / "b.jsonl", [{**r, "output": "other"} for r in rows])
    texts: list[str] = []
    with ChatServer(_judge_ok) as good, ChatServer(_echoing) as bad:
        for server in (good, bad):
            (tmp_path / "tunesmith.yaml").write_text(
                f"eval: {{judge: {{base_url: '{server.base_url}', model: j, api_key_env: CANARY_KEY}}, "
                "bootstrap_samples: 100}\n"
            )
            out = tmp_path / f"cmp-{server is good}.json"
            res = runner.invoke(app, judged_compare_args(tmp_path, 3, "--out", str(out)))
            assert res.exit_code in (0, 1), res.output
            texts += _outputs(res)
        assert good.requests and bad.requests
        assert all(r["authorization"] == f"Bearer {KEY}" for r in good.requests + bad.requests)
    assert "[redacted]" in (tmp_path / "cmp-False.json").read_text()  # the failure was reported, masked
    texts.append("".join(capfd.readouterr()))
    assert not _scan([tmp_path], KEY, *texts)


def test_the_synth_teacher_key_never_leaks(tiny_project, tmp_path, monkeypatch, capfd):
    from test_synth import teacher

    monkeypatch.setenv("CANARY_KEY", KEY)
    home = tmp_path.parent / "tunesmith-home"
    texts: list[str] = []
    with ChatServer(teacher, model="big-teacher") as good, ChatServer(_echoing, model="big-teacher") as bad:
        for name, server in (("good", good), ("bad", bad)):
            res = runner.invoke(
                app,
                [
                    "data",
                    "synth",
                    str(tiny_project),
                    "--out",
                    str(tiny_project / f"{name}.jsonl"),
                    "--n",
                    "4",
                    "--endpoint",
                    server.base_url,
                    "--endpoint-model",
                    "big-teacher",
                    "--api-key-env",
                    "CANARY_KEY",
                    "--rejected",
                    str(tiny_project / f"{name}-rejected.jsonl"),
                ],
            )
            texts += _outputs(res)
            assert res.exit_code in (0, 1), res.output
        assert good.requests and bad.requests
    texts.append("".join(capfd.readouterr()))
    assert not _scan([tiny_project, home], KEY, *texts)


# ---------------------------------------------------------------------------------- defaults: loopback only


def _cli_default(path: list[str], option: str):
    import typer.main

    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return next(p.default for p in cmd.params if p.name == option)


def test_the_server_and_the_review_app_listen_on_loopback_by_default():
    from tunesmith.review import ReviewServer, run_review
    from tunesmith.serve import serve

    for fn in (serve, run_review, ReviewServer.__init__):
        assert inspect.signature(fn).parameters["host"].default == "127.0.0.1", fn
    for path in (["serve"], ["review", "serve"], ["review", "sample"], ["review", "ab"]):
        assert _cli_default(path, "host") == "127.0.0.1", path


# ------------------------------------------------------------------------------------------- path traversal


def raw(base: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One HTTP request with the path sent byte for byte (no client-side normalization)."""
    host, port = base.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in {
            "Content-Type": "application/json",
            "Content-Length": str(len(body or b"")),
            **(headers or {}),
        }.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


TRAVERSALS = [
    "/../../etc/passwd",
    "/static/..%2f..%2fetc%2fpasswd",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/v1/..%2f..%2f..%2fetc%2fpasswd",
    "/v1/models/..%2f..%2fetc%2fpasswd",
    "/..%5c..%5cetc%5cpasswd",
    "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
]


def test_the_server_serves_nothing_outside_for_traversal_paths_and_model_names(tiny_model_dir):
    from test_serve import running
    from tunesmith.serve import ServedModel

    served = ServedModel(str(tiny_model_dir), name="tiny", precision="fp32")
    with running(served) as base:
        for path in TRAVERSALS:
            status, text = raw(base, "GET", path)
            assert 400 <= status < 500 and "root:" not in text, (path, status)
        for name in (
            "../../etc/passwd",
            "..%2f..%2fetc%2fpasswd",
            str(tiny_model_dir),
            "/etc/passwd",
            "tiny/../../etc/passwd",
        ):
            body = json.dumps({"model": name, "messages": [{"role": "user", "content": "hi"}]}).encode()
            status, text = raw(base, "POST", "/v1/chat/completions", body)
            assert status == 404 and "model_not_found" in text and "root:" not in text, (name, status)
        assert raw(base, "GET", "/health")[0] == 200  # still serving
    # with a key, no spelling of the path reaches a model route without it
    body = json.dumps({"model": "tiny", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}).encode()
    with running(served, api_key=KEY) as base:
        for path in (
            "/v1/chat/completions",
            "//v1/chat/completions",
            "/./v1/chat/completions",
            "/v1/../v1/chat/completions",
            "/v1%2fchat%2fcompletions",
            "/V1/chat/completions",
            "/%76%31/chat/completions",
        ):
            status, text = raw(base, "POST", path, body)
            assert status in (401, 404) and "choices" not in text, (path, status)
        assert raw(base, "GET", "/v1/models")[0] == 401
        assert raw(base, "POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {KEY}"})[0] == 200


def test_the_review_app_serves_nothing_outside_and_keeps_its_token_out_of_its_files(tmp_path):
    from tunesmith.review import ReviewServer
    from tunesmith.review.state import read_journal, read_state

    review = synthetic_review(tmp_path, 20, seed=1)
    (tmp_path / "secret.txt").write_text("root:x:0:0 outside the review")
    outside = lambda: sorted(p for p in tmp_path.rglob("*") if review not in p.parents)
    before = outside()
    with ReviewServer(review, port=0, token=TOKEN) as server:
        base, q = server.base, f"?token={TOKEN}"
        assert raw(base, "GET", "/api/summary")[0] == 403  # no token, no answer
        for path in TRAVERSALS + [
            "/item/..%2f..%2fsecret.txt",
            "/item/%2e%2e%2fsecret.txt",
            "/item/-1",
            "/item/99999999999999999999999",
        ]:
            status, text = raw(base, "GET", path + q.replace("?", "&" if "?" in path else "?"))
            status2, text2 = raw(base, "GET", path, headers={"Cookie": f"tunesmith_review_{server.port}={TOKEN}"})
            for s, t in ((status, text), (status2, text2)):
                assert s in (303, 400, 403, 404, 422) and "root:" not in t, (path, s)
        state = read_state(review)
        item = state.items[0]
        for item_id in (
            "..%2f..%2fsecret.txt",
            "%2e%2e%2f%2e%2e%2fsecret.txt",
            "..%2freview.json",
            "..%5c..%5csecret.txt",
            "%00",
        ):
            body = json.dumps({"version": 0, "action": "keep"}).encode()
            status, text = raw(base, "POST", f"/api/items/{item_id}/decision{q}", body)
            assert status in (400, 404) and "root:" not in text, (item_id, status)
        status, _ = raw(
            base,
            "POST",
            f"/api/items/{item.id}/decision{q}",
            json.dumps({"version": 0, "action": "edit", "value": "new"}).encode(),
        )
        assert status == 200
    assert len(read_journal(review)) == 1  # only the real decision was journaled
    assert outside() == before  # nothing created or removed outside the review
    assert {p.name for p in review.iterdir()} <= {"review.json", "journal.jsonl", "summary.json", "sample.jsonl"}
    assert not _scan([review], TOKEN)


# --------------------------------------------------------------------------------- PII / secrets in `run`

AWS_KEY = "AKIAQ3EGT7ZP5WNXK2RM"


def _project_with_a_secret(tmp_path, tiny_model_dir, extra: str = "") -> pathlib.Path:
    rows = routing_rows(24)
    rows[3]["messages"][1]["content"] = f"ticket 3: use my key {AWS_KEY} to fix billing"
    write_jsonl(tmp_path / "data" / "tickets.jsonl", rows)
    (tmp_path / "tunesmith.yaml").write_text(f"""
model: {{base: "{tiny_model_dir}"}}
task: {{type: json, match_fields: [queue]}}
data: {{train: [data/tickets.jsonl], max_seq_len: 128{extra}}}
eval: {{max_new_tokens: 4, batch_size: 8, bootstrap_samples: 100}}
train: {{max_steps: 1, batch_size: 4, save_steps: 1, logging_steps: 1, precision: fp32}}
""")
    return tmp_path


def _check_stage(project: pathlib.Path) -> dict:
    from tunesmith.config import load_config
    from tunesmith.pipeline import prepare

    cfg, root = load_config(project)
    p = prepare(cfg, root, with_suites=False)
    check = next(d for d in sorted((root / ".tunesmith" / "runs").iterdir()) if "check" in d.name)
    rejected = [json.loads(line) for line in (check / "rejected.jsonl").read_text().splitlines()]
    return {"split": p.st_split.result, "rejected": rejected, "report": json.loads((check / "report.json").read_text())}


def test_the_secret_detector_runs_in_the_check_stage_by_default(tmp_path, tiny_model_dir):
    from tunesmith.config import Config

    assert Config().data.pii_check is True
    got = _check_stage(_project_with_a_secret(tmp_path, tiny_model_dir))
    assert len(got["rejected"]) == 1 and AWS_KEY in json.dumps(got["rejected"][0])
    assert "secret" in json.dumps(got["rejected"][0]).lower()
    assert got["split"]["train"] + got["split"]["validation"] + got["split"]["heldout"] == 23
    codes = {c["code"] for c in got["report"]["counts"]}
    assert "secret" in codes


def test_the_pii_check_has_an_explicit_opt_out(tmp_path, tiny_model_dir):
    got = _check_stage(_project_with_a_secret(tmp_path, tiny_model_dir, ", pii_check: false"))
    assert got["rejected"] == [] and sum(got["split"][k] for k in ("train", "validation", "heldout")) == 24
    assert not {c["code"] for c in got["report"]["counts"]} & {"secret", "pii"}


def test_tunesmith_run_rejects_the_secret_by_default(tmp_path, tiny_model_dir):
    project = _project_with_a_secret(tmp_path, tiny_model_dir)
    res = runner.invoke(app, ["run", str(project)])
    assert res.exit_code in (0, 1), res.output
    check = next(d for d in sorted((project / ".tunesmith" / "runs").iterdir()) if "check" in d.name)
    rejected = (check / "rejected.jsonl").read_text()
    assert AWS_KEY in rejected and "secret" in rejected.lower()
    split = next(d for d in sorted((project / ".tunesmith" / "runs").iterdir()) if "split" in d.name)
    assert AWS_KEY not in (split / "train.jsonl").read_text() + (split / "heldout.jsonl").read_text()
