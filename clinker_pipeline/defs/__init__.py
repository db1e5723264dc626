"""Everything Dagster discovers, one folder per concern; `definitions.py` assembles it."""
