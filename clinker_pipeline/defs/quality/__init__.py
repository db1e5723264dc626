"""The data-quality report: its asset and the DuckDB tables it reads and writes."""
