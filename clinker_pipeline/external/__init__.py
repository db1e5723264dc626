"""External feeds as plain data: parsing and derived figures (no I/O, no Dagster).

Clients in `clinker_pipeline.sources` fetch wire-format payloads; the modules here turn them
into tables and Problems, and compute what the planner uses (road availability, fuel index,
market statistics).
"""
