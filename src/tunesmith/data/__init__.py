"""Data in and out: records with provenance, format converters, checks and the held-out split."""
