"""Stage 5, the named baselines: one `baseline-<name>` stage per endpoint or recorded-replies entry of
`eval.baselines`, on the held-out cases the base and tuned models answer, with the same decoding.

    stages = named_baseline_stages(cfg, pipe, plan, model_ref, schema)   # {"hosted": Stage, ...}
    stages["hosted"].result["cost"]   # its tokens x its prices / successes (`tunesmith.cost.token_cost`)

An endpoint's replies go through the generation cache like any model's (a re-run does not call the API again);
recorded replies are scored as `tunesmith eval score` scores them, and the cases without one are listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape

from tunesmith.config import Config, EndpointBaseline, RecordedBaseline
from tunesmith.files import atomic_write_jsonl, file_sha256
from tunesmith.pipeline.evaluation import EvalPlan, baseline_section
from tunesmith.pipeline.machinery import Pipeline, Stage, console

SHOWN = 10  # missing case ids named in a warning before "… and N more"


def named_baseline_stages(
    cfg: Config, pipe: Pipeline, plan: EvalPlan, model_ref, schema: dict | None
) -> dict[str, Stage]:
    """One stage per named baseline, keyed by its name; a recorded file's content is part of its stage key."""
    from tunesmith.eval.named_baselines import named_baselines, responses_path

    out = {}
    for entry in named_baselines(cfg):

        def work(run_dir: Path, entry=entry) -> dict[str, Any]:
            return run_named_baseline(entry, cfg, pipe.project, plan, model_ref, schema, run_dir)

        inputs = {**plan.inputs, "baseline": entry.model_dump(mode="json", exclude={"concurrency", "max_retries"})}
        if isinstance(entry, RecordedBaseline):
            inputs["responses_sha256"] = file_sha256(responses_path(entry, pipe.project))
        out[entry.name] = pipe.stage(f"baseline-{entry.name}", baseline_section(cfg), inputs, work)
    return out


def run_named_baseline(
    entry: EndpointBaseline | RecordedBaseline,
    cfg: Config,
    project: Path,
    plan: EvalPlan,
    model_ref,
    schema: dict | None,
    run_dir: Path,
) -> dict[str, Any]:
    """The stage's work: the endpoint asked (or the recorded replies scored), results.jsonl written, the cost
    per successful task from its tokens and prices."""
    from tunesmith.cost import token_cost
    from tunesmith.eval.named_baselines import label, prices

    cases = plan.suites["heldout"]
    if isinstance(entry, EndpointBaseline):
        rows, metrics, facts = _ask_endpoint(entry, cfg, plan, schema, run_dir)
    else:
        rows, metrics, facts = _score_recorded(entry, cfg, project, plan, schema, run_dir)
    count = _lazy_counter(model_ref, cases) if None not in prices(entry) else None
    return {
        "model": entry.name,
        "label": label(entry),
        **facts,
        "metrics": metrics,
        "cost": token_cost(rows, *prices(entry), count=count),
    }


def _ask_endpoint(entry: EndpointBaseline, cfg: Config, plan: EvalPlan, schema: dict | None, run_dir: Path):
    """(rows, metrics, facts) of the endpoint on the held-out cases, with the suite's decoding."""
    from tunesmith.data.io import read_jsonl
    from tunesmith.eval.evaluate import evaluate
    from tunesmith.eval.named_baselines import endpoint_backend

    suites = {"heldout": plan.suites["heldout"]}
    metrics = evaluate(
        endpoint_backend(entry), suites, cfg, run_dir, schema, entry.name, plan.cache, plan.limits, plan.decodings
    )
    rows = [o for _, o in read_jsonl(run_dir / "results.jsonl")]
    return rows, metrics, {"kind": "endpoint", "endpoint": entry.base_url, "served_model": entry.model}


def _score_recorded(
    entry: RecordedBaseline, cfg: Config, project: Path, plan: EvalPlan, schema: dict | None, run_dir: Path
):
    """(rows, metrics, facts) of the recorded replies on the held-out cases; the cases without one, and the
    replies that match no case at all (not even a training or validation one), are warned about."""
    from tunesmith.eval.named_baselines import score_recorded

    cases = plan.suites["heldout"]
    rec = score_recorded(entry, project, cases, cfg, schema, lambda: _split_aside(plan, cfg))  # read if needed
    atomic_write_jsonl(run_dir / "results.jsonl", rec.rows)
    if rec.missing:
        more = f" … and {len(rec.missing) - SHOWN} more" if len(rec.missing) > SHOWN else ""
        console.print(
            f"[yellow]warning:[/yellow] {entry.name}: {len(rec.missing)} of {len(cases)} held-out case(s) have no "
            f"recorded reply in {escape(entry.responses)}, left out of its comparison: "
            f"{escape(', '.join(rec.missing[:SHOWN]))}{more}"
        )
    if rec.unmatched:
        console.print(
            f"[yellow]warning:[/yellow] {entry.name}: {len(rec.unmatched)} recorded repl(ies) match no held-out "
            f"case (left out), e.g. {escape(rec.unmatched[0].where)}"
        )
    return rec.rows, rec.metrics, {"kind": "recorded", "responses": entry.responses, **rec.facts()}


def _split_aside(plan: EvalPlan, cfg: Config) -> list:
    """The split's training and validation records as cases (what recorded replies may also answer)."""
    from tunesmith.data.project import read_records, validation_records
    from tunesmith.eval.suite import cases_from_records

    if plan.split_dir is None:
        return []
    aside = read_records(plan.split_dir / "train.jsonl") + validation_records(plan.split_dir)
    return cases_from_records(aside, cfg.task, "aside")


def _lazy_counter(model_ref, cases: list):
    """`tunesmith.cost.token_counter` with the base model's tokenizer, loaded only when a row needs counting."""
    from tunesmith.cost import token_counter
    from tunesmith.models import load_tokenizer

    loaded: list = []

    def count(row: dict) -> tuple[int, int]:
        if not loaded:
            loaded.append(token_counter(load_tokenizer(model_ref), cases))
        return loaded[0](row)

    return count
