"""Blind A/B preference by a person: two models' outputs for the same held-out prompts, side by side.

    start_preference_review("runs/…-eval-base", "runs/…-eval-tuned", "review/ab", seed=0, names=("base", "tuned"))
    ...                                           # judge it in the app: tunesmith review review/ab
    preference_summary("review/ab")               # {"wins": 12, "losses": 5, "ties": 3, "win_rate": 0.675, ...}

The inputs are two eval runs' `results.jsonl` (or their run directories); rows pair by (`suite`, `id`), only
where both have an output, by default only the held-out suite. Each pair is shown in a random order of its own
(seeded by the review's seed and the case, so it is the same after a restart) and never with model names.

The result has the shape of the LLM judge's (`tunesmith.eval.judge`): B's wins, losses and ties against A; a win
rate counting a tie as half, with a bootstrap interval over cases; a verdict (better / worse / no significant
difference). The app writes it to `preference.json` in the review directory after every decision, where
`eval compare` and the report can read it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from tunesmith.data.io import read_jsonl
from tunesmith.errors import Problem, TunesmithError
from tunesmith.files import atomic_write_json
from tunesmith.review.state import (
    PreferenceItem,
    PreferenceSource,
    PreferenceState,
    load_review,
    load_state,
    now,
    save_state,
    state_path,
)

PREFERENCE_FILE = "preference.json"


def results_file(path: str | Path) -> Path:
    """An eval run directory or its results.jsonl -> the results.jsonl."""
    path = Path(path)
    return path / "results.jsonl" if path.is_dir() else path


def _name_of(path: Path) -> str:
    return path.parent.name if path.name == "results.jsonl" else path.stem


def _rows(path: Path) -> dict[tuple[str, str], dict]:
    """Result rows by (suite, id); a row without them is an error naming its line."""
    rows, problems = {}, []
    for line, row in read_jsonl(path):
        if not isinstance(row.get("suite"), str) or row.get("id") is None:
            problems.append(
                Problem(f"{path}:{line}", "a result row needs `suite` and `id`", "give an eval run's results.jsonl")
            )
            continue
        rows[(row["suite"], str(row["id"]))] = row
    if problems:
        raise TunesmithError.capped(f"{len(problems)} result row(s) cannot be paired", problems)
    return rows


def pair_results(a: Path, b: Path, suite: str | None = "heldout") -> list[tuple[dict, dict]]:
    """(row of A, row of B) for each case both answered (a string output), in A's order; `suite` None: all."""
    rows_a, rows_b = _rows(a), _rows(b)
    pairs = [
        (ra, rows_b[key])
        for key, ra in rows_a.items()
        if (suite is None or key[0] == suite)
        and key in rows_b
        and isinstance(ra.get("output"), str)
        and isinstance(rows_b[key].get("output"), str)
    ]
    if not pairs:
        which = f"suite {suite!r}" if suite else "any suite"
        raise TunesmithError(
            "Nothing to compare",
            [
                Problem(
                    f"{a}, {b}", f"no case of {which} has an output in both", "pass the suite to review (or all suites)"
                )
            ],
        )
    return pairs


def start_preference_review(
    results_a: str | Path,
    results_b: str | Path,
    review_dir: str | Path,
    seed: int = 0,
    names: tuple[str, str] | None = None,
    suite: str | None = "heldout",
    limit: int | None = None,
) -> dict:
    """Pair two eval results (A the baseline, B the candidate) into a blind A/B review in `review_dir`; returns the
    summary. Starting again with the same inputs and seed resumes; anything else there is an error."""
    a, b = results_file(results_a).resolve(), results_file(results_b).resolve()
    names = tuple(names) if names else (_name_of(a), _name_of(b))
    if state_path(review_dir).exists():
        return _resume(review_dir, a, b, seed)
    pairs = pair_results(a, b, suite)[:limit]
    items = []
    for k, (ra, rb) in enumerate(pairs):
        case = str(ra["id"])
        prompt = ra.get("prompt")
        swap = random.Random(f"{seed}:{ra['suite']}:{case}").random() < 0.5  # per item, stable across restarts
        items.append(
            PreferenceItem(
                id=f"p{k}",
                suite=ra["suite"],
                case=case,
                swap=swap,
                prompt=prompt if isinstance(prompt, str) or prompt is None else json.dumps(prompt, ensure_ascii=False),
                output_a=ra["output"],
                output_b=rb["output"],
            )
        )
    source = PreferenceSource(a=str(a), b=str(b), names=list(names), suite=suite)
    state = PreferenceState(format=1, kind="preference", created=now(), seed=seed, source=source, items=items)
    save_state(review_dir, state)
    return write_preference(review_dir, state)


def _resume(review_dir: str | Path, a: Path, b: Path, seed: int) -> dict:
    state = load_state(review_dir)[0]
    if state.kind != "preference" or (state.source.a, state.source.b, state.seed) != (str(a), str(b), seed):
        raise TunesmithError(
            "A different review exists there",
            [
                Problem(
                    str(state_path(review_dir)),
                    f"it does not compare {a} with {b} (seed {seed})",
                    "continue it (tunesmith review DIR), or use another review directory",
                )
            ],
        )
    return summarize_preference(state)


def summarize_preference(state: PreferenceState, confidence: float = 0.95) -> dict:
    """B against A as the LLM judge reports it (wins, losses, ties, win_rate with ci_low / ci_high, verdict), plus
    who A and B are, what is still undecided, and each case's outcome."""
    from tunesmith.eval.stats import preference_counts, win_rate

    outcomes = [{"B": "win", "A": "loss", "tie": "tie", None: "undecided"}[it.preferred] for it in state.items]
    judged = [o for o in outcomes if o != "undecided"]
    return {
        "judge": "human",
        "baseline": state.source.names[0],
        "candidate": state.source.names[1],
        "results": {"a": state.source.a, "b": state.source.b},
        "suite": state.source.suite,
        "cases": len(outcomes),
        "judged": len(judged),
        "undecided": len(outcomes) - len(judged),
        **preference_counts(judged),
        "errors": [],
        "outcomes": outcomes,
        "case_ids": [f"{it.suite}/{it.case}" for it in state.items],
        "confidence": confidence,
        "seed": state.seed,
        **win_rate(judged, confidence=confidence),
    }


def preference_summary(review_dir: str | Path, confidence: float = 0.95) -> dict:
    """`summarize_preference` of the A/B review in `review_dir` (journal included)."""
    state = load_review(review_dir, "preference")
    return summarize_preference(state, confidence)


def write_preference(review_dir: str | Path, state: PreferenceState) -> dict:
    """Write `preference.json` (atomically) next to the state and return it."""
    summary = summarize_preference(state)
    atomic_write_json(Path(review_dir) / PREFERENCE_FILE, summary)
    return summary


def load_human_preference(path: Path) -> dict[str, Any]:
    """A blind A/B review's result, from its directory (summarized afresh) or its preference.json."""
    path = Path(path)
    if path.is_dir():
        return preference_summary(path)
    try:
        pref = json.loads(path.read_text())
        pref["results"]["b"]
        return pref
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TunesmithError(
            "Cannot read the A/B review",
            [Problem(str(path), f"{type(exc).__name__}: {exc}", "pass the review directory or its preference.json")],
        ) from None


def attach_human_preference(comparisons: list[dict], path: Path) -> None:
    """Load the A/B review at `path` and attach it (`preference_human`) to the comparison of its B evaluation (the
    only comparison, when there is one)."""
    from tunesmith.runs import results_name

    pref = load_human_preference(path)
    b_name = results_name(Path(pref["results"]["b"]))  # as load_evaluation names it
    comp = next((c for c in comparisons if c["candidate"] == b_name), comparisons[0] if len(comparisons) == 1 else None)
    if comp is None:
        raise TunesmithError(
            "The A/B review matches no comparison",
            [
                Problem(
                    str(path),
                    f"it compared {pref['results']['a']} with {pref['results']['b']}",
                    "give the same evaluations to eval compare",
                )
            ],
        )
    comp["preference_human"] = pref
