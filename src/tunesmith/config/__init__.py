"""`tunesmith.yaml` as pydantic models; every field is documented once, in the module of its section.

    cfg, project = load_config("examples/support-triage", overrides=["train.lr=1e-4"])

A bad config raises one `TunesmithError` that lists every problem with its YAML path.
`tunesmith config schema` prints the JSON Schema of `Config` so editors can autocomplete the YAML.

One module per concern: `section.py` (the base of every section), `task.py` (`model:`, `task:`), `data.py`
(`data:` and its column mapping), `eval.py` (`eval:`: suites, baselines, gates, the judge's endpoint), `train.py`
(`train:` and its sub-sections `lora:`, `dpo:`, `grpo:`), `moved.py` (the flat train keys of before the
sub-sections, still read with a warning), `tune.py` (`tune:` and `SEARCH_PARAMS`), `export.py` (`export:`),
`budget.py` (`budget:`), `root.py` (`Config`, the whole file, and its JSON Schema), `problems.py` (validation
errors as problems with YAML paths), `metrics.py` (the metric names a gate or `train.select_metric` may name),
`overrides.py` (`--set` overrides and typed updates), `loading.py` (`load_config`: duplicate keys refused, each
problem named by the file or the `--set` override it came from).
"""

from tunesmith.config.budget import BudgetConfig
from tunesmith.config.data import ColumnsConfig, DataConfig
from tunesmith.config.eval import (
    EndpointBaseline,
    EndpointConfig,
    EvalConfig,
    GateConfig,
    RecordedBaseline,
    SuiteConfig,
    baseline_names,
)
from tunesmith.config.export import ExportConfig
from tunesmith.config.loading import CONFIG_NAME, load_config, recipe_sources
from tunesmith.config.moved import flat_train, nest_moved
from tunesmith.config.overrides import apply_overrides, apply_updates, update_overrides
from tunesmith.config.root import Config, config_schema
from tunesmith.config.section import Section
from tunesmith.config.task import ModelConfig, TaskConfig
from tunesmith.config.train import DpoOptions, GrpoOptions, LoraOptions, TrainConfig
from tunesmith.config.tune import SEARCH_PARAMS, TuneConfig

__all__ = [
    "CONFIG_NAME",
    "SEARCH_PARAMS",
    "BudgetConfig",
    "ColumnsConfig",
    "Config",
    "DataConfig",
    "DpoOptions",
    "EndpointBaseline",
    "EndpointConfig",
    "EvalConfig",
    "ExportConfig",
    "GateConfig",
    "GrpoOptions",
    "LoraOptions",
    "ModelConfig",
    "RecordedBaseline",
    "Section",
    "SuiteConfig",
    "TaskConfig",
    "TrainConfig",
    "TuneConfig",
    "apply_overrides",
    "apply_updates",
    "baseline_names",
    "config_schema",
    "flat_train",
    "load_config",
    "nest_moved",
    "recipe_sources",
    "update_overrides",
]
