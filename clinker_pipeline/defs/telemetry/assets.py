"""Plant and fleet telemetry as assets: typed readings, alerts, aggregates.

The ingestor (`clinker ingest-mqtt`) lands MQTT messages in Parquet batches. Each landed batch is
a partition of `telemetry_batches` (`telemetry_batches_sensor` adds one per batch); declarative
automation loads each new partition once (`on_missing`), then raises its alerts (`eager`). A
partition run loads its batch in one DuckDB transaction that first looks the batch up in
`telemetry_batches_loaded`: whatever runs happen (a re-materialization, two overlapping runs),
a batch's readings and dead letters are stored once. Threshold rules raise alerts (an ERROR
alert fails the ERROR check, a WARN alert the WARN one); aggregates are views over the readings.
Fresh silo levels and detected outages reach the plan through `clinker_plan` (see
`store.telemetry_overrides`).
"""

from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from clinker_pipeline.defs.automation import DUCKDB_WRITER_POOL, eager
from clinker_pipeline.defs.resources import InstanceFiles, TelemetrySettings
from clinker_pipeline.defs.telemetry.readings import FAMILY_TABLE, family_rows, unknown_plants
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.checks import problem_check_result
from clinker_pipeline.lib.markdown import to_markdown
from clinker_pipeline.lib.store.db import transaction
from clinker_pipeline.lib.store.feeds import table_exists
from clinker_pipeline.lib.store.quarantine import quarantine_problems

GROUP = "telemetry"
FAMILIES = tuple(FAMILY_TABLE)
STRUCTURE_CHECK = "structure_valid"
PLAUSIBLE_CHECK = "values_plausible"
KNOWN_CHECK = "plants_known"
ERROR_ALERTS_CHECK = "no_error_alerts"
WARN_ALERTS_CHECK = "no_warning_alerts"

#: one partition per landed batch (its id), added by telemetry_batches_sensor
TELEMETRY_BATCHES = dg.DynamicPartitionsDefinition(name="telemetry_batches")


def _specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            table,
            group_name=GROUP,
            kinds={"mqtt", "duckdb"},
            owners=["team:planning"],
            description=f"DuckDB table {table}: typed {family} readings, one row per MQTT "
            "message (deduplicated by message id).",
            automation_condition=dg.AutomationCondition.on_missing(),
        )
        for family, table in FAMILY_TABLE.items()
    ]


def _checks() -> list[dg.AssetCheckSpec]:
    out = []
    for table in FAMILY_TABLE.values():
        out += [
            dg.AssetCheckSpec(
                STRUCTURE_CHECK,
                asset=table,
                blocking=True,
                description="Readings have the family's fields and types; misfits are "
                "quarantined with the raw payload.",
            ),
            dg.AssetCheckSpec(
                PLAUSIBLE_CHECK, asset=table, description="Values within their usual ranges."
            ),
            dg.AssetCheckSpec(
                KNOWN_CHECK,
                asset=table,
                description="Every reading names a plant (or lane end) of the planning instance.",
            ),
        ]
    return out


@dg.multi_asset(
    specs=_specs(),
    check_specs=_checks(),
    can_subset=False,
    partitions_def=TELEMETRY_BATCHES,
    pool=DUCKDB_WRITER_POOL,
)
def telemetry_tables(
    context: dg.AssetExecutionContext,
    telemetry: TelemetrySettings,
    instance_files: InstanceFiles,
    duckdb: DuckDBResource,
):
    """Load one landed batch (the partition) into the typed family tables, dead letters and
    quarantine, exactly once."""
    batch_id = context.partition_key
    store = telemetry.store()
    known = set(instance_files.load().tables["plants"]["iugu_code"])
    landed = store.read_batch(batch_id)
    dead = store.read_dead_letters(batch_id)
    with duckdb.get_connection() as con:
        loaded = _load_batch(con, batch_id, landed, dead, known, context.run.run_id)
    if loaded.loaded_by:
        context.log.info(f"telemetry batch {batch_id} was loaded by run {loaded.loaded_by}")
    else:
        context.log.info(
            f"telemetry batch {batch_id}: {sum(loaded.new_rows.values())} new readings, "
            f"{loaded.dead_letters} dead letters"
        )
    for family, table in FAMILY_TABLE.items():
        found = loaded.problems[family]
        yield dg.MaterializeResult(
            asset_key=table,
            metadata={
                "batch_id": batch_id,
                "already_loaded_by_run": loaded.loaded_by or "",
                "new_rows": loaded.new_rows[family],
                "dead_letters_in_batch": loaded.dead_letters,
                "quarantined": len(found),
                "dagster/row_count": loaded.new_rows[family],
            },
        )
        yield problem_check_result(
            table, STRUCTURE_CHECK, [p for p in found if p.severity == "ERROR"]
        )
        yield problem_check_result(
            table, PLAUSIBLE_CHECK, [p for p in found if p.rule == "plausibility"]
        )
        yield problem_check_result(table, KNOWN_CHECK, [p for p in found if p.rule == "reference"])


@dataclass
class _BatchLoad:
    problems: dict[str, list[Problem]] = field(default_factory=lambda: {f: [] for f in FAMILIES})
    new_rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAMILIES, 0))
    dead_letters: int = 0
    loaded_by: str | None = None  # the run that loaded the batch before this one


def _load_batch(
    con: Any,
    batch_id: str,
    landed: pd.DataFrame,
    dead: pd.DataFrame,
    known: set[str],
    run_id: str,
) -> _BatchLoad:
    """One transaction per batch, which first looks the batch up: a batch already recorded in
    `telemetry_batches_loaded` is not loaded again (its dead letters have no message id to
    dedupe on), and two overlapping loads of one batch cannot both commit (primary key)."""
    from clinker_pipeline.defs.telemetry.schema import family_problems
    from clinker_pipeline.defs.telemetry.store import (
        append_dead_letters,
        append_new,
        batch_loaded_by,
        record_batch,
    )

    out = _BatchLoad()
    with transaction(con):
        out.loaded_by = batch_loaded_by(con, batch_id)
        if out.loaded_by is not None:
            return out
        batch_new = batch_problems = 0
        for family, table in FAMILY_TABLE.items():
            rows, found = family_rows(family, landed)
            rows, unknown = unknown_plants(family, rows, known)
            checked = family_problems(family, rows, table)
            found += unknown + checked
            bad = {
                p.record.get("message_id") for p in checked if p.severity == "ERROR" and p.record
            }
            rows = rows[~rows["message_id"].isin(bad)]
            added = append_new(con, table, rows.assign(ts=rows["ts"].dt.tz_localize(None)))
            out.new_rows[family] += added
            batch_new += added
            out.problems[family] += found
            batch_problems += len(found)
            quarantine_problems(con, found, {}, feed=f"mqtt_{family}", dagster_run_id=run_id)
        out.dead_letters = append_dead_letters(con, dead)
        record_batch(
            con,
            batch_id,
            messages=len(landed),
            new_messages=batch_new,
            dead_letters=len(dead),
            quarantined=batch_problems,
            dagster_run_id=run_id,
        )
    return out


@dg.asset(
    deps=list(FAMILY_TABLE.values()),
    partitions_def=TELEMETRY_BATCHES,
    pool=DUCKDB_WRITER_POOL,
    automation_condition=eager(),
    group_name=GROUP,
    kinds={"duckdb"},
    owners=["team:planning"],
    check_specs=[
        dg.AssetCheckSpec(
            ERROR_ALERTS_CHECK,
            asset="alerts",
            description="No ERROR-level threshold breach (e.g. kiln overheating) in this run.",
        ),
        dg.AssetCheckSpec(
            WARN_ALERTS_CHECK,
            asset="alerts",
            description="No WARN-level breach (silo high/low, free lime, vehicle stopped).",
        ),
    ],
    description="DuckDB table alerts: threshold breaches of the batch's readings, by the rules "
    "in the telemetry rules file.",
)
def alerts(
    context: dg.AssetExecutionContext,
    telemetry: TelemetrySettings,
    instance_files: InstanceFiles,
    duckdb: DuckDBResource,
):
    from clinker_pipeline.defs.telemetry.rules import evaluate
    from clinker_pipeline.defs.telemetry.store import (
        append_alerts,
        ensure_aggregate_views,
        fleet_history,
        plant_stock,
    )

    rules = telemetry.rules()
    tables = instance_files.load().tables
    first = tables["closing_stock_bounds"].sort_values("time_period").drop_duplicates("iugu_code")
    safety = dict(zip(first["iugu_code"], first["min_close_stock"].astype(float), strict=True))
    run_id = context.run.run_id
    batch_id = context.partition_key
    with duckdb.get_connection() as con:
        new: dict[str, pd.DataFrame] = {}
        for family, table in FAMILY_TABLE.items():
            frame = (
                con.execute(
                    f"SELECT * FROM {table} WHERE batch_id = ?",
                    [batch_id],
                ).df()
                if table_exists(con, table)
                else pd.DataFrame()
            )
            if len(frame):
                frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
            new[family] = frame
        vehicles = list(new["fleet"]["vehicle"].unique()) if len(new["fleet"]) else []
        history = fleet_history(con, vehicles)
        plants = list(new["silo"]["plant"].unique()) if len(new["silo"]) else []
        raised = evaluate(rules, new, safety, history, plant_stock(con, plants))
        stored = append_alerts(con, raised, run_id)
        views = ensure_aggregate_views(con)
    errors = raised[raised["severity"] == "ERROR"]
    warns = raised[raised["severity"] != "ERROR"]
    shown = ["rule", "plant", "vehicle", "sensor", "ts", "value", "threshold"]
    yield dg.MaterializeResult(
        asset_key="alerts",
        metadata={
            "alerts_raised": len(raised),
            "alerts_new": stored,
            "error_alerts": len(errors),
            "warning_alerts": len(warns),
            "by_rule": dg.MetadataValue.json(raised["rule"].value_counts().to_dict()),
            "aggregate_views": dg.MetadataValue.json(views),
        },
    )
    for check, frame, severity in (
        (ERROR_ALERTS_CHECK, errors, dg.AssetCheckSeverity.ERROR),
        (WARN_ALERTS_CHECK, warns, dg.AssetCheckSeverity.WARN),
    ):
        yield dg.AssetCheckResult(
            asset_key="alerts",
            check_name=check,
            passed=frame.empty,
            severity=severity,
            metadata={
                "alerts": len(frame),
                "sample": dg.MetadataValue.md(
                    to_markdown(frame[shown].head(20), float_format="{:,.1f}")
                ),
            },
        )


TELEMETRY_ASSETS = [telemetry_tables, alerts]
