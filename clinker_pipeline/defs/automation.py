"""When things run: declarative automation on the assets, DuckDB retention, failure alerting.

Every asset says when it should be materialized (`automation_condition`): sources on the cron of
their supplier (`on_cron` in plant time, Asia/Kolkata, which has no DST), the plan whenever one
of its inputs changed and at least daily, what follows the plan `eager()`. One
`AutomationConditionSensorDefinition` evaluates them all; it is RUNNING by default because the
conditions only fire on a cron tick or an upstream change (a fresh `dagster dev` launches
nothing at start-up, a test proves it), every source defaults to its bundled sample, and a
live source is only called once an operator configured its URL and key, which is the decision
to fetch it. Stopping this one sensor in the UI stops all automatic materializations.

Jobs and sensors remain only for what assets cannot say: retention (an op over DuckDB), the
alert on failed runs, the data-quality report after each run (in `defs/quality`), landing
batches of telemetry (in `defs/telemetry`) and the scenario set (in `defs/planning`).

Writes to the analysts' DuckDB file (one writer at a time) share the pool `duckdb_writer`
(`pool=` on each asset that writes; the limit is `concurrency: pools: default_limit` in
dagster.yaml): a solve that only reads never waits behind a write, nor a write behind a solve.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from clinker_pipeline.lib.feed_runtime import TIMEZONE
from clinker_pipeline.lib.store.retention import apply_retention

#: the pool of every asset and op that writes the analysts' DuckDB file
DUCKDB_WRITER_POOL = "duckdb_writer"

INSTANCE_CRON = "0 5 * * *"  # the instance files, re-read daily before the plan
PLAN_CRON = "30 5 * * *"  # the plan at least once a day, even if no input changed

#: what the plan may lag behind: telemetry lands every minute and reaches the plan at its next
#: solve (fresh silo levels, outages), it never triggers one by itself
TELEMETRY = dg.AssetSelection.groups("telemetry")


def on_cron(cron: str) -> dg.AutomationCondition:
    """A source on its supplier's cadence, in plant time."""
    return dg.AutomationCondition.on_cron(cron, TIMEZONE)


def plan_condition() -> dg.AutomationCondition:
    """Re-solve when an input changed (eager, telemetry aside) or once a day at PLAN_CRON, and
    never on inputs whose last materialization failed a blocking check."""
    daily = (
        dg.AutomationCondition.cron_tick_passed(PLAN_CRON, TIMEZONE).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing().ignore(TELEMETRY)
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"daily at {PLAN_CRON} {TIMEZONE}")
    checked = dg.AutomationCondition.all_deps_blocking_checks_passed().ignore(TELEMETRY)
    return ((dg.AutomationCondition.eager().ignore(TELEMETRY) | daily) & checked).with_label(
        "inputs changed, or daily"
    )


def eager() -> dg.AutomationCondition:
    """What follows one upstream asset (publishing, scenarios, alerts)."""
    return dg.AutomationCondition.eager()


# --- retention --------------------------------------------------------------------------------


class RetentionConfig(dg.Config):
    """How long plan runs and quarantined rows are kept in the analysts' DuckDB."""

    plan_runs_keep_days: int = 90
    # always kept, however old: the newest N runs and the newest successful base-scenario run
    keep_latest_runs: int = 20
    quarantine_keep_days: int = 30


@dg.op(
    description="Delete expired plan runs (every plan table) and quarantine rows.",
    pool=DUCKDB_WRITER_POOL,
)
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
)
def cleanup_job():
    apply_duckdb_retention()


cleanup_weekly_schedule = dg.ScheduleDefinition(
    name="cleanup_weekly_schedule",
    job=cleanup_job,
    cron_schedule="0 3 * * 0",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="DuckDB retention on Sundays at 03:00 IST (stopped until an operator turns it "
    "on: it deletes rows).",
)

# --- the one automation sensor ----------------------------------------------------------------

automation_sensor = dg.AutomationConditionSensorDefinition(
    "clinker_automation_sensor",
    # the data-quality report follows runs, not assets (see defs/quality)
    target=dg.AssetSelection.all() - dg.AssetSelection.groups("quality"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates every asset's automation condition: sources on their cron, the plan "
    "when an input changed (and daily), what follows the plan, each new telemetry batch.",
)

# --- failure alerting -------------------------------------------------------------------------


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


JOBS = [cleanup_job]
SCHEDULES = [cleanup_weekly_schedule]
SENSORS = [automation_sensor, run_failure_alert_sensor]
