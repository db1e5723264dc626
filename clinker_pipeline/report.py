"""Human-readable plan summaries for the terminal (CLI and the main job)."""

from __future__ import annotations

import pandas as pd

from clinker_pipeline.optimization.result import PlanResult


def _inr(v: float | None) -> str:
    if v is None:
        return "n/a"
    if abs(v) >= 1e7:
        return f"INR {v / 1e7:,.2f} crore"
    return f"INR {v:,.0f}"


def plan_summary(result: PlanResult, duckdb_path: str | None = None, top: int = 5) -> str:
    lines = [
        f"Plan {result.run_id} ({result.objective}, {result.solver} {result.solver_version or ''})".rstrip()
    ]
    lines.append(
        f"  status      {result.status}" + (f" - {result.message}" if result.message else "")
    )
    if result.plan_found:
        gap = "n/a" if result.mip_gap is None else f"{100 * result.mip_gap:.4f} %"
        lines += [
            f"  served      {result.served_pct:.4f} % of {result.demand_t:,.0f} t "
            f"(unmet {result.unmet_t:,.0f} t)" + _serve_proof(result),
            f"  cost        {_inr(result.cost)} = production {_inr(result.production_cost)}"
            f" + transport {_inr(result.transport_cost)} + holding {_inr(result.holding_cost)}",
            f"  MIP gap     {gap}",
        ]
        ship = result.shipments
        if len(ship):
            by_mode = ship.groupby("transport_code")["quantity_t"].sum()
            trips = int(ship["trips"].fillna(0).sum())
            modes = ", ".join(f"{m} {q:,.0f} t" for m, q in by_mode.items())
            lines.append(
                f"  shipments   {len(ship)} lane-periods, {modes}; {trips:,} full-load trips"
            )
        by_iu = result.cost_by_iu().head(top)
        if len(by_iu):
            lines.append(f"  top {len(by_iu)} IUs by cost:")
            for r in by_iu.itertuples(index=False):
                lines.append(
                    f"    {r.iu_code:<10} produce {r.production_t:>12,.0f} t  ship {r.shipped_t:>12,.0f} t"
                    f"  {_inr(r.total_cost_inr)}"
                )
    elif len(result.diagnosis):
        lines.append("  rows that must give:")
        lines += [f"    - {d}" for d in result.diagnosis["description"].head(10)]
    explanation = getattr(result, "explanation", None)
    if result.plan_found and explanation is not None:
        lines += _explanation_lines(explanation)
    applied = result.options.get("adjustments") or {}
    if applied.get("fuel") or applied.get("weather"):
        fuel, weather = applied.get("fuel") or {}, applied.get("weather") or {}
        parts = []
        if fuel:
            parts.append(
                f"diesel INR {fuel['diesel_inr_per_litre']:.2f}/L (week {fuel.get('diesel_week')}),"
                f" road freight x{fuel['fuel_index']:.4f}"
            )
        if weather:
            parts.append(
                f"road availability min {weather['min_availability']:.3f}"
                f" (IUs with reduced road: {weather['plants_with_reduced_road']})"
            )
        lines.append("  feeds       " + "; ".join(parts))
    stale = applied.get("stale_inputs") or {}
    if stale:
        lines.append(f"  STALE       {', '.join(sorted(stale))} (last good data used)")
    for feed, why in sorted((applied.get("not_applied") or {}).items()):
        lines.append(f"  not applied {feed}: {why}")
    lines.append(
        f"  model       {result.n_vars:,} vars ({result.n_int:,} integer), {result.n_rows:,} rows; "
        f"build {result.build_s:.2f} s, hand-off {result.handoff_s:.2f} s, "
        f"solve {result.solve_s:.2f} s, extract {result.extract_s:.2f} s"
    )
    if duckdb_path:
        lines.append(
            f"  written to  {duckdb_path} (plan_runs, plan_production, plan_shipments, "
            "plan_inventory, plan_unmet; views latest_plan_*)"
        )
    return "\n".join(lines)


def _explanation_lines(explanation) -> list[str]:
    """Why unmet, the top bottleneck and what changed: one line each (`clinker explain` has all)."""
    from clinker_pipeline.explain.changes import change_summary

    if explanation.error:
        return [f"  explain     failed, plan kept: {explanation.error}"]
    lines = []
    reasons = explanation.reasons
    if len(reasons):
        by = reasons.groupby("reason")["unmet_t"].sum().sort_values(ascending=False)
        lines.append("  unmet why   " + ", ".join(f"{code} {t:,.0f} t" for code, t in by.items()))
    top = explanation.top_bottleneck()
    if top:
        lines.append(f"  bottleneck  {top}")
    lines.append(
        f"  changes     {change_summary(explanation.changes, explanation.previous_run_id)}"
    )
    return lines


def scenario_summary(table: pd.DataFrame) -> str:
    """The scenario comparison as a few aligned lines (the full table is in DuckDB)."""
    if table is None or table.empty:
        return ""
    lines = ["Scenarios (table scenario_comparison):"]
    for r in table.itertuples(index=False):
        cost = "n/a" if pd.isna(r.cost_inr) else f"{r.cost_inr / 1e7:,.2f} cr"
        delta = "" if pd.isna(r.cost_vs_base_pct) else f"{r.cost_vs_base_pct:+.2f} %"
        lines.append(
            f"  {r.scenario:<16} {r.status:<18} cost {cost:>14} {delta:>9}"
            f"  served {r.served_pct:7.3f} %  rail {r.rail_share_pct:5.1f} %"
        )
    return "\n".join(lines)


def _score(value: float | None) -> str:
    return "    -" if value is None or pd.isna(value) else f"{value:5.1f}"


def quality_summary(report: pd.DataFrame | None) -> str:
    """One line per feed: score, checks and quarantined rows (table data_quality_report)."""
    if report is None or report.empty:
        return ""
    lines = ["Data quality (table data_quality_report; score 0-100):"]
    for r in report.itertuples(index=False):
        failed = r.checks_failed_error + r.checks_failed_warn
        lines.append(
            f"  {r.feed:<16} {_score(r.score)}  checks {r.checks_passed}/{r.checks_run} passed"
            + (f" ({failed} failed)" if failed else "")
            + f", kept {r.rows_kept:,}, quarantined {r.rows_quarantined_error:,} ERROR"
            f" / {r.rows_quarantined_warn:,} WARN, {r.freshness}"
        )
    return "\n".join(lines)


def _serve_proof(result: PlanResult) -> str:
    """How close the serve stage is to proven: a better plan could serve at most this share
    of demand more (nothing when proven, or when the run had no serve stage)."""
    if result.serve_gap is None or result.serve_gap <= 1e-9:
        return ""
    return f" (serve stage within {100 * result.serve_gap:.4f} %)"
