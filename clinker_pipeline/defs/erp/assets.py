"""ERP feeds as validated assets that produce the planner's own tables.

Each asset fetches through a resource (live when configured, bundled wire-format payloads
otherwise), maps records with the ERP mapping, quarantines every record it cannot use, and
reports two checks: `schema_valid` (Pandera on the produced table) and `records_usable` (ERROR
when a record carrying planning data was bad, WARN when records were only left out). Both ERROR
checks block the plan. A source outage fails the asset once the client's own retries (backoff,
Retry-After, a deadline per request) are spent, so the previous good table stays in DuckDB.
"""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from clinker_pipeline.defs.erp.mapping import map_capacity, map_demand, map_plants, map_stock
from clinker_pipeline.defs.resources import ErpSettings, OracleResource, SapResource
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.instance.validate import schema_problems
from clinker_pipeline.lib.checks import problem_check_result
from clinker_pipeline.lib.feed_runtime import feed_retry_policy, source_errors
from clinker_pipeline.lib.markdown import to_markdown
from clinker_pipeline.lib.store.quarantine import quarantine_problems

GROUP = "erp"
SCHEMA_CHECK = "schema_valid"
RECORDS_CHECK = "records_usable"
# internal table each ERP asset produces
PRODUCES = {
    "erp_plants": "plants",
    "erp_inventory": "opening_stock",
    "erp_demand_forecast": "clinker_demand",
    "erp_capacity": "clinker_capacity",
}


def _checks(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            SCHEMA_CHECK,
            asset=asset,
            blocking=True,
            description=f"Pandera schema of the `{PRODUCES[asset]}` table this feed produces.",
        ),
        dg.AssetCheckSpec(
            RECORDS_CHECK,
            asset=asset,
            blocking=True,
            description="Every ERP record was usable; bad ones are in the quarantine table.",
        ),
    ]


def _publish(
    context: dg.AssetExecutionContext,
    asset: str,
    table: pd.DataFrame,
    problems: list[Problem],
    duckdb: DuckDBResource,
    *,
    feed: str,
    sample_mode: bool,
    fetched: int,
):
    """Quarantine, then yield the output and both check results (shared by every ERP asset)."""
    with duckdb.get_connection() as con:
        quarantine_problems(con, problems, {}, feed=feed, dagster_run_id=context.run.run_id)
    schema = schema_problems(PRODUCES[asset], table, feed)
    yield dg.Output(
        table,
        metadata={
            "dagster/row_count": len(table),
            "records_fetched": fetched,
            "good_rows": len(table),
            "quarantined_records": len(problems),
            "quarantined_errors": sum(p.severity == "ERROR" for p in problems),
            "sample_mode": sample_mode,
            "produces": PRODUCES[asset],
            "preview": dg.MetadataValue.md(to_markdown(table.drop(columns="source_row").head(10))),
        },
    )
    yield problem_check_result(asset, SCHEMA_CHECK, schema)
    yield problem_check_result(asset, RECORDS_CHECK, problems)


def _asset(name: str, kinds: set[str], description: str):
    return dg.asset(
        name=name,
        group_name=GROUP,
        kinds=kinds | {"pandas", "duckdb"},
        owners=["team:planning"],
        io_manager_key="duckdb_io_manager",
        check_specs=_checks(name),
        retry_policy=feed_retry_policy(),
        description=description,
    )


@_asset("erp_plants", {"sap"}, "Plant master from SAP (API_PLANT_SRV/A_Plant) as IUGUType.")
def erp_plants(
    context: dg.AssetExecutionContext, sap: SapResource, erp: ErpSettings, duckdb: DuckDBResource
):
    with source_errors("SAP plants"):
        records = sap.client().plants()
    table, problems = map_plants(records, erp.mapping())
    yield from _publish(
        context,
        "erp_plants",
        table,
        problems,
        duckdb,
        feed="sap_plants",
        sample_mode=sap.sample_mode,
        fetched=len(records),
    )


@_asset(
    "erp_inventory",
    {"sap"},
    "Clinker stock from SAP (API_MATERIAL_STOCK_SRV) as IUGUOpeningStock: usable stock types only.",
)
def erp_inventory(
    context: dg.AssetExecutionContext, sap: SapResource, erp: ErpSettings, duckdb: DuckDBResource
):
    mapping = erp.mapping()
    with source_errors("SAP stock"):
        records = sap.client().material_stock(mapping.clinker_material)
    table, problems = map_stock(records, mapping)
    yield from _publish(
        context,
        "erp_inventory",
        table,
        problems,
        duckdb,
        feed="sap_stock",
        sample_mode=sap.sample_mode,
        fetched=len(records),
    )


@_asset(
    "erp_demand_forecast",
    {"sap"},
    "Demand forecast from SAP IBP (PLANNING_DATA_API_SRV) as ClinkerDemand per month.",
)
def erp_demand_forecast(
    context: dg.AssetExecutionContext, sap: SapResource, erp: ErpSettings, duckdb: DuckDBResource
):
    mapping = erp.mapping()
    with source_errors("IBP demand"):
        records = _ibp_records(sap, mapping)
    table, problems = map_demand(records, mapping)
    yield from _publish(
        context,
        "erp_demand_forecast",
        table,
        problems,
        duckdb,
        feed="ibp_demand",
        sample_mode=sap.sample_mode,
        fetched=len(records),
    )


def _ibp_records(sap: SapResource, mapping) -> list:
    return sap.client().ibp_planning_data(
        mapping.ibp_planning_area,
        select=[
            mapping.ibp_product_field,
            mapping.ibp_location_field,
            "UOMTOID",
            mapping.ibp_period_field,
            mapping.ibp_key_figure,
        ],
        uom=mapping.ibp_uom,
        key_figure=mapping.ibp_key_figure,
        period_field=mapping.ibp_period_field,
        start=mapping.horizon_start(),
        end=mapping.horizon_end(),
    )


@_asset("erp_capacity", {"oracle"}, "Clinker capacity per IU and month from the Oracle ERP.")
def erp_capacity(
    context: dg.AssetExecutionContext,
    oracle: OracleResource,
    erp: ErpSettings,
    duckdb: DuckDBResource,
):
    mapping = erp.mapping()
    with source_errors("Oracle capacity"):
        rows, bad = oracle.fetch_capacity(
            mapping.horizon_start().date(), mapping.horizon_end().date()
        )
    table, problems = map_capacity(rows, bad, mapping)
    yield from _publish(
        context,
        "erp_capacity",
        table,
        problems,
        duckdb,
        feed="oracle_capacity",
        sample_mode=oracle.sample_mode,
        fetched=len(rows) + len(bad),
    )


ERP_ASSETS = [erp_plants, erp_inventory, erp_demand_forecast, erp_capacity]

erp_job = dg.define_asset_job(
    "erp_sync_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Fetch plants, stock, demand and capacity from SAP/IBP and Oracle.",
    tags={"clinker/duckdb_writer": "true"},
)
