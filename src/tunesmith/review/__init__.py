"""Human review in a local web app: score a sample of a synthetic set, judge two models blind, A against B.

    from tunesmith.review import start_sample_review, run_review, mix
    start_sample_review("data/synth.jsonl", "review/synth", fraction=0.1, seed=0)
    run_review("review/synth")   # prints http://127.0.0.1:8765/?token=...: k keep, r reject, 1-5 score, e edit
    mix(["data/train.jsonl"], "data/synth.jsonl", "review/synth", "data/mixed.jsonl", max_share=0.5)

    start_preference_review("runs/…-eval-base", "runs/…-eval-tuned", "review/ab", names=("base", "tuned"))
    run_review("review/ab")      # a left better, b right better, t tie
    preference_summary("review/ab")   # also in review/ab/preference.json, shaped like the LLM judge's result

Modules: `state` (the review directory: state file, journal, versioned decisions), `sample` (drawing the sample,
the pass-rate estimate with its Wilson interval), `mix` (filtering the set by the review and mixing it with real
records: the rules are in its docstring), `preference` (pairing eval results, the win rate), `app` (the FastAPI
app, its server and `run_review`), `pages` (the HTML and the script).
"""

from tunesmith.review.app import ReviewServer, create_review_app, run_review
from tunesmith.review.mix import mix, synthetic_cap
from tunesmith.review.preference import preference_summary, start_preference_review
from tunesmith.review.sample import sample_summary, start_sample_review, wilson_interval
from tunesmith.review.state import ReviewStore, load_state

__all__ = [
    "ReviewServer",
    "ReviewStore",
    "create_review_app",
    "load_state",
    "mix",
    "preference_summary",
    "run_review",
    "sample_summary",
    "start_preference_review",
    "start_sample_review",
    "synthetic_cap",
    "wilson_interval",
]
