"""`tunesmith review ...`: start a sample or A/B review, serve it, summarize it, mix the reviewed set into training."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tunesmith.cli.options import console

review_app = typer.Typer(
    help="Human review in a local web app: score a sample of a synthetic set, or judge two "
    "models blind; then mix the reviewed set into training.",
    no_args_is_help=True,
)


def _print_summary(summary: dict) -> None:
    from tunesmith.cli.render import print_review_summary

    print_review_summary(summary, console(highlight=False, wide=False))


def _serve_or_not(review_dir: Path, serve: bool, host: str, port: int, open_browser: bool) -> None:
    from tunesmith.review import run_review

    if serve:
        run_review(review_dir, host=host, port=port, open_browser=open_browser)


SERVE = typer.Option(True, "--serve/--no-serve", help="Serve the review right away.")
HOST = typer.Option("127.0.0.1", help="Interface to bind (loopback by default).")
PORT = typer.Option(8765, help="Port (0 picks a free one).")
OPEN = typer.Option(False, "--open", help="Open the page in a browser.")


@review_app.command("sample")
def review_sample(
    synth: Path = typer.Argument(..., help="The synthetic set (JSONL) to sample."),
    review_dir: Path = typer.Option(..., help="Where the review's state and journal live."),
    fraction: float = typer.Option(0.1, help="Share of the set to score (0.05-0.10 is usual)."),
    seed: int = typer.Option(0, help="Seed of the sample."),
    min_score: int = typer.Option(3, help="A scored item passes at this score or above."),
    threshold: float = typer.Option(0.7, help="The set is accepted when the pass rate's lower bound reaches this."),
    serve: bool = SERVE,
    host: str = HOST,
    port: int = PORT,
    open_browser: bool = OPEN,
) -> None:
    """Draw (or resume) a seeded sample of a synthetic set and score it in the browser: k keep, r reject, 1-5
    score, e edit, arrows to move."""
    from tunesmith.review import start_sample_review

    _print_summary(start_sample_review(synth, review_dir, fraction, seed, min_score, threshold))
    _serve_or_not(review_dir, serve, host, port, open_browser)


@review_app.command("ab")
def review_ab(
    results_a: Path = typer.Argument(..., help="Evaluation A (the baseline): run dir or results.jsonl."),
    results_b: Path = typer.Argument(..., help="Evaluation B (the candidate)."),
    review_dir: Path = typer.Option(..., help="Where the review's state and journal live."),
    names: str | None = typer.Option(None, help="Names for A and B in the result: base,tuned."),
    suite: str = typer.Option("heldout", help="Which suite's cases to compare."),
    limit: int | None = typer.Option(None, help="Only the first N cases."),
    seed: int = typer.Option(0, help="Seed of the left/right order."),
    serve: bool = SERVE,
    host: str = HOST,
    port: int = PORT,
    open_browser: bool = OPEN,
) -> None:
    """Blind A/B preference on the same prompts: two replies side by side in random order, no model names;
    a left better, b right better, t tie. The win rate goes to preference.json (`eval compare
    --human-preference`)."""
    from tunesmith.review import start_preference_review

    pair = tuple(n.strip() for n in names.split(",")) if names else None
    _print_summary(start_preference_review(results_a, results_b, review_dir, seed, pair, suite, limit))
    _serve_or_not(review_dir, serve, host, port, open_browser)


@review_app.command("serve")
def review_serve(
    review_dir: Path = typer.Argument(..., help="A review directory."),
    host: str = HOST,
    port: int = PORT,
    open_browser: bool = OPEN,
) -> None:
    """Serve an existing review again; it continues at the first undecided item."""
    _serve_or_not(review_dir, True, host, port, open_browser)


@review_app.command("summary")
def review_summary(
    review_dir: Path = typer.Argument(..., help="A review directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """The sample's estimated pass rate with its interval, or the A/B win rate with its interval."""
    from tunesmith.review import load_state, preference_summary, sample_summary

    state, _ = load_state(review_dir)
    summary = sample_summary(review_dir) if state.kind == "sample" else preference_summary(review_dir)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)


@review_app.command("mix")
def review_mix(
    real: list[Path] = typer.Option(..., help="Real training data (repeatable); all of it is kept."),
    review_dir: Path = typer.Option(..., help="The finished sample review of the synthetic set."),
    out: Path = typer.Option(..., help="The training file to write."),
    synth: Path | None = typer.Option(None, help="The synthetic set (default: the one reviewed)."),
    max_synthetic_share: float = typer.Option(0.5, help="Cap on the synthetic share of the file."),
    seed: int = typer.Option(0, help="Seed of which synthetic records fill the cap."),
    min_score: int | None = typer.Option(None, help="Override the review's passing score."),
    threshold: float | None = typer.Option(None, help="Override the review's acceptance bar."),
    accept: bool = typer.Option(False, "--accept", help="Mix even though the set missed the bar."),
) -> None:
    """Filter the synthetic set by the review (failed sample items dropped, edits applied) and mix it with every
    real record, the synthetic share capped."""
    from tunesmith.cli.render import mix_line
    from tunesmith.review import mix

    s = mix(real, synth, review_dir, out, max_synthetic_share, seed, min_score, threshold, accept)
    console(highlight=False, wide=False).print(mix_line(s))
