"""Resources: how assets reach files, DuckDB and (later) the ERP and external feeds.

Paths are not secrets, so they are read from the environment at load time with defaults that
make the quick start work with no configuration at all.
"""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager

from clinker_pipeline import settings
from clinker_pipeline.instance import Instance, load_instance, sample_instance_path


class InstanceFiles(dg.ConfigurableResource):
    """A planning instance stored as files: a directory of CSVs or an xlsx workbook."""

    path: str = ""  # empty: the bundled sample network

    def resolved_path(self) -> str:
        return self.path or str(sample_instance_path())

    def load(self) -> Instance:
        return load_instance(self.resolved_path())


def build_resources() -> dict[str, object]:
    database = settings.ensure_parent(settings.duckdb_path())
    return {
        "instance_files": InstanceFiles(path=settings.instance_path()),
        "duckdb": DuckDBResource(database=database),
        "duckdb_io_manager": DuckDBPandasIOManager(database=database, schema="instance"),
    }
