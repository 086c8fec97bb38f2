"""IFEval verifiable-instruction checks, offline (Zhou et al. 2023, "Instruction-Following Evaluation for LLMs").

Each of IFEval's 25 instruction ids maps to a small pure checker that reproduces the reference logic of
google-research ``instruction_following_eval/instructions.py`` (also vendored by lm-evaluation-harness), without
nltk and without network access:

* words are ``re.findall(r"\\w+", text)`` (what the reference's ``RegexpTokenizer(r"\\w+")`` returns);
* sentences come from a port of the reference's regex ``split_into_sentences`` (no punkt model);
* languages are detected with ``langdetect`` (seeded, imported lazily); a detection failure counts as followed,
  as the reference does.

These text measures live in `tunesmith.eval.instruction_text`.

Usage::

    from tunesmith.eval.instructions import accuracy, check_all, follows, follows_loose, kwargs_problem

    kwargs_problem("punctuation:no_comma", {})                       # None: nothing is missing
    follows("punctuation:no_comma", {}, "No commas here.")           # True  (strict criterion)
    follows("startend:quotation", {}, 'Sure:\\n"Hi"')                 # False
    follows_loose("startend:quotation", {}, 'Sure:\\n"Hi"')           # True  (first line dropped)
    result = check_all(["keywords:existence", "detectable_format:title"],
                       [{"keywords": ["tea"]}, {}], "<<Tea>> Green tea is nice.")
    result.prompt_strict                                              # True
    accuracy([result])  # {"prompt_strict": 1.0, "prompt_loose": 1.0, "instruction_strict": 1.0, ...}

Arguments use IFEval's own kwargs names; keys whose value is None (IFEval dumps fill every instruction's kwargs
dict with every key) are ignored, as are keys the instruction does not take.
"""

from __future__ import annotations

import collections
import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tunesmith.eval.instruction_text import count_sentences, count_words, detect_language, word_tokens

_RELATIONS = ("less than", "at least")
_CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


# --------------------------------------------------------------------------------------------------- text helpers


def _regex_or_literal(pattern: str) -> str:
    """The reference uses keyword arguments as regexes unescaped; keep that, but fall back to a literal match when
    the text is not a valid regex (e.g. "C++"), where the reference would crash."""
    try:
        re.compile(pattern)
    except re.error:
        return re.escape(pattern)
    return pattern


def _compare(count: int, relation: str, threshold: int) -> bool:
    """'less than' is strict, 'at least' inclusive, as in the reference."""
    return count < threshold if relation == "less than" else count >= threshold


# ------------------------------------------------------------------------------------------------------ checkers
# Each checker takes (response, args) where args holds validated, None-free kwargs; all are pure.

Checker = Callable[[str, Mapping[str, Any]], bool]


def _keywords_exist(r: str, a: Mapping[str, Any]) -> bool:
    return all(re.search(_regex_or_literal(k), r, flags=re.IGNORECASE) for k in a["keywords"])


def _keyword_frequency(r: str, a: Mapping[str, Any]) -> bool:
    found = re.findall(_regex_or_literal(a["keyword"].strip()), r, flags=re.IGNORECASE)
    return _compare(len(found), a["relation"], a["frequency"])


def _forbidden_words(r: str, a: Mapping[str, Any]) -> bool:
    return not any(
        re.search(r"\b" + _regex_or_literal(w) + r"\b", r, flags=re.IGNORECASE) for w in a["forbidden_words"]
    )


def _letter_frequency(r: str, a: Mapping[str, Any]) -> bool:
    count = collections.Counter(r.lower())[a["letter"].strip().lower()]
    return _compare(count, a["let_relation"], a["let_frequency"])


def _response_language(r: str, a: Mapping[str, Any]) -> bool:
    found = detect_language(r)
    return found is None or found == a["language"]  # undetectable counts as followed, as the reference does


def _number_sentences(r: str, a: Mapping[str, Any]) -> bool:
    return _compare(count_sentences(r), a["relation"], a["num_sentences"])


def _number_paragraphs(r: str, a: Mapping[str, Any]) -> bool:
    # Paragraphs are split on the markdown divider "***" (with one optional space either side). Empty leading or
    # trailing pieces are dropped; an empty piece in the middle (two dividers in a row) fails outright.
    parts = re.split(r"\s?\*\*\*\s?", r)
    count = len(parts)
    for i, part in enumerate(parts):
        if not part.strip():
            if i not in (0, len(parts) - 1):
                return False
            count -= 1
    return count == a["num_paragraphs"]


def _number_words(r: str, a: Mapping[str, Any]) -> bool:
    return _compare(count_words(r), a["relation"], a["num_words"])


def _nth_paragraph_first_word(r: str, a: Mapping[str, Any]) -> bool:
    parts = re.split(r"\n\n", r)
    count = sum(1 for p in parts if p.strip())
    nth = a["nth_paragraph"]
    # As the reference does: the count skips empty pieces but the index goes into the raw split, so an empty piece
    # before paragraph n shifts the lookup.
    if nth > count or not parts[nth - 1].strip():
        return False
    word = parts[nth - 1].strip().split()[0].strip().lstrip("'").lstrip('"')
    first = ""
    for ch in word:
        if ch in ".,?!'\"":
            break
        first += ch.lower()
    return count == a["num_paragraphs"] and first == a["first_word"].lower()


def _number_placeholders(r: str, a: Mapping[str, Any]) -> bool:
    return len(re.findall(r"\[.*?\]", r)) >= a["num_placeholders"]


def _postscript(r: str, a: Mapping[str, Any]) -> bool:
    marker = a["postscript_marker"].strip()
    # Not anchored to a line start: the marker anywhere in the text counts, as the reference does.
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + _regex_or_literal(marker.lower()) + r".*$"
    return bool(re.findall(pattern, r.lower(), flags=re.MULTILINE))


def _number_bullets(r: str, a: Mapping[str, Any]) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", r, flags=re.MULTILINE)  # "* item", not "**bold**"
    dashes = re.findall(r"^\s*-.*$", r, flags=re.MULTILINE)
    return len(stars) + len(dashes) == a["num_bullets"]  # exact count


def _constrained_response(r: str, a: Mapping[str, Any]) -> bool:
    return any(option in r.strip() for option in _CONSTRAINED_OPTIONS)  # contains, case-sensitive


def _number_highlights(r: str, a: Mapping[str, Any]) -> bool:
    # Both *x* and **x** count, each once: the single-star pattern only sees the empty "**" pairs of a bold span.
    single = [h for h in re.findall(r"\*[^\n\*]*\*", r) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", r) if h[2:-2].strip()]
    return len(single) + len(double) >= a["num_highlights"]


def _multiple_sections(r: str, a: Mapping[str, Any]) -> bool:
    # Case-sensitive split on "<spliter> <number>"; the text before the first marker is not a section.
    pattern = r"\s?" + _regex_or_literal(a["section_spliter"].strip()) + r"\s?\d+\s?"
    return len(re.split(pattern, r)) - 1 >= a["num_sections"]


def _json_format(r: str, a: Mapping[str, Any]) -> bool:
    text = r.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        text = text.removeprefix(fence)  # chained removeprefix, as the reference does
    text = text.removesuffix("```").strip()
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _title(r: str, a: Mapping[str, Any]) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", r))


def _two_responses(r: str, a: Mapping[str, Any]) -> bool:
    parts = r.split("******")
    kept = []
    for i, part in enumerate(parts):
        if part.strip():
            kept.append(part)
        elif i not in (0, len(parts) - 1):
            return False
    return len(kept) == 2 and kept[0].strip() != kept[1].strip()


def _repeat_prompt(r: str, a: Mapping[str, Any]) -> bool:
    return r.strip().lower().startswith(a["prompt_to_repeat"].strip().lower())


def _end_checker(r: str, a: Mapping[str, Any]) -> bool:
    return r.strip().strip('"').lower().endswith(a["end_phrase"].strip().lower())


def _capital_word_frequency(r: str, a: Mapping[str, Any]) -> bool:
    count = sum(1 for w in word_tokens(r) if w.isupper())
    return _compare(count, a["capital_relation"], a["capital_frequency"])


def _english_capital(r: str, a: Mapping[str, Any]) -> bool:
    # Detection is only reached for all-caps text; if it fails there the check passes, as the reference does.
    return r.isupper() and detect_language(r) in ("en", None)


def _english_lowercase(r: str, a: Mapping[str, Any]) -> bool:
    return r.islower() and detect_language(r) in ("en", None)


def _no_comma(r: str, a: Mapping[str, Any]) -> bool:
    return "," not in r


def _quotation(r: str, a: Mapping[str, Any]) -> bool:
    text = r.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


# ----------------------------------------------------------------------------------------------- argument specs


def _int_problem(v: Any) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else "a non-negative integer"


def _str_problem(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "a non-empty string"


def _list_problem(v: Any) -> str | None:
    ok = isinstance(v, (list, tuple)) and v and all(isinstance(x, str) and x for x in v)
    return None if ok else "a non-empty list of non-empty strings"


def _relation_problem(v: Any) -> str | None:
    return None if v in _RELATIONS else "'less than' or 'at least'"


def _letter_problem(v: Any) -> str | None:
    return None if isinstance(v, str) and len(v.strip()) == 1 else "a single letter"


_I, _S, _L, _R = _int_problem, _str_problem, _list_problem, _relation_problem

# id -> (checker, ((argument, validator), ...)), in IFEval's order.
_SPECS: dict[str, tuple[Checker, tuple[tuple[str, Callable[[Any], str | None]], ...]]] = {
    "keywords:existence": (_keywords_exist, (("keywords", _L),)),
    "keywords:frequency": (_keyword_frequency, (("keyword", _S), ("frequency", _I), ("relation", _R))),
    "keywords:forbidden_words": (_forbidden_words, (("forbidden_words", _L),)),
    "keywords:letter_frequency": (
        _letter_frequency,
        (("letter", _letter_problem), ("let_frequency", _I), ("let_relation", _R)),
    ),
    "language:response_language": (_response_language, (("language", _S),)),
    "length_constraints:number_sentences": (_number_sentences, (("num_sentences", _I), ("relation", _R))),
    "length_constraints:number_paragraphs": (_number_paragraphs, (("num_paragraphs", _I),)),
    "length_constraints:number_words": (_number_words, (("num_words", _I), ("relation", _R))),
    "length_constraints:nth_paragraph_first_word": (
        _nth_paragraph_first_word,
        (("num_paragraphs", _I), ("nth_paragraph", _I), ("first_word", _S)),
    ),
    "detectable_content:number_placeholders": (_number_placeholders, (("num_placeholders", _I),)),
    "detectable_content:postscript": (_postscript, (("postscript_marker", _S),)),
    "detectable_format:number_bullet_lists": (_number_bullets, (("num_bullets", _I),)),
    "detectable_format:constrained_response": (_constrained_response, ()),
    "detectable_format:number_highlighted_sections": (_number_highlights, (("num_highlights", _I),)),
    "detectable_format:multiple_sections": (_multiple_sections, (("section_spliter", _S), ("num_sections", _I))),
    "detectable_format:json_format": (_json_format, ()),
    "detectable_format:title": (_title, ()),
    "combination:two_responses": (_two_responses, ()),
    "combination:repeat_prompt": (_repeat_prompt, (("prompt_to_repeat", _S),)),
    "startend:end_checker": (_end_checker, (("end_phrase", _S),)),
    "change_case:capital_word_frequency": (
        _capital_word_frequency,
        (("capital_frequency", _I), ("capital_relation", _R)),
    ),
    "change_case:english_capital": (_english_capital, ()),
    "change_case:english_lowercase": (_english_lowercase, ()),
    "punctuation:no_comma": (_no_comma, ()),
    "startend:quotation": (_quotation, ()),
}

INSTRUCTION_IDS: tuple[str, ...] = tuple(_SPECS)


def _suggest(instruction_id: str) -> str | None:
    close = difflib.get_close_matches(instruction_id, INSTRUCTION_IDS, n=1, cutoff=0.6)
    if close:
        return close[0]
    # "no_comma" or "title" alone: match on the part after the colon.
    tails = {i.split(":", 1)[1]: i for i in INSTRUCTION_IDS}
    close = difflib.get_close_matches(instruction_id.split(":")[-1], list(tails), n=1, cutoff=0.6)
    return tails[close[0]] if close else None


def kwargs_problem(instruction_id: str, kwargs: Mapping[str, Any] | None) -> str | None:
    """None when the id is known and ``kwargs`` has every argument it needs with the right type; otherwise a short
    message naming the unknown id (with a close-match suggestion) or the missing or bad argument.

    None-valued keys count as absent; keys the instruction does not take are ignored.
    """
    spec = _SPECS.get(instruction_id)
    if spec is None:
        hint = _suggest(instruction_id)
        return f"unknown instruction id {instruction_id!r}" + (f"; did you mean {hint!r}?" if hint else "")
    args = {k: v for k, v in (kwargs or {}).items() if v is not None}
    for name, problem_of in spec[1]:
        if name not in args:
            return f"{instruction_id}: missing argument {name!r}"
        expected = problem_of(args[name])
        if expected:
            return f"{instruction_id}: argument {name!r} must be {expected}, got {args[name]!r}"
    if instruction_id == "length_constraints:nth_paragraph_first_word" and not (
        1 <= args["nth_paragraph"] <= args["num_paragraphs"]
    ):
        return f"{instruction_id}: 'nth_paragraph' must be between 1 and num_paragraphs ({args['num_paragraphs']})"
    return None


def _checker(instruction_id: str, kwargs: Mapping[str, Any] | None) -> Callable[[str], bool]:
    problem = kwargs_problem(instruction_id, kwargs)
    if problem:
        raise ValueError(problem)
    check, params = _SPECS[instruction_id]
    args = {name: kwargs[name] for name, _ in params} if kwargs else {}
    # An empty (or all-whitespace) response follows nothing, as the reference's `response.strip() and ...` has it.
    return lambda text: bool(text.strip()) and check(text, args)


def follows(instruction_id: str, kwargs: Mapping[str, Any] | None, response: str, prompt: str = "") -> bool:
    """IFEval's strict criterion: does ``response`` itself follow the instruction?

    Raises ValueError (with :func:`kwargs_problem`'s message) on an unknown id or bad kwargs. ``prompt`` is
    accepted for parity with the reference API; none of the 25 checks reads it (repeat_prompt uses its
    ``prompt_to_repeat`` argument, since the prompt holds more than the part to repeat).
    """
    del prompt
    return _checker(instruction_id, kwargs)(response)


def loose_variants(response: str) -> list[str]:
    """The reference's 8 loose-criterion variants: the response, without its first line, without its last, without
    both, and each of those with every '*' removed. The trimmed ones are stripped; the full ones are not."""
    lines = response.split("\n")
    trimmed = [response, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return trimmed + [t.replace("*", "") for t in trimmed]


def follows_loose(instruction_id: str, kwargs: Mapping[str, Any] | None, response: str, prompt: str = "") -> bool:
    """The paper's loose criterion: true when any of the 8 :func:`loose_variants` passes (an empty variant does
    not count). Raises ValueError like :func:`follows`."""
    del prompt
    check = _checker(instruction_id, kwargs)
    return any(check(variant) for variant in loose_variants(response))


# ------------------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class InstructionResult:
    """Per-instruction strict and loose outcomes for one prompt's response."""

    ids: tuple[str, ...]
    strict: tuple[bool, ...]
    loose: tuple[bool, ...]

    @property
    def prompt_strict(self) -> bool:
        """Every instruction passes under the strict criterion."""
        return all(self.strict)

    @property
    def prompt_loose(self) -> bool:
        """Every instruction passes under the loose criterion."""
        return all(self.loose)


def check_all(
    instruction_ids: Sequence[str], kwargs_list: Sequence[Mapping[str, Any] | None], response: str, prompt: str = ""
) -> InstructionResult:
    """Check every instruction of one IFEval prompt against ``response`` (strict and loose).

    ``kwargs_list[i]`` belongs to ``instruction_ids[i]``; raises ValueError when the lengths differ or any id or
    kwargs is bad.
    """
    del prompt  # see follows()
    if len(instruction_ids) != len(kwargs_list):
        raise ValueError(f"{len(instruction_ids)} instruction ids but {len(kwargs_list)} kwargs dicts")
    variants = loose_variants(response)
    strict, loose = [], []
    for instruction_id, kwargs in zip(instruction_ids, kwargs_list):
        check = _checker(instruction_id, kwargs)
        strict.append(check(response))
        loose.append(strict[-1] or any(check(v) for v in variants[1:]))  # variants[0] is the response itself
    return InstructionResult(tuple(instruction_ids), tuple(strict), tuple(loose))


def accuracy(results: Sequence[InstructionResult]) -> dict[str, float]:
    """IFEval's four scores: prompt-level = share of prompts whose every instruction passes; instruction-level =
    share of all instructions that pass (strict and loose each). All 0.0 when there is nothing to score."""
    n_prompts = len(results)
    n_instructions = sum(len(r.ids) for r in results)
    return {
        "prompt_strict": sum(r.prompt_strict for r in results) / n_prompts if n_prompts else 0.0,
        "prompt_loose": sum(r.prompt_loose for r in results) / n_prompts if n_prompts else 0.0,
        "instruction_strict": sum(sum(r.strict) for r in results) / n_instructions if n_instructions else 0.0,
        "instruction_loose": sum(sum(r.loose) for r in results) / n_instructions if n_instructions else 0.0,
    }
