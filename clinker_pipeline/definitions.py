"""The one entry point Dagster loads: every asset, check, job, sensor and resource of the project.

There is no whole-graph job: each asset's automation condition says when it runs
(`defs/automation.py`), "Materialize all" in the UI and `clinker run` materialize everything by
hand, and a plan run materializes the planning assets only.
"""

from __future__ import annotations

import dagster as dg

from clinker_pipeline.defs.automation import JOBS, SCHEDULES, SENSORS
from clinker_pipeline.defs.erp.assets import ERP_ASSETS, erp_job
from clinker_pipeline.defs.feeds.spec import feed_assets
from clinker_pipeline.defs.instance.assets import instance_tables
from clinker_pipeline.defs.planning.assets import PLANNING_ASSETS
from clinker_pipeline.defs.planning.sensors import scenario_set_sensor
from clinker_pipeline.defs.quality.assets import (
    QUALITY_SENSORS,
    data_quality_job,
    data_quality_report,
)
from clinker_pipeline.defs.resources import build_resources
from clinker_pipeline.defs.telemetry.assets import TELEMETRY_ASSETS
from clinker_pipeline.defs.telemetry.sensors import telemetry_batches_sensor

defs = dg.Definitions(
    assets=[
        instance_tables,
        *ERP_ASSETS,
        *feed_assets(),
        *PLANNING_ASSETS,
        data_quality_report,
        *TELEMETRY_ASSETS,
    ],
    jobs=[erp_job, *JOBS, data_quality_job],
    schedules=SCHEDULES,
    sensors=[*SENSORS, *QUALITY_SENSORS, telemetry_batches_sensor, scenario_set_sensor],
    resources=build_resources(),
)
