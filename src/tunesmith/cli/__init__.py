"""The `tunesmith` command: one Typer app, one module per verb group, every command a thin shell over an API
function (parse the options, call it, render with `tunesmith.cli.render`, map errors to exit codes). Heavy
imports live inside the commands so `tunesmith --help` starts instantly.

    tunesmith init my-project
    tunesmith run my-project --set train.epochs=2

Modules: `run` (run, tune, train), `project` (init, config, runs, model), `migrate` (import ...), `data`
(data ...), `eval` (eval ...), `review` (review ...), `ship` (export, serve), `plan` (cost, advise), `report`
(report, diagnose).
"""

from __future__ import annotations

import sys

import typer

from tunesmith.cli import plan, project, report, run, ship
from tunesmith.cli.data import data_app
from tunesmith.cli.eval import eval_app
from tunesmith.cli.migrate import import_app
from tunesmith.cli.review import review_app

app = typer.Typer(
    help="Fine-tune open LLMs the careful way: check the data, write the eval first, train, and "
    "ship only a model that beats its base.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for _module in (report, plan, run, ship, project):  # the order `tunesmith --help` lists them in
    _module.register(app)
app.add_typer(project.config_app, name="config")
app.add_typer(import_app, name="import")
app.add_typer(data_app, name="data")
app.add_typer(project.runs_app, name="runs")
app.add_typer(project.model_app, name="model")
app.add_typer(eval_app, name="eval")
app.add_typer(review_app, name="review")

__all__ = ["app", "main", "show_warnings"]

# Run under jemalloc: training kept its speed under it (1.20x over 300 steps) where glibc's malloc slowed step
# after step; generation alone did not gain (few-shot eval prompts ran 1.7x slower), so the other verbs keep malloc.
TRAINING_VERBS = ("run", "train", "tune")


def main() -> None:
    """Console entry point: user errors become a short message and exit code 2, never a traceback. The verbs that
    train first start themselves again under jemalloc where the system has it (`tunesmith.allocator`)."""
    from tunesmith.allocator import restart_under_jemalloc

    if sys.argv[1:2] and sys.argv[1] in TRAINING_VERBS:
        restart_under_jemalloc()
    import warnings

    from tunesmith.errors import TunesmithError

    # Library deprecation notices are for tunesmith's developers (the tests show them), not its users.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import logging

    # bitsandbytes announces an optional CPU kernel package it did not find on every import; it works without it.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    show_warnings()
    try:
        app()
    except TunesmithError as err:
        _user_error(err)
    except OSError as exc:  # a missing file, a directory where a file goes, no permission: not a bug
        from tunesmith.files import os_error

        _user_error(os_error(exc))
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit as exc:
        # Typer turns Ctrl-C into exit 130 without a word (a verb that says how to resume raises its own Exit(130))
        if exc.code == 130 and isinstance(getattr(exc.__context__, "__cause__", None), KeyboardInterrupt):
            _interrupted()
        raise
    except Exception as exc:
        _internal_error(exc)


def _user_error(err) -> None:
    from tunesmith.cli.render import console, print_error

    print_error(err, console(stderr=True, wide=False))
    sys.exit(2)


def _interrupted() -> None:
    print("interrupted; completed stages are kept and the next run resumes", file=sys.stderr)
    sys.exit(130)


def show_warnings() -> None:
    """Print tunesmith's own warnings (`TunesmithWarning`, such as a config key that moved) like its errors, in
    yellow on stderr (each text once, as Python shows a warning); other warnings as Python prints them."""
    import warnings

    from tunesmith.errors import TunesmithWarning

    python_shows = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if not isinstance(message, TunesmithWarning):
            python_shows(message, category, filename, lineno, file, line)
            return
        from tunesmith.cli.render import console, print_warning

        print_warning(message.problem, console(stderr=True, wide=False))

    warnings.showwarning = show


def _internal_error(exc: Exception) -> None:
    """A bug in tunesmith or a library: one line, the full traceback on disk (or raised with TUNESMITH_DEBUG)."""
    import os
    import traceback

    if os.environ.get("TUNESMITH_DEBUG"):
        raise exc
    from tunesmith.models import cache_home

    log = cache_home() / "last-error.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(traceback.format_exc())
    print(
        f"internal error: {type(exc).__name__}: {exc}\n  the full traceback is in {log} "
        "(set TUNESMITH_DEBUG=1 to print it); please report it",
        file=sys.stderr,
    )
    sys.exit(3)
