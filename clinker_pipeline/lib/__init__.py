"""Plumbing shared by every slice: HTTP, feed transports, OData, the DuckDB store, check helpers."""
