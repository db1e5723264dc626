"""Resources: how assets reach files, DuckDB, the ERP and the external feeds.

Each source's resource lives in its slice (`defs/erp/sap/resource.py`,
`defs/feeds/<feed>/resource.py`) and is found through the declarations, never listed here. Their
settings, and those below, resolve from environment variables when a run uses them
(`lib/env_resource.py`), with defaults that make the quick start work with nothing configured.
Only the DuckDB and instance paths are still read when the definitions load: `clinker run`
sets them before it loads the definitions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from dagster_duckdb_pandas import DuckDBPandasTypeHandler

from clinker_pipeline import settings
from clinker_pipeline.defs.erp.mapping import ErpMapping, sample_mapping_path
from clinker_pipeline.errors import InvalidSetting
from clinker_pipeline.instance import Instance, load_instance, sample_instance_path
from clinker_pipeline.lib.env_resource import Env, EnvResource
from clinker_pipeline.lib.store.resources import ClinkerStoreIOManager, store_resources

if TYPE_CHECKING:
    from clinker_pipeline.lib.source_resource import SourceResource


class InstanceFiles(EnvResource):
    """A planning instance stored as files: a directory of CSVs or an xlsx workbook."""

    ENV: ClassVar = {"path": Env("CLINKER_INSTANCE_PATH", "")}
    path: str | None = None  # unset: CLINKER_INSTANCE_PATH when the run starts; empty: the sample

    def resolved_path(self) -> str:
        return self.setting("path") or str(sample_instance_path())

    def load(self) -> Instance:
        return load_instance(self.resolved_path())


class ErpSettings(EnvResource):
    """Where the ERP mapping (SAP plant -> node, clinker material, IBP key figure) lives."""

    ENV: ClassVar = {
        "mapping_path": Env("CLINKER_ERP_MAPPING"),
        "input_source": Env("CLINKER_INPUT_SOURCE", "files"),
    }
    mapping_path: str | None = None  # unset: the bundled sample mapping
    # where the plan's plants, stock, demand and capacity come from ("files" or "erp"): the
    # default of the plan's config, resolved when the plan runs rather than at import
    input_source: str | None = None

    def mapping(self) -> ErpMapping:
        return ErpMapping.load(self.setting("mapping_path") or sample_mapping_path())

    def plan_input_source(self) -> str:
        value = str(self.setting("input_source")).strip().lower()
        if value not in ("files", "erp"):
            raise InvalidSetting(f"CLINKER_INPUT_SOURCE must be 'files' or 'erp', got {value!r}")
        return value


class TelemetrySettings(EnvResource):
    """Where the MQTT ingestor lands its batches, and the threshold rules file."""

    ENV: ClassVar = {
        "landing_dir": Env("CLINKER_TELEMETRY_DIR", "telemetry_landing"),
        "rules_path": Env("CLINKER_TELEMETRY_RULES"),
    }
    landing_dir: str | None = None
    rules_path: str | None = None  # unset: the bundled rules

    def store(self) -> Any:  # -> LandingStore
        from clinker_pipeline.defs.telemetry.landing import LandingStore

        return LandingStore(self.setting("landing_dir"))

    def rules(self) -> Any:  # -> RuleSet
        from clinker_pipeline.defs.telemetry.rules import RuleSet

        return RuleSet.load(self.setting("rules_path") or None)


class ScenarioSettings(EnvResource):
    """The named scenario set (and the feed adjustments' constants) as a JSON file."""

    ENV: ClassVar = {"path": Env("CLINKER_SCENARIOS_PATH")}
    path: str | None = None  # unset: the bundled sample set

    def load(self) -> Any:  # -> ScenarioSet
        from clinker_pipeline.optimization.scenarios import ScenarioSet

        return ScenarioSet.load(self.setting("path") or None)


class _KeepEmptyTables(DuckDBPandasTypeHandler):
    """dagster-duckdb-pandas skips an empty DataFrame, so the table never exists and the asset
    downstream cannot load it (the toy dataset's HubOpeningStock has no rows). An empty instance
    table is data ("none"), so it is stored as an empty table with its columns."""

    def handle_output(self, context, table_slice, obj, connection) -> None:  # type: ignore[override]
        if obj.empty and not table_slice.partition_dimensions:
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {table_slice.schema}.{table_slice.table} "
                "AS SELECT * FROM obj"
            )
        super().handle_output(context, table_slice, obj, connection)


class InstanceIOManager(ClinkerStoreIOManager):
    """The DuckDB pandas I/O manager of the instance tables, keeping empty tables."""

    @staticmethod
    def type_handlers() -> list:
        return [_KeepEmptyTables()]


def source_resources() -> dict[str, SourceResource]:
    """Every source's resource, unconfigured (settings resolve from the environment at run time):
    the ERP's and each declared feed's. `clinker health` probes these very objects."""
    from clinker_pipeline.defs.erp.oracle.resource import OracleResource
    from clinker_pipeline.defs.erp.sap.resource import SapResource
    from clinker_pipeline.defs.feeds.spec import discover_feeds

    found: dict[str, SourceResource] = {"sap": SapResource(), "oracle": OracleResource()}
    for spec in discover_feeds():
        found.update({key: cls() for key, cls in spec.resources.items()})
    return found


def build_resources() -> dict[str, object]:
    database = settings.ensure_parent(settings.duckdb_path())
    return {
        "instance_files": InstanceFiles(),
        **store_resources(database, io_manager=InstanceIOManager),
        **source_resources(),
        "erp": ErpSettings(),
        "scenarios": ScenarioSettings(),
        "telemetry": TelemetrySettings(),
    }
