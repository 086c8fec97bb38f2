"""Training recipes, one file per method, each readable top to bottom."""
