"""Materialize the whole asset graph in-process, as `clinker run` does.

There is no whole-graph job (a plan run must not re-fetch every feed), and assets with
different partitions cannot share one run, so "everything" is a short sequence of in-process
runs on one instance: each telemetry batch that landed and is not loaded yet, every
unpartitioned asset but the scenario comparison and the quality report (the main run), each
scenario partition, then the comparison. Inputs cross runs through the instance's IO managers, exactly
as in a deployment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from clinker_pipeline.defs.planning.assets import SCENARIOS, scenario_comparison, scenario_plan
from clinker_pipeline.defs.planning.sensors import sync_scenario_partitions
from clinker_pipeline.defs.telemetry.assets import TELEMETRY_BATCHES


@dataclass
class GraphRuns:
    """The runs of one whole-graph materialization; `main` holds the plan."""

    main: dg.ExecuteInProcessResult
    others: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    @property
    def materialized(self) -> int:
        return sum(len(r.get_asset_materialization_events()) for r in [self.main, *self.others])

    @property
    def success(self) -> bool:
        return all(r.success for r in [self.main, *self.others])


def materialize_all(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    run_config: dict[str, Any],
    scenario_names: list[str],
    landed_batches: list[str],
) -> GraphRuns:
    """The main run first; scenarios and the comparison only when it produced a plan."""
    graph = defs.resolve_asset_graph()
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    resources = defs.resources or {}

    def run(selection: dg.AssetSelection, partition_key: str | None = None, config=None):
        return dg.materialize(
            assets,
            selection=selection,
            partition_key=partition_key,
            instance=instance,
            resources=resources,
            run_config=config if config is not None else _resources_only(run_config),
            raise_on_error=False,
        )

    unpartitioned = dg.AssetSelection.keys(
        *(k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is None)
    )
    quality = dg.AssetSelection.groups("quality")
    # telemetry first: fresh silo levels and outages reach this plan
    loaded = set(instance.get_materialized_partitions(dg.AssetKey("production_telemetry")))
    new_batches = [b for b in landed_batches if b not in loaded]
    if new_batches:
        instance.add_dynamic_partitions(TELEMETRY_BATCHES.name, new_batches)
    telemetry = dg.AssetSelection.groups("telemetry")
    others = [run(telemetry, batch) for batch in new_batches]
    main = run(
        unpartitioned - quality - dg.AssetSelection.assets(scenario_comparison),
        config=run_config,
    )
    runs = GraphRuns(main, others)
    plan_built = any(
        e.asset_key == dg.AssetKey("clinker_plan") for e in main.get_asset_materialization_events()
    )
    if plan_built:
        sync_scenario_partitions(instance, scenario_names)
        for name in instance.get_dynamic_partitions(SCENARIOS.name):
            runs.others.append(run(dg.AssetSelection.assets(scenario_plan), name))
        runs.others.append(run(dg.AssetSelection.assets(scenario_comparison)))
    return runs


def _resources_only(run_config: dict[str, Any]) -> dict[str, Any]:
    """The resource part of the main run's config (op config names the plan, not the rest)."""
    return {k: v for k, v in run_config.items() if k in ("resources", "loggers")}
