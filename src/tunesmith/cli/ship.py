"""Shipping a trained model: `tunesmith export` and `tunesmith serve`.

tunesmith export train-1a2b --project my-project --format gguf --gguf-type q8_0
tunesmith export train-1a2b --project my-project --push-to-hub my-org/support-router --private   # HF_TOKEN
tunesmith serve train-1a2b --project my-project --port 8000
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from tunesmith.cli.options import SET_HELP, console


def register(app: typer.Typer) -> None:
    """Add `export` and `serve` to the main app."""
    app.command("export")(export)
    app.command("serve")(serve)


def export(
    run: str = typer.Argument(..., help="A finished train run: its name (or a unique part) or path."),
    project: Path = typer.Option(Path("."), help="Project directory (found from RUN when RUN is a run's path)."),
    format_: list[str] = typer.Option(
        [],
        "--format",
        help="adapter, merged, gguf, ollama (repeatable; default: export.formats, else all the run can give).",
    ),
    gguf_type: list[str] = typer.Option(
        [], "--gguf-type", help="f16, q8_0, q4_0 (repeatable; default: export.gguf_types)."
    ),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    push_to_hub: str | None = typer.Option(
        None,
        "--push-to-hub",
        metavar="ORG/NAME",
        help="Upload the export to this Hugging Face Hub model repo (token: HF_TOKEN; endpoint: HF_ENDPOINT).",
    ),
    private: bool = typer.Option(False, "--private", help="With --push-to-hub: create the repo private."),
) -> None:
    """Export a trained run into <run>/export/: adapter, merged safetensors, GGUF, Ollama Modelfile, each with a
    model card (README.md); optionally pushed to the Hugging Face Hub."""
    from tunesmith.cli.render import export_table
    from tunesmith.pipeline import export_run

    manifest = export_run(project, run, format_ or None, gguf_type or None, list(set_), push_to_hub, private)
    console().print(export_table(manifest))


def serve(
    model: str = typer.Argument(
        ...,
        help="A finished train run of --project (name, unique part or path), "
        "an export directory, a .gguf file, or any model reference.",
    ),
    project: Path = typer.Option(
        Path("."), help="Project directory (to find a train run by name; found from MODEL when it is a run's path)."
    ),
    adapter: Path | None = typer.Option(None, help="A PEFT adapter applied on top of MODEL."),
    name: str | None = typer.Option(None, help="The model id clients send (default: from MODEL)."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port."),
    api_key_env: str | None = typer.Option(
        None, help="Environment variable holding the API key clients must send as a Bearer token."
    ),
    max_context: int | None = typer.Option(None, min=1, help="Context length (default: the model's)."),
    precision: Literal["auto", "bf16", "fp32"] = typer.Option(
        "auto", help="auto (bf16 where supported), bf16 or fp32."
    ),
) -> None:
    """Serve a model (a trained run, an export, a base with an adapter) as an OpenAI-compatible API:
    /v1/chat/completions (streaming too), /v1/models, /health."""
    import os

    from tunesmith.errors import Problem, TunesmithError
    from tunesmith.models import check_adapter_dir
    from tunesmith.pipeline import serve_target
    from tunesmith.serve import ServedModel
    from tunesmith.serve import serve as run_server

    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise TunesmithError(
                "No API key",
                [
                    Problem(
                        f"--api-key-env {api_key_env}",
                        "that variable is not set",
                        f"export {api_key_env}=<a secret>, or drop the option",
                    )
                ],
            )
    if adapter is not None:
        check_adapter_dir(adapter)  # before the model is loaded
    ref, run_adapter, default_name = serve_target(project, model)
    served = ServedModel(
        ref, adapter or run_adapter, name=name or default_name, max_context=max_context, precision=precision
    )
    run_server(served, host=host, port=port, api_key=api_key)
