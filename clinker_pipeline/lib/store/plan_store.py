"""The analysts' DuckDB tables: every optimizer run, keyed by run id, written in one transaction.

Nothing is overwritten: each run adds rows, and the `latest_plan_*` views point at one run, so
dashboards follow the plan without knowing run ids. The rule (README "DuckDB tables"): the newest
usable (optimal or feasible-with-gap) base-scenario run of the *current instance*, which is the
instance (name and fingerprint) of the newest usable base run the pipeline made, or of the newest
usable base run at all in a file the pipeline never wrote. A `clinker optimize` of another
instance into the pipeline's file is kept in `plan_runs` but never becomes its `latest_plan_*`.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from clinker_pipeline.lib.store.backend import conflict_retried, portable_ddl
from clinker_pipeline.lib.store.db import transaction
from clinker_pipeline.optimization.result import PlanResult

logger = logging.getLogger(__name__)

PLAN_TABLES: dict[str, str] = {
    "plan_runs": """
        run_id VARCHAR PRIMARY KEY,
        created_at TIMESTAMP NOT NULL,
        scenario VARCHAR NOT NULL,
        launched_by VARCHAR NOT NULL,
        dagster_run_id VARCHAR,
        inputs_fingerprint VARCHAR,
        input_origin VARCHAR,
        status VARCHAR NOT NULL,
        objective VARCHAR NOT NULL,
        solver VARCHAR NOT NULL,
        solver_version VARCHAR,
        cost DOUBLE,
        production_cost DOUBLE,
        transport_cost DOUBLE,
        holding_cost DOUBLE,
        demand_t DOUBLE,
        unmet_t DOUBLE,
        served_pct DOUBLE,
        mip_gap DOUBLE,
        best_bound DOUBLE,
        n_vars INTEGER,
        n_int INTEGER,
        n_rows INTEGER,
        build_s DOUBLE,
        handoff_s DOUBLE,
        solve_s DOUBLE,
        extract_s DOUBLE,
        message VARCHAR,
        options JSON,
        input_warnings JSON,
        adjustments JSON,
        stale_inputs JSON
    """,
    "plan_production": """
        run_id VARCHAR NOT NULL,
        iu_code VARCHAR NOT NULL,
        time_period INTEGER NOT NULL,
        production_t DOUBLE,
        capacity_t DOUBLE,
        utilisation_pct DOUBLE,
        production_cost_inr_per_t DOUBLE,
        production_cost_inr DOUBLE
    """,
    "plan_shipments": """
        run_id VARCHAR NOT NULL,
        from_code VARCHAR NOT NULL,
        to_code VARCHAR NOT NULL,
        transport_code VARCHAR NOT NULL,
        time_period INTEGER NOT NULL,
        quantity_t DOUBLE,
        trips BIGINT,
        quantity_multiplier DOUBLE,
        freight_cost_inr_per_t DOUBLE,
        handling_cost_inr_per_t DOUBLE,
        transport_cost_inr DOUBLE
    """,
    "plan_inventory": """
        run_id VARCHAR NOT NULL,
        iugu_code VARCHAR NOT NULL,
        time_period INTEGER NOT NULL,
        opening_t DOUBLE,
        closing_t DOUBLE,
        min_close_t DOUBLE,
        max_close_t DOUBLE
    """,
    "plan_unmet": """
        run_id VARCHAR NOT NULL,
        iugu_code VARCHAR NOT NULL,
        time_period INTEGER NOT NULL,
        demand_t DOUBLE,
        served_t DOUBLE,
        unmet_t DOUBLE
    """,
    "plan_diagnosis": """
        run_id VARCHAR NOT NULL,
        source_table VARCHAR,
        source_row INTEGER,
        kind VARCHAR,
        iugu_code VARCHAR,
        time_period INTEGER,
        violation_t DOUBLE,
        description VARCHAR
    """,
}
# The per-run detail tables and the PlanResult attribute each comes from.
DETAIL_TABLES = {
    "plan_production": "production",
    "plan_shipments": "shipments",
    "plan_inventory": "inventory",
    "plan_unmet": "unmet",
    "plan_diagnosis": "diagnosis",
}
LATEST_VIEWS = ("plan_production", "plan_shipments", "plan_inventory", "plan_unmet")
# Columns added after the first release: files written by an older version gain them (NULL).
ADDED_COLUMNS = {
    "plan_runs": (
        ("adjustments", "JSON"),
        ("stale_inputs", "JSON"),
        ("serve_gap", "DOUBLE"),  # the serve stage's proof (see PlanResult)
        ("serve_bound", "DOUBLE"),
        ("instance_name", "VARCHAR"),
    )
}
USABLE = "scenario = 'base' AND status IN ('optimal', 'feasible-with-gap')"
# Published plans are rounded to what a plant can act on and a solver can tell apart: tonnes to
# 0.01 t (HiGHS' feasibility tolerance leaves ~1e-4 t of noise, shown as "unmet" otherwise),
# money to 0.01 INR. README "DuckDB tables" states it.
DECIMALS = {"_t": 2, "_inr": 2, "cost": 2}


def rounded(record: dict[str, Any] | pd.DataFrame) -> Any:
    """Tonnes and INR rounded to the published tolerance (a frame or one run record)."""

    def places(column: str) -> int | None:
        return next((d for end, d in DECIMALS.items() if column.endswith(end)), None)

    if isinstance(record, pd.DataFrame):
        out = record.copy()
        for column in out.columns:
            if places(column) is not None and pd.api.types.is_float_dtype(out[column]):
                out[column] = out[column].round(places(column)) + 0.0  # no -0.0
        return out
    return {
        k: round(v, places(k)) + 0.0
        if isinstance(v, float) and math.isfinite(v) and places(k) is not None
        else v
        for k, v in record.items()
    }


@conflict_retried
def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    from clinker_pipeline.explain.store import ensure_explain_schema

    for name, columns in PLAN_TABLES.items():
        con.execute(portable_ddl(con, f"CREATE TABLE IF NOT EXISTS {name} ({columns})"))
    ensure_explain_schema(con)
    for name, added in ADDED_COLUMNS.items():
        for column, kind in added:
            con.execute(f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {column} {kind}")
    con.execute(
        f"""
        CREATE OR REPLACE VIEW latest_plan_run AS
        WITH usable AS (SELECT * FROM plan_runs WHERE {USABLE}),
        current_instance AS (
            SELECT instance_name, inputs_fingerprint FROM usable
            ORDER BY launched_by = 'dagster' DESC, created_at DESC
            LIMIT 1
        )
        SELECT u.* FROM usable u, current_instance c
        WHERE u.instance_name IS NOT DISTINCT FROM c.instance_name
          AND u.inputs_fingerprint IS NOT DISTINCT FROM c.inputs_fingerprint
        ORDER BY u.created_at DESC
        LIMIT 1
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE VIEW latest_plan_run_by_instance AS
        SELECT * FROM plan_runs WHERE {USABLE}
        QUALIFY row_number() OVER (PARTITION BY instance_name ORDER BY created_at DESC) = 1
        """
    )
    for name in LATEST_VIEWS:
        con.execute(
            f"CREATE OR REPLACE VIEW latest_{name} AS "
            f"SELECT * FROM {name} WHERE run_id = (SELECT run_id FROM latest_plan_run)"
        )


@conflict_retried
def write_plan(
    con: duckdb.DuckDBPyConnection,
    result: PlanResult,
    *,
    scenario: str = "base",
    launched_by: str = "cli",
    inputs_fingerprint: str | None = None,
    input_origin: str | None = None,
    dagster_run_id: str | None = None,
    input_warnings: list[str] | None = None,
    instance_name: str | None = None,
) -> dict[str, int]:
    """Append one run to every plan table atomically; returns rows written per table."""
    ensure_schema(con)
    run = {
        **result.summary(),
        "created_at": datetime.now(UTC).replace(tzinfo=None),
        "scenario": scenario,
        "launched_by": launched_by,
        "dagster_run_id": dagster_run_id,
        "inputs_fingerprint": inputs_fingerprint,
        "input_origin": input_origin,
        "instance_name": instance_name,
        "options": json.dumps(result.options, default=str),
        "input_warnings": json.dumps(list(input_warnings or [])),
        "adjustments": json.dumps(result.options.get("adjustments") or {}, default=str),
        "stale_inputs": json.dumps(
            (result.options.get("adjustments") or {}).get("stale_inputs") or {}, default=str
        ),
    }
    run = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in rounded(run).items()
    }
    try:
        return _publish(con, result, run, explain=result.plan_found)
    except Exception as exc:
        if not result.plan_found:
            raise
        # the explanation must never cost the plan: publish the plan alone and say why
        logger.exception("writing the explanation of plan %s failed", result.run_id)
        if result.explanation is not None:
            result.explanation.error = f"not written: {type(exc).__name__}: {exc}"
        return _publish(con, result, run, explain=False)


def _publish(con, result, run, *, explain: bool) -> dict[str, int]:
    from clinker_pipeline.explain.store import write_explanation

    counts: dict[str, int] = {}
    with transaction(con):
        if explain:  # before plan_runs gains this run: changes compare with the previous plan
            counts.update(write_explanation(con, result, run["scenario"], run["instance_name"]))
        _insert(con, "plan_runs", pd.DataFrame([run]))
        counts["plan_runs"] = 1
        for table, attr in DETAIL_TABLES.items():
            frame = getattr(result, attr)
            if frame is None or frame.empty:
                counts[table] = 0
                continue
            _insert(con, table, rounded(frame).assign(run_id=result.run_id))
            counts[table] = len(frame)
    return counts


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """Insert a frame by the table's column order (missing columns become NULL)."""
    columns = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall()]
    con.from_df(frame.reindex(columns=columns)).insert_into(table)


def latest_run(con: duckdb.DuckDBPyConnection, **where: Any) -> dict[str, Any] | None:
    """The newest plan_runs row matching equality filters (e.g. dagster_run_id=...)."""
    ensure_schema(con)
    sql = "SELECT * FROM plan_runs"
    params: list[Any] = []
    if where:
        sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
        params = list(where.values())
    cur = con.execute(sql + " ORDER BY created_at DESC LIMIT 1", params)
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))
