"""Oracle ERP production capacity as a validated asset (see `defs/erp/common.py`)."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from clinker_pipeline.defs.erp.common import DAILY, erp_asset, publish
from clinker_pipeline.defs.erp.mapping import map_capacity
from clinker_pipeline.defs.erp.oracle.resource import OracleResource
from clinker_pipeline.defs.resources import ErpSettings
from clinker_pipeline.lib.feed_runtime import source_errors


@erp_asset(
    "erp_capacity",
    {"oracle"},
    "Clinker capacity per IU and month from the Oracle ERP.",
    feed="oracle_capacity",
    cron=DAILY,
)
def erp_capacity(
    context: dg.AssetExecutionContext,
    oracle: OracleResource,
    erp: ErpSettings,
    duckdb: DuckDBResource,
):
    mapping = erp.mapping()
    with source_errors(context, oracle, "Oracle capacity"):
        rows, bad = oracle.fetch_capacity(
            mapping.horizon_start().date(), mapping.horizon_end().date()
        )
    table, problems = map_capacity(rows, bad, mapping)
    yield from publish(
        context,
        "erp_capacity",
        table,
        problems,
        duckdb,
        feed="oracle_capacity",
        sample_mode=oracle.sample_mode,
        fetched=len(rows) + len(bad),
    )
