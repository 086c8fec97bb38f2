"""IFEval verifiable-instruction checks: every id passes and fails, loose vs strict, kwargs problems, scores."""

from __future__ import annotations

import pytest

from tunesmith.eval.instruction_text import count_sentences, split_into_sentences, word_tokens
from tunesmith.eval.instructions import (
    INSTRUCTION_IDS,
    InstructionResult,
    accuracy,
    check_all,
    follows,
    follows_loose,
    kwargs_problem,
)

FRENCH = "Bonjour, je m'appelle Pierre et j'habite à Paris depuis dix ans avec ma famille."
ENGLISH = "Hello, my name is Peter and I have lived in London for ten years with my family."

# (id, kwargs, response, expected strict result)
CASES = [
    ("keywords:existence", {"keywords": ["tea", "Kyoto"]}, "I drank TEA in kyoto.", True),
    ("keywords:existence", {"keywords": ["tea", "Kyoto"]}, "I drank tea in Osaka.", False),
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "at least"}, "Cat and cat.", True),
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "at least"}, "One cat.", False),
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "less than"}, "A category.", True),
    ("keywords:forbidden_words", {"forbidden_words": ["bad"]}, "A badge is fine.", True),
    ("keywords:forbidden_words", {"forbidden_words": ["bad"]}, "That is BAD.", False),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "at least"}, "Zz top", True),
    ("keywords:letter_frequency", {"letter": "Z", "let_frequency": 2, "let_relation": "at least"}, "z only", False),
    ("language:response_language", {"language": "fr"}, FRENCH, True),
    ("language:response_language", {"language": "fr"}, ENGLISH, False),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"}, "One. Two!", True),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"}, "One. Two? Three.", False),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First.\n***\nSecond.", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "***\nFirst.\n***\nSecond.\n***", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First.\n***\n***\nSecond.", False),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First.\n\nSecond.", False),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"}, "one two three four five", True),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"}, "one two-three four", False),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "Then"},
        'First.\n\n"Then, more."',
        True,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
        "First.\n\nNext.",
        False,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
        "First.\n\nThen.\n\nThird.",
        False,
    ),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], at [address].", True),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name].", False),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\nP.S. bye", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi. PS bye", False),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Hi.\np. p. s. later", True),
    ("detectable_content:postscript", {"postscript_marker": "Note:"}, "Hi.\nNOTE: later", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "**Intro**\n* a\n  - b", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* a\n* b\n- c", False),
    ("detectable_format:constrained_response", {}, "Well... My answer is maybe.", True),
    ("detectable_format:constrained_response", {}, "my answer is yes.", False),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and **two**", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and ** ** and *\nx*", False),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "Section", "num_sections": 2},
        "Section 1\nfoo\nSection 2\nbar",
        True,
    ),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "Section", "num_sections": 2},
        "section 1\nfoo\nsection 2\nbar",
        False,
    ),
    ("detectable_format:json_format", {}, '```json\n{"a": [1, 2]}\n```', True),
    ("detectable_format:json_format", {}, "{a: 1}", False),
    ("detectable_format:title", {}, "<<My Poem>>\nroses are red", True),
    ("detectable_format:title", {}, "<< >>\nroses are red", False),
    ("combination:two_responses", {}, "Answer A.\n******\nAnswer B.", True),
    ("combination:two_responses", {}, "Answer A.\n******\nAnswer A.", False),
    ("combination:two_responses", {}, "A\n******\n******\nB", False),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."}, "  write a POEM. Here it is.", True),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."}, "Sure! Write a poem.", False),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, 'Done. any other questions?"\n', True),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Any other questions? Bye.", False),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 3, "capital_relation": "at least"},
        "THIS IS VERY important",
        True,
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 3, "capital_relation": "at least"},
        "This is WELL-KNOWN stuff",
        False,
    ),
    ("change_case:english_capital", {}, ENGLISH.upper(), True),
    ("change_case:english_capital", {}, ENGLISH, False),
    ("change_case:english_capital", {}, FRENCH.upper(), False),
    ("change_case:english_lowercase", {}, ENGLISH.lower(), True),
    ("change_case:english_lowercase", {}, ENGLISH, False),
    ("punctuation:no_comma", {}, "No commas here.", True),
    ("punctuation:no_comma", {}, "Yes, one.", False),
    ("startend:quotation", {}, '  "Hello there."\n', True),
    ("startend:quotation", {}, "Hello there.", False),
    ("startend:quotation", {}, '"', False),
]


def test_ids_are_the_25_in_order():
    assert len(INSTRUCTION_IDS) == 25 == len(set(INSTRUCTION_IDS))
    assert INSTRUCTION_IDS[0] == "keywords:existence" and INSTRUCTION_IDS[-1] == "startend:quotation"


def test_every_id_has_a_passing_and_a_failing_case():
    outcomes = {(i, expected) for i, _, _, expected in CASES}
    for instruction_id in INSTRUCTION_IDS:
        assert (instruction_id, True) in outcomes and (instruction_id, False) in outcomes, instruction_id


@pytest.mark.parametrize(
    "instruction_id,kwargs,response,expected", CASES, ids=[f"{c[0]}-{c[3]}-{n}" for n, c in enumerate(CASES)]
)
def test_strict(instruction_id, kwargs, response, expected):
    assert kwargs_problem(instruction_id, kwargs) is None
    assert follows(instruction_id, kwargs, response) is expected
    if expected:  # loose is never stricter than strict
        assert follows_loose(instruction_id, kwargs, response) is True


@pytest.mark.parametrize(
    "instruction_id,kwargs,response",
    [
        ("startend:quotation", {}, 'Sure, here it is:\n"Hello world"'),
        ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Bye. **Any other questions?**"),
        (
            "length_constraints:nth_paragraph_first_word",
            {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "then"},
            "**Then** we start.\n\nAnd end.",
        ),
        ("detectable_format:json_format", {}, 'Here is the JSON:\n{"a": 1}'),
        ("punctuation:no_comma", {}, "Sure, here you go:\nNo commas at all\nHope that helps, bye"),
    ],
)
def test_loose_passes_where_strict_fails(instruction_id, kwargs, response):
    assert follows(instruction_id, kwargs, response) is False
    assert follows_loose(instruction_id, kwargs, response) is True


def test_empty_response_and_empty_variants_do_not_count():
    assert follows("punctuation:no_comma", {}, "") is False
    assert follows("punctuation:no_comma", {}, "  \n ") is False
    # Dropping the only line leaves "", which does not count, so loose cannot rescue a one-line failure.
    assert follows_loose("punctuation:no_comma", {}, "Hello, world") is False


@pytest.mark.parametrize(
    "instruction_id,kwargs",
    [
        ("length_constraints:number_words", {"num_words": 3}),
        ("keywords:frequency", {"keyword": "cat", "frequency": 3}),
        ("keywords:letter_frequency", {"letter": "c", "let_frequency": 3}),
        ("length_constraints:number_sentences", {"num_sentences": 3}),
        ("change_case:capital_word_frequency", {"capital_frequency": 3}),
    ],
)
def test_less_than_is_strict_and_at_least_inclusive(instruction_id, kwargs):
    response = "CAT. CAT. CAT."  # exactly 3 words, cats, c's, sentences and capital words
    relation_key = {
        "keywords:letter_frequency": "let_relation",
        "change_case:capital_word_frequency": "capital_relation",
    }.get(instruction_id, "relation")
    assert follows(instruction_id, {**kwargs, relation_key: "less than"}, response) is False
    assert follows(instruction_id, {**kwargs, relation_key: "at least"}, response) is True
    four = {k: (v + 1 if isinstance(v, int) else v) for k, v in kwargs.items()}
    assert follows(instruction_id, {**four, relation_key: "less than"}, response) is True


def test_language_detection_failure_counts_as_followed():
    # No letters: langdetect raises, and the reference treats that as followed.
    assert follows("language:response_language", {"language": "de"}, "12345 !!!") is True


def test_kwargs_problem_unknown_id_suggests():
    message = kwargs_problem("punctuation:no_commas", {})
    assert "unknown instruction id 'punctuation:no_commas'" in message and "'punctuation:no_comma'" in message
    assert "'detectable_format:title'" in kwargs_problem("title", {})
    assert kwargs_problem("zzz", {}) == "unknown instruction id 'zzz'"


def test_kwargs_problem_missing_and_bad_arguments():
    assert kwargs_problem("keywords:frequency", {"keyword": "x", "frequency": 2}) == (
        "keywords:frequency: missing argument 'relation'"
    )
    assert "'relation'" in kwargs_problem("keywords:frequency", {"keyword": "x", "frequency": 2, "relation": "at most"})
    assert "'num_bullets'" in kwargs_problem("detectable_format:number_bullet_lists", {"num_bullets": "3"})
    assert "'num_bullets'" in kwargs_problem("detectable_format:number_bullet_lists", {"num_bullets": True})
    assert "'letter'" in kwargs_problem(
        "keywords:letter_frequency", {"letter": "ab", "let_frequency": 1, "let_relation": "at least"}
    )
    assert "'keywords'" in kwargs_problem("keywords:existence", {"keywords": "tea"})
    assert "'nth_paragraph'" in kwargs_problem(
        "length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"}
    )
    assert kwargs_problem("combination:repeat_prompt", {}) == (
        "combination:repeat_prompt: missing argument 'prompt_to_repeat'"
    )


def test_none_valued_and_extra_keys_are_ignored():
    # IFEval dumps give every instruction every key, most of them null.
    kwargs = {"num_highlights": None, "relation": None, "num_words": None, "postscript_marker": "P.S.", "x": 1}
    assert kwargs_problem("detectable_content:postscript", kwargs) is None
    assert follows("detectable_content:postscript", kwargs, "Hi.\nP.S. bye") is True
    assert kwargs_problem("punctuation:no_comma", None) is None
    assert kwargs_problem("length_constraints:number_words", {"num_words": None, "relation": "at least"}) == (
        "length_constraints:number_words: missing argument 'num_words'"
    )


def test_follows_raises_on_bad_kwargs():
    with pytest.raises(ValueError, match="missing argument 'num_words'"):
        follows("length_constraints:number_words", {"relation": "at least"}, "text")
    with pytest.raises(ValueError, match="did you mean"):
        follows_loose("startend:quotations", {}, '"x"')


def test_check_all_and_accuracy_hand_computed():
    first = check_all(["punctuation:no_comma", "startend:quotation"], [{}, {}], 'Sure:\n"Hi there"')
    assert first == InstructionResult(("punctuation:no_comma", "startend:quotation"), (True, False), (True, True))
    assert (first.prompt_strict, first.prompt_loose) == (False, True)
    second = check_all(["keywords:existence"], [{"keywords": ["tea"]}], "Coffee, please.")
    assert second.strict == (False,) and second.loose == (False,)
    third = check_all(["detectable_format:title", "punctuation:no_comma"], [{}, {}], "<<Ode>>\nSun and sea")
    assert third.prompt_strict and third.prompt_loose
    # prompts: strict 1/3, loose 2/3; instructions (5): strict 3/5, loose 4/5
    assert accuracy([first, second, third]) == {
        "prompt_strict": 1 / 3,
        "prompt_loose": 2 / 3,
        "instruction_strict": 3 / 5,
        "instruction_loose": 4 / 5,
    }


def test_check_all_validates_and_accuracy_of_nothing():
    with pytest.raises(ValueError, match="2 instruction ids but 1 kwargs"):
        check_all(["punctuation:no_comma", "startend:quotation"], [{}], "x")
    assert accuracy([]) == {
        "prompt_strict": 0.0,
        "prompt_loose": 0.0,
        "instruction_strict": 0.0,
        "instruction_loose": 0.0,
    }


def test_sentence_splitter_port():
    text = "Mr. Smith went to Washington. He said hi! Did he? Yes... maybe. Visit google.com now. The U.S.A. is big."
    assert split_into_sentences(text) == [
        "Mr. Smith went to Washington.",
        "He said hi!",
        "Did he?",
        "Yes...",
        "maybe.",
        "Visit google.com now.",
        "The U.S.A. is big.",
    ]
    assert count_sentences("Pi is 3.14 exactly. No") == 2


def test_word_tokens_for_capital_words():
    assert word_tokens("DON'T say WELL-KNOWN U.S. things, IT'S O'NEIL") == [
        "DO",
        "N'T",
        "say",
        "WELL-KNOWN",
        "U.S",
        "things",
        "IT",
        "'S",
        "O'NEIL",
    ]


def test_keyword_that_is_not_a_regex_matches_literally():
    assert follows("keywords:existence", {"keywords": ["C++"]}, "I write c++ daily.") is True
    assert follows("keywords:forbidden_words", {"forbidden_words": ["C++"]}, "I write Rust.") is True
