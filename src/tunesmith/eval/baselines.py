"""The cheapest alternatives to a fine-tune, as generation backends the evaluation scores exactly like a model.

    names = applicable(cfg, train_records)                          # which of them `eval.baselines` runs
    clf = ClassifierBackend(train_records, cfg.task, validation_records)   # TF-IDF + logistic regression
    few = FewShotBackend(TransformersBackend(base_ref), train_records, k=cfg.eval.few_shot_k)
    metrics = evaluate(clf, {"heldout": cases}, cfg, out_dir, schema)   # same scorers, same results.jsonl rows

A fine-tune is worth shipping only when it beats what is far cheaper to build and run: for a label task (a
classification, or a JSON reply whose fields are labels) a linear classifier trained in seconds on the same
training split, and the base model shown the most similar training examples in its prompt.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from tunesmith.config import Config, TaskConfig
from tunesmith.data.records import Record
from tunesmith.errors import Problem, TunesmithError
from tunesmith.eval.suite import EvalCase
from tunesmith.generate.backends import Backend, GenerateRequest, Generation

LABEL = "__label__"  # the field name of a classification task's label: the whole reply
MAX_LABELS = 200  # a field with more distinct values than this is not a label
C_GRID = (1.0, 3.0, 10.0, 30.0)  # inverse regularization strengths tried on the validation set
DEFAULT_C = 10.0  # without a validation set
BASELINES = ("classifier", "few_shot")
NAMES = {"classifier": "the TF-IDF classifier", "few_shot": "few-shot prompting of the base model"}


def user_text(messages: list[dict]) -> str:
    """The text of a conversation's user turns, one per line: what a classifier sees."""
    parts = []
    for m in messages:
        if m.get("role") != "user":
            continue
        content = m.get("content")
        parts.append(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False))
    return "\n".join(parts)


def _objects(replies: list[str]) -> list[dict] | None:
    """The replies parsed as JSON objects; None when any one is not an object."""
    out = []
    for reply in replies:
        try:
            obj = json.loads(reply)
        except (TypeError, json.JSONDecodeError):
            return None
        if not isinstance(obj, dict):
            return None
        out.append(obj)
    return out


def label_problem(task: TaskConfig, replies: list[str]) -> str | None:
    """Why a classical classifier cannot predict these replies (None when it can)."""
    if task.type == "classification":
        return None if replies else "there are no training replies"
    if task.type != "json":
        return f"task.type is {task.type}: the replies are free text, not labels"
    objs = _objects(replies)
    if not objs:
        return "the training replies are not all JSON objects" if replies else "there are no training replies"
    fields = task.match_fields or list(dict.fromkeys(k for o in objs for k in o))
    for f in fields:
        values = [o[f] for o in objs if f in o]
        if any(isinstance(v, (dict, list)) for v in values):
            return f"field {f!r} holds objects or lists, not a string or number"
        distinct = len({json.dumps(v, sort_keys=True) for v in values})
        if distinct > MAX_LABELS or distinct >= len(objs) / 3:
            return (
                f"field {f!r} has {distinct} distinct values over {len(objs)} replies: free text, not a label "
                f"(a label field has at most {MAX_LABELS} values and fewer than a third of the replies)"
            )
    return None


def label_fields(task: TaskConfig, replies: list[str]) -> list[str] | None:
    """What a classical classifier can predict: `["__label__"]` (the whole reply) for a classification task; for a
    JSON task the fields to predict (`task.match_fields`, or every key of the replies) when each one is label-like
    (a string or number with at most 200 distinct values, fewer than a third of the replies); else None."""
    if label_problem(task, replies) is not None:
        return None
    if task.type == "classification":
        return [LABEL]
    objs = _objects(replies) or []
    return list(task.match_fields) or list(dict.fromkeys(k for o in objs for k in o))


def label_count(task: TaskConfig, replies: list[str]) -> int | None:
    """How many labels the replies hold (distinct combinations of `label_fields`' values), or None when the task
    is not a label task: what `epochs: auto` counts examples per."""
    fields = label_fields(task, replies)
    if not fields:
        return None
    readable = [r for r in replies if _readable(r, task)]
    return len({tuple(_label_of(r, f) for f in fields) for r in readable}) or None


def data_hash(records: list[Record]) -> str:
    """A short hash of the training records' contents (what a baseline learned from)."""
    digest = hashlib.sha256()
    for r in records:
        digest.update(r.content_hash().encode())
    return digest.hexdigest()[:16]


def _features():
    """Word 1-2-grams (sublinear tf) and character 2-5-grams within word boundaries, side by side."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    return FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
        ]
    )


def _vectors(vectorizer, texts: list[str]):
    """The fitted TF-IDF matrix of `texts`, or a clear error when they hold no word at all."""
    try:
        return vectorizer.fit_transform(texts)
    except ValueError as exc:  # "empty vocabulary": every text is empty, or only stop words / 1-letter tokens
        raise TunesmithError(
            "No words to learn from",
            [
                Problem(
                    "eval.baselines",
                    f"the training records' user turns give no TF-IDF features ({exc})",
                    "check the training split's user turns, or drop the baseline from eval.baselines",
                )
            ],
        ) from None


def _require_sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise TunesmithError(
            "scikit-learn is not installed",
            [
                Problem(
                    "eval.baselines",
                    "the classifier and few-shot baselines use scikit-learn's TF-IDF",
                    "pip install scikit-learn, or set eval.baselines: []",
                )
            ],
        ) from None


class _Constant:
    """A 'classifier' for a field with one value in training: it always predicts that value."""

    def __init__(self, value: str) -> None:
        self.value = value

    def predict(self, x) -> list[str]:
        return [self.value] * x.shape[0]


class ClassifierBackend(Backend):
    """TF-IDF features + one logistic regression per label field, trained on the user turns of the training
    records; replies rendered as the task expects them (the bare label, or a JSON object)."""

    def __init__(
        self,
        train_records: list[Record],
        task: TaskConfig,
        validation_records: list[Record] | None = None,
        seed: int = 0,
        c_grid: tuple[float, ...] = C_GRID,
    ) -> None:
        _require_sklearn()
        import sklearn

        began = time.perf_counter()
        records = [r for r in train_records if r.reply is not None]
        problem = label_problem(task, [r.reply for r in records])
        if problem is not None:
            raise TunesmithError(
                "The classifier baseline does not apply",
                [
                    Problem(
                        "eval.baselines", problem, "drop `classifier` from eval.baselines (few_shot works for any task)"
                    )
                ],
            )
        self.task, self.seed = task, seed
        self.fields = label_fields(task, [r.reply for r in records]) or []
        self.template = _template(task, records, self.fields)
        self.features = _features()
        x = _vectors(self.features, [user_text(r.prompt) for r in records])
        targets = {f: [_label_of(r.reply, f) for r in records] for f in self.fields}
        valid = [r for r in validation_records or [] if _readable(r.reply, task)]
        if valid:
            self.C, self.c_scores, self.models = self._choose_c(x, targets, valid, c_grid)
        else:
            self.C, self.c_scores = DEFAULT_C, {}
            self.models = {f: _fit(_model(y, seed), x, y, DEFAULT_C) for f, y in targets.items()}
        self.train_s = time.perf_counter() - began
        self.fingerprint = json.dumps(
            {
                "baseline": "classifier",
                "data": data_hash(records),
                "C": self.C,
                "fields": self.fields,
                "seed": seed,
                "sklearn": sklearn.__version__,
            }
        )

    def _choose_c(
        self, x, targets: dict[str, list[str]], valid: list[Record], grid: tuple[float, ...]
    ) -> tuple[float, dict[float, float], dict[str, Any]]:
        """(C, validation score per C, the models fitted with that C): the C whose models get the most validation
        replies right (every field at once); ties go to the smaller C (more regularized). The grid is walked from
        the smallest C up, each fit starting from the previous one's weights (several times faster than cold)."""
        import copy

        xv = self.features.transform([user_text(r.prompt) for r in valid])
        truth = [{f: _label_of(r.reply, f) for f in self.fields} for r in valid]
        models = {f: _model(y, self.seed) for f, y in targets.items()}
        scores: dict[float, float] = {}
        best: tuple[float, dict[str, Any]] | None = None
        for c in sorted(grid):
            preds = {f: _fit(models[f], x, y, c).predict(xv) for f, y in targets.items()}
            scores[c] = sum(all(preds[f][i] == t[f] for f in self.fields) for i, t in enumerate(truth)) / len(truth)
            if best is None or scores[c] > scores[best[0]]:
                best = (c, copy.deepcopy(models))
        assert best is not None  # the grid is never empty
        return best[0], scores, best[1]

    def prompt_key(self, case: EvalCase) -> str:
        return user_text(case.messages)

    def predict(self, texts: list[str]) -> list[str]:
        """The rendered reply for each input text."""
        x = self.features.transform(texts)
        preds = {f: list(m.predict(x)) for f, m in self.models.items()}
        return [self._render({f: preds[f][i] for f in self.fields}) for i in range(len(texts))]

    def _render(self, labels: dict[str, str]) -> str:
        if self.task.type == "classification":
            return labels[LABEL]
        obj = dict(self.template)
        obj.update({f: json.loads(v) for f, v in labels.items()})
        return json.dumps(obj, ensure_ascii=False)

    def answer(self, cases: list[EvalCase], request: GenerateRequest) -> list[Generation]:
        """One prediction per case (decoding settings do not apply to a classifier). Latency: the whole
        prediction's wall time divided by the cases; no tokens are generated."""
        if not cases:
            return []
        began = time.perf_counter()
        outputs = self.predict([user_text(c.messages) for c in cases])
        each = (time.perf_counter() - began) / len(cases)
        results = []
        for i, text in enumerate(outputs):
            results.append(Generation(text, 0, False, each))
            request.done(i, results[-1])
        return results


def _readable(reply: str | None, task: TaskConfig) -> bool:
    """A reply a label can be read from (a JSON task's reply must be a JSON object)."""
    return reply is not None and (task.type != "json" or _objects([reply]) is not None)


def _label_of(reply: str, field: str) -> str:
    """The class of a reply for one field, as JSON text (so 1 and "1" stay apart; a missing field is null)."""
    if field == LABEL:
        return reply.strip()
    return json.dumps(json.loads(reply).get(field), sort_keys=True, ensure_ascii=False)


def _template(task: TaskConfig, records: list[Record], fields: list[str]) -> dict[str, Any]:
    """A JSON task's reply skeleton: every key most training replies have, in their order, holding the most
    common training value; predicted fields are filled in over it."""
    if task.type != "json":
        return {}
    objs = [json.loads(r.reply) for r in records]
    keys = Counter(k for o in objs for k in o)
    order = list(dict.fromkeys(k for o in objs for k in o))
    out = {}
    for k in order:
        if k in fields or keys[k] * 2 > len(objs):
            common = Counter(json.dumps(o[k], sort_keys=True) for o in objs if k in o).most_common(1)[0][0]
            out[k] = json.loads(common)
    return out


def _model(y: list[str], seed: int):
    """An unfitted logistic regression for one field (a constant when training shows it a single value). SAGA
    with a loose tolerance: on 77 intents and ~40k n-gram features it fits in seconds where L-BFGS takes a
    minute, at the same accuracy."""
    from sklearn.linear_model import LogisticRegression

    if len(set(y)) < 2:
        return _Constant(y[0])
    return LogisticRegression(solver="saga", tol=1e-3, max_iter=300, warm_start=True, random_state=seed)


def _fit(model, x, y: list[str], c: float):
    """`model` fitted with inverse regularization `c` (from its current weights, when it has some)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    if isinstance(model, _Constant):
        return model
    model.set_params(C=c)
    with warnings.catch_warnings():  # max_iter reached at a loose tolerance is close enough for a baseline
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


class FewShotBackend(Backend):
    """Few-shot prompting of a model (`inner`, any generation backend): each case is shown the k training records
    most similar to it (TF-IDF cosine over the user turns), most similar last, as earlier user/assistant turns after
    its system message and before its own user turn."""

    def __init__(self, inner, train_records: list[Record], k: int = 8) -> None:
        _require_sklearn()
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.inner, self.k = inner, k
        self.examples = [
            (user_text(r.prompt), r.reply) for r in train_records if r.reply is not None and user_text(r.prompt).strip()
        ]
        if not self.examples:
            raise TunesmithError(
                "The few-shot baseline has no examples",
                [
                    Problem(
                        "eval.baselines", "no training record has a user turn and a reply", "check the training split"
                    )
                ],
            )
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        self.matrix = _vectors(self.vectorizer, [text for text, _ in self.examples])
        self.fingerprint = json.dumps({"few_shot": inner.fingerprint, "k": k, "data": data_hash(train_records)})

    def nearest(self, texts: list[str]) -> list[list[int]]:
        """For each text, the indices of its k most similar examples, least similar first (so the most similar
        one ends up right before the case; ties are broken by record order)."""
        import numpy as np

        out = []
        for start in range(0, len(texts), 256):  # a dense block of similarities at a time, not all cases at once
            sims = (self.vectorizer.transform(texts[start : start + 256]) @ self.matrix.T).toarray()
            for row in sims:
                ranked = np.argsort(-row, kind="stable")[: self.k]
                out.append([int(j) for j in ranked[::-1]])
        return out

    def rewrite(self, cases: list[EvalCase]) -> list[EvalCase]:
        """The cases with their examples inserted after the leading system message(s)."""
        picks = self.nearest([user_text(c.messages) for c in cases])
        out = []
        for case, idx in zip(cases, picks):
            head = 0
            while head < len(case.messages) and case.messages[head].get("role") == "system":
                head += 1
            shots = [
                m
                for j in idx
                for m in (
                    {"role": "user", "content": self.examples[j][0]},
                    {"role": "assistant", "content": self.examples[j][1]},
                )
            ]
            out.append(replace(case, messages=case.messages[:head] + shots + case.messages[head:]))
        return out

    def prompt_key(self, case: EvalCase) -> str:
        return self.inner.prompt_key(self.rewrite([case])[0])

    def answer(self, cases: list[EvalCase], request: GenerateRequest) -> list[Generation]:
        """The inner backend's generations on the rewritten cases, with the same settings."""
        return self.inner.generate(self.rewrite(cases), **request.keywords())


def applicable(cfg: Config, train_records: list[Record]) -> list[str]:
    """Which of "classifier" and "few_shot" run for `cfg.eval.baselines`: `auto` (alone or as a list entry) = both
    when the task is a label task (see `label_fields`), none otherwise; an explicit `classifier` for a task it
    cannot predict is an error. Named baselines (an endpoint, recorded replies) are in
    `tunesmith.eval.named_baselines`."""
    replies = [r.reply for r in train_records if r.reply is not None]
    problem = label_problem(cfg.task, replies)
    wanted = ["auto"] if cfg.eval.baselines == "auto" else cfg.eval.baselines
    if "classifier" in wanted and problem is not None:
        raise TunesmithError(
            "The classifier baseline does not apply",
            [
                Problem(
                    "eval.baselines",
                    f"`classifier` needs a label task, but {problem}",
                    "drop `classifier` from eval.baselines (few_shot works for any task), or use `auto`",
                )
            ],
        )
    automatic = "auto" in wanted and problem is None
    return [name for name in BASELINES if name in wanted or automatic]
