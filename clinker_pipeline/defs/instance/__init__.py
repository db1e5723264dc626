"""The planning instance as Dagster assets: one per table, each with Pandera-backed checks."""
