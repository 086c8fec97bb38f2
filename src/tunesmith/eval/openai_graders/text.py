"""OpenAI's text graders: `string_check` (pass/fail) and `text_similarity` (a score in [0, 1] against
`pass_threshold`).

    {"type": "string_check", "input": "{{sample.output_text}}", "reference": "{{item.label}}", "operation": "eq"}
    {"type": "text_similarity", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
     "evaluation_metric": "rouge_l", "pass_threshold": 0.6}

Metrics: `fuzzy_match` (rapidfuzz's `fuzz.ratio`, an edit-based similarity; OpenAI names rapidfuzz but not which of
its scorers), `bleu` (sacrebleu's sentence BLEU), `gleu` (NLTK's sentence GLEU over whitespace tokens), `rouge_1` ..
`rouge_5` and `rouge_l` (Google's rouge-score, F-measure), and `cosine` — which differs from OpenAI's: tunesmith
has no embeddings model, so it is the cosine of the two texts' TF-IDF vectors (scikit-learn), a measure of shared
words, not of meaning. `meteor` needs NLTK's WordNet download and is refused when the spec is read. Two empty
texts score 1.0; one empty text scores 0.0.
"""

from __future__ import annotations

from functools import lru_cache

from tunesmith.eval.openai_graders.base import Grade, Item, per_item, scored
from tunesmith.eval.openai_graders.templates import render


def _string_check(spec: dict, item: Item) -> Grade:
    """`input` against `reference` by `operation` (eq, ne, like: contains, ilike: contains ignoring case)."""
    got, want = render(spec["input"], item.case, item.output), render(spec["reference"], item.case, item.output)
    op = spec["operation"]
    passed = {
        "eq": got == want,
        "ne": got != want,
        "like": want in got,
        "ilike": want.lower() in got.lower(),
    }[op]
    return Grade(passed, 1.0 if passed else 0.0, "" if passed else f"{op}: {got[:80]!r} vs {want[:80]!r}")


def _text_similarity(spec: dict, item: Item) -> Grade:
    got, want = render(spec["input"], item.case, item.output), render(spec["reference"], item.case, item.output)
    metric = spec["evaluation_metric"]
    return scored(similarity(metric, got, want), float(spec["pass_threshold"]), metric)


def similarity(metric: str, got: str, want: str) -> float:
    """How close `got` is to `want` by one of text_similarity's metrics, in [0, 1]."""
    if metric not in _METRICS:
        raise ValueError(f"unknown evaluation_metric {metric!r} (metrics: {', '.join(_METRICS)})")
    if not got.strip() or not want.strip():
        return 1.0 if got.strip() == want.strip() else 0.0
    return float(_METRICS[metric](got, want))


def _fuzzy(got: str, want: str) -> float:
    from rapidfuzz import fuzz

    return fuzz.ratio(got, want) / 100


def _bleu(got: str, want: str) -> float:
    import sacrebleu

    return min(1.0, sacrebleu.sentence_bleu(got, [want]).score / 100)


def _gleu(got: str, want: str) -> float:
    from nltk.translate.gleu_score import sentence_gleu

    return sentence_gleu([want.split()], got.split())


@lru_cache(maxsize=8)
def _rouge_scorer(kind: str):
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer([kind])


def _rouge(kind: str):
    return lambda got, want: _rouge_scorer(kind).score(want, got)[kind].fmeasure


def _tfidf_cosine(got: str, want: str) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    try:
        vectors = TfidfVectorizer().fit_transform([got, want])
    except ValueError:  # no word of two or more letters in either text
        return 1.0 if got.strip() == want.strip() else 0.0
    return cosine_similarity(vectors[0], vectors[1])[0, 0]


_METRICS = {
    "fuzzy_match": _fuzzy,
    "bleu": _bleu,
    "gleu": _gleu,
    **{f"rouge_{n}": _rouge(f"rouge{n}") for n in range(1, 6)},
    "rouge_l": _rouge("rougeL"),
    "cosine": _tfidf_cosine,
}


string_check = per_item(_string_check)
text_similarity = per_item(_text_similarity)
