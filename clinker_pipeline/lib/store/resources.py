"""The store as Dagster resources: the DuckDB file by default, a DuckLake with `CLINKER_STORE`.

`ClinkerStore` is a `DuckDBResource` (every asset keeps its `duckdb: DuckDBResource` parameter)
whose connection comes from `backend.connect`; `ClinkerStoreIOManager` stores the instance
tables the same way. The catalog string is passed as an `EnvVar`, so Dagster shows the variable's
name, never its value (it may carry a password).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster._core.storage.db_io_manager import DbIOManager
from dagster_duckdb import DuckDBResource
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasIOManager

from clinker_pipeline.lib.store.backend import StoreSettings, connect


class ClinkerStore(DuckDBResource):
    """The analysts' store; `database` is the DuckDB file (also used for the snapshot)."""

    backend: str = "duckdb"
    ducklake_catalog: str = ""
    ducklake_data_path: str = ""

    def settings(self) -> StoreSettings:
        return StoreSettings(
            backend=self.backend,
            database=self.database,
            catalog=self.ducklake_catalog,
            data_path=self.ducklake_data_path,
        )

    @property
    def is_lake(self) -> bool:
        return self.settings().is_lake

    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        if not self.is_lake:
            with super().get_connection() as con:
                yield con
            return
        con = connect(self.settings())
        try:
            yield con
        finally:
            con.close()


class _LakeClient(DuckDbClient):
    """DuckDbClient whose connections open the lake (the SQL it runs is the same)."""

    def __init__(self, settings: StoreSettings) -> None:
        self._settings = settings

    @contextmanager
    def connect(self, context: Any, _: Any) -> Iterator[Any]:  # type: ignore[override]
        con = connect(self._settings)
        try:
            yield con
        finally:
            con.close()


class ClinkerStoreIOManager(DuckDBPandasIOManager):
    """DuckDBPandasIOManager that writes to the lake when the store is a DuckLake."""

    backend: str = "duckdb"
    ducklake_catalog: str = ""
    ducklake_data_path: str = ""

    def create_io_manager(self, context: Any) -> DbIOManager:
        manager = super().create_io_manager(context)
        settings = StoreSettings(
            backend=self.backend,
            database=self.database,
            catalog=self.ducklake_catalog,
            data_path=self.ducklake_data_path,
        )
        if settings.is_lake:
            manager._db_client = _LakeClient(settings)
        return manager


def store_resources(
    database: str, io_manager: type[ClinkerStoreIOManager] | None = None
) -> dict[str, object]:
    """The `duckdb` resource and the instance tables' IO manager, as `CLINKER_STORE` says."""
    lake = StoreSettings.from_env(database).is_lake
    fields: dict[str, Any] = {}
    if lake:
        fields = {
            "backend": "ducklake",
            "ducklake_catalog": dg.EnvVar("CLINKER_DUCKLAKE_CATALOG"),
            "ducklake_data_path": os.getenv("CLINKER_DUCKLAKE_DATA_PATH", ""),
        }
    return {
        "duckdb": ClinkerStore(database=database, **fields),
        "duckdb_io_manager": (io_manager or ClinkerStoreIOManager)(
            database=database, schema="instance", **fields
        ),
    }
