"""What the commands set up around `synthesize`: the project a data command belongs to, the teacher backend
(`data distill` and `data synth`), and the config, schema and cache of `data synth`."""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import Problem, TunesmithError


def project_of(paths: list[Path], project: Path | None = None) -> Path | None:
    """The project a data command belongs to: `project`, else `paths` when it is one project directory."""
    return project or (paths[0] if len(paths) == 1 and (Path(paths[0]) / "tunesmith.yaml").exists() else None)


def operator_mix(text: str) -> str | dict[str, float]:
    """The `--operators` of `data synth` as `synthesize` takes them: weighted ("paraphrase=3,refuse=1") as
    {name: weight}, else the comma-separated names as they are."""
    weights = {k.strip(): float(v) for k, v in (o.split("=", 1) for o in text.split(",") if "=" in o)}
    return weights or text


def teacher_backend(
    paths: list[Path],
    project: Path | None = None,
    teacher: str | None = None,
    adapter: Path | None = None,
    endpoint: str | None = None,
    endpoint_model: str | None = None,
    api_key_env: str | None = None,
    concurrency: int = 4,
    prices: tuple[float | None, float | None] = (None, None),
):
    """The teacher of `data distill` and `data synth`: an OpenAI-compatible endpoint, or a local model (default:
    the project's base model, `project_of(paths, project)`)."""
    from tunesmith.config import load_config
    from tunesmith.generate import backends
    from tunesmith.models import resolve_model

    if endpoint:
        if not endpoint_model:
            raise TunesmithError(
                "Missing endpoint model",
                [Problem("--endpoint-model", "required with --endpoint", "the model name the server serves")],
            )
        return backends.EndpointBackend(
            endpoint,
            endpoint_model,
            api_key_env,
            concurrency=concurrency,
            input_usd_per_mtok=prices[0],
            output_usd_per_mtok=prices[1],
        )
    home = project_of(paths, project)
    ref = teacher or (load_config(home)[0].model.base if home else "builtin:smollm2-135m-instruct")
    return backends.TransformersBackend(resolve_model(ref), adapter=adapter)


def synth_setup(paths: list[Path], project: Path | None = None):
    """(config, JSON Schema, generation cache file) of `data synth`: the project's (`project_of(paths, project)`),
    else tunesmith's defaults, no schema and the user-wide cache."""
    from tunesmith.config import Config, load_config
    from tunesmith.data.project import load_schema
    from tunesmith.models import cache_home

    home = project_of(paths, project)
    cfg = load_config(home)[0] if home else Config()
    schema = load_schema(cfg, home) if home else None
    cache_dir = (home / ".tunesmith" / "cache") if home else cache_home() / "cache"
    return cfg, schema, cache_dir / "generations.sqlite"
