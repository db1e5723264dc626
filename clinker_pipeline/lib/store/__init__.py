"""Where results land for analysts: the DuckDB plan store (no Dagster here)."""
