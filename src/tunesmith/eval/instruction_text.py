"""The text measures IFEval's checks count with, offline: words (``\\w+`` runs), sentences (a port of the
reference's regex splitter, no punkt model), word tokens for the capital-word count (an approximation of nltk's
``word_tokenize``), and the language (``langdetect``, seeded, imported lazily)."""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

logger = logging.getLogger("tunesmith.eval.instructions")


def count_words(text: str) -> int:
    """Number of ``\\w+`` runs, identical to the reference's nltk ``RegexpTokenizer(r"\\w+")``."""
    return len(re.findall(r"\w+", text))


_ALPHABETS = "([A-Za-z])"
_PREFIXES = "(Mr|St|Mrs|Ms|Dr)[.]"
_SUFFIXES = "(Inc|Ltd|Jr|Sr|Co)"
_STARTERS = (
    r"(Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He\s|She\s|It\s|They\s|Their\s|Our\s|We\s|But\s|However\s|That\s"
    r"|This\s|Wherever)"
)
_ACRONYMS = "([A-Z][.][A-Z][.](?:[A-Z][.])?)"
_WEBSITES = "[.](com|net|org|io|gov|edu|me)"
_DIGITS = "([0-9])"
_MULTIPLE_DOTS = r"\.{2,}"


def split_into_sentences(text: str) -> list[str]:
    """Port of the reference's regex sentence splitter: protect abbreviation/number/URL dots as ``<prd>``, then
    cut after every remaining ``.``, ``?`` and ``!``."""
    text = (" " + text + "  ").replace("\n", " ")
    text = re.sub(_PREFIXES, "\\1<prd>", text)
    text = re.sub(_WEBSITES, "<prd>\\1", text)
    text = re.sub(_DIGITS + "[.]" + _DIGITS, "\\1<prd>\\2", text)
    text = re.sub(_MULTIPLE_DOTS, lambda m: "<prd>" * len(m.group(0)) + "<stop>", text)
    text = text.replace("Ph.D.", "Ph<prd>D<prd>")
    text = re.sub(r"\s" + _ALPHABETS + "[.] ", " \\1<prd> ", text)
    text = re.sub(_ACRONYMS + " " + _STARTERS, "\\1<stop> \\2", text)
    text = re.sub(_ALPHABETS + "[.]" + _ALPHABETS + "[.]" + _ALPHABETS + "[.]", "\\1<prd>\\2<prd>\\3<prd>", text)
    text = re.sub(_ALPHABETS + "[.]" + _ALPHABETS + "[.]", "\\1<prd>\\2<prd>", text)
    text = re.sub(" " + _SUFFIXES + "[.] " + _STARTERS, " \\1<stop> \\2", text)
    text = re.sub(" " + _SUFFIXES + "[.]", " \\1<prd>", text)
    text = re.sub(" " + _ALPHABETS + "[.]", " \\1<prd>", text)
    # Closing quotes move before the terminator so the quote stays inside its sentence.
    text = text.replace(".\u201d", "\u201d.").replace('."', '".').replace('!"', '"!').replace('?"', '"?')
    text = text.replace(".", ".<stop>").replace("?", "?<stop>").replace("!", "!<stop>")
    sentences = [s.strip() for s in text.replace("<prd>", ".").split("<stop>")]
    if sentences and not sentences[-1]:
        sentences = sentences[:-1]
    return sentences


def count_sentences(text: str) -> int:
    """Number of sentences per :func:`split_into_sentences` (the reference counts with nltk punkt instead)."""
    return len(split_into_sentences(text))


_CONTRACTION = re.compile(r"(?i)^(.+?)(n't|'s|'m|'d|'ll|'re|'ve)$")


def word_tokens(text: str) -> list[str]:
    """Approximates nltk ``word_tokenize`` for the capital-word count: hyphenated, dotted and slashed words stay one
    token ("WELL-KNOWN", "U.S"), punctuation is dropped, and clitics split off ("DON'T" -> "DO", "N'T")."""
    tokens: list[str] = []
    for token in re.findall(r"\w+(?:['\-./]\w+)*", text):
        match = _CONTRACTION.match(token)
        tokens.extend(match.groups() if match else (token,))
    return tokens


@functools.lru_cache(maxsize=1)
def _langdetect() -> Any:
    try:
        import langdetect
    except ImportError as exc:  # pragma: no cover - langdetect is a declared dependency
        raise ImportError("IFEval language checks need the 'langdetect' package: pip install langdetect") from exc
    langdetect.DetectorFactory.seed = 0  # deterministic detection
    return langdetect


def detect_language(text: str) -> str | None:
    """langdetect's ISO code for ``text``, or None when it cannot tell (no letters, say)."""
    langdetect = _langdetect()
    try:
        return langdetect.detect(text)
    except langdetect.LangDetectException as exc:
        logger.debug("language detection failed for %r: %s", text[:80], exc)
        return None
