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

Prompts that ship with tunesmith (read from a file in its package: the general probe, `builtin:self`'s everyday
prompts) are the same in every project, and so is a base model's reply to them. A project's cache also looks them
up in, and adds them to, one cache the machine's projects share (`machine_cache()`, under `TUNESMITH_HOME`, one
file per tunesmith, torch and transformers version): a second project on the same base model makes none of them
again. Only a backend that says so shares (`shares_shipped`: a local model without an adapter); a project's own
cases and a tuned model's replies stay in the project. `TUNESMITH_SHARED_CACHE=0` turns the sharing off.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tunesmith.generate.backends import Backend, Generation, PromptLike
from tunesmith.generate.decoding import Decoding

SHIPPED = str(Path(__file__).parents[1]) + os.sep  # tunesmith's package: a prompt read from a file in it ships


class GenerationCache:
    """A table of key -> generation (output, tokens, whether it hit the limit, latency, cost); `shared`: the
    machine's cache for prompts that ship with tunesmith, looked up after this one (None: not shared)."""

    def __init__(self, path: str | Path, shared: GenerationCache | None = None) -> None:
        self.shared = shared
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.commit()

    @classmethod
    def of_project(cls, project: str | Path) -> GenerationCache:
        """The project's cache, `.tunesmith/cache/generations.sqlite`, which every stage of a project shares."""
        return cls(Path(project) / ".tunesmith" / "cache" / "generations.sqlite", shared=machine_cache())

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


def machine_cache() -> GenerationCache | None:
    """The cache this machine's projects share for prompts that ship with tunesmith (`TUNESMITH_HOME/generations/`,
    a file per tunesmith, torch and transformers version, whose upgrades may change a greedy reply), or None with
    `TUNESMITH_SHARED_CACHE=0` or where it cannot be opened (a read-only home: each project then keeps its own)."""
    from importlib.metadata import PackageNotFoundError, version

    from tunesmith.builtin import cache_home

    if os.environ.get("TUNESMITH_SHARED_CACHE", "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    versions = []
    for package in ("tunesmith", "torch", "transformers"):
        try:
            versions.append(f"{package}-{version(package)}")
        except PackageNotFoundError:
            versions.append(f"{package}-none")
    try:
        return GenerationCache(cache_home() / "generations" / f"{'_'.join(versions)}.sqlite")
    except (OSError, sqlite3.Error):
        return None


def shipped(case: PromptLike) -> bool:
    """Whether the prompt was read from a file that ships with tunesmith (its `where` names one, by its path or as
    `builtin:NAME`)."""
    return str(getattr(case, "where", "") or "").startswith((SHIPPED, "builtin:"))


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
    shared = _sharing(cache, backend)
    if shared is not None:  # shipped prompts another project on this machine already had answered
        found = shared.get_many([keys[i] for i, r in enumerate(results) if r is None and shipped(cases[i])])
        for i, key in enumerate(keys):
            if results[i] is None and key in found:
                results[i] = replace(Generation(**found[key]), cached=True)
        cache.put_many(found)  # the project's own from now on
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
            if shared is not None and shipped(cases[missing[j]]):
                shared.put_many({keys[missing[j]]: gen.to_cache()})

    for i, gen in zip(missing, run([cases[i] for i in missing], store) if missing else []):
        results[i] = gen
    return results


def _sharing(cache: GenerationCache | None, backend: Backend) -> GenerationCache | None:
    """The machine's cache when this project cache has one and the backend shares its replies to shipped prompts."""
    shared = getattr(cache, "shared", None)
    return shared if shared is not None and getattr(backend, "shares_shipped", False) else None
