"""SAP S/4HANA and IBP as validated assets: plants, clinker stock and the demand forecast.

Each asset fetches through `SapResource` (live when configured, bundled wire-format payloads
otherwise), maps records with the ERP mapping and publishes through `defs/erp/common.py`.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from clinker_pipeline.defs.erp.common import DAILY, erp_asset, publish
from clinker_pipeline.defs.erp.mapping import map_demand, map_plants, map_stock
from clinker_pipeline.defs.erp.sap.resource import SapResource
from clinker_pipeline.defs.resources import ErpSettings
from clinker_pipeline.lib.feed_runtime import source_errors


@erp_asset(
    "erp_plants",
    {"sap"},
    "Plant master from SAP (API_PLANT_SRV/A_Plant) as IUGUType.",
    feed="sap_plants",
    cron=DAILY,
)
def erp_plants(
    context: dg.AssetExecutionContext, sap: SapResource, erp: ErpSettings, duckdb: DuckDBResource
):
    with source_errors(context, sap, "SAP plants"):
        records = sap.client().plants()
    table, problems = map_plants(records, erp.mapping())
    yield from publish(
        context,
        "erp_plants",
        table,
        problems,
        duckdb,
        feed="sap_plants",
        sample_mode=sap.sample_mode,
        fetched=len(records),
    )


@erp_asset(
    "erp_inventory",
    {"sap"},
    "Clinker stock from SAP (API_MATERIAL_STOCK_SRV) as IUGUOpeningStock: usable stock types only.",
    feed="sap_stock",
    cron="0 * * * *",  # stock moves hourly, master data does not
)
def erp_inventory(
    context: dg.AssetExecutionContext, sap: SapResource, erp: ErpSettings, duckdb: DuckDBResource
):
    mapping = erp.mapping()
    with source_errors(context, sap, "SAP stock"):
        records = sap.client().material_stock(mapping.clinker_material)
    table, problems = map_stock(records, mapping)
    yield from publish(
        context,
        "erp_inventory",
        table,
        problems,
        duckdb,
        feed="sap_stock",
        sample_mode=sap.sample_mode,
        fetched=len(records),
    )


@erp_asset(
    "erp_demand_forecast",
    {"sap"},
    "Demand forecast from SAP IBP (PLANNING_DATA_API_SRV) as ClinkerDemand per month.",
    feed="ibp_demand",
    cron=DAILY,
)
def erp_demand_forecast(
    context: dg.AssetExecutionContext, sap: SapResource, erp: ErpSettings, duckdb: DuckDBResource
):
    mapping = erp.mapping()
    with source_errors(context, sap, "IBP demand"):
        records = _ibp_records(sap, mapping)
    table, problems = map_demand(records, mapping)
    yield from publish(
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


SAP_ASSETS = [erp_plants, erp_inventory, erp_demand_forecast]
