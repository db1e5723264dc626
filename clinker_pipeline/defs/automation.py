"""When things run: schedules, the plan re-solve sensor, DuckDB retention and failure alerting.

Every schedule and the re-solve sensor are created STOPPED (`DefaultScheduleStatus.STOPPED`,
`DefaultSensorStatus.STOPPED`): deploying the code location starts nothing. An operator turns
each one on in the UI (Automation tab) once the ERP credentials and the DuckDB path are set, so
a fresh install never hammers SAP/Oracle or writes plans nobody asked for. All cron strings are
plant time (`Asia/Kolkata`), which has no DST, so a tick never moves or repeats.

Only the run-failure sensor starts RUNNING: it reads the instance and logs, nothing more.
"""

import hashlib
import json

import dagster as dg
from dagster_duckdb import DuckDBResource

from clinker_pipeline.defs.erp.assets import ERP_ASSETS, erp_inventory, erp_job
from clinker_pipeline.defs.feeds.diesel.assets import diesel_prices
from clinker_pipeline.defs.feeds.fx.assets import fx_rates
from clinker_pipeline.defs.feeds.indicators.assets import economic_indicators
from clinker_pipeline.defs.feeds.market.assets import cement_prices
from clinker_pipeline.defs.feeds.weather.assets import weather_forecast
from clinker_pipeline.defs.instance.assets import instance_tables
from clinker_pipeline.defs.planning.assets import DUCKDB_WRITER_TAG, plan_job
from clinker_pipeline.defs.resources import TelemetrySettings
from clinker_pipeline.defs.telemetry.assets import telemetry_job
from clinker_pipeline.lib.store.retention import apply_retention

TIMEZONE = "Asia/Kolkata"

# --- jobs -------------------------------------------------------------------------------------

erp_stock_job = dg.define_asset_job(
    "erp_stock_job",
    selection=dg.AssetSelection.assets(erp_inventory),
    description="Fetch only the clinker stock from SAP: stock moves hourly, master data does not.",
    tags={DUCKDB_WRITER_TAG: "true"},
)


def _feed_job(name: str, assets: list, description: str):
    return dg.define_asset_job(
        name,
        selection=dg.AssetSelection.assets(*assets),
        description=description,
        tags={DUCKDB_WRITER_TAG: "true"},
    )


weather_job = _feed_job(
    "weather_job", [weather_forecast], "OpenWeatherMap forecast for every plant, road availability."
)
diesel_job = _feed_job(
    "diesel_job", [fx_rates, diesel_prices], "USD/INR rates, then EIA weekly diesel in INR/L."
)
fx_job = _feed_job("fx_job", [fx_rates], "USD/INR reference rates (history upserted).")
market_job = _feed_job("market_job", [cement_prices], "City cement prices and market statistics.")
indicators_job = _feed_job(
    "indicators_job", [economic_indicators], "CPI inflation and the manual PMI/freight inputs."
)


class RetentionConfig(dg.Config):
    """How long plan runs and quarantined rows are kept in the analysts' DuckDB."""

    plan_runs_keep_days: int = 90
    # always kept, however old: the newest N runs and the newest successful base-scenario run
    keep_latest_runs: int = 20
    quarantine_keep_days: int = 30


@dg.op(description="Delete expired plan runs (every plan table) and quarantine rows.")
def apply_duckdb_retention(
    context: dg.OpExecutionContext, config: RetentionConfig, duckdb: DuckDBResource
) -> dg.Output[dict[str, int]]:
    with duckdb.get_connection() as con:
        deleted = apply_retention(
            con,
            plan_runs_keep_days=config.plan_runs_keep_days,
            keep_latest_runs=config.keep_latest_runs,
            quarantine_keep_days=config.quarantine_keep_days,
        )
    context.log.info(f"retention deleted rows: {deleted}")
    return dg.Output(deleted, metadata={f"deleted_{t}": n for t, n in deleted.items()})


@dg.job(
    name="cleanup_job",
    description="Prune old plan runs and quarantine rows from DuckDB (see RetentionConfig).",
    tags={DUCKDB_WRITER_TAG: "true"},
)
def cleanup_job():
    apply_duckdb_retention()


# --- schedules --------------------------------------------------------------------------------


def _schedule(name: str, job, cron: str, description: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone=TIMEZONE,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=description,
    )


erp_daily_schedule = _schedule(
    "erp_daily_schedule",
    erp_job,
    "0 2 * * *",
    "Full ERP sync (plants, stock, demand, capacity) nightly at 02:00 IST.",
)
erp_stock_hourly_schedule = _schedule(
    "erp_stock_hourly_schedule", erp_stock_job, "0 * * * *", "Clinker stock from SAP every hour."
)
plan_daily_schedule = _schedule(
    "plan_daily_schedule",
    plan_job,
    "30 5 * * *",
    "Re-solve the plan at 05:30 IST at least once a day, even if no input changed.",
)
cleanup_weekly_schedule = _schedule(
    "cleanup_weekly_schedule", cleanup_job, "0 3 * * 0", "DuckDB retention on Sundays at 03:00 IST."
)

FEED_SCHEDULES = [
    _schedule(
        "weather_3hourly_schedule",
        weather_job,
        "15 */3 * * *",
        "Weather every 3 hours (OWM's forecast steps are 3-hourly), 15 min past the step.",
    ),
    _schedule(
        "diesel_weekly_schedule",
        diesel_job,
        "0 6 * * 2",
        "Diesel on Tuesdays 06:00 IST: EIA publishes Monday afternoon Eastern time.",
    ),
    _schedule(
        "fx_daily_schedule",
        fx_job,
        "30 21 * * 1-5",
        "USD/INR on weekdays 21:30 IST, after the ECB reference rates (~16:00 CET).",
    ),
    _schedule(
        "market_daily_schedule",
        market_job,
        "0 7 * * *",
        "Cement prices daily at 07:00 IST.",
    ),
    _schedule(
        "indicators_monthly_schedule",
        indicators_job,
        "0 7 1,15 * *",
        "CPI and the manual PMI/freight CSVs on the 1st and 15th at 07:00 IST.",
    ),
]

# --- sensors ----------------------------------------------------------------------------------

PLAN_INPUT_KEYS: list[dg.AssetKey] = [
    *(key for a in ERP_ASSETS for key in a.keys),
    weather_forecast.key,
    fx_rates.key,
    diesel_prices.key,
    *sorted(instance_tables.keys, key=lambda k: k.to_user_string()),
]


def _run_key(cursor: dict[str, int]) -> str:
    digest = hashlib.sha256(json.dumps(cursor, sort_keys=True).encode()).hexdigest()[:16]
    return f"plan-inputs-{digest}"


@dg.sensor(
    name="plan_inputs_changed_sensor",
    job=plan_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Re-solve the plan once when any ERP asset, instance table, weather or diesel "
    "feed is re-materialized.",
)
def plan_inputs_changed_sensor(context: dg.SensorEvaluationContext):
    """One plan run per batch of input changes, whatever the number of changed assets.

    A plain sensor over `instance.get_asset_records` rather than a multi-asset sensor: one query
    returns the latest materialization storage id of every input, the cursor stays a flat
    `{asset: storage_id}` JSON, and the whole batch maps to exactly one run (a multi-asset sensor
    would need per-asset cursor advancing to express "any changed" and reads events per asset).
    The run_key is a hash of the storage ids, so a repeated tick can never launch a duplicate.

    The plan job itself re-materializes the instance tables and ERP assets (it selects the whole
    graph). Those materializations advance the cursor but never trigger a run, otherwise every
    plan would schedule the next one.
    """
    seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    latest: dict[str, int] = dict(seen)
    changed: list[str] = []
    run_jobs: dict[str, str | None] = {}
    for record in context.instance.get_asset_records(PLAN_INPUT_KEYS):
        mat = record.asset_entry.last_materialization_record
        if mat is None:
            continue
        key = record.asset_entry.asset_key.to_user_string()
        if mat.storage_id <= seen.get(key, 0):
            continue
        latest[key] = mat.storage_id
        run_id = mat.event_log_entry.run_id
        if run_id not in run_jobs:
            run = context.instance.get_run_by_id(run_id) if run_id else None
            run_jobs[run_id] = run.job_name if run else None
        if run_jobs[run_id] != plan_job.name:
            changed.append(key)
    if latest == seen:
        return dg.SkipReason("no ERP asset or instance table materialized since the last tick")
    if not changed:
        return dg.SensorResult(
            skip_reason=dg.SkipReason("inputs only re-materialized by the plan job itself"),
            cursor=json.dumps(latest, sort_keys=True),
        )
    context.log.info(f"plan inputs changed: {', '.join(sorted(changed))}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=_run_key(latest),
                tags={"clinker/trigger": "plan_inputs_changed"},
            )
        ],
        cursor=json.dumps(latest, sort_keys=True),
    )


MAX_BATCH_RUNS_PER_TICK = 50


@dg.sensor(
    name="telemetry_batches_sensor",
    job=telemetry_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="One telemetry_job run per new landing batch of the MQTT ingestor.",
)
def telemetry_batches_sensor(context: dg.SensorEvaluationContext, telemetry: TelemetrySettings):
    """Cursor: the newest batch id requested and the ids requested in the minute before it.

    Batch ids sort by the time the batch was started, but ingestors of one share group can
    finish writing out of order, so a batch may appear after a newer one was seen. Each tick
    therefore looks back a minute before the newest id and requests what it has not requested
    yet; run_key (the batch id) makes a batch load once even if the cursor were lost. At most 50
    runs per tick keep an evaluation short after a backlog.
    """
    cursor = _batch_cursor(context.cursor)
    newest = cursor["after"]
    lookback = _batch_lookback(newest) if newest else None
    seen = set(cursor["seen"])
    candidates = telemetry.store().list_batches(lookback)
    fresh = [b for b in candidates if b not in seen][:MAX_BATCH_RUNS_PER_TICK]
    if not fresh:
        return dg.SkipReason("no new telemetry batch")
    newest = max([newest, *fresh]) if newest else max(fresh)
    horizon = _batch_lookback(newest)
    kept = sorted(b for b in seen | set(fresh) if b > horizon)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"telemetry-{batch}",
                run_config={"ops": {"telemetry_tables": {"config": {"batch_ids": [batch]}}}},
                tags={"clinker/telemetry_batch": batch},
            )
            for batch in fresh
        ],
        cursor=json.dumps({"after": newest, "seen": kept}),
    )


BATCH_LOOKBACK_NS = 60 * 10**9


def _batch_cursor(raw: str | None) -> dict:
    if not raw:
        return {"after": "", "seen": []}
    if raw.startswith("{"):
        return json.loads(raw)
    return {"after": raw, "seen": [raw]}  # a plain batch id (older cursor format)


def _batch_lookback(batch_id: str) -> str:
    """The batch id prefix one minute before `batch_id` (ids start with 20 digits of ns)."""
    return f"{max(int(batch_id[:20]) - BATCH_LOOKBACK_NS, 0):020d}"


def _failure_message(context: dg.RunFailureSensorContext) -> str:
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None:
            while error.cause is not None:  # Dagster wraps the user's exception: show the root
                error = error.cause
            return f"{event.step_key}: {error.message.strip()}"
        return f"{event.step_key}: {event.message or 'step failed'}"
    return context.failure_event.message or "run failed before any step"


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    monitor_all_code_locations=False,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Log every failed run of this code location (hook for Slack/e-mail later).",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext) -> None:
    """Logs job, run id and the first step error: the one place to add a notifier later."""
    run = context.dagster_run
    context.log.error(
        f"run failed: job={run.job_name} run_id={run.run_id} error={_failure_message(context)}"
    )


AUTOMATION_JOBS = [
    telemetry_job,
    erp_stock_job,
    cleanup_job,
    weather_job,
    diesel_job,
    fx_job,
    market_job,
    indicators_job,
]
SCHEDULES = [
    erp_daily_schedule,
    erp_stock_hourly_schedule,
    plan_daily_schedule,
    cleanup_weekly_schedule,
    *FEED_SCHEDULES,
]
SENSORS = [plan_inputs_changed_sensor, run_failure_alert_sensor, telemetry_batches_sensor]
