"""`tunesmith run`: check -> split -> eval base -> train -> eval tuned -> compare (-> export).

    summary = run_project("examples/support-triage", overrides=["train.epochs=2"])

Each stage's result is cached in a run directory under a key = hash(stage, its config section, the keys or
content hashes of its inputs). A re-run skips completed stages with unchanged keys and resumes an interrupted one
(training restarts from its newest checkpoint).

Where things live: `machinery` (Stage, Pipeline: caching and resume), `preparation` (check and split, `prepare`),
`training` (train, general-self, the recipe search), `evaluation` (the eval plan, base / tuned / baselines,
compare, `evaluate_model`), `named_baselines` (an endpoint's or recorded replies' baseline stage), `shipping`
(export, parity, `export_run`, `serve_target`), `publishing` (the model card's facts from the registry, the push
to the Hugging Face Hub), `summary` (the run's summary, saved, reported and printed), `commands` (`run_project`,
`train_project`, `tune_project`, `project_tokens`). A project's data files and general-data mix are
`tunesmith.data.project`'s.
"""

from tunesmith.data.project import check_options, data_files, general_files, mix_general, stratify_field
from tunesmith.pipeline.commands import project_tokens, run_project, train_project, tune_project
from tunesmith.pipeline.evaluation import (
    EvalPlan,
    baseline_backend,
    baseline_stages,
    compare_stage,
    eval_plan,
    evaluate_model,
    suite_hashes,
)
from tunesmith.pipeline.machinery import Pipeline, Stage
from tunesmith.pipeline.named_baselines import named_baseline_stages
from tunesmith.pipeline.preparation import Prepared, data_stages, prepare
from tunesmith.pipeline.publishing import card_facts, newest_comparison, newest_parity, push_export
from tunesmith.pipeline.shipping import (
    export_run,
    export_stage,
    exported_models,
    parity_stage,
    serve_target,
    shipped_system_prompt,
    split_constraint,
)
from tunesmith.pipeline.summary import build_summary, write_report
from tunesmith.pipeline.training import (
    probe_scorer,
    search_stage,
    search_train_stage,
    self_general_stage,
    split_validation_plan,
    train_settings,
    train_stage,
    trained_model,
)
from tunesmith.runs import load_summary

__all__ = [
    "EvalPlan",
    "Pipeline",
    "Prepared",
    "Stage",
    "baseline_backend",
    "baseline_stages",
    "build_summary",
    "card_facts",
    "check_options",
    "compare_stage",
    "data_files",
    "data_stages",
    "eval_plan",
    "evaluate_model",
    "named_baseline_stages",
    "export_run",
    "export_stage",
    "exported_models",
    "general_files",
    "load_summary",
    "mix_general",
    "newest_comparison",
    "newest_parity",
    "parity_stage",
    "prepare",
    "push_export",
    "probe_scorer",
    "project_tokens",
    "run_project",
    "search_stage",
    "search_train_stage",
    "self_general_stage",
    "serve_target",
    "shipped_system_prompt",
    "split_constraint",
    "split_validation_plan",
    "stratify_field",
    "suite_hashes",
    "train_project",
    "train_settings",
    "train_stage",
    "trained_model",
    "tune_project",
    "write_report",
]
