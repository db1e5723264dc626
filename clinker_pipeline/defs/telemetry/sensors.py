"""The sensor that turns each landed telemetry batch into a partition of `telemetry_batches`.

Files that arrive are what a sensor is for; loading them is the assets' own automation
condition (`on_missing`), so this sensor launches no run itself.
"""

import json

import dagster as dg

from clinker_pipeline.defs.resources import TelemetrySettings
from clinker_pipeline.defs.telemetry.assets import TELEMETRY_BATCHES

MAX_NEW_PARTITIONS_PER_TICK = 500
BATCH_LOOKBACK_NS = 60 * 10**9


@dg.sensor(
    name="telemetry_batches_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Adds one telemetry_batches partition per new landing batch of the MQTT "
    "ingestor; clinker_automation_sensor then loads each new partition once.",
)
def telemetry_batches_sensor(context: dg.SensorEvaluationContext, telemetry: TelemetrySettings):
    """Cursor: the newest batch id registered and the ids registered in the minute before it.

    Batch ids sort by the time the batch was started, but ingestors of one share group can
    finish writing out of order, so a batch may appear after a newer one was seen. Each tick
    therefore looks back a minute before the newest id and registers what is not a partition
    yet (the instance's partition set is the truth if the cursor were lost). At most 500 new
    partitions per tick keep an evaluation short after a backlog.
    """
    cursor = _batch_cursor(context.cursor)
    newest = cursor["after"]
    lookback = _batch_lookback(newest) if newest else None
    seen = set(cursor["seen"])
    candidates = [b for b in telemetry.store().list_batches(lookback) if b not in seen]
    fresh = [
        b
        for b in candidates
        if not context.instance.has_dynamic_partition(TELEMETRY_BATCHES.name, b)
    ][:MAX_NEW_PARTITIONS_PER_TICK]
    if not fresh:
        return dg.SkipReason("no new telemetry batch")
    newest = max([newest, *fresh]) if newest else max(fresh)
    horizon = _batch_lookback(newest)
    kept = sorted(b for b in seen | set(fresh) if b > horizon)
    return dg.SensorResult(
        dynamic_partitions_requests=[TELEMETRY_BATCHES.build_add_request(fresh)],
        cursor=json.dumps({"after": newest, "seen": kept}),
    )


def _batch_cursor(raw: str | None) -> dict:
    if not raw:
        return {"after": "", "seen": []}
    if raw.startswith("{"):
        return json.loads(raw)
    return {"after": raw, "seen": [raw]}  # a plain batch id (older cursor format)


def _batch_lookback(batch_id: str) -> str:
    """The batch id prefix one minute before `batch_id` (ids start with 20 digits of ns)."""
    return f"{max(int(batch_id[:20]) - BATCH_LOOKBACK_NS, 0):020d}"
