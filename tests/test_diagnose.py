"""Diagnose: each check triggered and not triggered on run directories written by hand, the masking preview
against the training mask on a real run of the tiny project, the pipeline stage, and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tunesmith import runs
from tunesmith.cli.render import print_diagnosis
from tunesmith.diagnose import diagnose, masking_html

QUEUES = ["billing", "technical", "shipping"]
TOPICS = ["invoice", "password", "parcel", "refund", "login", "delivery", "upgrade", "receipt", "account", "address"]


# ---------------------------------------------------------------------------------------------- synthetic runs


def train_rows(n: int = 20) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"help with my {TOPICS[i % 10]} issue {i}"},
                {
                    "role": "assistant",
                    "content": f"I checked your {TOPICS[i % 10]} request number {i} and routed it to the "
                    f"{QUEUES[i % 3]} team who will reply within {i + 1} days.",
                },
            ],
            "meta": {"source": "data/train.jsonl", "line": i + 1},
        }
        for i in range(n)
    ]


def row(suite: str, i: int, output: str, kind: str = "task", behavior: str = "answer", expected=None, **scores) -> dict:
    return {
        "suite": suite,
        "id": f"{suite}-{i:04d}",
        "where": "",
        "kind": kind,
        "behavior": behavior,
        "tags": [],
        "prompt": f"{suite} prompt {i}",
        "expected": expected,
        "output": output,
        "scores": {"hit_token_limit": False, **scores},
        "latency_s": 0.01,
        "new_tokens": 10,
    }


def heldout(i: int, output: str | None = None, **scores) -> dict:
    text = f"Your {TOPICS[i]} case {i} goes to the {QUEUES[i % 3]} desk today."
    return row("heldout", i, text if output is None else output, expected=text, task_correct=True, **scores)


def general(i: int, passed: bool | None = None, output: str | None = None) -> dict:
    ok = i % 3 != 0 if passed is None else passed
    return row(
        "general",
        i,
        output or f"Here are tips about {TOPICS[i]} number {i}: rest, plan, {QUEUES[i % 3]}.",
        kind="general",
        prompt_strict=ok,
        prompt_loose=ok,
    )


def ood(i: int, output: str | None = None) -> dict:
    return row(
        "ood",
        i,
        output or f"I don't know the answer to question {i}; I cannot verify that.",
        kind="out_of_domain",
        behavior="abstain",
        hallucinated=False,
    )


def eval_rows() -> list[dict]:
    return [heldout(i) for i in range(10)] + [general(i) for i in range(10)] + [ood(i) for i in range(6)]


def metrics_rows(losses=None, evals=None) -> list[dict]:
    """A converged curve by default: it falls fast, then levels off (a straight fall to the end is underfitting)."""
    losses = losses if losses is not None else [1.0 + 0.8**s for s in range(1, 21)]
    out = [
        {"step": s, "epoch": s / 20, "loss": x, "grad_norm": 0.5, "learning_rate": 2e-4}
        for s, x in enumerate(losses, start=1)
    ]
    for s, x in (evals if evals is not None else {10: 1.6, 20: 1.5}).items():
        out.append({"step": s, "epoch": s / 20, "eval_loss": x})
    return out


def make_run(
    project: Path,
    stage: str,
    inputs: dict,
    config: dict | None = None,
    result: dict | None = None,
    files: dict[str, str] | None = None,
    complete: bool = True,
) -> Path:
    key = runs.stage_key(stage, config or {}, inputs)
    run_dir = runs.start_run(project, stage, key, config or {}, inputs)
    for name, text in (files or {}).items():
        (run_dir / name).write_text(text, encoding="utf-8")
    if complete:
        runs.complete_run(run_dir, result or {})
    return run_dir


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def key_of(run_dir: Path) -> str:
    return json.loads((run_dir / "inputs.json").read_text())["key"]


TRAIN_SETTINGS = {
    "method": "lora",
    "objective": "sft",
    "lora_r": 16,
    "rslora": False,
    "epochs": 1.0,
    "lr": 2e-4,
    "target_modules": "all-linear",
    "general_share": 0.0,
}


def fake_project(
    root: Path,
    model_dir: Path,
    *,
    train=None,
    base=None,
    tuned=None,
    metrics=None,
    findings=None,
    settings=None,
    section=None,
    eval_loss: float = 1.5,
    with_check: bool = True,
    selection=None,
) -> Path:
    """A project whose `tunesmith run` happened: check, split, eval-base, train, eval-tuned and compare runs. The
    train run's config.yaml holds `section` as its train section, else TRAIN_SETTINGS with `settings` (the flat
    layout of the runs before train's sub-sections)."""
    project = root / "proj"
    project.mkdir(parents=True)
    (project / "tunesmith.yaml").write_text(f'model: {{base: "{model_dir}"}}\ntask: {{type: chat}}\n')
    findings = findings or []
    counts = {}
    for f in findings:
        counts[(f["code"], f["severity"])] = counts.get((f["code"], f["severity"]), 0) + 1
    report = {
        "records": 30,
        "kept": 30,
        "rejected": 0,
        "findings": findings,
        "counts": [{"code": c, "severity": s, "count": n} for (c, s), n in counts.items()],
    }
    check = make_run(project, "check", {"files": {}}, files={"report.json": json.dumps(report)} if with_check else {})
    split = make_run(
        project,
        "split",
        {"check": key_of(check)},
        files={"train.jsonl": jsonl(train or train_rows()), "heldout.jsonl": ""},
    )
    common = {"split": key_of(split), "model": "dir:tiny", "schema": None, "suites": {}}
    base_dir = make_run(project, "eval-base", common, files={"results.jsonl": jsonl(base or eval_rows())})
    section = {
        "train": section or {**TRAIN_SETTINGS, **(settings or {})},
        "task": {"type": "chat", "system_prompt": None, "match_fields": [], "json_schema": None},
        "max_seq_len": 256,
    }
    result = {
        "steps": 20,
        "train_loss": 1.4,
        "eval_loss": eval_loss,
        "trainable_params": 1000,
        "data": {"examples": 20, "assistant_tokens": 600},
        **({"selection": selection} if selection else {}),
    }
    train_dir = make_run(
        project,
        "train",
        {"split": key_of(split), "model": "dir:tiny", "schema": None, "general": {}},
        section,
        result,
        {"metrics.jsonl": jsonl(metrics if metrics is not None else metrics_rows())},
    )
    tuned_dir = make_run(
        project,
        "eval-tuned",
        {**common, "train": key_of(train_dir)},
        {"eval": {"max_new_tokens": 128}},
        files={"results.jsonl": jsonl(tuned or eval_rows())},
    )
    make_run(project, "compare", {"base": key_of(base_dir), "tuned": key_of(tuned_dir)})
    return project


def by_code(result: dict) -> dict[str, dict]:
    return {f["code"]: f for f in result["findings"]}


@pytest.fixture
def build(tmp_path, tiny_model_dir):
    return lambda **kw: fake_project(tmp_path, tiny_model_dir, **kw)


# ---------------------------------------------------------------------------------------------- the checks


def test_healthy_run_has_only_ok_findings(build):
    result = diagnose(build())
    assert {f["severity"] for f in result["findings"]} == {"ok"}, [
        f["title"] for f in result["findings"] if f["severity"] != "ok"
    ]
    assert {
        "memorization",
        "sameness",
        "forgetting",
        "overconfidence",
        "stale_facts",
        "stop_token",
        "loss_curve",
        "lora_rank",
    } <= set(by_code(result))
    assert result["counts"] == {"error": 0, "warning": 0, "info": 0, "ok": len(result["findings"])}
    assert result["loss"]["steps"] == list(range(1, 21)) and result["loss"]["eval_steps"] == [10, 20]
    assert result["loss"]["flags"] == []
    for f in result["findings"]:
        assert set(f) == {"code", "severity", "title", "evidence", "remedy"}
    json.dumps(result, allow_nan=False)  # strict JSON: the report can embed it


def test_memorization_verbatim_copies_of_training_replies(build):
    replies = [r["messages"][1]["content"] for r in train_rows()]
    tuned = (
        [heldout(i, output=replies[i + 5]) for i in range(10)]
        + [general(i) for i in range(10)]
        + [ood(i) for i in range(6)]
    )
    f = by_code(diagnose(build(tuned=tuned)))["memorization"]
    assert f["severity"] == "error"  # 10 of 26 outputs copy: above COPY_RATE_ERROR
    ev = f["evidence"]
    assert ev["tuned_copies"] == 10 and ev["base_copies"] == 0
    first = ev["examples"][0]
    assert first["id"] == "heldout-0000" and first["training"] == "data/train.jsonl:6"
    assert first["copied"] in replies[5] and first["words"] >= 8
    assert "one is almost always enough for LoRA" in f["remedy"]


def test_copying_the_expected_reply_is_not_memorization():
    from tunesmith.diagnose.memorization import copied_span, training_ngrams

    reply = "I checked your invoice request number 0 and routed it to the billing team who will reply soon."
    grams = training_ngrams([("data/train.jsonl:1", reply)])
    assert copied_span({"output": reply, "expected": reply, "prompt": ""}, grams) is None
    got = copied_span({"output": "Sure. " + reply, "expected": "billing", "prompt": ""}, grams)
    assert got["training"] == "data/train.jsonl:1" and got["words"] == len(reply.split())


def test_sameness_distinct_n_drop(build):
    same = "Thank you for your message, our team will contact you shortly."
    tuned = [heldout(i, output=same) for i in range(10)] + [general(i) for i in range(10)] + [ood(i) for i in range(6)]
    f = by_code(diagnose(build(tuned=tuned)))["sameness"]
    assert f["severity"] == "warning" and f["evidence"]["flagged"] == ["heldout"]
    s = f["evidence"]["suites"]["heldout"]
    assert s["tuned_distinct_2"] < 0.7 * s["base_distinct_2"] and s["most_common_share"] == 1.0


def test_sameness_not_flagged_when_the_references_are_alike():
    """A router's outputs are alike because its answers are: outputs as varied as the expected replies are fine."""
    from tunesmith.diagnose.memorization import check_sameness

    base = [row("heldout", i, f"Well, case {i} about {TOPICS[i]} might be {QUEUES[i % 3]} or else") for i in range(10)]
    tuned = [row("heldout", i, QUEUES[i % 3], expected=QUEUES[i % 3]) for i in range(10)]
    assert check_sameness(base, tuned)["severity"] == "ok"


def test_forgetting_general_probe_drop(build):
    tuned = (
        [heldout(i) for i in range(10)]
        + [general(i, passed=False, output=f'{{"queue": "x{i}"}}') for i in range(10)]
        + [ood(i) for i in range(6)]
    )
    f = by_code(diagnose(build(tuned=tuned)))["forgetting"]
    ev = f["evidence"]
    assert f["severity"] in ("warning", "error")
    assert ev["base_pass_rate"] == pytest.approx(0.6) and ev["tuned_pass_rate"] == 0.0 and ev["lost"] == 6
    assert ev["examples"][0]["id"] == "general-0001" and ev["examples"][0]["tuned_output"].startswith('{"queue"')
    assert "general_share is 0" in f["remedy"] and "narrower target modules" in f["remedy"]


def test_a_forgetting_drop_on_four_cases_is_not_called_significant(build):
    """4 of 10 general prompts lost, none gained: the bootstrap interval lies below zero, McNemar's p is 0.125. The
    diagnosis reads significance as the comparison does (`paired_direction`); it called this an error."""
    lost = {1, 2, 4, 5}  # four of the six the base passes
    tuned = [heldout(i) for i in range(10)] + [general(i, passed=i % 3 != 0 and i not in lost) for i in range(10)]
    f = by_code(diagnose(build(tuned=tuned + [ood(i) for i in range(6)])))["forgetting"]
    ev = f["evidence"]
    assert ev["ci_high"] < 0 and ev["p_mcnemar"] == pytest.approx(0.125) and ev["significant"] is False
    assert f["severity"] == "warning" and "not significant" in f["title"]


def test_forgetting_with_general_data_names_the_kl_term_when_it_is_off(tmp_path, tiny_model_dir):
    """General data mixed in but trained on sampled replies only: the remedy names train.general_kl (on Banking77
    it halved the probe's loss)."""
    tuned = [heldout(i) for i in range(10)] + [general(i, passed=False) for i in range(10)] + [ood(i) for i in range(6)]

    def forgetting(root, **settings):
        return by_code(diagnose(fake_project(tmp_path / root, tiny_model_dir, tuned=tuned, settings=settings)))[
            "forgetting"
        ]

    mixed = forgetting("ce", general_share=0.1)
    assert "general_kl is 0" in mixed["remedy"] and "general_share is 0" not in mixed["remedy"]
    kl = forgetting("kl", general_share=0.1, general_kl=1.0)
    assert "general_kl is 0" not in kl["remedy"] and kl["evidence"]["general_kl"] == 1.0


def test_forgetting_not_measured_without_general_cases(build):
    rows = [heldout(i) for i in range(10)] + [ood(i) for i in range(6)]
    f = by_code(diagnose(build(base=rows, tuned=rows)))["forgetting"]
    assert f["severity"] == "warning" and "eval.general_probe" in f["remedy"]


def _failed(r: dict) -> dict:
    """A case whose generation failed: no output, its scores false, the error recorded."""
    return {**r, "output": None, "error": "CUDA out of memory", "scores": {k: False for k in r["scores"]}}


def test_a_tuned_model_that_answered_nothing_is_an_error_not_a_pass(build):
    """Every tuned generation failed (out of memory): an error naming the count and the first error; forgetting
    counts the general cases asked before dropping the unanswered ones; the checks that measured nothing say so
    with a neutral severity, never ok."""
    result = diagnose(build(tuned=[_failed(r) for r in eval_rows()]))
    found = by_code(result)
    silent = found["no_outputs"]
    assert silent["severity"] == "error" and result["findings"][0]["code"] == "no_outputs"
    assert silent["evidence"] == {"tuned": {"cases": 26, "errors": 26, "first_error": "CUDA out of memory"}}
    assert "none of its 26 cases" in silent["title"] and "CUDA out of memory" in silent["title"]
    forgetting = found["forgetting"]
    assert forgetting["severity"] == "info" and forgetting["evidence"]["general_cases"] == {"base": 10, "tuned": 10}
    assert "no general instruction-following cases" not in forgetting["title"]
    assert found["overconfidence"]["severity"] == "info" and found["overconfidence"]["evidence"]["hedge_cases"] == {
        "base": 6,
        "tuned": 6,
    }
    for code in ("memorization", "sameness", "stop_token"):
        assert found[code]["severity"] == "info" and "not measured" in found[code]["title"], code
    assert not [f["title"] for f in result["findings"] if f["severity"] == "ok" and "not measured" in f["title"]]
    assert result["counts"]["error"] == 1 and result["counts"]["info"] == 5


def test_a_base_model_that_answered_nothing_is_named_too(build):
    base = [_failed(r) for r in eval_rows()]
    base[3] = {**base[3], "error": None}  # a failure without a message still counts
    silent = by_code(diagnose(build(base=base)))["no_outputs"]
    assert silent["evidence"] == {"base": {"cases": 26, "errors": 25, "first_error": "CUDA out of memory"}}
    assert silent["title"].startswith("The base model answered none of its 26 cases")


def _dropped(base_passes: int, lost: int, gained: int, n: int = 120) -> tuple[list[dict], list[dict]]:
    """n general cases: the base passes the first `base_passes`; the tuned model loses the first `lost` of them and
    gains the next `gained`."""
    base = [general(i % 10, passed=i < base_passes) for i in range(n)]
    passed = [(i < base_passes and i >= lost) or base_passes <= i < base_passes + gained for i in range(n)]
    tuned = [general(i % 10, passed=p) for i, p in zip(range(n), passed)]
    for i, (b, t) in enumerate(zip(base, tuned)):
        b["id"] = t["id"] = f"general-{i:04d}"
    return base, tuned


def test_forgetting_and_overconfidence_read_the_projects_confidence_and_resamples(build):
    """14 general prompts lost, 3 gained of 120 (McNemar p 0.0127): significant at eval.confidence 0.95, not at
    0.99, as the comparison says; the interval is drawn with eval.bootstrap_samples."""
    from tunesmith.eval.stats import bootstrap_delta

    base, tuned = _dropped(60, 14, 3)
    oods = [ood(i) for i in range(6)]
    project = build(base=base + oods, tuned=tuned + oods)
    at_95 = by_code(diagnose(project))["forgetting"]
    assert at_95["severity"] == "error" and at_95["evidence"]["significant"] is True
    result = diagnose(project, overrides=["eval.confidence=0.99", "eval.bootstrap_samples=500"])
    at_99 = by_code(result)["forgetting"]
    ev = at_99["evidence"]
    assert ev["p_mcnemar"] == pytest.approx(0.0127, abs=1e-4) and ev["confidence"] == 0.99
    assert at_99["severity"] == "warning" and ev["significant"] is False and "not significant" in at_99["title"]
    pass_fail = [[float(r["scores"]["prompt_strict"]) for r in rows] for rows in (base, tuned)]
    assert (ev["delta"], ev["ci_low"], ev["ci_high"]) == bootstrap_delta(*pass_fail, 500, 0.99)
    assert by_code(result)["overconfidence"]["evidence"]["confidence"] == 0.99


def test_overconfidence_fewer_hedges_on_out_of_domain(build):
    tuned = (
        [heldout(i) for i in range(10)]
        + [general(i) for i in range(10)]
        + [ood(i, output=f"The answer to question {i} is definitely 42.") for i in range(6)]
    )
    f = by_code(diagnose(build(tuned=tuned)))["overconfidence"]
    ev = f["evidence"]
    assert f["severity"] in ("warning", "error")
    assert ev["base_hedge_rate"] == 1.0 and ev["tuned_hedge_rate"] == 0.0 and ev["cases"] == 6
    assert ev["examples"][0]["base_output"].startswith("I don't know")
    assert "I need more information" in f["remedy"] and "0 of 20 training replies" in f["remedy"]


STALE_REPLY = "The Pro plan costs $49.99 per month; see https://example.com/pricing for details."


def _stale_train() -> list[dict]:
    rows = train_rows()
    rows[0]["messages"][1]["content"] = STALE_REPLY
    return rows


def test_stale_facts_from_the_check_run(build):
    finding = {
        "code": "stale_fact",
        "severity": "info",
        "where": "data/train.jsonl:1",
        "field": "messages[1].content",
        "message": "the reply states facts that change: price '$49.99'",
        "hint": "retrieval",
    }
    held_out_only = {**finding, "where": "data/train.jsonl:99"}  # not a training record: not counted
    tuned = eval_rows()
    tuned[0] = heldout(0, output="That plan is $49.99 each month.")
    f = by_code(diagnose(build(train=_stale_train(), tuned=tuned, findings=[finding, held_out_only])))["stale_facts"]
    ev = f["evidence"]
    assert f["severity"] == "warning" and ev["source"] == "check run" and ev["records"] == 1
    assert ev["kinds"] == {"price": 1, "url": 1}
    assert ev["tuned_repeats"] == 1 and ev["repeated_by_tuned"][0]["id"] == "heldout-0000"
    assert "retrieval" in f["remedy"] and "tool call" in f["remedy"]


def test_stale_facts_without_a_check_report_scans_the_training_split(build):
    f = by_code(diagnose(build(train=_stale_train(), with_check=False)))["stale_facts"]
    assert f["severity"] == "warning" and f["evidence"]["source"] == "training split"
    assert f["evidence"]["examples"][0]["where"] == "data/train.jsonl:1"


def test_stop_token_hit_limit_and_loops(build):
    tuned = (
        [heldout(i, hit_token_limit=True) for i in range(4)]
        + [heldout(i, output="ok ok ok ok ok ok ok ok ok ok ok ok ok ok") for i in range(4, 6)]
        + [heldout(i) for i in range(6, 10)]
        + [general(i) for i in range(10)]
        + [ood(i) for i in range(6)]
    )
    f = by_code(diagnose(build(tuned=tuned)))["stop_token"]
    ev = f["evidence"]
    assert f["severity"] == "warning"
    assert ev["tuned_cases"] == 16 and ev["hit_limit"] == 4 and ev["looping"] == 2 and ev["base_runaway"] == 0
    assert ev["max_new_tokens"] == 128 and ev["mean_training_reply_tokens"] == 30
    assert ev["root_causes"] == []  # the mask, template and data are fine here: the generic remedy
    assert "end-of-turn" in f["remedy"]


def test_loops_and_root_causes():
    from tunesmith.diagnose.stop_token import loops, root_causes

    assert loops('{"queue": "billing"}\n{"queue": "billing"}\n{"queue": "billing"}')
    assert loops("and then " * 7)
    assert not loops("I checked your invoice request and routed it to the billing team who will reply soon.")
    causes, fixes = root_causes(
        [{"where": "a:1", "eos_in_loss": False, "eos_ends_turn": True, "end_of_turn": "<|im_end|>"}],
        {"no_end_of_turn": 2},
        40.0,
        16,
    )
    assert [c["code"] for c in causes] == ["mask", "data", "limit"]
    assert fixes[0].startswith("Mask:") and "raise eval.max_new_tokens" in fixes[-1]


def test_loss_nan(build):
    losses = [2.0 - 0.05 * s for s in range(1, 21)]
    losses[14] = math.nan
    result = diagnose(build(metrics=metrics_rows(losses)))
    f = by_code(result)["loss_nan"]
    assert f["severity"] == "error" and f["evidence"]["steps"] == [15] and "lower train.lr" in f["remedy"].lower()
    assert result["loss"]["train"][14] is None and result["loss"]["flags"][0]["code"] == "loss_nan"
    json.dumps(result, allow_nan=False)


def test_loss_spike(build):
    losses = [2.0 - 0.05 * s for s in range(1, 21)]
    losses[11] = 4.0
    f = by_code(diagnose(build(metrics=metrics_rows(losses))))["loss_spike"]
    assert f["severity"] == "warning" and f["evidence"]["steps"] == [12]


def test_loss_spike_is_judged_per_kind_when_general_rows_are_logged_apart():
    """Batches of general rows (train.general_data) sit far above the task's loss; logged apart, they are no
    spike (the mixed loss alone read as one every few steps), nor is a jump of the general rows' own loss (the
    general probe judges forgetting), while a jump of the task's own loss still is."""
    from tunesmith.diagnose.loss import check_loss

    def rows(task_spike: int | None = None) -> list[dict]:
        out = []
        for s in range(1, 51):
            task = 4.0 if s == task_spike else 0.5 * 0.95**s
            row = {"step": s, "loss": task, "loss_task": task, "learning_rate": 1e-3}
            if s % 7 == 0:  # a general batch: the mixed loss jumps with it
                general = 4.5 if s == 42 else 1.8  # (a batch of general rows far off the others': not judged)
                row.update(loss=(task + general) / 2, loss_general=general)
            out.append(row)
        return out

    plain = [{k: v for k, v in r.items() if k in ("step", "loss", "learning_rate")} for r in rows()]
    assert "loss_spike" in {f["code"] for f in check_loss(plain)[1]}  # the mixed loss alone: a false alarm
    curve, findings = check_loss(rows())
    assert "loss_spike" not in {f["code"] for f in findings}
    assert curve["kinds"]["general"][6] == 1.8 and curve["kinds"]["general"][0] is None
    spike = by_code({"findings": check_loss(rows(task_spike=30))[1]})["loss_spike"]
    assert spike["evidence"]["steps"] == [30] and "the task loss jumped to 4.000 at step 30" in spike["title"]
    assert "general" not in spike["title"] and "Lower train.lr" in spike["remedy"]
    # a task jump right after a general batch is named as such, with that remedy
    after = by_code({"findings": check_loss(rows(task_spike=29))[1]})["loss_spike"]
    assert "right after general batches (logged at steps 28)" in after["title"]
    assert after["evidence"]["general_steps_before"] == [28] and "train.spread_general: true" in after["remedy"]


def test_loss_flat(build):
    f = by_code(diagnose(build(metrics=metrics_rows([2.0] * 20))))["loss_flat"]
    assert f["severity"] == "warning" and "adapter" in f["title"] and "raise train.lr" in f["remedy"]


def test_loss_flat_with_zero_gradient_is_an_error():
    from tunesmith.diagnose.loss import check_loss

    rows = [{"step": s, "loss": 2.0, "grad_norm": 0.0, "learning_rate": 2e-4} for s in range(1, 11)]
    _, findings = check_loss(rows)
    assert findings[0]["code"] == "loss_flat" and findings[0]["severity"] == "error"


def test_eval_loss_rising(build):
    f = by_code(diagnose(build(metrics=metrics_rows(evals={5: 1.5, 10: 1.3, 15: 1.5, 20: 1.8}))))["eval_loss_rising"]
    ev = f["evidence"]
    assert f["severity"] == "warning" and ev["best_step"] == 10 and ev["train_falling"]
    assert "fewer epochs" in f["remedy"]


def test_loss_curve_reads_validation_metrics():
    from tunesmith.diagnose.loss import check_loss, loss_curve

    rows = metrics_rows() + [
        {"step": 10, "epoch": 0.5, "val_task_accuracy": 0.4, "val_loss": 0.5},
        {"step": 20, "epoch": 1.0, "val_task_accuracy": 0.6},
        {"step": 20, "epoch": 1.0, "val_loss": 0.45},
    ]
    curve = loss_curve(rows)
    assert curve["val_steps"] == [10, 20]
    assert curve["val"] == {"task_accuracy": [0.4, 0.6], "loss": [0.5, 0.45]}
    assert curve["steps"] == list(range(1, 21)) and curve["eval_steps"] == [10, 20]
    out, _ = check_loss(rows)
    assert out["val_steps"] == [10, 20] and out["val"]["task_accuracy"] == [0.4, 0.6]


def _underfitting(result: dict) -> dict:
    found = by_code(result)
    assert "loss_curve" not in found, "an underfit run must not be called healthy"
    return found["underfitting"]


def test_underfitting_validation_metric_still_improving(build):
    rows = metrics_rows() + [
        {"step": s, "epoch": s / 20, "val_task_accuracy": v} for s, v in ((5, 0.2), (10, 0.35), (15, 0.41), (20, 0.55))
    ]
    f = _underfitting(diagnose(build(metrics=rows)))
    ev = f["evidence"]["validation_still_improving"]
    assert f["severity"] == "warning" and ev["metric"] == "task_accuracy"
    assert (ev["from_step"], ev["from"], ev["last_step"], ev["last"]) == (15, 0.41, 20, 0.55)
    assert "still improving" in f["title"] and "0.410" in f["title"] and "0.550" in f["title"]
    assert "train.epochs" in f["remedy"] and "tunesmith tune PROJECT --budget 30m" in f["remedy"]
    assert "learning rate" in f["remedy"]


def test_underfitting_from_the_selection_curve(build):
    selection = {
        "metric": "task_accuracy",
        "best_step": 40,
        "best_value": 0.5,
        "last_value": 0.5,
        "stopped_early": False,
        "curve": [[10, 0.1], [20, 0.2], [30, 0.3], [40, 0.5]],
    }
    f = _underfitting(diagnose(build(selection=selection)))
    assert f["evidence"]["validation_still_improving"]["last"] == 0.5

    # Stopped early (the metric stopped improving), with the training loss still falling: not underfitting.
    from tunesmith.diagnose.loss import check_loss

    done = {**selection, "stopped_early": True, "curve": [[10, 0.1], [20, 0.5], [30, 0.45], [40, 0.44]]}
    steep = metrics_rows([2.0 - 0.05 * s for s in range(1, 21)])
    assert "underfitting" in {
        f["code"] for f in check_loss(steep, {"selection": {**done, "stopped_early": False, "curve": []}})[1]
    }
    assert [f["code"] for f in check_loss(steep, {"selection": done})[1]] == ["loss_curve"]


def test_a_dip_within_the_validation_sets_noise_is_not_a_turn():
    """The example at `make demo`: 36 validation cases, 7 right at half a pass and 5 at the end, a tuned accuracy
    of 0.26 and a training loss still falling. Two cases of 36 are noise, so the run underfits; the same dip on
    1,000 cases is a turn (overfitting, not underfitting), and so is any dip where the size was not recorded."""
    from tunesmith.diagnose.loss import check_loss

    steep = metrics_rows([2.0 - 0.05 * s for s in range(1, 21)])
    selection = {"metric": "task_accuracy", "stopped_early": False, "curve": [[10, 7 / 36], [20, 5 / 36]]}
    codes = {f["code"] for f in check_loss(steep, {"selection": {**selection, "cases": 36}})[1]}
    assert "underfitting" in codes
    for turned in ({**selection, "cases": 1000}, selection):
        assert "underfitting" not in {f["code"] for f in check_loss(steep, {"selection": turned})[1]}


def test_a_rise_within_the_validation_sets_noise_is_not_still_improving():
    """One more case right of 200 (0.80 -> 0.805) is noise, as a dip of one case is for `peaked_early`: no
    underfitting; a rise of ten cases is one. A run that did not record its validation size counts every rise."""
    from tunesmith.diagnose.loss import check_loss

    selection = {"metric": "task_accuracy", "cases": 200, "stopped_early": False}
    noise = {**selection, "curve": [[100, 0.80], [200, 0.80], [300, 0.805]]}
    clear = {**selection, "curve": [[100, 0.80], [200, 0.80], [300, 0.85]]}
    unsized = {k: v for k, v in noise.items() if k != "cases"}
    assert "underfitting" not in {f["code"] for f in check_loss(metrics_rows(), {"selection": noise})[1]}
    for rising in (clear, unsized):
        assert "underfitting" in {f["code"] for f in check_loss(metrics_rows(), {"selection": rising})[1]}


def test_underfitting_from_two_validations_needs_a_clear_rise(build):
    # one pass validated twice, still rising at the end (the 10,003-query Banking77 run: 0.803 -> 0.881)
    selection = {"metric": "task_accuracy", "best_step": 1162, "stopped_early": False}
    rising = {**selection, "curve": [[581, 0.803], [1162, 0.881]]}
    ev = _underfitting(diagnose(build(selection=rising)))["evidence"]["validation_still_improving"]
    assert (ev["from"], ev["last"], ev["evaluations"]) == (0.803, 0.881, 2)
    from tunesmith.diagnose.loss import check_loss

    flat = {**selection, "curve": [[581, 0.803], [1162, 0.81]]}  # within 5% of the first value: not evidence
    assert "underfitting" in {f["code"] for f in check_loss(metrics_rows(), {"selection": rising})[1]}
    assert "underfitting" not in {f["code"] for f in check_loss(metrics_rows(), {"selection": flat})[1]}


def test_underfitting_training_loss_still_falling_steeply(build):
    losses = [2.0 - 0.05 * s for s in range(1, 21)]  # a straight fall to the very end
    f = _underfitting(diagnose(build(metrics=metrics_rows(losses))))
    ev = f["evidence"]["train_loss_still_falling"]
    assert ev["before"] == pytest.approx(1.275) and ev["last"] == pytest.approx(1.075) and ev["drop"] > 0.10
    assert "still falling steeply" in f["title"] and "1.275 -> 1.075" in f["title"]


def test_a_loss_near_zero_still_halving_is_not_underfitting(build):
    """A memorized training set's loss near zero halves without the model learning more (a Banking77 run: 0.034 ->
    0.019 in its last fifth while validation had peaked): no underfitting by the loss alone."""
    losses = [0.06 - 0.0025 * s for s in range(1, 21)]  # 0.0575 -> 0.01: -45% over the last fifth, 0.02 nats
    assert "underfitting" not in by_code(diagnose(build(metrics=metrics_rows(losses))))


def test_underfitting_low_task_accuracy(build):
    wrong = [
        {**r, "scores": {**r["scores"], "task_correct": r["id"] < "heldout-0002"}}
        for r in (heldout(i) for i in range(10))
    ]
    tuned = wrong + [general(i) for i in range(10)] + [ood(i) for i in range(6)]
    f = _underfitting(diagnose(build(tuned=tuned)))
    assert f["evidence"]["low_task_accuracy"]["tuned_task_accuracy"] == pytest.approx(0.2)
    assert "0.200" in f["title"]


def test_no_underfitting_when_the_validation_metric_peaked_before_the_end(build):
    """Still falling training loss with a validation metric that already turned: overfitting, not underfitting."""
    losses = [2.0 - 0.05 * s for s in range(1, 21)]
    rows = metrics_rows(losses) + [
        {"step": s, "epoch": s / 20, "val_task_accuracy": v} for s, v in ((5, 0.5), (10, 0.7), (15, 0.65), (20, 0.6))
    ]
    found = by_code(diagnose(build(metrics=rows)))
    assert "underfitting" not in found and found["loss_curve"]["severity"] == "ok"


def test_rank_above_16(build):
    f = by_code(diagnose(build(settings={"lora_r": 64})))["lora_rank"]
    assert f["severity"] == "warning" and "rank 8 or 16" in f["remedy"].lower() and "rslora" in f["remedy"]


def test_rank_is_read_from_a_run_of_the_nested_train_layout_too(build):
    from tunesmith.config import TrainConfig

    section = TrainConfig(lora={"r": 64, "rslora": True}).model_dump(mode="json")  # config.yaml of a new run
    f = by_code(diagnose(build(section=section)))["lora_rank"]
    assert f["severity"] == "warning" and f["evidence"]["lora_r"] == 64 and f["evidence"]["rslora"] is True


@pytest.mark.parametrize("mine, severity", [(1.49, "warning"), (1.2, "ok")])
@pytest.mark.parametrize("peer_layout", ["flat", "nested"])
def test_rank_against_a_rank_16_run(build, mine, severity, peer_layout):
    from tunesmith.config import TrainConfig

    project = build(settings={"lora_r": 64}, eval_loss=mine)
    split_key = json.loads(next(runs.runs_root(project).glob("*-split-*/inputs.json")).read_text())["key"]
    peer = {**TRAIN_SETTINGS, "lora_r": 16}  # a run of before train's sub-sections, or of after
    if peer_layout == "nested":
        peer = TrainConfig(method="lora", lora={"r": 16}).model_dump(mode="json")
    make_run(
        project, "train", {"split": split_key, "model": "dir:tiny", "peer": True}, {"train": peer}, {"eval_loss": 1.5}
    )
    result = diagnose(project)
    f = by_code(result)["lora_rank"]
    assert f["severity"] == severity and f["evidence"]["peers"][0]["lora_r"] == 16
    assert any(fl["code"] == "lora_rank" for fl in result["loss"]["flags"]) == (severity == "warning")


def test_rank_is_not_judged_against_a_run_with_another_loss_mask(build):
    """A run that trained on the prompts too (`train.prompt_loss`) has a held-out loss over other tokens: no peer."""
    project = build(settings={"lora_r": 64}, eval_loss=1.49)
    split_key = json.loads(next(runs.runs_root(project).glob("*-split-*/inputs.json")).read_text())["key"]
    peer = {**TRAIN_SETTINGS, "lora_r": 16, "prompt_loss": True}
    make_run(
        project, "train", {"split": split_key, "model": "dir:tiny", "peer": True}, {"train": peer}, {"eval_loss": 1.5}
    )
    assert not by_code(diagnose(project))["lora_rank"]["evidence"].get("peers")


def test_locating_runs(build):
    from tunesmith.errors import TunesmithError

    project = build()
    tuned = next(runs.runs_root(project).glob("*-eval-tuned-*"))
    train = next(runs.runs_root(project).glob("*-train-*"))
    for ref in (tuned.name, str(train)):
        out = diagnose(project, ref)
        assert out["runs"]["train"] == str(train) and out["runs"]["tuned"] == str(tuned)
        assert out["runs"]["base"] and out["runs"]["check"] and out["runs"]["split"]
    split = next(runs.runs_root(project).glob("*-split-*"))
    with pytest.raises(TunesmithError, match="Not a run to diagnose"):
        diagnose(project, split.name)


def test_nothing_to_diagnose(tmp_path):
    from tunesmith.errors import TunesmithError

    (tmp_path / "tunesmith.yaml").write_text("model: {base: x}\n")
    with pytest.raises(TunesmithError, match="Nothing to diagnose"):
        diagnose(tmp_path)


def test_masking_html_escapes_and_marks_loss():
    preview = [
        {
            "where": "a<1>",
            "segments": [{"text": "<user> & hi\n", "loss": False}, {"text": "<b>reply</b>", "loss": True}],
            "tokens": 9,
            "loss_tokens": 3,
        },
        {"where": "b:2", "segments": [], "error": "bad <template>"},
    ]
    out = masking_html(preview)
    assert '<span class="ts-loss">&lt;b&gt;reply&lt;/b&gt;</span>' in out
    assert "&lt;user&gt; &amp; hi" in out and "a&lt;1&gt;" in out and "bad &lt;template&gt;" in out
    assert "<b>" not in out and "<style>" in out and "<style>" not in masking_html(preview, style=False)


def test_print_diagnosis(build):
    from rich.console import Console

    tuned = (
        [heldout(i, hit_token_limit=True) for i in range(10)]
        + [general(i) for i in range(10)]
        + [ood(i) for i in range(6)]
    )
    console = Console(record=True, width=120)
    print_diagnosis(diagnose(build(tuned=tuned)), console)
    text = console.export_text()
    assert "stop_token" in text and "remedy:" in text and "Masking preview" in text and "heldout-0000" in text


def test_cli(build, tmp_path, tiny_model_dir):
    import typer
    from typer.testing import CliRunner

    from tunesmith.cli.report import register

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """tunesmith"""

    register(app)
    project = build()
    html = tmp_path / "mask.html"
    res = CliRunner().invoke(app, ["diagnose", "--project", str(project), "--json", "--html", str(html)])
    assert res.exit_code == 0, res.output
    assert {f["code"] for f in json.loads(res.stdout)["findings"]} >= {"memorization", "forgetting"}
    assert 'class="ts-loss"' in html.read_text()
    losses = [2.0] * 20
    losses[5] = math.nan
    project2 = fake_project(tmp_path / "second", tiny_model_dir, metrics=metrics_rows(losses))
    res = CliRunner().invoke(app, ["diagnose", "--project", str(project2)])
    assert res.exit_code == 1 and "loss_nan" in res.stdout  # an error finding: exit 1


# ---------------------------------------------------------------------------------------------- end to end


def test_end_to_end_tiny_project(tiny_project, tiny_tok):
    from tunesmith.chat import IGNORE, assistant_spans, training_example
    from tunesmith.config import load_config
    from tunesmith.data.formats import load_records
    from tunesmith.diagnose import diagnose_stage
    from tunesmith.pipeline import Pipeline, Stage, run_project

    run_project(tiny_project)
    result = diagnose(tiny_project)
    assert set(result) >= {"runs", "findings", "counts", "masking_preview", "loss"}
    assert all(f["severity"] in ("ok", "info", "warning", "error") for f in result["findings"])
    assert result["loss"]["steps"] == [1, 2, 3] and len(result["loss"]["train"]) == 3
    assert result["loss"]["eval"] and result["loss"]["eval_steps"] == [3]
    # Three steps on a random tiny model: it learned nothing, and the diagnosis says so rather than "healthy".
    under = by_code(result)["underfitting"]
    assert under["evidence"]["low_task_accuracy"]["tuned_task_accuracy"] < 0.5 and "loss_curve" not in by_code(result)
    json.dumps(result, allow_nan=False)

    split = Path(result["runs"]["split"])
    records = {r.where: r for r in load_records([split / "train.jsonl"])}
    assert len(result["masking_preview"]) == 3
    for item in result["masking_preview"]:
        rec = records[item["where"]]
        ex = training_example(tiny_tok, rec.messages, rec.tools, 128)
        text, spans = assistant_spans(tiny_tok, rec.messages, rec.tools)
        loss_text = "".join(s["text"] for s in item["segments"] if s["loss"])
        assert "".join(s["text"] for s in item["segments"]) == text
        assert item["loss_tokens"] == ex.assistant_tokens == sum(lab != IGNORE for lab in ex.labels)
        assert loss_text == tiny_tok.decode([lab for lab in ex.labels if lab != IGNORE])
        assert loss_text == "".join(text[a:b] for a, b in spans) == rec.reply + tiny_tok.eos_token
        assert item["eos_in_loss"] and item["eos_ends_turn"]

    # the same diagnosis as a pipeline stage, cached in its own run directory
    cfg, project = load_config(tiny_project)

    def stage(name: str) -> Stage:
        run_dir = Path(result["runs"][name])
        return Stage(name, json.loads((run_dir / "inputs.json").read_text())["key"], run_dir, cached=True)

    st = diagnose_stage(cfg, Pipeline(project), stage("split"), stage("base"), stage("tuned"), stage("train"))
    assert (st.run_dir / "COMPLETED").exists() and st.name == "diagnose"
    assert [f["code"] for f in runs.read_result(st.run_dir)["findings"]] == [f["code"] for f in result["findings"]]


def test_a_diverged_run_without_evaluations(tmp_path, tiny_model_dir):
    """An interrupted train run (no COMPLETED, no evaluations) still gets its loss curve diagnosed."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "tunesmith.yaml").write_text(f'model: {{base: "{tiny_model_dir}"}}\n')
    split = make_run(project, "split", {"check": "none"}, files={"train.jsonl": jsonl(train_rows())})
    losses = [2.0, 1.9, math.inf, math.nan]
    make_run(
        project,
        "train",
        {"split": key_of(split)},
        {"train": TRAIN_SETTINGS},
        files={"metrics.jsonl": jsonl(metrics_rows(losses, {})) + '{"step": 5, "lo'},
        complete=False,
    )
    result = diagnose(project)
    found = by_code(result)
    assert found["loss_nan"]["severity"] == "error" and found["loss_nan"]["evidence"]["steps"] == [3, 4]
    assert found["forgetting"]["title"].startswith("Forgetting not measured")
    assert found["stop_token"]["severity"] == "info" and "not measured" in found["stop_token"]["title"]
    assert found["no_evaluation"]["severity"] == "warning" and found["no_evaluation"]["evidence"]["missing"] == [
        "base",
        "tuned",
    ]
    assert result["runs"]["tuned"] is None and len(result["masking_preview"]) == 3


def test_masking_preview_shows_the_prompt_loss_a_run_trained_with(tiny_tok):
    """A run with `train.prompt_loss` trained on the user's words too: the preview marks them, and counts them."""
    from tunesmith.diagnose.masking import preview_example

    msgs = [
        {"role": "system", "content": "Route."},
        {"role": "user", "content": "hi there"},
        {"role": "assistant", "content": "ok"},
    ]
    plain = preview_example(tiny_tok, msgs, None, 128)
    both = preview_example(tiny_tok, msgs, None, 128, prompt_loss=True)
    assert [s["text"] for s in plain["segments"] if s["loss"]] == ["ok<|im_end|>"]
    assert [s["text"] for s in both["segments"] if s["loss"]] == ["hi there", "ok<|im_end|>"]
    assert both["loss_tokens"] > plain["loss_tokens"] and both["tokens"] == plain["tokens"]
