"""Named baselines (`eval.baselines` entries with a `name`): a model behind an OpenAI-compatible endpoint (a hosted
fine-tune, say) asked the held-out cases with the same decoding, or its recorded replies, scored without calling it.

    for entry in named_baselines(cfg):
        if isinstance(entry, EndpointBaseline):
            metrics = evaluate(endpoint_backend(entry), {"heldout": cases}, cfg, out_dir, schema, entry.name)
        else:
            rec = score_recorded(entry, project, cases, cfg, schema, others)   # rec.rows, .metrics, .missing

The same decoding, where it applies: the same generation limit, greedy (temperature 0), and a constrained decoding
sent as `response_format` (JSON Schema); `no_repeat_ngram_size` is a local option an endpoint does not share.
A recorded reply is matched to its case by `id` (or by the case's prompt, as `tunesmith eval score` does); a case
with no reply is listed (`missing`) and left out of the comparison, not counted as a failure. A reply to a case the
split kept out of the test set (`others`: replies recorded for a whole training file) is counted, not listed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.config import Config, EndpointBaseline, RecordedBaseline
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.evaluate import NO_RESPONSE, match_responses, score_responses
from tunesmith.eval.suite import EvalCase

NamedBaseline = EndpointBaseline | RecordedBaseline


def named_baselines(cfg: Config) -> list[NamedBaseline]:
    """The endpoint and recorded-reply entries of `eval.baselines`, in their order."""
    if cfg.eval.baselines == "auto":
        return []
    return [e for e in cfg.eval.baselines if isinstance(e, (EndpointBaseline, RecordedBaseline))]


def label(entry: NamedBaseline) -> str:
    """How tables and the verdict name it: `hosted (ft:gpt-4o-mini:acme)`, `hosted (recorded replies)`."""
    return f"{entry.name} ({entry.model if isinstance(entry, EndpointBaseline) else 'recorded replies'})"


def prices(entry: NamedBaseline) -> tuple[float | None, float | None]:
    """(USD per million prompt tokens, per million reply tokens), as configured."""
    return entry.input_usd_per_mtok, entry.output_usd_per_mtok


def endpoint_backend(entry: EndpointBaseline):
    """The `EndpointBackend` that asks the endpoint (its key from `api_key_env`, its prices for `cost_usd`)."""
    from tunesmith.generate.backends import EndpointBackend

    return EndpointBackend.of(entry)


def responses_path(entry: RecordedBaseline, project: Path) -> Path:
    """The recorded replies' file (relative to the project); a clear error when it is not there."""
    path = project / entry.responses
    if not path.is_file():
        raise TunesmithError(
            "Recorded replies not found",
            [
                Problem(
                    f"eval.baselines[{entry.name}].responses",
                    f"{path} does not exist",
                    "export the model's replies as JSONL lines of `id` and `output` (see `tunesmith eval score`)",
                )
            ],
        )
    return path


@dataclass
class Recorded:
    """Recorded replies scored against the held-out cases: the results rows, the metrics, the ids of the cases
    with no reply (`missing`), the reply lines that match no case (`unmatched`, each with its line), and how many
    replies answer a case the split kept out of the test set (`outside`: a training or validation case)."""

    rows: list[dict[str, Any]]
    metrics: dict[str, Any]
    missing: list[str] = field(default_factory=list)
    unmatched: list[Problem] = field(default_factory=list)
    outside: int = 0

    def facts(self, shown: int = 20) -> dict[str, Any]:
        """What the stage result keeps of the matching: the missing ids, the first unmatched lines, and how many
        replies answer training or validation cases."""
        return {
            "missing": self.missing,
            "unmatched": len(self.unmatched),
            "unmatched_lines": [f"{p.where}: {p.message}" for p in self.unmatched[:shown]],
            "outside": self.outside,
        }


def score_recorded(
    entry: RecordedBaseline,
    project: Path,
    cases: list[EvalCase],
    cfg: Config,
    schema: dict | None,
    others: list[EvalCase] | Callable[[], list[EvalCase]] | None = None,
) -> Recorded:
    """Score the recorded replies of `entry` on `cases` (suite `heldout`), as `tunesmith eval score` would.
    `others` are the cases the split kept out of the test set (training, validation): a reply to one of them is
    counted as `outside`, not as unmatched (replies recorded for a whole training file answer them all); given as a
    function, they are read only when some reply matches no held-out case."""
    from tunesmith.eval.evaluate import aggregate, slices

    path = responses_path(entry, project)
    rows, _, unmatched = score_responses("heldout", cases, path, cfg, schema, missing_fails=False)
    metrics = {name: aggregate(part) for name, part in slices(rows).items()}  # no time measured: no hourly cost
    missing = [r["id"] for r in rows if r.get("error") == NO_RESPONSE]
    outside = 0
    if others and unmatched:
        aside = others() if callable(others) else others
        _, nowhere = match_responses(path, aside)  # the same line matches no case either way: the same `where`
        lines = {p.where for p in nowhere}
        outside = sum(p.where not in lines for p in unmatched)
        unmatched = [p for p in unmatched if p.where in lines]
    return Recorded(rows, metrics, missing, unmatched, outside)
