"""Dagster instance storage chosen by the environment: PostgreSQL when configured, else SQLite.

`dagster.yaml` cannot branch on whether a variable is set (an `{env: X}` that is unset is an
error), so it names this class as custom storage. Each process (webserver, daemon, run workers)
rebuilds it from the environment; the PostgreSQL password is read from the environment and is
never written into the serialized instance config.

PostgreSQL when `DAGSTER_POSTGRES_URL` is set, or `DAGSTER_PG_HOST` (with `DAGSTER_PG_USERNAME`,
`DAGSTER_PG_PASSWORD`, `DAGSTER_PG_DB`, `DAGSTER_PG_PORT`). Otherwise Dagster's embedded SQLite
storage under `$DAGSTER_HOME` (or `./.dagster_home` when DAGSTER_HOME is unset).
"""

from __future__ import annotations

import os
from typing import Any

from dagster import Field, StringSource
from dagster._core.storage.base_storage import DagsterStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData


def postgres_url() -> str | None:
    """The PostgreSQL URL from the environment, or None when PostgreSQL is not configured.

    The driver is pinned to psycopg2 (what dagster-postgres installs): SQLAlchemy 2.1 maps a bare
    `postgresql://` URL to psycopg 3, which is not installed.
    """
    url = os.getenv("DAGSTER_POSTGRES_URL", "").strip()
    if url:
        for bare in ("postgresql://", "postgres://"):
            if url.startswith(bare):
                url = "postgresql+psycopg2://" + url[len(bare) :]
        return url
    host = os.getenv("DAGSTER_PG_HOST", "").strip()
    if not host:
        return None
    from dagster_postgres.utils import get_conn_string

    return get_conn_string(
        username=os.getenv("DAGSTER_PG_USERNAME", "postgres"),
        password=os.getenv("DAGSTER_PG_PASSWORD", ""),
        hostname=host,
        db_name=os.getenv("DAGSTER_PG_DB", "dagster"),
        port=os.getenv("DAGSTER_PG_PORT", "5432"),
        scheme="postgresql+psycopg2",
    )


def sqlite_base_dir(configured: str | None = None) -> str:
    base = configured or os.getenv("DAGSTER_HOME") or os.path.join(os.getcwd(), ".dagster_home")
    return os.path.abspath(os.path.expanduser(base))


class EnvironmentStorage(DagsterStorage, ConfigurableClass):
    """Factory for the instance storage: `from_config_value` returns the real storage object
    (Dagster checks the class is a DagsterStorage; this class itself is never instantiated)."""

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"sqlite_base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> Any:
        url = postgres_url()
        if url:
            from dagster_postgres import DagsterPostgresStorage

            return DagsterPostgresStorage(postgres_url=url, inst_data=inst_data)
        from dagster._core.storage.sqlite_storage import DagsterSqliteStorage

        base = sqlite_base_dir(config_value.get("sqlite_base_dir"))
        os.makedirs(base, exist_ok=True)
        return DagsterSqliteStorage.from_local(base, inst_data=inst_data)
