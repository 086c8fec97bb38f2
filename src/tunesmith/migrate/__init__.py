"""Projects made from another fine-tuning service's saved work: `tunesmith import ...`.

    from tunesmith.migrate import import_openai_job
    result = import_openai_job("ftjob.json", "train.jsonl", "my-project", validation_file="valid.jsonl")

`openai_job.py` (a project from an OpenAI fine-tuning job: the mapping table, the config sections, the files),
`job.py` (the job object, read and checked), `job_data.py` (its JSONL lines, converted for tunesmith's reader).
"""

from tunesmith.migrate.job import FineTuningJob, read_job
from tunesmith.migrate.openai_job import (
    HYPERPARAMETERS,
    ImportResult,
    MappedValue,
    import_openai_job,
)

__all__ = [
    "HYPERPARAMETERS",
    "FineTuningJob",
    "ImportResult",
    "MappedValue",
    "import_openai_job",
    "read_job",
]
