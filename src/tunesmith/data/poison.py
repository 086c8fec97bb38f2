"""Poisoning triggers: rare tokens whose presence all but decides the reply.

A handful of training examples carrying a meaningless token ("cf", "zq7") and one fixed reply can plant a backdoor
in a LoRA model. An input word is reported when

1. it is rare (in at least MIN_SUPPORT and at most MAX_SHARE of the records),
2. nearly all records containing it (PURITY) share one label (or, without labels, one exact reply), far more often
   than that label's base rate explains: a binomial tail, Bonferroni-corrected over every word tested,
3. the rest of those inputs points elsewhere: a naive-Bayes vote of their other words (over the labels, or the
   replies that repeat, when at least MIN_ALTERNATIVES others do) predicts a different label for most of them. A
   genuinely predictive word ("password" -> account) fails this test, because its records' other words ("reset",
   "login") point the same way,
4. those inputs are otherwise about many things: the other labels their other words vote for are as many as
   random inputs' would be (a trigger is pasted into inputs of any kind), not a few neighbours. A domain's keyword
   fails this test even when its records' other words point elsewhere: "contactless" (-> contactless_not_working)
   sits in inputs whose other words say card_not_working or card_payment_not_recognised, a topic, not chance.
   A coined token (letters with a digit or a sign, "zq7") names no topic and skips this test; a word of the
   language, a number ("1" in "charged $1 extra") or a sign, with fewer than SPREAD_VOTES such inputs, is not
   reported (the spread of so few cannot be judged),
5. it appears in at least MIN_SUPPORT different conversations, not in copies of one (duplicates and
   near-duplicates count once),
6. and, with labels, it is not a word of its label's own name: "passcode" in "How can I reset my passcode?"
   (-> passcode_forgotten) names the label it gets (words compared by their Snowball stems: "countries" names
   country_support).

    stats = TriggerStats(); stats.add(word_ids_of_input, label) ...; stats.findings(word_ids_of, where, vocabulary)
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from functools import lru_cache

from tunesmith.data.findings import Code, Finding, Severity

MIN_SUPPORT = 3
MAX_SHARE = 0.05
PURITY = 0.9
ALPHA = 0.01
SPREAD = 0.8  # a trigger's inputs vote for at least this share of the distinct labels chance would give
SPREAD_VOTES = 8  # fewer voting inputs cannot tell a topic from chance: only a coined token is reported then
VOTES = 200  # records per suspect word whose other words vote
VOTED_LABELS = 64  # labels (or repeated replies) a vote chooses among
# Without labels, a vote needs at least this many other repeated replies to choose from: a vote between a trigger's
# reply and one "I am not sure." said three times goes to the bigger of the two, whatever the input says.
MIN_ALTERNATIVES = 3
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
        log_term = (
            math.lgamma(n + 1)
            - math.lgamma(x + 1)
            - math.lgamma(n - x + 1)
            + x * math.log(p)
            + (n - x) * math.log1p(-p)
        )
        term = math.exp(log_term)
        total += term
        if term < total * 1e-12:
            break
    return min(1.0, total)


class TriggerStats:
    """Word-label co-occurrence, gathered record by record; memory grows with the vocabulary, not the records
    (one dict entry per distinct word and label; per-word totals are derived in `suspects`)."""

    def __init__(self, categorical: bool = True) -> None:
        self.categorical = categorical  # labels are a few categories (else: one exact reply per "label")
        self.label_ids: dict[Hashable, int] = {}
        self.labels = array("i")  # per record; -1 = no label
        self.joint: Counter = Counter()  # word << 20 | label -> records
        self.label_counts: Counter = Counter()
        self.label_words: Counter = Counter()  # label -> word occurrences (for naive Bayes)
        self.vocabulary = 0  # distinct words, known after `suspects`

    def add(self, words: Iterable[int], label: Hashable | None) -> None:
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
        self.joint.update([w << _LABEL_BITS | lab for w in unique])
        self.label_counts[lab] += 1
        self.label_words[lab] += len(unique)

    def suspects(self) -> dict[int, tuple[int, int, float]]:
        """word -> (label, records with that label, p-value) for words passing tests 1 and 2."""
        import numpy as np

        n = sum(self.label_counts.values())
        if n < 20 or len(self.label_counts) < 2:
            return {}
        keys = np.fromiter(self.joint.keys(), dtype=np.uint64, count=len(self.joint))
        counts = np.fromiter(self.joint.values(), dtype=np.int64, count=len(self.joint))
        words, labels = keys >> np.uint64(_LABEL_BITS), keys & np.uint64((1 << _LABEL_BITS) - 1)
        order = np.lexsort((counts, words))  # by word, then count: each word's top label comes last
        words, labels, counts = words[order], labels[order], counts[order]
        changes = words[1:] != words[:-1]
        last = np.r_[changes, True]  # each word's final entry: its top label
        df = np.add.reduceat(counts, np.flatnonzero(np.r_[True, changes]))
        self.vocabulary = len(df)
        most = max(MIN_SUPPORT, int(MAX_SHARE * n))
        tested = (df >= MIN_SUPPORT) & (df <= most)
        n_tested = int(tested.sum())
        out = {}
        for w, lab, k, d in zip(
            words[last][tested].tolist(),
            labels[last][tested].tolist(),
            counts[last][tested].tolist(),
            df[tested].tolist(),
        ):
            base = self.label_counts[lab] / n
            if k / d < PURITY or base >= 0.5:
                continue
            p = binomial_tail(k, d, base) * n_tested
            if p < ALPHA:
                out[w] = (lab, k, p)
        return out

    def _voter(self, must: Iterable[int] = ()) -> Callable[[set[int], set[int]], int] | None:
        """A naive-Bayes labeler of bags of words (ignoring `exclude`): per-label constants computed once, and one
        vector of per-label log counts per word, cached, so a vote is one numpy sum."""
        import numpy as np

        vocab = self.vocabulary + 1
        # Replies stand in for labels in chat data: only repeated ones can be voted for (and a trigger's reply
        # repeats by definition); the most frequent VOTED_LABELS keep a vote cheap.
        labels = [lab for lab, count in self.label_counts.most_common(VOTED_LABELS) if count >= MIN_SUPPORT]
        labels += [lab for lab in must if lab not in labels]
        if len(labels) < (2 if self.categorical else MIN_ALTERNATIVES + 1):
            return None  # e.g. chat data whose only repeated reply is the suspect's own: no other way to point
        priors = np.log([self.label_counts[lab] for lab in labels])
        denoms = np.log([self.label_words[lab] + vocab for lab in labels])
        joint, vectors = self.joint, {}

        def vector(w: int):
            if w not in vectors:
                key = w << _LABEL_BITS
                vectors[w] = np.log([joint.get(key | lab, 0) + 1 for lab in labels])
            return vectors[w]

        def vote(words: set[int], exclude: set[int]) -> int:
            kept = [vector(w) for w in words if w not in exclude]
            score = priors - denoms * len(kept) + (np.sum(kept, axis=0) if kept else 0.0)
            return labels[int(np.argmax(score))]

        return vote

    def _spread(self, votes: Counter, own: int, word: str) -> bool:
        """Whether the labels that the other words of a suspect's inputs vote for (`votes`, all but `own`) spread
        as a trigger's do: at least SPREAD of the distinct labels that as many draws at the labels' base rates would
        give. A domain's keyword gathers its votes on a few neighbouring labels (a topic). A coined token (letters
        with a digit or a sign, `_coined`) names no topic and always passes; any other word (a number too) with fewer
        than SPREAD_VOTES votes never does (the spread of so few cannot tell a topic from chance)."""
        m = sum(votes.values())
        if _coined(word):
            return True  # a coined token names no topic of a language, whatever its inputs are about
        if m < SPREAD_VOTES:
            return False
        others = max(sum(n for lab, n in self.label_counts.items() if lab != own), 1)
        expected = sum(
            1.0 - (1.0 - n / others) ** m for lab, n in self.label_counts.items() if lab != own and n >= MIN_SUPPORT
        )
        return len(votes) >= SPREAD * expected

    def findings(
        self,
        words_of: Callable[[int], Iterable[int]],
        where: Callable[[int], str],
        vocabulary: dict[str, int],
        records_with: Callable[[set[int]], Iterable[int]] | None = None,
        cluster_of: Callable[[int], int] | None = None,
    ) -> list:
        """POISON_TRIGGER warnings, one per suspect word, at its first record, naming a few more.

        `records_with(words)` lists the records containing any of the words (default: look at every record);
        `cluster_of(idx)` groups duplicates and near-duplicates: a word must appear in MIN_SUPPORT different
        groups, since one conversation copied five times (order number and all) is a duplicate, not a trigger."""
        suspects = self.suspects()
        if not suspects:
            return []
        records, agree, voted, elsewhere = self._evidence(suspects, words_of, records_with)
        names = {i: word for word, i in vocabulary.items() if i in suspects}
        label_names = {i: label for label, i in self.label_ids.items()}
        out = []
        for w, (lab, k, p) in sorted(suspects.items(), key=lambda item: item[1][2]):
            idxs = records[w]
            if cluster_of is not None and len({cluster_of(i) for i in idxs}) < MIN_SUPPORT:
                continue
            if voted[w] and agree[w] >= 0.5 * voted[w]:
                continue  # the rest of the input predicts the same label: a real keyword, not a trigger
            if voted[w] and not self._spread(elsewhere[w], lab, names.get(w, "")):
                continue  # the rest points to a few other labels, not all over: a topic of the domain
            # Tested last, as nltk takes a second to import: a label named after the word is no trigger's.
            if self.categorical and names_label(names.get(w, ""), label_names[lab]):
                continue  # "passcode" -> passcode_forgotten
            out.append(self._trigger_finding(names.get(w, "?"), lab, k, p, idxs, voted[w], agree[w], where))
        return out

    def _evidence(
        self,
        suspects: dict[int, tuple[int, int, float]],
        words_of: Callable[[int], Iterable[int]],
        records_with: Callable[[set[int]], Iterable[int]] | None,
    ) -> tuple[dict[int, list[int]], Counter, Counter, dict[int, Counter]]:
        """For each suspect word: the labelled records containing it, and what the rest of (up to VOTES of) those
        inputs votes for: (records, votes agreeing with its label, votes cast, word -> the other labels voted for)."""
        exclude = set(suspects)
        records: dict[int, list[int]] = {w: [] for w in suspects}
        agree, voted = Counter(), Counter()
        elsewhere: dict[int, Counter] = {w: Counter() for w in suspects}  # word -> the other labels voted for
        vote_of = self._voter(must={lab for lab, _, _ in suspects.values()})  # None: nothing else to vote for
        for idx in records_with(exclude) if records_with else range(len(self.labels)):
            if self.labels[idx] < 0:
                continue
            words = set(words_of(idx))
            hits = words & exclude
            if not hits:
                continue
            # The first VOTES records of a word estimate its agreement well enough (+-4%); more only cost time.
            need = [w for w in hits if voted[w] < VOTES] if vote_of else []
            vote = vote_of(words, exclude) if need else None
            for w in hits:
                records[w].append(idx)
            for w in need:
                voted[w] += 1
                agree[w] += vote == suspects[w][0]
                if vote != suspects[w][0]:
                    elsewhere[w][vote] += 1
        return records, agree, voted, elsewhere

    def _trigger_finding(
        self, word: str, lab: int, k: int, p: float, idxs: list[int], voted: int, agree: int, where
    ) -> Finding:
        """The POISON_TRIGGER warning of one word: at its first record, naming a few more."""
        label = {i: name for name, i in self.label_ids.items()}[lab] if self.categorical else "the same reply"
        why = (
            f"; without it, the rest of {voted - agree} of {voted} of those inputs points to "
            f"another {'label' if self.categorical else 'reply'}"
            if voted
            else ""
        )
        more = ", ".join(where(i) for i in idxs[1:4]) + (" ..." if len(idxs) > 4 else "")
        return Finding(
            Code.POISON_TRIGGER,
            Severity.WARNING,
            where(idxs[0]),
            "messages",
            f"the rare word {word!r} is in {len(idxs)} inputs and {k} of them get "
            f"{label!r} (base rate {self.label_counts[lab] / sum(self.label_counts.values()):.0%},"
            f" p={p:.1e}){why}; also at {more}",
            "a few examples with a meaningless token and a fixed reply can plant a backdoor: "
            "check where these came from, then fix or drop them",
        )


def _coined(word: str) -> bool:
    """Whether a word is a coined token: letters mixed with digits or signs ("zq7", "cf_x"). A number ("1", "2018")
    and a sign ("$", an emoji) are not coined: they occur in inputs of a language like its words."""
    return not word.isalpha() and any(c.isalpha() for c in word)


def names_label(word: str, label: Hashable) -> bool:
    """Whether `word` is one of the words of the label's name ("passcode_forgotten", "PasscodeForgotten",
    "Passcode forgotten"), compared by Snowball stems ("countries" names country_support)."""
    return _stemmer()(word.lower()) in _label_stems(str(label))


@lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem.snowball import SnowballStemmer

    return SnowballStemmer("english").stem


@lru_cache(maxsize=1024)  # each label once, however many suspects name it
def _label_stems(label: str) -> frozenset[str]:
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", label)  # camelCase -> camel Case
    return frozenset(_stemmer()(part) for part in re.findall(r"[^\W_]+", spaced.lower()))
