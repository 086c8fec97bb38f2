"""Duplicates: exact (input and output hashed together), near (MinHash LSH over the user input, `datasketch`
signatures), conflicting answers to the same input, and near-duplicate clusters so a split never separates twins.

    pairs = near_duplicate_pairs(texts, threshold=0.8)            # [(i, j, jaccard)], i < j
    cluster_of = near_duplicate_clusters(records, threshold=0.8)   # record index -> cluster id

One index serves `data check`, `data split`, `data dedup` and the leakage check. It keeps, per text, its words as
ids in one flat array and 25 band keys (about 4 bytes a word plus 200 bytes), so a million records fit in a few
hundred MB; datasketch's own in-memory LSH keeps a set and a bytes key per band and text, several KB each.
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
MAX_BUCKET_PEERS = 64  # a record is compared with at most this many earlier records sharing a band bucket
_WORD = re.compile(r"\w+", re.UNICODE)
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)


def normalize(text: str) -> str:
    """Lowercase, words only, single spaces: what makes two texts 'the same' for deduplication."""
    return " ".join(_WORD.findall(text.lower()))


def input_text(rec: Record) -> str:
    """The user-visible input of a conversation (non-system turns before the final reply)."""
    return "\n".join(str(m.get("content") or "") for m in rec.prompt if m.get("role") != "system")


def text_hash(text: str) -> int:
    """A 64-bit hash of a text's normalized form (stable across processes and runs)."""
    return int.from_bytes(hashlib.blake2b(normalize(text).encode("utf-8"), digest_size=8).digest(), "little")


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
        ids = self.ids
        return [ids.setdefault(w, len(ids)) for w in _WORD.findall(text.lower())]


def shingle_hashes(word_ids: np.ndarray) -> np.ndarray:
    """Sorted unique hashes of word 3-shingles; a text under three words is one shingle, so two short texts only
    match when equal."""
    w = word_ids.astype(np.uint64)
    with np.errstate(over="ignore"):
        if len(w) < 3:
            h = np.array([(w * _MIX[: len(w)]).sum() + np.uint64(len(w))], dtype=np.uint64)
        else:
            h = w[:-2] * _MIX[0] + w[1:-1] * _MIX[1] + w[2:] * _MIX[2]
    return np.unique(h >> np.uint64(32))  # 32-bit values: what datasketch's affine32 scheme hashes


@lru_cache(maxsize=8)
def _banding(threshold: float) -> tuple[int, int]:
    """(bands, rows) from datasketch's optimizer (a numerical integration: worth computing once)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=max(0.3, threshold - 0.2), num_perm=NUM_PERM, weights=(0.1, 0.9))
    return lsh.b, lsh.r


@lru_cache(maxsize=1)
def _prototype():
    from datasketch import MinHash

    return MinHash(num_perm=NUM_PERM, hashfunc=int)


class NearDupIndex:
    """MinHash LSH over word 3-shingles: `add` texts (as word ids) one by one, then `pairs` verifies candidates
    with the exact Jaccard of their shingle sets.

    The banding (from datasketch's optimizer) is tuned for recall: an LSH threshold 0.2 below the wanted one and
    false negatives weighted 9:1; the exact verification then removes the strangers, so the MinHash estimate's
    noise (about +-0.03 at 128 permutations) neither hides a twin nor reports a stranger.
    """

    def __init__(self, threshold: float = 0.8) -> None:
        from datasketch import MinHash

        self.threshold = threshold
        self.bands, self.rows = _banding(threshold)
        proto = _prototype()
        self._minhash = lambda: MinHash(num_perm=NUM_PERM, hashfunc=int, permutations=proto.permutations,
                                        scheme=proto.scheme)
        self._coef = np.random.default_rng(0).integers(1, 2**63, self.rows, dtype=np.uint64) | np.uint64(1)
        self.words = array("I")
        self.offsets = array("Q", [0])
        self.keys = array("Q")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def add(self, word_ids: list[int]) -> int:
        """Index one text (its word ids); returns its row number."""
        self.words.extend(word_ids)
        self.offsets.append(len(self.words))
        m = self._minhash()
        m.update_batch(shingle_hashes(np.asarray(word_ids, dtype=np.uint32)).tolist())
        sig = m.hashvalues[: self.bands * self.rows].astype(np.uint64).reshape(self.bands, self.rows)
        with np.errstate(over="ignore"):
            self.keys.extend((sig * self._coef).sum(axis=1).tolist())
        return len(self) - 1

    def _shingles(self, row: int) -> np.ndarray:
        return shingle_hashes(np.asarray(self.words[self.offsets[row]:self.offsets[row + 1]], dtype=np.uint32))

    def candidates(self) -> set[tuple[int, int]]:
        """Row pairs (i < j) that share at least one band bucket."""
        n = len(self)
        if n < 2:
            return set()
        keys = np.frombuffer(self.keys, dtype=np.uint64).reshape(n, self.bands).copy()
        found: set[tuple[int, int]] = set()
        for band in range(self.bands):
            col = keys[:, band]
            order = np.argsort(col, kind="stable")  # equal keys stay in row order
            sorted_keys = col[order]
            starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
            sizes = np.diff(np.r_[starts, n])
            for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
                members = order[start:start + size].tolist()
                for k in range(1, len(members)):
                    for i in members[max(0, k - MAX_BUCKET_PEERS):k]:
                        found.add((i, members[k]))
        return found

    def pairs(self) -> list[tuple[int, int, float]]:
        """(i, j, Jaccard) for every verified pair i < j at or above the threshold, sorted."""
        cache: dict[int, np.ndarray] = {}

        def shingles(row: int) -> np.ndarray:
            if row not in cache:
                cache[row] = self._shingles(row)
            return cache[row]

        out = []
        for i, j in sorted(self.candidates()):
            a, b = shingles(i), shingles(j)
            inter = len(np.intersect1d(a, b, assume_unique=True))
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

        text = input_text(rec)
        in_hash = text_hash(text)
        reply_hash = text_hash(rec.reply or "")
        exact = in_hash ^ (reply_hash * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF)
        row = self.first_input.get(in_hash)
        if row is None:
            row = self.first_input[in_hash] = self.index.add(self.vocab.encode(text))
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
