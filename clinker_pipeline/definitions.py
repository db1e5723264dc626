"""The one entry point Dagster loads: every asset, check, job, sensor and resource of the project.

There is no whole-graph plan job: each asset's automation condition says when it runs
(`defs/automation.py`), "Materialize all" in the UI and `clinker run` materialize everything by
hand, and a plan run materializes the planning assets only. `main_run_job` is the one job that
spans sources and plan: the main run of "everything" for an operator who launches it by hand or
on workers (`dagster job launch`); no automation launches it.
"""

from __future__ import annotations

import dagster as dg

from clinker_pipeline.defs.automation import JOBS, SCHEDULES, SENSORS
from clinker_pipeline.defs.erp.assets import ERP_ASSETS, erp_job
from clinker_pipeline.defs.executor import clinker_executor
from clinker_pipeline.defs.feeds.spec import feed_assets
from clinker_pipeline.defs.instance.assets import instance_tables
from clinker_pipeline.defs.planning.assets import PLANNING_ASSETS, scenario_comparison
from clinker_pipeline.defs.planning.sensors import scenario_set_sensor
from clinker_pipeline.defs.quality.assets import (
    QUALITY_SENSORS,
    data_quality_job,
    data_quality_report,
)
from clinker_pipeline.defs.resources import build_resources
from clinker_pipeline.defs.telemetry.assets import TELEMETRY_ASSETS
from clinker_pipeline.defs.telemetry.sensors import telemetry_batches_sensor

ASSETS = [
    instance_tables,
    *ERP_ASSETS,
    *feed_assets(),
    *PLANNING_ASSETS,
    data_quality_report,
    *TELEMETRY_ASSETS,
]

# every unpartitioned asset but the scenario comparison (it reads the scenario partitions) and
# the quality report (its sensor builds it after the run): the main run of `materialize_all`
main_run_job = dg.define_asset_job(
    "main_run_job",
    selection=dg.AssetSelection.assets(
        *(
            a
            for a in ASSETS
            if isinstance(a, dg.AssetsDefinition)
            and a.partitions_def is None
            and a not in (scenario_comparison, data_quality_report)
        )
    ),
    description="By hand or on workers: sources, instance tables and the plan in one run "
    "(scenario partitions and the comparison follow through automation).",
)

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[erp_job, *JOBS, data_quality_job, main_run_job],
    schedules=SCHEDULES,
    sensors=[*SENSORS, *QUALITY_SENSORS, telemetry_batches_sensor, scenario_set_sensor],
    resources=build_resources(),
    executor=clinker_executor,
)
