"""DuckDB tables of the explanations, written inside the plan's own publish transaction.

`plan_unmet_reasons`, `plan_marginals` and `plan_changes` are keyed by `run_id` like the other
`plan_*` tables; the view `plan_bottlenecks` ranks the binding limits of every run by value.
"""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from clinker_pipeline.explain.changes import compare_plans

EXPLAIN_TABLES: dict[str, str] = {
    "plan_unmet_reasons": """
        run_id VARCHAR NOT NULL,
        iugu_code VARCHAR NOT NULL,
        time_period INTEGER NOT NULL,
        unmet_t DOUBLE,
        reason VARCHAR NOT NULL,
        text VARCHAR,
        named_rows JSON,
        named_plants JSON
    """,
    "plan_marginals": """
        run_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        iugu_code VARCHAR,
        to_code VARCHAR,
        transport_code VARCHAR,
        time_period INTEGER,
        source_row INTEGER,
        description VARCHAR,
        unit VARCHAR,
        activity DOUBLE,
        bound DOUBLE,
        slack DOUBLE,
        binding BOOLEAN,
        serve_t_per_unit DOUBLE,
        saving_inr_per_unit DOUBLE,
        method VARCHAR
    """,
    "plan_changes": """
        run_id VARCHAR NOT NULL,
        previous_run_id VARCHAR,
        category VARCHAR NOT NULL,
        item VARCHAR NOT NULL,
        before DOUBLE,
        after DOUBLE,
        change DOUBLE,
        unit VARCHAR
    """,
}

BOTTLENECKS_VIEW = """
CREATE OR REPLACE VIEW plan_bottlenecks AS
SELECT *,
       row_number() OVER (PARTITION BY run_id
                          ORDER BY serve_t_per_unit DESC NULLS LAST,
                                   saving_inr_per_unit DESC NULLS LAST) AS rank
FROM plan_marginals
WHERE binding AND kind NOT IN ('demand', 'serve_floor')
  AND (serve_t_per_unit > 1e-6 OR saving_inr_per_unit > 1e-3)
"""


def ensure_explain_schema(con: duckdb.DuckDBPyConnection) -> None:
    for name, columns in EXPLAIN_TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
    con.execute(BOTTLENECKS_VIEW)


def previous_plan(
    con: duckdb.DuckDBPyConnection, run_id: str, scenario: str, instance_name: str | None
) -> str | None:
    """The newest successful run of the same scenario and instance, other than `run_id`."""
    row = con.execute(
        """
        SELECT run_id FROM plan_runs
        WHERE scenario = ? AND instance_name IS NOT DISTINCT FROM ? AND run_id <> ?
          AND status IN ('optimal', 'feasible-with-gap')
        ORDER BY created_at DESC LIMIT 1
        """,
        [scenario, instance_name, run_id],
    ).fetchone()
    return None if row is None else str(row[0])


def plan_frames(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[dict, dict]:
    """A stored plan's shipments, production and unmet, and its cost components."""
    frames = {
        attr: con.execute(f"SELECT * FROM {table} WHERE run_id = ?", [run_id]).df()
        for attr, table in (
            ("shipments", "plan_shipments"),
            ("production", "plan_production"),
            ("unmet", "plan_unmet"),
        )
    }
    cur = con.execute(
        "SELECT cost, production_cost, transport_cost, holding_cost FROM plan_runs "
        "WHERE run_id = ?",
        [run_id],
    )
    row = cur.fetchone()
    costs = dict(zip([d[0] for d in cur.description], row, strict=True)) if row else {}
    return frames, costs


def changes_against_previous(
    con: duckdb.DuckDBPyConnection, result, scenario: str, instance_name: str | None
) -> tuple[str | None, pd.DataFrame]:
    prev = previous_plan(con, result.run_id, scenario, instance_name)
    if prev is None:
        return None, pd.DataFrame()
    before, cost_before = plan_frames(con, prev)
    after = {"shipments": result.shipments, "production": result.production, "unmet": result.unmet}
    cost_after = {
        "cost": result.cost,
        "production_cost": result.production_cost,
        "transport_cost": result.transport_cost,
        "holding_cost": result.holding_cost,
    }
    return prev, compare_plans(before, after, (cost_before, cost_after))


def write_explanation(
    con: duckdb.DuckDBPyConnection, result, scenario: str, instance_name: str | None
) -> dict[str, int]:
    """Insert the run's reasons, marginals and changes (the caller holds the transaction).
    Changes are computed here, against the newest earlier plan in the same file."""
    from clinker_pipeline.lib.store.plan_store import _insert, rounded

    ensure_explain_schema(con)
    counts: dict[str, int] = {}
    explanation = result.explanation
    if explanation is not None and explanation.error is None:
        reasons = explanation.reasons
        if len(reasons):
            reasons = rounded(reasons).assign(
                named_rows=reasons["named_rows"].map(json.dumps),
                named_plants=reasons["named_plants"].map(json.dumps),
            )
        for table, frame in (
            ("plan_unmet_reasons", reasons),
            ("plan_marginals", explanation.marginals),
        ):
            if len(frame):
                _insert(con, table, frame.assign(run_id=result.run_id))
            counts[table] = len(frame)
    prev, changes = changes_against_previous(con, result, scenario, instance_name)
    if len(changes):
        _insert(con, "plan_changes", changes.assign(run_id=result.run_id, previous_run_id=prev))
    counts["plan_changes"] = len(changes)
    if explanation is not None:
        explanation.previous_run_id = prev
        explanation.changes = changes
    return counts
