"""Evaluation: suites of cases, scorers, generation backends, paired statistics and the base-vs-tuned comparison."""
