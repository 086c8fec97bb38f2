"""Prompting, RAG, fine-tuning, or fine-tuning plus RAG? The guide's decision rules, applied to a user's answers.

    advice = advise(Answers(needs=["format"], examples=300, gpu="RTX 4090"))
    advice = advise(answers_from_project("examples/support-triage"))    # the data doctor's stats and eval results
    advice.recommendation, advice.reasons, advice.method, advice.model_size, advice.examples_needed

`advise` is a pure function of the answers (it reads no file); `answers_from_project` fills them from a project:
the task type, the data doctor's counts (usable examples, replies that state changeable facts, tool calls,
escalations and refusals) and, after an evaluation, how the prompted base did. Every threshold is a named
constant with its source: the practice guide (shared/reference/fine-tuning-guide-2026.txt) or, where the guide gives
no number, tunesmith's own reading, said so.

- `answers`: `Answers`, the vocabulary of needs, volumes and task types, and the guide's thresholds (each named
  constant is imported from there);
- `decision`: the reasons, the recommendation and `advise`;
- `project`: `answers_from_project`;
- `interview`: the questionnaire and this machine's GPU.
"""

from tunesmith.advise.answers import EXAMPLES_NEEDED, MIN_EXAMPLES, STALE_FACT_SHARE, TARGET_ACCURACY, Answers
from tunesmith.advise.decision import Advice, Reason, advise, gpu_of, size_and_method
from tunesmith.advise.interview import local_gpu, questionnaire
from tunesmith.advise.project import answers_from_project

__all__ = [
    "EXAMPLES_NEEDED",
    "MIN_EXAMPLES",
    "STALE_FACT_SHARE",
    "TARGET_ACCURACY",
    "Advice",
    "Answers",
    "Reason",
    "advise",
    "answers_from_project",
    "gpu_of",
    "local_gpu",
    "questionnaire",
    "size_and_method",
]
