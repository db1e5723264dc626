"""The one entry point Dagster loads: every asset, check, job and resource of the project."""

from __future__ import annotations

import dagster as dg

from clinker_pipeline.defs.automation import AUTOMATION_JOBS, SCHEDULES, SENSORS
from clinker_pipeline.defs.erp.assets import ERP_ASSETS, erp_job
from clinker_pipeline.defs.feeds.spec import feed_assets
from clinker_pipeline.defs.instance.assets import instance_tables
from clinker_pipeline.defs.planning.assets import (
    clinker_plan,
    plan_job,
    plan_tables,
    scenario_comparison,
)
from clinker_pipeline.defs.quality.assets import (
    data_quality_job,
    data_quality_report,
    data_quality_sensor,
)
from clinker_pipeline.defs.resources import build_resources
from clinker_pipeline.defs.telemetry.assets import TELEMETRY_ASSETS

defs = dg.Definitions(
    assets=[
        instance_tables,
        *ERP_ASSETS,
        *feed_assets(),
        clinker_plan,
        plan_tables,
        scenario_comparison,
        data_quality_report,
        *TELEMETRY_ASSETS,
    ],
    jobs=[plan_job, erp_job, *AUTOMATION_JOBS, data_quality_job],
    schedules=SCHEDULES,
    sensors=[*SENSORS, data_quality_sensor],
    resources=build_resources(),
)
