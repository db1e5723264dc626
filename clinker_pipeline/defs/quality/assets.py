"""The data-quality report asset and the run-status sensors that build it after every run that
fetched data.

The report must exist most when a blocking check failed, and a blocking failure skips every
downstream asset of that run. So the report is not downstream of the feeds: it is its own small
job, requested by `data_quality_sensor` (run succeeded) and `data_quality_failure_sensor` (run
failed) for each finished run that materialized a reported asset (a feed, an ERP entity, an
instance table or a telemetry family), and it reads that run's check evaluations and
materializations from the Dagster instance and its quarantine rows and feed outcomes from
DuckDB. Both sensors run by default. `clinker run` builds the same report in-process right
after the main run. Materialized by hand (no config), the report covers the newest such run.
"""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from clinker_pipeline.defs.automation import DUCKDB_WRITER_POOL
from clinker_pipeline.defs.feeds.spec import feed_of_asset
from clinker_pipeline.defs.quality.store import (
    CheckOutcome,
    FeedQuality,
    quarantine_by_reason,
    report_frame,
    write_report,
)
from clinker_pipeline.instance import TABLES
from clinker_pipeline.lib.markdown import to_markdown
from clinker_pipeline.lib.store.feeds import table_exists

#: asset -> the feed name used in `quarantine.feed` and `feed_status.feed`
ASSET_FEED: dict[str, str] = {
    **feed_of_asset(),  # the declared feeds
    "erp_plants": "sap_plants",
    "erp_inventory": "sap_stock",
    "erp_demand_forecast": "ibp_demand",
    "erp_capacity": "oracle_capacity",
    **{t.name: "instance_files" for t in TABLES},
    "production_telemetry": "mqtt_line",
    "silo_levels": "mqtt_silo",
    "quality_results": "mqtt_quality",
    "energy_use": "mqtt_energy",
    "fleet_positions": "mqtt_fleet",
}


def _value(metadata: dict, *keys: str) -> int | None:
    for key in keys:
        if key in metadata:
            value = getattr(metadata[key], "value", metadata[key])
            if isinstance(value, int | float):
                return int(value)
    return None


def check_outcomes(instance: dg.DagsterInstance, run_id: str) -> list[CheckOutcome]:
    """Every asset check evaluated in the run, in order."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    out = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        out.append(
            CheckOutcome(
                evaluation.asset_key.to_user_string(),
                evaluation.check_name,
                evaluation.passed,
                evaluation.severity.value,
            )
        )
    return out


def collect_quality(
    instance: dg.DagsterInstance, run_id: str, duckdb: DuckDBResource
) -> tuple[list[FeedQuality], pd.DataFrame]:
    """Per feed touched by the run: its checks, rows, quarantine and freshness; and the reasons."""
    feeds: dict[str, FeedQuality] = {}

    def feed_of(asset: str) -> FeedQuality | None:
        name = ASSET_FEED.get(asset)
        if name is None:
            return None
        quality = feeds.setdefault(name, FeedQuality(name))
        if asset not in quality.assets:
            quality.assets.append(asset)
        return quality

    for outcome in check_outcomes(instance, run_id):
        quality = feed_of(outcome.asset)
        if quality is not None:
            quality.checks.append(outcome)
    mats = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in mats:
        materialization = record.event_log_entry.dagster_event.event_specific_data.materialization
        quality = feed_of(materialization.asset_key.to_user_string())
        if quality is None:
            continue
        meta = dict(materialization.metadata)
        kept = _value(meta, "good_rows", "rows_kept", "dagster/row_count") or 0
        fetched = _value(meta, "records_fetched") or kept
        quality.rows_kept += kept
        quality.rows_fetched += fetched
    with duckdb.get_connection() as con:
        reasons = quarantine_by_reason(con, run_id, list(feeds) or None)
        status_rows = (
            con.execute(
                "SELECT feed, status, rows_fetched, rows_kept, data_as_of, last_good_at "
                "FROM feed_status WHERE dagster_run_id = ? ORDER BY checked_at",
                [run_id],
            ).fetchall()
            if table_exists(con, "feed_status")
            else []
        )
    for feed, status, fetched, kept, as_of, good_at in status_rows:
        quality = feeds.setdefault(feed, FeedQuality(feed))
        quality.freshness = status
        quality.rows_fetched, quality.rows_kept = int(fetched or 0), int(kept or 0)
        quality.data_as_of, quality.last_good_at = as_of, good_at
    for row in reasons.itertuples(index=False):
        quality = feeds.get(row.feed)
        if quality is None:
            continue
        if row.severity == "ERROR":
            quality.rows_quarantined_error += int(row.rows)
        else:
            quality.rows_quarantined_warn += int(row.rows)
    return sorted(feeds.values(), key=lambda q: q.feed), reasons


def build_report(instance: dg.DagsterInstance, run_id: str, duckdb: DuckDBResource) -> pd.DataFrame:
    """Collect, score and store the report of one run; returns its rows."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise dg.Failure(f"no Dagster run {run_id} in this instance")
    feeds, reasons = collect_quality(instance, run_id, duckdb)
    report = report_frame(feeds, run_id=run_id, job_name=run.job_name, run_status=run.status.value)
    with duckdb.get_connection() as con:
        write_report(con, report, reasons, run_id)
    return report


class QualityReportConfig(dg.Config):
    """The run to report on (the sensors fill it in); empty: the newest finished run that
    materialized a reported asset."""

    run_id: str = ""


def _reported(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """A run that materialized (or meant to) a feed, ERP, instance or telemetry asset."""
    keys = run.asset_selection
    if not keys:  # a whole asset job: what it planned to materialize
        planned = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=1000
        ).records
        keys = {r.event_log_entry.dagster_event.asset_key for r in planned}
    return any(key.to_user_string() in ASSET_FEED for key in keys)


def newest_reported_run(instance: dg.DagsterInstance, exclude: str = "") -> str | None:
    """The newest finished run that fetched data, for a report materialized by hand."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]),
        limit=200,
    )
    for record in records:
        run = record.dagster_run
        if run.run_id != exclude and _reported(instance, run):
            return run.run_id
    return None


@dg.asset(
    group_name="quality",
    pool=DUCKDB_WRITER_POOL,
    kinds={"duckdb"},
    owners=["team:planning"],
    description="Per feed and run: checks passed and failed, rows kept and quarantined (by "
    "reason), freshness and a quality score (formula in README). Built by data_quality_sensor "
    "and data_quality_failure_sensor after every run that fetched data, failed runs included.",
)
def data_quality_report(
    context: dg.AssetExecutionContext, config: QualityReportConfig, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    run_id = config.run_id or newest_reported_run(context.instance, context.run.run_id)
    if run_id is None:
        context.log.info("no finished run fetched data yet: nothing to report")
        return dg.MaterializeResult(metadata={"reported_run_id": "", "feeds": 0})
    report = build_report(context.instance, run_id, duckdb)
    shown = (
        report[
            [
                "feed",
                "score",
                "checks_passed",
                "checks_failed_error",
                "checks_failed_warn",
                "rows_kept",
                "rows_quarantined_error",
                "rows_quarantined_warn",
                "freshness",
            ]
        ]
        if len(report)
        else report
    )
    return dg.MaterializeResult(
        metadata={
            "reported_run_id": run_id,
            "feeds": len(report),
            # feeds with "no data" have no score and do not count
            "min_score": float(report["score"].dropna().min())
            if report["score"].notna().any()
            else 100.0,
            "report": dg.MetadataValue.md(to_markdown(shown, float_format="{:,.1f}")),
            "dagster/row_count": len(report),
        }
    )


data_quality_job = dg.define_asset_job(
    "data_quality_job",
    selection=[data_quality_report],
    description="Score the data quality of one finished run (see data_quality_sensor).",
)


def _report_request(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    run = context.dagster_run
    if run.job_name == data_quality_job.name or not _reported(context.instance, run):
        return dg.SkipReason(f"run {run.run_id} fetched no data")
    return dg.RunRequest(
        run_key=f"dq-{run.run_id}",
        run_config={"ops": {"data_quality_report": {"config": {"run_id": run.run_id}}}},
        tags={"clinker/reported_run": run.run_id},
    )


@dg.run_status_sensor(
    name="data_quality_sensor",
    run_status=dg.DagsterRunStatus.SUCCESS,
    request_job=data_quality_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One data_quality_job run per successful run that fetched data.",
)
def data_quality_sensor(context: dg.RunStatusSensorContext):
    return _report_request(context)


@dg.run_failure_sensor(
    name="data_quality_failure_sensor",
    request_job=data_quality_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One data_quality_job run per failed run that fetched data: the report matters "
    "most when a blocking check stopped a run.",
)
def data_quality_failure_sensor(context: dg.RunFailureSensorContext):
    return _report_request(context)


QUALITY_SENSORS = [data_quality_sensor, data_quality_failure_sensor]
