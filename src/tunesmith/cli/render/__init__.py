"""All of the command line's terminal output (rich), one module per concern; domain modules return data and the
commands in `tunesmith.cli` print it with these. Rich is imported inside the functions, so importing this
package costs nothing at `tunesmith --help`.

    print_report(report, console())                        # data check
    print_summary(summary, console())                      # tunesmith run
"""

from __future__ import annotations

from tunesmith.cli.render.data import check_progress, print_report, print_stats
from tunesmith.cli.render.diagnose import print_diagnosis
from tunesmith.cli.render.eval import (
    metrics_table,
    print_comparison,
    print_comparisons,
    print_eval_run,
    print_gates,
    print_parity,
    print_preference,
    print_summary,
    print_verdict,
    score_table,
    trials_table,
)
from tunesmith.cli.render.migrate import mapping_table, print_import
from tunesmith.cli.render.plan import print_advice, print_cost, print_success_cost
from tunesmith.cli.render.runs import (
    export_table,
    invariants_table,
    mix_line,
    print_allocator,
    print_error,
    print_recipe,
    print_review_summary,
    print_run,
    print_synth,
    print_warning,
    runs_table,
    train_line,
)

WIDTH = 120  # piped or logged: wide enough for the comparison table, not 80 columns

__all__ = [
    "console",
    "check_progress",
    "print_report",
    "print_stats",
    "print_diagnosis",
    "metrics_table",
    "print_comparison",
    "print_comparisons",
    "print_eval_run",
    "print_gates",
    "print_parity",
    "print_preference",
    "print_summary",
    "print_verdict",
    "score_table",
    "trials_table",
    "mapping_table",
    "print_import",
    "print_advice",
    "print_cost",
    "print_success_cost",
    "export_table",
    "invariants_table",
    "mix_line",
    "print_error",
    "print_warning",
    "print_allocator",
    "print_recipe",
    "print_review_summary",
    "print_run",
    "print_synth",
    "runs_table",
    "train_line",
]


def console(stderr: bool = False, highlight: bool = True, wide: bool = True):
    """A rich console; when not a terminal (piped, logged, tests), `WIDTH` columns wide unless `wide` is off."""
    from rich.console import Console

    con = Console(stderr=stderr, highlight=highlight)
    if wide and not con.is_terminal:
        con.width = WIDTH
    return con
