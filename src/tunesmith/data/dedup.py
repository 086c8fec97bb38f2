"""Duplicates: exact (input and output hashed together), near (MinHash LSH over the user input, `datasketch`
signatures), conflicting answers to the same input, and near-duplicate clusters so a split never separates twins.

    pairs = near_duplicate_pairs(texts, threshold=0.8)            # [(i, j, jaccard)], i < j
    cluster_of = near_duplicate_clusters(records, threshold=0.8)   # record index -> cluster id

One index serves `data check`, `data split`, `data dedup` and the leakage check. It keeps, per text, its words as
ids in one flat array, 25 band keys and a 64-value MinHash sketch (about 4 bytes a word plus 456 bytes), so a
million records fit in a few hundred MB; datasketch's own in-memory LSH keeps a set and a bytes key per band and text, several KB each.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from functools import lru_cache
from typing import Callable

import numpy as np

from tunesmith.data.records import Record

NUM_PERM = 128
SKETCH = 64  # MinHash values kept per text for screening candidates (256 bytes)
MAX_BUCKET_PEERS = 64  # a record is compared with at most this many earlier records sharing a band bucket
_WORD = re.compile(r"\w+", re.UNICODE)
_MIX = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9)
_MASK32 = 0xFFFFFFFF


def normalize(text: str) -> str:
    """Lowercase, words only, single spaces: what makes two texts 'the same' for deduplication."""
    return " ".join(_WORD.findall(text.lower()))


def input_text(rec: Record) -> str:
    """The user-visible input of a conversation (non-system turns before the final reply)."""
    return "\n".join(str(m.get("content") or "") for m in rec.prompt if m.get("role") != "system")


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def text_hash(text: str) -> int:
    """A 64-bit hash of a text's normalized form (stable across processes and runs)."""
    return _hash64(normalize(text))


def exact_key(rec: Record) -> str:
    """Hash of normalized input and output together (the dataset checklist's dedup rule)."""
    blob = normalize(input_text(rec)) + "\x1f" + normalize(rec.reply or "")
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def input_key(rec: Record) -> str:
    return hashlib.sha256(normalize(input_text(rec)).encode("utf-8")).hexdigest()


class Vocabulary:
    """Words -> small integer ids, so texts are stored as 4-byte ids rather than strings."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def encode(self, text: str) -> list[int]:
        """Ids of the normalized words of `text` (new words get new ids)."""
        return self.encode_words(_WORD.findall(text.lower()))

    def encode_words(self, words: list[str]) -> list[int]:
        ids = self.ids
        return [ids.setdefault(w, len(ids)) for w in words]


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
    """

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold
        self.bands, self.rows = _banding(threshold)
        self._coef = np.random.default_rng(0).integers(1, 2**63, self.rows, dtype=np.uint64) | np.uint64(1)
        self.words = array("I")
        self.offsets = array("Q", [0])
        self.keys = array("Q")
        self.sketch = array("I")  # the first SKETCH MinHash values per text: a cheap Jaccard estimate
        self._pending: list[set[int]] = []

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def add(self, word_ids: list[int]) -> int:
        """Index one text (its word ids); returns its row number."""
        self.words.extend(word_ids)
        self.offsets.append(len(self.words))
        self._pending.append(shingle_hashes(word_ids))
        if len(self._pending) >= BATCH:
            self._flush()
        return len(self) - 1

    def _flush(self) -> None:
        """Signatures of the pending texts -> their band keys and sketches."""
        if not self._pending:
            return
        sig = minhash_signatures(self._pending)
        self._pending = []
        self.sketch.frombytes(np.ascontiguousarray(sig[:, :SKETCH]).tobytes())
        bands = sig[:, : self.bands * self.rows].astype(np.uint64).reshape(len(sig), self.bands, self.rows)
        with np.errstate(over="ignore"):
            self.keys.frombytes((bands * self._coef).sum(axis=2).astype(np.uint64).tobytes())

    def _shingles(self, row: int) -> set[int]:
        return shingle_hashes(self.words[self.offsets[row]:self.offsets[row + 1]])

    def candidates(self) -> np.ndarray:
        """Row pairs (i < j), shape (m, 2), that share at least one band bucket; each row is compared with at most
        MAX_BUCKET_PEERS earlier rows of a bucket. Vectorized: one pass per band and distance within a bucket."""
        self._flush()
        n = len(self)
        if n < 2:
            return np.empty((0, 2), dtype=np.int64)
        keys = np.frombuffer(self.keys, dtype=np.uint64).reshape(n, self.bands)
        codes = []
        for band in range(self.bands):
            order = np.argsort(keys[:, band], kind="stable")  # equal keys stay in row order
            sorted_keys = keys[order, band]
            for d in range(1, MAX_BUCKET_PEERS + 1):
                same = np.flatnonzero(sorted_keys[d:] == sorted_keys[:-d])
                if not len(same):
                    break  # no bucket has more than d members
                codes.append(order[same].astype(np.int64) * n + order[same + d])
        if not codes:
            return np.empty((0, 2), dtype=np.int64)
        unique = np.unique(np.concatenate(codes))
        return np.stack([unique // n, unique % n], axis=1)

    def pairs(self) -> list[tuple[int, int, float]]:
        """(i, j, Jaccard) for every verified pair i < j at or above the threshold, sorted.

        Candidates are first screened by the Jaccard estimate of their MinHash sketches (vectorized; a margin of
        three standard deviations below the threshold), and only the survivors get the exact shingle Jaccard.
        """
        found = self.candidates()
        if not len(found):
            return []
        sketch = np.frombuffer(self.sketch, dtype=np.uint32).reshape(len(self), SKETCH)
        estimate = np.empty(len(found))
        for start in range(0, len(found), 1 << 16):  # chunks keep the comparison matrix small
            chunk = found[start:start + (1 << 16)]
            estimate[start:start + len(chunk)] = (sketch[chunk[:, 0]] == sketch[chunk[:, 1]]).mean(axis=1)
        margin = 3 * np.sqrt(self.threshold * (1 - self.threshold) / SKETCH)
        cache: dict[int, set] = {}

        def shingles(row: int) -> set:
            if row not in cache:
                if len(cache) > 100_000:  # bounded: a million-record check must not keep every set
                    cache.clear()
                cache[row] = self._shingles(row)
            return cache[row]

        out = []
        for i, j in found[estimate >= self.threshold - margin].tolist():
            a, b = shingles(i), shingles(j)
            inter = len(a & b)
            score = inter / (len(a) + len(b) - inter)
            if score >= self.threshold:
                out.append((i, j, score))
        return out


def near_duplicate_pairs(texts: list[str], threshold: float = 0.8) -> list[tuple[int, int, float]]:
    """(i, j, Jaccard) for every pair i < j whose word 3-shingles are at least `threshold` similar."""
    vocab, index = Vocabulary(), NearDupIndex(threshold)
    for text in texts:
        index.add(vocab.encode(text))
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
    """Cluster id per record: records joined by equal or near-duplicate inputs share one (union-find)."""
    uf = UnionFind(len(records))
    first_by_input: dict[str, int] = {}
    for i, rec in enumerate(records):
        key = input_key(rec)
        if key in first_by_input:
            uf.union(i, first_by_input[key])
        else:
            first_by_input[key] = i
    for i, j, _ in near_duplicate_pairs([input_text(r) for r in records], threshold):
        uf.union(i, j)
    return [uf.find(i) for i in range(len(records))]


class DuplicateTracker:
    """Exact duplicates and conflicting answers as records stream in; near-duplicate inputs when `finish`ed.

    State per record: two 64-bit hashes in dicts and the input's words as ids in the near-duplicate index (only
    the first record of each distinct input is indexed; later ones are exact duplicates or conflicts already).
    """

    def __init__(self, threshold: float = 0.8) -> None:
        self.vocab, self.index = Vocabulary(), NearDupIndex(threshold)
        self.row_record = array("I")  # index row -> the first record with that input
        self.row_of_record = array("I")  # record -> its input's row (for the poisoning check's words)
        self.first_input: dict[int, int] = {}  # input hash -> row
        self.first_exact: dict[int, int] = {}  # hash of input and reply -> first record
        self.first_reply = array("Q")  # row -> reply hash of its first record

    def words(self, idx: int) -> array:
        """Word ids of record `idx`'s input."""
        row = self.row_of_record[idx]
        return self.index.words[self.index.offsets[row]:self.index.offsets[row + 1]]

    def add(self, idx: int, rec: Record, where: Callable[[int], str]) -> list:
        """Index record `idx`; returns a finding if it repeats or contradicts an earlier record."""
        from tunesmith.data.checks import Code, Finding, Severity

        words = _WORD.findall(input_text(rec).lower())
        in_hash = _hash64(" ".join(words))
        reply_hash = text_hash(rec.reply or "")
        exact = in_hash ^ (reply_hash * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF)
        row = self.first_input.get(in_hash)
        if row is None:
            row = self.first_input[in_hash] = self.index.add(self.vocab.encode_words(words))
            self.row_record.append(idx)
            self.first_reply.append(reply_hash)
        self.row_of_record.append(row)
        twin = self.first_exact.setdefault(exact, idx)
        if twin != idx:
            return [Finding(Code.DUPLICATE_EXACT, Severity.WARNING, rec.where, "messages",
                            f"same input and reply as {where(twin)}",
                            "drop it (`tunesmith data dedup`); duplicates overweight one example")]
        if self.first_reply[row] != reply_hash:
            return [Finding(Code.CONFLICTING_ANSWER, Severity.WARNING, rec.where, "messages[-1].content",
                            f"the same input as {where(self.row_record[row])} has a different reply",
                            "decide which reply is right and keep one; the model learns the average")]
        return []

    def finish(self, where: Callable[[int], str]) -> list:
        """NEAR_DUPLICATE findings: each later record of a verified near-duplicate pair, once, naming its twin."""
        from tunesmith.data.checks import Code, Finding, Severity

        out, seen = [], set()
        for a, b, score in self.index.pairs():
            if b in seen:
                continue
            seen.add(b)
            out.append(Finding(Code.NEAR_DUPLICATE, Severity.INFO, where(self.row_record[b]), "messages",
                               f"input is {score:.0%} similar to {where(self.row_record[a])}",
                               "vary the phrasing or drop one; near-twins inflate held-out scores"))
        return out


def duplicate_findings(records: list[Record], threshold: float = 0.8) -> list:
    """Exact duplicates, conflicting answers and near-duplicate inputs of a list (each names its twin)."""
    tracker = DuplicateTracker(threshold)
    where = lambda i: records[i].where  # noqa: E731
    out = [f for i, rec in enumerate(records) for f in tracker.add(i, rec, where)]
    return out + tracker.finish(where)


def dedup_records(records: list[Record], near: bool = True,
                  threshold: float = 0.8) -> tuple[list[Record], list[tuple[Record, str]]]:
    """(kept, dropped with reason): the first of each exact duplicate (and near-duplicate cluster) is kept."""
    groups = near_duplicate_clusters(records, threshold) if near else None
    seen_exact: dict[str, Record] = {}
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
