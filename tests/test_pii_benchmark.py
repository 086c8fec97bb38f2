"""The PII accuracy benchmark as a fast check: a small labeled set, per-type recall and precision floors,
and the generator itself (planted cards, IBANs and SSNs are valid, planted look-alikes are not)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tunesmith.data.pii import iban_ok, luhn_ok

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "pii_accuracy.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("pii_accuracy", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()


@pytest.fixture(scope="module")
def samples():
    return bench.make_labeled_set(300, seed=1)


@pytest.fixture(scope="module")
def result(samples):
    return bench.score(bench.find_sensitive, samples)


def _digits(text):
    return re.sub(r"\D", "", text)


def _planted(samples, kind, decoys=False):
    return [s.text for sample in samples for s in (sample.decoys if decoys else sample.gold) if s.kind == kind]


def test_generator_is_reproducible_and_offsets_point_at_the_planted_text(samples):
    assert [s.text for s in bench.make_labeled_set(300, seed=1)] == [s.text for s in samples]
    spans = [(sample.text, span) for sample in samples for span in sample.gold + sample.decoys]
    assert spans and all(text[s.start : s.end] == s.text for text, s in spans)
    assert {s.kind for sample in samples for s in sample.gold} == set(bench.KINDS)


def test_planted_cards_ibans_and_ssns_are_valid_and_their_look_alikes_are_not(samples):
    assert all(luhn_ok(_digits(t)) for t in _planted(samples, "CARD"))
    assert all(iban_ok(t) for t in _planted(samples, "IBAN"))
    assert not any(luhn_ok(_digits(t)) for t in _planted(samples, "bad_card", decoys=True))
    assert not any(iban_ok(t) for t in _planted(samples, "bad_iban", decoys=True))
    for ssn in _planted(samples, "SSN"):
        area, group, serial = ssn.split("-")
        assert area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


@pytest.mark.parametrize("kind", bench.STRUCTURED)
def test_structured_types_are_found(result, kind):
    tally = result.tallies[kind]
    missed = [e for e in result.errors if e.kind == kind and e.what == "missed"][:3]
    assert tally.gold and tally.recall >= 0.99, missed


@pytest.mark.parametrize("kind", bench.KINDS)
def test_every_type_is_precise(result, kind):
    spurious = [e for e in result.errors if e.kind == kind and e.what == "false positive"][:3]
    assert result.tallies[kind].precision >= 0.95, spurious


def test_validation_beats_the_naive_baseline_on_precision(samples, result):
    base = bench.score(bench.baseline_detect, samples)
    assert result.micro.precision > base.micro.precision
