"""Keeps the `scenarios` partitions in step with the configured scenario set.

The scenario set is data (scenarios.json, or CLINKER_SCENARIOS_PATH): adding a scenario means
adding an entry, so the partitions are dynamic and this sensor adds the new names and removes
the ones the set dropped. It launches no run; scenario_plan's automation condition solves new
partitions after the next plan.
"""

import dagster as dg

from clinker_pipeline.defs.planning.assets import SCENARIOS
from clinker_pipeline.defs.resources import ScenarioSettings


def scenario_partition_requests(
    instance: dg.DagsterInstance, names: list[str]
) -> list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest]:
    """What to add and delete so the `scenarios` partitions are exactly `names`."""
    current = set(instance.get_dynamic_partitions(SCENARIOS.name))
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    added = [n for n in names if n not in current]
    removed = sorted(current - set(names))
    if added:
        requests.append(SCENARIOS.build_add_request(added))
    if removed:
        requests.append(SCENARIOS.build_delete_request(removed))
    return requests


def sync_scenario_partitions(instance: dg.DagsterInstance, names: list[str]) -> None:
    """The same as the sensor, applied directly (for `clinker run`, which has no daemon)."""
    for request in scenario_partition_requests(instance, names):
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(SCENARIOS.name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(SCENARIOS.name, key)


@dg.sensor(
    name="scenario_set_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps the scenarios partitions equal to the names of the configured scenario "
    "set (reads one JSON file, launches no run).",
)
def scenario_set_sensor(context: dg.SensorEvaluationContext, scenarios: ScenarioSettings):
    names = [s.name for s in scenarios.load().scenarios]
    requests = scenario_partition_requests(context.instance, names)
    if not requests:
        return dg.SkipReason(f"scenario partitions already match the set ({len(names)})")
    return dg.SensorResult(dynamic_partitions_requests=requests)
