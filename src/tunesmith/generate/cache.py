"""The generation cache: an unchanged model, prompt and decoding setting is never generated twice.

    cache = GenerationCache.of_project(project)
    gens = generate_cached(backend, cases, Decoding(max_new_tokens=128), cache)

A key is the hash of the backend's fingerprint (model identity, adapter content, precision and device, or an
endpoint's URL and model name), the decoding settings (`Decoding.cache_settings()`), and the exact prompt the backend
sends (the rendered chat
template for local models, so a template change is a miss). A constrained decoding's settings hold its
`Constraint` (`{"constraint": constraint, ...}`), which enters the key as `constraint.key()`; settings without one
key exactly as they always did. Only greedy, successful generations are stored.
SQLite makes each write atomic: a process killed mid-evaluation keeps what it had generated, and the next run
generates only the rest.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tunesmith.generate.backends import Backend, Generation, PromptLike
from tunesmith.generate.decoding import Decoding


class GenerationCache:
    """A table of key -> generation (output, tokens, whether it hit the limit, latency, cost)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.commit()

    @classmethod
    def of_project(cls, project: str | Path) -> GenerationCache:
        """The project's cache, `.tunesmith/cache/generations.sqlite`, which every stage of a project shares."""
        return cls(Path(project) / ".tunesmith" / "cache" / "generations.sqlite")

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self.db.execute(f"SELECT key, value FROM generations WHERE key IN ({marks})", chunk):
                found[key] = json.loads(value)
        return found

    def put_many(self, items: dict[str, dict[str, Any]]) -> None:
        with self.db:  # one transaction: all of a batch or none
            self.db.executemany(
                "INSERT OR REPLACE INTO generations VALUES (?, ?)", [(k, json.dumps(v)) for k, v in items.items()]
            )

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]

    def close(self) -> None:
        self.db.close()


def cache_key(fingerprint: str, decoding: Decoding | dict[str, Any], prompt: str) -> str:
    if isinstance(decoding, Decoding):
        decoding = decoding.cache_settings()
    if decoding.get("constraint") is not None:
        decoding = {**decoding, "constraint": decoding["constraint"].key()}
    blob = json.dumps([fingerprint, decoding, prompt], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def generate_cached(
    backend: Backend,
    cases: Sequence[PromptLike],
    decoding: Decoding | dict[str, Any],
    cache: GenerationCache | None,
    batch_size: int = 16,
    label: str = "Generating",
    free: Sequence[Generation] | None = None,
) -> list[Generation]:
    """The backend's generations for `cases` in order, taking each from the cache when it is there and storing
    the new ones (those that did not fail) as each batch finishes. `decoding` may also be given in its
    `cache_settings()` form (a dict). With a constraint, `free` (the same cases' greedy replies decoded freely)
    saves generating a case whose free reply the backend says is also its constrained one (`Backend.settled`):
    a tuned model that answers in the schema anyway is decoded once, not twice."""
    if not isinstance(decoding, Decoding):
        decoding = Decoding.from_dict(decoding)
    constraint = decoding.constraint

    def run(todo: list, on_result=None) -> list:
        extra = {"constraint": constraint} if constraint is not None else {}  # test doubles may take no constraint
        return backend.generate(
            todo,
            max_new_tokens=decoding.max_new_tokens,
            batch_size=batch_size,
            label=label,
            no_repeat_ngram_size=decoding.no_repeat_ngram_size,
            on_result=on_result,
            **extra,
        )

    results: list = [None] * len(cases)
    keys: list[str] = []
    if cache is not None:
        settings = decoding.cache_settings()
        keys = [cache_key(backend.fingerprint, settings, backend.prompt_key(c)) for c in cases]
        hits = cache.get_many(keys)
        for i, key in enumerate(keys):
            if key in hits:
                results[i] = replace(Generation(**hits[key]), cached=True)
    settles = getattr(backend, "settled", None)  # a caller's own backend may not say
    if constraint is not None and free is not None and settles is not None:
        settled = {i: free[i] for i, r in enumerate(results) if r is None and settles(free[i], constraint)}
        for i, gen in settled.items():  # generated (or cached) once, as the free reply
            results[i] = gen
        if cache is not None:
            cache.put_many({keys[i]: gen.to_cache() for i, gen in settled.items()})
    missing = [i for i, r in enumerate(results) if r is None]

    def store(j: int, gen) -> None:  # as each batch finishes, so an interrupted evaluation keeps what it did
        if cache is not None and gen.error is None:
            cache.put_many({keys[missing[j]]: gen.to_cache()})

    for i, gen in zip(missing, run([cases[i] for i in missing], store) if missing else []):
        results[i] = gen
    return results
