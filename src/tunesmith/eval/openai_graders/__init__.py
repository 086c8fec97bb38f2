"""OpenAI's graders as tunesmith scorers, so a team leaving hosted fine-tuning keeps grading the way it did.

    {"type": "string_check", "input": "{{sample.output_text}}", "reference": "{{item.label}}", "operation": "eq"}
    {"type": "text_similarity", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
     "evaluation_metric": "bleu", "pass_threshold": 0.5}
    {"type": "score_model", "input": [{"role": "user", "content": "..."}], "range": [0, 1], "pass_threshold": 0.7}
    {"type": "label_model", "input": [...], "labels": ["good", "bad"], "passing_labels": ["good"]}
    {"type": "python", "source": "def grade(sample, item) -> float: ...", "timeout": 5}
    {"type": "multi", "graders": {"a": {...}, "b": {...}}, "calculate_output": "0.5 * a + 0.5 * b"}

A grader spec works wherever a scorer does: in a suite case's `scorers`, a suite's `scorers` in the config, and
`train.grpo.rewards`, where the grader's score (not only pass/fail) is the GRPO reward. Template references are
resolved as OpenAI's graders define them (`templates.py`). One module per kind: `text.py` (string_check,
text_similarity), `model.py` (score_model, label_model through `eval.judge`), `python.py` (a subprocess),
`multi.py`; `base.py` holds what they share (`Item`, `Grade`) and `context.py` the `GradingContext` they run in.

    grades = GradingContext.of(cfg).grade(spec, [Item(case, output), ...])   # [Grade(passed, score, detail), ...]
"""

from tunesmith.eval.openai_graders.base import Grade, Item
from tunesmith.eval.openai_graders.context import GRADERS, GradingContext, NoJudge
from tunesmith.eval.openai_graders.templates import TemplateFieldError, render

__all__ = ["GRADERS", "Grade", "GradingContext", "Item", "NoJudge", "TemplateFieldError", "render"]
