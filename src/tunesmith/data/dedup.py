"""Duplicates: exact (input and output hashed together), near (MinHash LSH over the user input, `datasketch`),
conflicting answers to the same input, and near-duplicate clusters so a split never separates twins.

    findings = duplicate_findings(records, threshold=0.8)
    cluster_of = near_duplicate_clusters(records, threshold=0.8)   # record index -> cluster id
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict

from tunesmith.data.records import Record

NUM_PERM = 128
_WORD = re.compile(r"\w+", re.UNICODE)


def normalize(text: str) -> str:
    """Lowercase, words only, single spaces: what makes two texts 'the same' for deduplication."""
    return " ".join(_WORD.findall(text.lower()))


def input_text(rec: Record) -> str:
    """The user-visible input of a conversation (non-system turns before the final reply)."""
    return "\n".join(str(m.get("content") or "") for m in rec.prompt if m.get("role") != "system")


def exact_key(rec: Record) -> str:
    """Hash of normalized input and output together (the dataset checklist's dedup rule)."""
    blob = normalize(input_text(rec)) + "\x1f" + normalize(rec.reply or "")
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def input_key(rec: Record) -> str:
    return hashlib.sha256(normalize(input_text(rec)).encode("utf-8")).hexdigest()


def _shingles(text: str, k: int = 3) -> set[str]:
    words = normalize(text).split()
    if len(words) < k:  # a very short message is one shingle, so two short ones only match when equal
        return {" ".join(words)}
    return {" ".join(words[i:i + k]) for i in range(len(words) - k + 1)}


def near_duplicate_pairs(texts: list[str], threshold: float = 0.8) -> list[tuple[int, int, float]]:
    """(i, j, Jaccard) for every pair i < j whose word 3-shingles are at least `threshold` similar.

    MinHash LSH finds candidates; its banding is tuned for recall (a lower LSH threshold, false negatives weighted
    9:1) and every candidate is verified with the exact Jaccard of its shingle sets, so the estimate's noise
    (about +-0.03 at 128 permutations) neither hides a twin nor reports a stranger.
    """
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=max(0.3, threshold - 0.2), num_perm=NUM_PERM, weights=(0.1, 0.9))
    shingles = [_shingles(t) for t in texts]
    pairs = []
    for i, sh in enumerate(shingles):
        m = MinHash(num_perm=NUM_PERM)
        m.update_batch([s.encode("utf-8") for s in sh])
        for j in lsh.query(m):
            score = len(sh & shingles[j]) / len(sh | shingles[j])
            if score >= threshold:
                pairs.append((j, i, score))
        lsh.insert(i, m)
    return sorted(pairs)


def near_duplicate_clusters(records: list[Record], threshold: float = 0.8) -> list[int]:
    """Cluster id per record: records joined by equal or near-duplicate inputs share one (union-find)."""
    parent = list(range(len(records)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    first_by_input: dict[str, int] = {}
    for i, rec in enumerate(records):
        key = input_key(rec)
        if key in first_by_input:
            union(i, first_by_input[key])
        else:
            first_by_input[key] = i
    for i, j, _ in near_duplicate_pairs([input_text(r) for r in records], threshold):
        union(i, j)
    return [find(i) for i in range(len(records))]


def duplicate_findings(records: list[Record], threshold: float = 0.8) -> list:
    """Findings for exact duplicates, conflicting answers and near-duplicate inputs (each names its twin)."""
    from tunesmith.data.checks import Code, Finding, Severity

    out = []
    first_exact: dict[str, Record] = {}
    replies_by_input: dict[str, dict[str, Record]] = defaultdict(dict)
    reported: set[int] = set()  # records already reported as exact duplicates or conflicts
    inputs = [input_key(r) for r in records]
    for idx, rec in enumerate(records):
        key = exact_key(rec)
        if key in first_exact:
            reported.add(idx)
            out.append(Finding(Code.DUPLICATE_EXACT, Severity.WARNING, rec.where, "messages",
                               f"same input and reply as {first_exact[key].where}",
                               "drop it (`tunesmith data dedup`); duplicates overweight one example"))
        else:
            first_exact[key] = rec
        replies = replies_by_input[inputs[idx]]
        reply = normalize(rec.reply or "")
        if replies and reply not in replies:
            other = next(iter(replies.values()))
            out.append(Finding(Code.CONFLICTING_ANSWER, Severity.WARNING, rec.where, "messages[-1].content",
                               f"the same input as {other.where} has a different reply",
                               "decide which reply is right and keep one; the model learns the average"))
        replies.setdefault(reply, rec)
    for i, j, score in near_duplicate_pairs([input_text(r) for r in records], threshold):
        if j in reported or inputs[i] == inputs[j]:
            continue  # already reported as an exact duplicate or a conflict
        out.append(Finding(Code.NEAR_DUPLICATE, Severity.INFO, records[j].where, "messages",
                           f"input is {score:.0%} similar to {records[i].where}",
                           "vary the phrasing or drop one; near-twins inflate held-out scores"))
    return out


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
