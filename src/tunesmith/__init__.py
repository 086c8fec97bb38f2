"""tunesmith: fine-tune open LLMs the careful way.

Check the data, write the evaluation first, train, and ship only a model that measurably beats its base.

    >>> from tunesmith.pipeline import run_project
    >>> summary = run_project("examples/support-triage")
"""

__version__ = "0.3.0"
