"""The data-quality report asset and the sensor that builds it after every run that fetched data.

The report must exist most when a blocking check failed, and a blocking failure skips every
downstream asset of that run. So the report is not downstream of the feeds: it is its own small
job, requested by `data_quality_sensor` for each finished run (success or failure) of a job that
materializes feeds, and it reads that run's check evaluations and materializations from the
Dagster instance and its quarantine rows and feed outcomes from DuckDB. `clinker run` builds the
same report in-process right after the main job.
"""

import json
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

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
REPORTED_JOBS = (
    "clinker_plan_job",
    "erp_sync_job",
    "erp_stock_job",
    "weather_job",
    "diesel_job",
    "fx_job",
    "market_job",
    "indicators_job",
    "telemetry_job",
)


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
    """The run to report on (the sensor fills it in)."""

    run_id: str


@dg.asset(
    group_name="quality",
    kinds={"duckdb"},
    owners=["team:planning"],
    description="Per feed and run: checks passed and failed, rows kept and quarantined (by "
    "reason), freshness and a quality score (formula in README). Built by data_quality_sensor "
    "after every run that fetched data, failed runs included.",
)
def data_quality_report(
    context: dg.AssetExecutionContext, config: QualityReportConfig, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    report = build_report(context.instance, config.run_id, duckdb)
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
            "reported_run_id": config.run_id,
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
    tags={"clinker/duckdb_writer": "true"},
)


@dg.sensor(
    name="data_quality_sensor",
    job=data_quality_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="One data_quality_job run per finished run (success or failure) of a job that "
    "fetches data.",
)
def data_quality_sensor(context: dg.SensorEvaluationContext):
    """Cursor: the update time of the newest finished run already reported (JSON)."""
    cursor = json.loads(context.cursor) if context.cursor else {"after": 0.0}
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE],
            updated_after=datetime.fromtimestamp(cursor["after"], UTC),
        ),
        order_by="update_timestamp",
        ascending=True,
        limit=100,
    )
    requests, newest = [], cursor["after"]
    for record in records:
        stamp = record.update_timestamp.timestamp()
        if stamp <= cursor["after"]:
            continue
        newest = max(newest, stamp)
        run = record.dagster_run
        if run.job_name not in REPORTED_JOBS:
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"dq-{run.run_id}",
                run_config={"ops": {"data_quality_report": {"config": {"run_id": run.run_id}}}},
                tags={"clinker/reported_run": run.run_id},
            )
        )
    if not requests and newest == cursor["after"]:
        return dg.SkipReason("no finished run to report on")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps({"after": newest}))
