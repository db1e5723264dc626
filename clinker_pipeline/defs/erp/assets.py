"""Every ERP asset (SAP/IBP and Oracle slices), and the job that syncs them all."""

import dagster as dg

from clinker_pipeline.defs.erp.common import GROUP
from clinker_pipeline.defs.erp.oracle.assets import erp_capacity
from clinker_pipeline.defs.erp.sap.assets import SAP_ASSETS, erp_inventory

ERP_ASSETS = [*SAP_ASSETS, erp_capacity]

erp_job = dg.define_asset_job(
    "erp_sync_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Fetch plants, stock, demand and capacity from SAP/IBP and Oracle.",
    tags={"clinker/duckdb_writer": "true"},
)

__all__ = ["ERP_ASSETS", "erp_inventory", "erp_job"]
