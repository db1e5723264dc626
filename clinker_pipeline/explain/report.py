"""A published plan's explanation read back from DuckDB, as a record and as terminal text
(`clinker explain`)."""

from __future__ import annotations

import json
import math
from typing import Any

import duckdb
import pandas as pd

from clinker_pipeline.explain.changes import change_summary
from clinker_pipeline.lib.store.db import table_exists


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _records(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [{k: _clean(v) for k, v in zip(names, row, strict=True)} for row in cur.fetchall()]


def load_explanation(database: str, run_id: str | None, top: int = 10) -> dict[str, Any] | None:
    """Reasons, the top bottlenecks and the changes of `run_id` (default: the latest base
    plan); None when the file holds no such run."""
    with duckdb.connect(database, read_only=True) as con:
        if not table_exists(con, "plan_runs"):
            return None
        if run_id is None:
            row = con.execute(
                "SELECT run_id FROM plan_runs WHERE scenario = 'base' "
                "AND status IN ('optimal', 'feasible-with-gap') ORDER BY created_at DESC LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            run_id = str(row[0])
        runs = _records(
            con,
            "SELECT run_id, created_at, scenario, status, cost, served_pct, unmet_t "
            "FROM plan_runs WHERE run_id = ?",
            [run_id],
        )
        if not runs:
            return None
        if not table_exists(con, "plan_marginals"):  # a file written before explanations existed
            return {
                **runs[0],
                "unmet_reasons": [],
                "bottlenecks": [],
                "changes": [],
                "previous_run_id": None,
                "changes_summary": "not recorded",
            }
        reasons = _records(
            con,
            "SELECT iugu_code, time_period, unmet_t, reason, text, named_rows, named_plants "
            "FROM plan_unmet_reasons WHERE run_id = ? ORDER BY unmet_t DESC",
            [run_id],
        )
        for r in reasons:
            r["named_rows"] = json.loads(r["named_rows"] or "[]")
            r["named_plants"] = json.loads(r["named_plants"] or "[]")
        bottlenecks = _records(
            con,
            "SELECT rank, kind, iugu_code, to_code, transport_code, time_period, source_row, "
            "description, unit, slack, serve_t_per_unit, saving_inr_per_unit, method "
            "FROM plan_bottlenecks WHERE run_id = ? ORDER BY rank LIMIT ?",
            [run_id, top],
        )
        changes = _records(
            con,
            "SELECT previous_run_id, category, item, before, after, change, unit "
            "FROM plan_changes WHERE run_id = ? ORDER BY category, abs(change) DESC",
            [run_id],
        )
    previous = changes[0]["previous_run_id"] if changes else None
    summary = change_summary(pd.DataFrame(changes), previous)
    shown = [c for c in changes if c["category"] == "cost"]
    shown += [c for c in changes if c["category"] != "cost"][:top]
    return {
        **runs[0],
        "unmet_reasons": reasons,
        "bottlenecks": bottlenecks,
        "previous_run_id": previous,
        "changes_summary": summary,
        "changes": shown,
    }


def explain_text(record: dict[str, Any]) -> str:
    lines = [
        f"Plan {record['run_id']} ({record['scenario']}, {record['status']}, "
        f"{record['created_at']}): served {record['served_pct']:.4f} %, "
        f"unmet {record['unmet_t']:,.0f} t"
    ]
    reasons = [r for r in record["unmet_reasons"] if r["reason"] != "solver_tolerance"]
    tiny = len(record["unmet_reasons"]) - len(reasons)
    lines.append(
        f"Unmet demand and why ({len(reasons)} node-periods, table plan_unmet_reasons"
        + (f"; {tiny} more within the solver's tolerance" if tiny else "")
        + "):"
    )
    for r in reasons:
        lines.append(
            f"  {r['iugu_code']:<10} p{r['time_period']:<3} {r['unmet_t']:>12,.0f} t  "
            f"{r['reason']:<26} {r['text'].split(': ', 1)[-1]}"
        )
    if not reasons:
        lines.append("  none: all demand served")
    lines.append("Top bottlenecks (view plan_bottlenecks; per unit loosened, trips fixed):")
    for b in record["bottlenecks"]:
        where = (
            b["description"]
            if b["kind"] == "dispatch_row"
            else (
                f"{b['kind']} {b['iugu_code']}"
                + (f" -> {b['to_code']} {b['transport_code']}" if b["to_code"] else "")
                + f" p{b['time_period']}"
            )
        )
        lines.append(
            f"  {b['rank']:>2}. {where}: +1 {b['unit']} serves {b['serve_t_per_unit'] or 0:,.2f} t,"
            f" saves INR {b['saving_inr_per_unit'] or 0:,.0f}"
        )
    if not record["bottlenecks"]:
        lines.append("  none binding")
    lines.append(f"Changes (table plan_changes): {record['changes_summary']}")
    for c in record["changes"]:
        scale, unit = (1e7, "crore") if c["unit"] == "INR" else (1.0, c["unit"])
        lines.append(
            f"  {c['category']:<12} {c['item']:<40} {c['before'] / scale:>14,.2f} -> "
            f"{c['after'] / scale:>14,.2f} {unit} ({c['change'] / scale:+,.2f})"
        )
    return "\n".join(lines)
