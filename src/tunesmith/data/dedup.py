"""Duplicates: exact (input and output hashed together), near (MinHash LSH over the user input, `datasketch`
signatures), conflicting answers to the same input, and near-duplicate clusters so a split never separates twins.

    pairs = near_duplicate_pairs(texts, threshold=0.8)            # [(i, j, jaccard)], i < j
    cluster_of = near_duplicate_clusters(records, threshold=0.8)   # record index -> cluster id

One index serves `data check`, `data split`, `data dedup` and the leakage check. It keeps, per text, its words as
ids in one flat array, 25 32-bit band keys, a 32-value MinHash sketch and two hashes (about 4 bytes a word plus
250 bytes); datasketch's own in-memory LSH keeps a set and a bytes key per band and text, several KB each.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from array import array
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import regex

from tunesmith.data.findings import Code, Finding, Severity
from tunesmith.data.records import Record

NUM_PERM = 128
SKETCH = 32  # MinHash values kept per text for screening candidates (128 bytes)
MAX_BUCKET_PEERS = 16  # a record is compared with at most this many earlier records sharing a band bucket
# What a text is made of, for deduplication: words; single characters of the scripts written without spaces
# between words (a Chinese sentence is not one word); and the signs that change what a text asks: "12 + 7", "12 * 7"
# and "12 / 7" are three questions, "😀" and "😢" two messages. Prose punctuation (. , ? ! ' " ( ) and the hyphen)
# is not a token: "top-up" and "top up", "Hello there!" and "hello there" are the same input. On Banking77, GSM8K,
# Alpaca and HH-RLHF this finds every near-duplicate pair that words alone found (tokens with the hyphen lost 28
# "top-up"/"top up" twins of Banking77's 118).
_UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
_TOKEN = regex.compile(
    rf"[{_UNSPACED}]\p{{M}}*"  # one character (with its marks) of a script written without spaces
    rf"|[^\W{_UNSPACED}]+"  # a word: letters, digits and their marks
    r"|[*/%#&@\\]|-(?=\s*\d)"  # operators written with punctuation marks; a minus before a number
    r"|(?=[^\w\s\p{P}\p{C}])\X"  # a symbol: + = < > ^ | ~, a currency sign, an emoji (with its modifiers)
)
_ASCII_TOKEN = re.compile(r"\w+|[*/%#&@\\$+<=>^`|~]|-(?=\s*\d)", re.ASCII)  # the same on ASCII text, ~4x faster
# Typographic quotes, dashes and ellipses are prose punctuation like the comma they become: most text with them is
# ASCII otherwise, and takes the fast way (HH-RLHF: 4,587 of 4,624 transcripts).
_TYPOGRAPHIC = re.compile("[\u2018\u2019\u201c\u201d\u2013\u2014\u2026]")
# Every currency sign reads as "$": "an extra £1 charge" and "an extra €1 charge" are twins, as they were when
# signs were dropped, while "$5" still differs from "5".
_CURRENCY = regex.compile(r"\p{Sc}")
_MIX = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9)
_MASK32 = 0xFFFFFFFF


def normalize(text: str) -> str:
    """Lowercase tokens (`words_of`), single spaces: what makes two texts 'the same' for deduplication."""
    return " ".join(words_of(text))


def input_text(rec: Record) -> str:
    """The user-visible input of a conversation (non-system turns before the final reply)."""
    return "\n".join(str(m.get("content") or "") for m in rec.prompt if m.get("role") != "system")


def hash64(text: str) -> int:
    """A stable 64-bit hash of a text as written (the same in every process and run, unlike `hash`)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def text_hash(text: str) -> int:
    """A 64-bit hash of a text's normalized form (stable across processes and runs)."""
    return hash64(normalize(text))


def exact_key(rec: Record) -> tuple[int, int]:
    """Normalized input and output hashed together (the dataset checklist's dedup rule)."""
    return input_key(rec), text_hash(rec.reply or "")


def input_key(rec: Record) -> int:
    """Hash of the normalized input: records with equal keys ask the same thing."""
    return text_hash(input_text(rec))


def words_of(text: str) -> list[str]:
    """The normalized tokens of a text, lowercase: its words, the characters of Chinese, Japanese, Korean or Thai
    text, and the signs that change its meaning (operators, currency signs, emoji), not its prose punctuation."""
    lowered = text.lower()
    if not lowered.isascii():
        lowered = _TYPOGRAPHIC.sub(",", lowered)
    if lowered.isascii():
        return _ASCII_TOKEN.findall(lowered)
    return _TOKEN.findall(_CURRENCY.sub("$", lowered))


def word_hashes(words: list[str], memo: dict[str, int] | None = None) -> list[int]:
    """A stable 32-bit id per word (the same in every process, unlike `hash`), so texts are stored as 4-byte ids
    with no vocabulary to share between workers. `memo` (word -> id) caches them and records every word seen."""
    if memo is None:
        return [zlib.crc32(w.encode("utf-8")) for w in words]
    out = []
    for w in words:
        i = memo.get(w)
        if i is None:
            i = memo[w] = zlib.crc32(w.encode("utf-8"))
        out.append(i)
    return out


def shingle_hashes(word_ids) -> set[int]:
    """32-bit hashes of a text's word 3-shingles (what datasketch's affine32 scheme hashes); a text under three
    words is one shingle, so two short texts only match when equal."""
    ids = list(word_ids)
    if len(ids) < 3:
        return {(sum(w * m for w, m in zip(ids, _MIX)) + len(ids)) & _MASK32}
    m0, m1, m2 = _MIX
    return {((a * m0 + b * m1 + c * m2) >> 16) & _MASK32 for a, b, c in zip(ids, ids[1:], ids[2:])}


@lru_cache(maxsize=8)
def _banding(threshold: float) -> tuple[int, int]:
    """(bands, rows) from datasketch's optimizer (a numerical integration: worth computing once)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=max(0.3, threshold - 0.2), num_perm=NUM_PERM, weights=(0.1, 0.9))
    return lsh.b, lsh.r


FMIX32 = (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)  # MurmurHash3's 32-bit finalizer, as datasketch's affine32 uses
BATCH = 1024  # texts whose signatures are computed in one vectorized pass


@lru_cache(maxsize=1)
def _permutations() -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutations (a, b) for NUM_PERM hash functions, seed 1."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=NUM_PERM, hashfunc=int).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def minhash_signatures(shingle_sets: list[set[int]]) -> np.ndarray:
    """MinHash signatures, shape (len(sets), NUM_PERM), equal to datasketch's `MinHash(scheme="affine32",
    hashfunc=int).update_batch(shingles).hashvalues` for each set, computed for all sets in one numpy pass
    (datasketch builds them one text at a time, ~50 us each; this is ~10x faster on a batch)."""
    a, b = _permutations()
    sizes = np.fromiter((len(s) for s in shingle_sets), dtype=np.int64, count=len(shingle_sets))
    hv = np.fromiter((h for s in shingle_sets for h in s), dtype=np.uint32, count=int(sizes.sum()))
    s1, m1, s2, m2, s3 = (np.uint32(c) for c in FMIX32)
    hv = hv ^ (hv >> s1)
    hv = hv * m1
    hv = hv ^ (hv >> s2)
    hv = hv * m2
    hv = hv ^ (hv >> s3)
    with np.errstate(over="ignore"):
        permuted = a[:, None] * hv + b[:, None]  # (NUM_PERM, all shingles), wrapping mod 2^32 like datasketch
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    return np.minimum.reduceat(permuted, starts, axis=1).T  # reducing along contiguous memory is ~3x faster


class NearDupIndex:
    """MinHash LSH over word 3-shingles: `add` texts (as word ids) one by one, then `pairs` verifies candidates
    with the exact Jaccard of their shingle sets.

    The banding (from datasketch's optimizer) is tuned for recall: an LSH threshold 0.2 below the wanted one and
    false negatives weighted 9:1; the exact verification then removes the strangers, so the MinHash estimate's
    noise (about +-0.03 at 128 permutations) neither hides a twin nor reports a stranger.

    Per text it keeps its word ids (4 bytes a word), one 32-bit key per band and a SKETCH-value MinHash sketch:
    about 4 bytes a word plus 228 bytes.
    """

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold
        self.bands, self.rows = _banding(threshold)
        self._coef = np.random.default_rng(0).integers(1, 2**63, self.rows, dtype=np.uint64) | np.uint64(1)
        self.words = array("I")
        self.offsets = array("Q", [0])
        self.keys = array("I")  # 32-bit band keys: a chance collision only adds a candidate, which is verified
        self.sketch = array("I")  # the first SKETCH MinHash values per text: a cheap Jaccard estimate
        self._pending: list[set[int] | bytes] = []

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def add(self, word_ids: list[int], signature: bytes | None = None) -> int:
        """Index one text: its word ids and, if already computed (`minhash_signatures`, as uint32 bytes), its
        signature. Returns its row number."""
        self.words.extend(word_ids)
        self.offsets.append(len(self.words))
        self._pending.append(signature if signature is not None else shingle_hashes(word_ids))
        if len(self._pending) >= BATCH:
            self._flush()
        return len(self) - 1

    def _flush(self) -> None:
        """Signatures of the pending texts -> their band keys and sketches."""
        if not self._pending:
            return
        todo = [p for p in self._pending if not isinstance(p, bytes)]
        computed = iter(minhash_signatures(todo)) if todo else iter(())
        sig = np.stack(
            [np.frombuffer(p, dtype=np.uint32) if isinstance(p, bytes) else next(computed) for p in self._pending]
        )
        self._pending = []
        self.sketch.frombytes(np.ascontiguousarray(sig[:, :SKETCH]).tobytes())
        bands = sig[:, : self.bands * self.rows].astype(np.uint64).reshape(len(sig), self.bands, self.rows)
        with np.errstate(over="ignore"):
            keys = (bands * self._coef).sum(axis=2)
        self.keys.frombytes((keys >> np.uint64(32)).astype(np.uint32).tobytes())

    def _shingles(self, row: int) -> set[int]:
        return shingle_hashes(self.words[self.offsets[row] : self.offsets[row + 1]])

    def candidates(self) -> np.ndarray:
        """Row pairs (i < j), shape (m, 2), that share a band bucket and whose sketches estimate a Jaccard within
        four standard deviations of the threshold (a true twin is screened out about once in 50,000). Each row is
        compared with at most MAX_BUCKET_PEERS earlier rows of a bucket. Vectorized, one band and bucket distance
        at a time, screening as it goes, so memory stays proportional to the texts even when templated texts fill
        huge buckets."""
        self._flush()
        n = len(self)
        if n < 2:
            return np.empty((0, 2), dtype=np.int64)
        keys = np.frombuffer(self.keys, dtype=np.uint32).reshape(n, self.bands)
        sketch = np.frombuffer(self.sketch, dtype=np.uint32).reshape(n, SKETCH)
        floor = self.threshold - 4 * np.sqrt(self.threshold * (1 - self.threshold) / SKETCH)
        kept = []
        for band in range(self.bands):
            order = np.argsort(keys[:, band], kind="stable")  # equal keys stay in row order
            sorted_keys = keys[order, band]
            for d in range(1, MAX_BUCKET_PEERS + 1):
                same = np.flatnonzero(sorted_keys[d:] == sorted_keys[:-d])
                if not len(same):
                    break  # no bucket has more than d members
                for start in range(0, len(same), 1 << 16):  # bounded comparison matrices
                    part = same[start : start + (1 << 16)]
                    i, j = order[part], order[part + d]
                    close = (sketch[i] == sketch[j]).mean(axis=1) >= floor
                    kept.append(i[close].astype(np.int64) * n + j[close])
            del order, sorted_keys
        if not kept:
            return np.empty((0, 2), dtype=np.int64)
        unique = np.unique(np.concatenate(kept))
        return np.stack([unique // n, unique % n], axis=1)

    def pairs(self, first_only: bool = False) -> list[tuple[int, int, float]]:
        """(i, j, Jaccard) for every verified pair i < j at or above the threshold, sorted by j then i: the
        screened candidates get the exact Jaccard of their shingle sets. With `first_only`, each j gets only its
        first verified twin (what a report needs), which spares verifying the rest of a template's crowd."""
        found = self.candidates()
        found = found[np.lexsort((found[:, 0], found[:, 1]))] if len(found) else found
        cache: dict[int, set] = {}

        def shingles(row: int) -> set:
            if row not in cache:
                if len(cache) > 100_000:  # bounded: a million-record check must not keep every set
                    cache.clear()
                cache[row] = self._shingles(row)
            return cache[row]

        out, done = [], -1
        for start in range(0, len(found), 1 << 16):  # Python ints a chunk at a time, not all at once
            for i, j in found[start : start + (1 << 16)].tolist():
                if first_only and j == done:
                    continue
                a, b = shingles(i), shingles(j)
                inter = len(a & b)
                score = inter / (len(a) + len(b) - inter)
                if score >= self.threshold:
                    out.append((i, j, score))
                    done = j
        return out


def near_duplicate_pairs(texts: list[str], threshold: float = 0.8) -> list[tuple[int, int, float]]:
    """(i, j, Jaccard) for every pair i < j whose word 3-shingles are at least `threshold` similar."""
    index = NearDupIndex(threshold)
    for text in texts:
        index.add(word_hashes(words_of(text)))
    return index.pairs()


class UnionFind:
    """Connected components over 0..n-1."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def near_duplicate_clusters(records: list[Record], threshold: float = 0.8) -> list[int]:
    """Cluster id per record: records joined by equal or near-duplicate inputs share one (every verified pair is
    an edge, so a split keeping clusters whole never separates twins)."""
    tracker = DuplicateTracker(threshold)
    for rec in records:
        tracker.add(record_keys(rec))
    first_input = _first_occurrence(np.array(tracker.input_hashes, dtype=np.uint64))
    clusters = _clusters(first_input, tracker.index.pairs())
    return [clusters.find(i) for i in range(len(records))]


class DuplicateTracker:
    """Exact duplicates, conflicting answers and near-duplicate inputs, over records added one by one.

    State per record: the hashes of its normalized input and reply (16 bytes) and its entry in the near-duplicate
    index. Everything is decided in `finish`, by sorting hashes, so nothing grows with a dict per record.
    """

    def __init__(self, threshold: float = 0.8) -> None:
        self.index = NearDupIndex(threshold)
        self.input_hashes = array("Q")
        self.reply_hashes = array("Q")
        self.clusters = UnionFind(0)

    def words(self, idx: int) -> array:
        """Word ids of record `idx`'s input."""
        return self.index.words[self.index.offsets[idx] : self.index.offsets[idx + 1]]

    def records_with(self, words: set[int]) -> list[int]:
        """Indexes of the records whose input contains any of `words` (vectorized over every stored word)."""
        stored = np.array(self.index.words, dtype=np.uint32)
        positions = np.flatnonzero(np.isin(stored, np.fromiter(words, dtype=np.uint32, count=len(words))))
        rows = np.searchsorted(np.array(self.index.offsets, dtype=np.int64), positions, side="right") - 1
        return np.unique(rows).tolist()

    def add(self, keys: RecordKeys) -> None:
        """Add the next record by its keys (records are numbered in the order they are added)."""
        self.index.add(keys.words, keys.signature)
        self.input_hashes.append(keys.input_hash)
        self.reply_hashes.append(keys.reply_hash)

    def finish(self, where: Callable[[int], str]) -> list:
        """Findings in record order: a repeated input and reply (DUPLICATE_EXACT) or a repeated input with another
        reply (CONFLICTING_ANSWER), each naming the first record; then each later record of a verified
        near-duplicate pair, once, naming its twin (NEAR_DUPLICATE)."""
        n = len(self.input_hashes)
        if not n:
            return []
        inputs = np.array(self.input_hashes, dtype=np.uint64)
        replies = np.array(self.reply_hashes, dtype=np.uint64)
        with np.errstate(over="ignore"):
            both = inputs ^ (replies * np.uint64(0x9E3779B97F4A7C15))
        first_input = _first_occurrence(inputs)
        first_both = _first_occurrence(both)
        out = []
        for idx in _repeats(first_input):
            if first_both[idx] != idx:
                out.append(
                    Finding(
                        Code.DUPLICATE_EXACT,
                        Severity.WARNING,
                        where(idx),
                        "messages",
                        f"same input and reply as {where(int(first_both[idx]))}",
                        "drop it (`tunesmith data dedup`); duplicates overweight one example",
                    )
                )
            elif replies[idx] != replies[first_input[idx]]:
                out.append(
                    Finding(
                        Code.CONFLICTING_ANSWER,
                        Severity.WARNING,
                        where(idx),
                        "messages[-1].content",
                        f"the same input as {where(int(first_input[idx]))} has a different reply",
                        "decide which reply is right and keep one; the model learns the average",
                    )
                )
        seen = set()
        pairs = self.index.pairs(first_only=True)
        for a, b, score in pairs:
            if first_input[a] != a or first_input[b] != b or b in seen:
                continue  # an equal input is reported above, and each record once
            seen.add(b)
            out.append(
                Finding(
                    Code.NEAR_DUPLICATE,
                    Severity.INFO,
                    where(b),
                    "messages",
                    f"input is {score:.0%} similar to {where(a)}",
                    "vary the phrasing or drop one; near-twins inflate held-out scores",
                )
            )
        self.clusters = _clusters(first_input, pairs)
        return out

    def cluster_of(self, idx: int) -> int:
        """After `finish`: one id per group of records joined by equal or near-duplicate inputs."""
        return self.clusters.find(idx)


def _repeats(first: np.ndarray) -> list[int]:
    """Positions that are not the first of their value (given `_first_occurrence`)."""
    return np.flatnonzero(first != np.arange(len(first))).tolist()


def _clusters(first_input: np.ndarray, pairs: list[tuple[int, int, float]]) -> UnionFind:
    """Records joined by an equal input (`_first_occurrence` of the input hashes) or a near-duplicate pair."""
    clusters = UnionFind(len(first_input))
    for idx in _repeats(first_input):
        clusters.union(idx, int(first_input[idx]))
    for a, b, _ in pairs:
        clusters.union(a, b)
    return clusters


def _first_occurrence(values: np.ndarray) -> np.ndarray:
    """For each position, the index of the first position holding the same value."""
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)]


class RecordKeys(NamedTuple):
    """What deduplication needs of a record: hashes of its normalized input and reply, and its input's word ids."""

    input_hash: int
    reply_hash: int
    words: list[int]
    signature: bytes | None = None  # MinHash signature (uint32), when computed ahead (e.g. by a worker)


def record_keys(rec: Record, memo: dict[str, int] | None = None) -> RecordKeys:
    """The record's keys; `memo` (word -> id) caches word ids and collects the vocabulary (to name words later)."""
    words = words_of(input_text(rec))
    return RecordKeys(hash64(" ".join(words)), text_hash(rec.reply or ""), word_hashes(words, memo))


def dedup_records(
    records: list[Record], near: bool = True, threshold: float = 0.8
) -> tuple[list[Record], list[tuple[Record, str]]]:
    """(kept, dropped with reason): the first of each exact duplicate (and near-duplicate cluster) is kept."""
    groups = near_duplicate_clusters(records, threshold) if near else None
    seen_exact: dict[tuple[int, int], Record] = {}
    seen_group: dict[int, Record] = {}
    kept, dropped = [], []
    for i, rec in enumerate(records):
        key = exact_key(rec)
        if key in seen_exact:
            dropped.append((rec, f"exact duplicate of {seen_exact[key].where}"))
        elif groups is not None and groups[i] in seen_group:
            dropped.append((rec, f"same or near-duplicate input as {seen_group[groups[i]].where}"))
        else:
            seen_exact[key] = rec
            if groups is not None:
                seen_group[groups[i]] = rec
            kept.append(rec)
    return kept, dropped
