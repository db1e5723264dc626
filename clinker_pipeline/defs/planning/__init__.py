"""The optimization asset and the DuckDB tables it publishes."""
