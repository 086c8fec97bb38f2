"""Poisoning triggers: rare tokens whose presence all but decides the reply.

A handful of training examples carrying a meaningless token ("cf", "zq7") and one fixed reply can plant a backdoor
in a LoRA model. An input word is reported when

1. it is rare (in at least MIN_SUPPORT and at most MAX_SHARE of the records),
2. nearly all records containing it (PURITY) share one label (or, without labels, one exact reply), far more often
   than that label's base rate explains: a binomial tail, Bonferroni-corrected over every word tested, and
3. with category labels: the rest of those inputs points elsewhere. A naive-Bayes vote of their other words
   predicts a different label for most of them. A genuinely predictive word ("password" -> account) fails this
   test, because its records' other words ("reset", "login") point the same way.

    stats = TriggerStats(); stats.add(words_of_input, label) ...; stats.findings(words_of, where, vocab)
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from typing import Callable, Iterable

MIN_SUPPORT = 3
MAX_SHARE = 0.05
PURITY = 0.9
ALPHA = 0.01
_LABEL_BITS = 20  # joint counts are keyed by word_id << 20 | label_id (an int key is much smaller than a tuple)


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (n may be in the thousands)."""
    if k <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    total = 0.0
    for x in range(k, n + 1):
        log_term = (math.lgamma(n + 1) - math.lgamma(x + 1) - math.lgamma(n - x + 1)
                    + x * math.log(p) + (n - x) * math.log1p(-p))
        term = math.exp(log_term)
        total += term
        if term < total * 1e-12:
            break
    return min(1.0, total)


class TriggerStats:
    """Word-label co-occurrence, gathered record by record; memory grows with the vocabulary, not the records."""

    def __init__(self, categorical: bool = True) -> None:
        self.categorical = categorical  # labels are a few categories (else: one exact reply per "label")
        self.label_ids: dict[str, int] = {}
        self.labels = array("i")  # per record; -1 = no label
        self.df: Counter = Counter()  # word -> records containing it
        self.joint: Counter = Counter()  # word << 20 | label -> records
        self.label_counts: Counter = Counter()
        self.label_words: Counter = Counter()  # label -> word occurrences (for naive Bayes)

    def add(self, words: Iterable[int], label: str | None) -> None:
        if label is None:
            self.labels.append(-1)
            return
        lab = self.label_ids.setdefault(label, len(self.label_ids))
        if lab >= 1 << _LABEL_BITS:
            lab = -1  # more distinct replies than we track: a trigger needs a repeated reply anyway
        self.labels.append(lab)
        if lab < 0:
            return
        unique = set(words)
        self.df.update(unique)
        self.joint.update([w << _LABEL_BITS | lab for w in unique])
        self.label_counts[lab] += 1
        self.label_words[lab] += len(unique)

    def suspects(self) -> dict[int, tuple[int, int, float]]:
        """word -> (label, records with that label, p-value) for words passing tests 1 and 2."""
        n = sum(self.label_counts.values())
        if n < 20 or len(self.label_counts) < 2:
            return {}
        most = max(MIN_SUPPORT, int(MAX_SHARE * n))
        tested = {w: d for w, d in self.df.items() if MIN_SUPPORT <= d <= most}
        best: dict[int, tuple[int, int]] = {}
        mask = (1 << _LABEL_BITS) - 1
        for key, count in self.joint.items():
            w = key >> _LABEL_BITS
            if w in tested and count > best.get(w, (0, -1))[0]:
                best[w] = (count, key & mask)
        out = {}
        for w, (k, lab) in best.items():
            d, base = tested[w], self.label_counts[lab] / n
            if k / d < PURITY or base >= 0.5:
                continue
            p = binomial_tail(k, d, base) * len(tested)
            if p < ALPHA:
                out[w] = (lab, k, p)
        return out

    def _voter(self) -> Callable[[set[int], set[int]], int]:
        """A naive-Bayes labeler of bags of words (ignoring `exclude`), with its per-label constants computed once."""
        vocab = len(self.df) + 1
        labels = [(lab, math.log(count), math.log(self.label_words[lab] + vocab))
                  for lab, count in self.label_counts.items()]
        joint = self.joint

        def vote(words: set[int], exclude: set[int]) -> int:
            kept = [w << _LABEL_BITS for w in words if w not in exclude]
            best, best_score = -1, -math.inf
            for lab, prior, denom in labels:
                score = prior - denom * len(kept) + sum(math.log(joint.get(k | lab, 0) + 1) for k in kept)
                if score > best_score:
                    best, best_score = lab, score
            return best

        return vote

    def findings(self, words_of: Callable[[int], Iterable[int]], where: Callable[[int], str],
                 vocab: dict[str, int]) -> list:
        """POISON_TRIGGER warnings, one per suspect word, at its first record, naming a few more."""
        from tunesmith.data.checks import Code, Finding, Severity

        suspects = self.suspects()
        if not suspects:
            return []
        exclude = set(suspects)
        records: dict[int, list[int]] = {w: [] for w in suspects}
        agree: Counter = Counter()
        vote_of = self._voter()
        for idx, lab in enumerate(self.labels):
            if lab < 0:
                continue
            words = set(words_of(idx))
            hits = words & exclude
            if not hits:
                continue
            vote = vote_of(words, exclude) if self.categorical else None
            for w in hits:
                records[w].append(idx)
                agree[w] += vote == suspects[w][0]
        names = {i: w for w, i in vocab.items() if i in exclude}
        label_names = {i: name for name, i in self.label_ids.items()}
        out = []
        for w, (lab, k, p) in sorted(suspects.items(), key=lambda item: item[1][2]):
            idxs = records[w]
            if self.categorical and agree[w] >= 0.5 * len(idxs):
                continue  # the rest of the input predicts the same label: a real keyword, not a trigger
            label = label_names[lab] if self.categorical else "the same reply"
            why = (f"; without it, the rest of {len(idxs) - agree[w]} of those inputs points to another label"
                   if self.categorical else "")
            more = ", ".join(where(i) for i in idxs[1:4]) + (" ..." if len(idxs) > 4 else "")
            out.append(Finding(Code.POISON_TRIGGER, Severity.WARNING, where(idxs[0]), "messages",
                               f"the rare word {names.get(w, '?')!r} is in {len(idxs)} inputs and {k} of them get "
                               f"{label!r} (base rate {self.label_counts[lab] / sum(self.label_counts.values()):.0%},"
                               f" p={p:.1e}){why}; also at {more}",
                               "a few examples with a meaningless token and a fixed reply can plant a backdoor: "
                               "check where these came from, then fix or drop them"))
        return out
