"""The plan: solve the clinker model on validated tables, then publish it to DuckDB.

Solving and publishing are separate assets so a DuckDB hiccup can be retried without paying
for the solve again, and so the solve's metadata (status, cost, gap, timings) is visible even
when publishing fails.
"""

from datetime import UTC, datetime
from typing import Literal

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from clinker_pipeline import settings
from clinker_pipeline.defs.analytics import ensure_analyst_tables
from clinker_pipeline.defs.feeds.spec import discover_feeds
from clinker_pipeline.defs.planning.store import load_feed_inputs, write_comparison
from clinker_pipeline.defs.quality.assets import check_outcomes
from clinker_pipeline.defs.resources import (
    ErpSettings,
    InstanceFiles,
    ScenarioSettings,
    TelemetrySettings,
)
from clinker_pipeline.instance import TABLES, validate_instance
from clinker_pipeline.instance.loader import fingerprint, instance_name
from clinker_pipeline.instance.parse import coerce_tables
from clinker_pipeline.lib.calendar import current_period, monthly_periods
from clinker_pipeline.lib.markdown import to_markdown
from clinker_pipeline.lib.store.plan_store import DETAIL_TABLES, write_plan
from clinker_pipeline.lib.store.snapshot import publish_snapshot
from clinker_pipeline.optimization.result import PlanResult
from clinker_pipeline.optimization.scenarios import FeedInputs, apply_adjustments, json_safe

GROUP = "planning"
PLAN_FOUND_CHECK = "plan_found"
GAP_CHECK = "gap_within_target"
PLAN_MAX_RUNTIME_S = 3600
DUCKDB_WRITER_TAG = "clinker/duckdb_writer"


class PlanConfig(dg.Config):
    """Solver settings a planner may change per run from the launchpad."""

    objective: Literal["lexicographic", "penalty"] = "lexicographic"
    solver: str = "highs"
    mip_gap: float = 1e-4
    time_limit: float = 300.0
    holding_cost: float = 0.0
    penalty: float = 1e5
    scenario: str = "base"
    # "files": plan from the instance files; "erp": plants, stock, demand and capacity from the
    # ERP assets, the rest (lanes, costs, bounds) from the instance files.
    input_source: Literal["files", "erp"] = settings.input_source()
    # apply the feed adjustments (fuel-indexed road freight, weather road caps, stale-input
    # record); off reproduces the plain dataset run of the contract
    apply_feeds: bool = True


# read from DuckDB by the scenario layer (fuel, weather, silo levels and outages)
FEED_INPUTS = [
    *(spec.asset for spec in discover_feeds() if spec.plan_input),
    "silo_levels",
    "production_telemetry",
]

ERP_INPUTS = {  # ERP asset -> the instance table it replaces when input_source == "erp"
    "erp_plants": "plants",
    "erp_inventory": "opening_stock",
    "erp_demand_forecast": "clinker_demand",
    "erp_capacity": "clinker_capacity",
}


@dg.asset(
    ins={spec.name: dg.AssetIn(key=spec.name) for spec in TABLES}
    | {name: dg.AssetIn(key=name) for name in ERP_INPUTS},
    deps=FEED_INPUTS,
    group_name=GROUP,
    kinds={"pyomo", "highs"},
    owners=["team:planning"],
    tags={"dagster/max_runtime": str(PLAN_MAX_RUNTIME_S)},
    check_specs=[
        dg.AssetCheckSpec(
            PLAN_FOUND_CHECK,
            asset="clinker_plan",
            description="The solver found a plan (optimal or time-limited with an incumbent).",
        ),
        dg.AssetCheckSpec(
            GAP_CHECK,
            asset="clinker_plan",
            description="The plan is proven within the requested MIP gap.",
        ),
    ],
)
def clinker_plan(
    context: dg.AssetExecutionContext,
    config: PlanConfig,
    plants: pd.DataFrame,
    clinker_demand: pd.DataFrame,
    clinker_capacity: pd.DataFrame,
    production_cost: pd.DataFrame,
    logistics_lanes: pd.DataFrame,
    flow_constraints: pd.DataFrame,
    opening_stock: pd.DataFrame,
    closing_stock_bounds: pd.DataFrame,
    hub_opening_stock: pd.DataFrame,
    erp_plants: pd.DataFrame,
    erp_inventory: pd.DataFrame,
    erp_demand_forecast: pd.DataFrame,
    erp_capacity: pd.DataFrame,
    duckdb: DuckDBResource,
    erp: ErpSettings,
    scenarios: ScenarioSettings,
    telemetry: TelemetrySettings,
    instance_files: InstanceFiles,
):
    """Cheapest plan that serves the most demand: production, trips per lane, stock, shortfall."""
    from clinker_pipeline.optimization import SolveOptions, optimize  # heavy: pyomo, highspy

    tables = coerce_tables(
        {
            "plants": plants,
            "clinker_demand": clinker_demand,
            "clinker_capacity": clinker_capacity,
            "production_cost": production_cost,
            "logistics_lanes": logistics_lanes,
            "flow_constraints": flow_constraints,
            "opening_stock": opening_stock,
            "closing_stock_bounds": closing_stock_bounds,
            "hub_opening_stock": hub_opening_stock,
        }
    )
    if config.input_source == "erp":
        tables = _with_erp_tables(
            tables,
            {
                "erp_plants": erp_plants,
                "erp_inventory": erp_inventory,
                "erp_demand_forecast": erp_demand_forecast,
                "erp_capacity": erp_capacity,
            },
        )
    options = SolveOptions(
        objective=config.objective,
        solver=config.solver,
        mip_gap=config.mip_gap,
        time_limit=config.time_limit,
        holding_cost=config.holding_cost,
        penalty=config.penalty,
    )
    scenario_set = scenarios.load()
    scenario = scenario_set.get(config.scenario)
    if config.apply_feeds:
        feeds = read_feed_inputs(duckdb, erp, tables, telemetry)
        adjusted = apply_adjustments(tables, feeds, scenario, scenario_set.settings)
        model_tables, applied = adjusted.tables, adjusted.applied
        for feed, why in feeds.stale.items():
            context.log.warning(f"input {feed} is stale: {why}")
    else:
        model_tables, applied = tables, {"scenario": scenario.name, "feeds": "off"}
    result = optimize(model_tables, options)
    warned = [
        f"{c.asset}.{c.check}"
        for c in check_outcomes(context.instance, context.run.run_id)
        if not c.passed and c.severity == "WARN"
    ]
    result.inputs = tables
    result.options["input_check_warnings"] = warned
    result.options["scenario"] = config.scenario
    result.options["input_source"] = config.input_source
    result.options["inputs_fingerprint"] = fingerprint(tables)
    files_name = instance_name(instance_files.resolved_path())
    result.options["instance_name"] = (
        f"erp+{files_name}" if config.input_source == "erp" else files_name
    )
    result.options["adjustments"] = json_safe(applied)
    context.log.info(
        f"plan {result.run_id}: {result.status}, cost {result.cost}, served {result.served_pct}%"
    )
    yield dg.Output(
        result,
        metadata={
            **plan_metadata(result),
            # WARN checks of this run's inputs that failed: the plan went ahead, but shows them
            "input_check_warnings": dg.MetadataValue.json(warned),
        },
    )
    yield dg.AssetCheckResult(
        check_name=PLAN_FOUND_CHECK,
        passed=result.plan_found,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "status": result.status,
            "message": result.message,
            "diagnosis": dg.MetadataValue.md(
                to_markdown(
                    result.diagnosis[["description", "violation_t"]]
                    if len(result.diagnosis)
                    else result.diagnosis
                )
            ),
        },
    )
    within = result.mip_gap is not None and result.mip_gap <= options.mip_gap + 1e-12
    yield dg.AssetCheckResult(
        check_name=GAP_CHECK,
        passed=bool(result.plan_found and within),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"mip_gap": result.mip_gap, "target_gap": options.mip_gap},
    )


def _with_erp_tables(
    tables: dict[str, pd.DataFrame], erp: dict[str, pd.DataFrame]
) -> dict[str, pd.DataFrame]:
    """Swap in the ERP tables and re-validate the whole instance: ERP plant codes must still
    match the lanes, costs and bounds that come from the files."""
    replaced = coerce_tables({**tables, **{ERP_INPUTS[k]: v for k, v in erp.items()}})
    instance = validate_instance(replaced, origin="erp")
    if not instance.valid:
        sample = pd.DataFrame(
            [{"table": p.table, "row": p.row, "problem": p.message} for p in instance.errors[:50]]
        )
        raise dg.Failure(
            description=f"the ERP-based instance has {len(instance.errors)} error(s); "
            f"first: {instance.errors[0]}",
            metadata={"problems": dg.MetadataValue.md(to_markdown(sample))},
        )
    return instance.tables


def read_feed_inputs(
    duckdb: DuckDBResource,
    erp: ErpSettings,
    tables: dict[str, pd.DataFrame],
    telemetry: TelemetrySettings | None = None,
) -> FeedInputs:
    """The stored feeds on the planning calendar (periods are months from the plan start), and
    the telemetry overrides of the current period (fresh silo levels, plants that are down)."""
    from clinker_pipeline.defs.telemetry.store import telemetry_overrides

    periods = [
        int(p)
        for name in ("clinker_demand", "clinker_capacity")
        for p in tables[name]["time_period"].dropna()
    ]
    calendar = monthly_periods(erp.mapping().plan_start, max(periods, default=1))
    with duckdb.get_connection() as con:
        feeds = load_feed_inputs(con, calendar)
        if telemetry is not None:
            rules = telemetry.rules()
            window = current_period(calendar, datetime.now(UTC))
            caps, stock = telemetry_overrides(
                con,
                tables["clinker_capacity"],
                window.period if window else None,
                window.hours if window else 0.0,
                silo_fresh_hours=rules.silo_fresh_hours,
                outage_minutes=rules.outage_minutes,
                outage_assumed_hours=rules.outage_assumed_hours,
            )
            feeds.capacity_overrides = caps if len(caps) else None
            feeds.opening_stock_overrides = stock if len(stock) else None
            feeds.current_period = window.period if window else None
    return feeds


def plan_metadata(result: PlanResult) -> dict[str, object]:
    def num(v: float | None) -> float:
        return float("nan") if v is None else float(v)

    applied = result.options.get("adjustments") or {}
    fuel, weather = applied.get("fuel") or {}, applied.get("weather") or {}
    return {
        "scenario": str(result.options.get("scenario", "base")),
        "fuel_index": num(fuel.get("fuel_index")),
        "diesel_inr_per_litre": num(fuel.get("diesel_inr_per_litre")),
        "min_road_availability": num(weather.get("min_availability")),
        "road_caps_added": int(weather.get("road_caps_added", 0)),
        "stale_inputs": dg.MetadataValue.json(applied.get("stale_inputs") or {}),
        "feeds_not_applied": dg.MetadataValue.json(applied.get("not_applied") or {}),
        "adjustments": dg.MetadataValue.json(applied),
        "run_id": result.run_id,
        "status": result.status,
        "cost_inr": num(result.cost),
        "production_cost_inr": num(result.production_cost),
        "transport_cost_inr": num(result.transport_cost),
        "holding_cost_inr": num(result.holding_cost),
        "demand_t": result.demand_t,
        "unmet_t": num(result.unmet_t),
        "served_pct": num(result.served_pct),
        "mip_gap": num(result.mip_gap),
        "solver": f"{result.solver} {result.solver_version or ''}".strip(),
        "n_vars": result.n_vars,
        "n_int": result.n_int,
        "n_rows": result.n_rows,
        "build_s": round(result.build_s, 3),
        "handoff_s": round(result.handoff_s, 3),
        "solve_s": round(result.solve_s, 3),
        "extract_s": round(result.extract_s, 3),
        "message": result.message,
        "cost_by_iu": dg.MetadataValue.md(to_markdown(result.cost_by_iu())),
    }


PUBLISHED = ("plan_runs", *DETAIL_TABLES)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            name,
            deps=["clinker_plan"],
            group_name=GROUP,
            kinds={"duckdb"},
            owners=["team:planning"],
            description=f"DuckDB table {name}: one set of rows per optimizer run (run_id).",
        )
        for name in PUBLISHED
    ],
    ins={"clinker_plan": dg.AssetIn()},
)
def plan_tables(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, clinker_plan: PlanResult
):
    """Append the run to the analysts' tables in one transaction; `latest_plan_*` views follow."""
    with duckdb.get_connection() as con:
        ensure_analyst_tables(con)
        counts = write_plan(
            con,
            clinker_plan,
            scenario=str(clinker_plan.options.get("scenario", "base")),
            launched_by="dagster",
            inputs_fingerprint=clinker_plan.options.get("inputs_fingerprint"),
            input_origin=str(clinker_plan.options.get("input_source", "files")),
            dagster_run_id=context.run.run_id,
            input_warnings=clinker_plan.warnings,
            instance_name=clinker_plan.options.get("instance_name"),
        )
        snapshot = publish_snapshot(con, duckdb.database)
    if snapshot is not None:
        context.log.info(f"analysts' snapshot published at {snapshot}")
    for name in PUBLISHED:
        yield dg.MaterializeResult(
            asset_key=name,
            metadata={
                "analytics_snapshot": str(snapshot) if snapshot else "",
                "run_id": clinker_plan.run_id,
                "rows_added": counts.get(name, 0),
                "status": clinker_plan.status,
            },
        )


class ScenarioRunConfig(dg.Config):
    """Which scenarios of the set to compare (empty: all) and the solver budget per scenario."""

    scenarios: list[str] = []
    time_limit: float = 120.0


@dg.asset(
    ins={"clinker_plan": dg.AssetIn()},
    group_name=GROUP,
    kinds={"pyomo", "highs", "duckdb"},
    owners=["team:planning"],
    tags={"dagster/max_runtime": str(PLAN_MAX_RUNTIME_S)},
    description="The named scenarios (scenarios.json) solved on the plan's own inputs and feeds; "
    "one row per scenario in DuckDB table scenario_comparison (cost, served %, rail share).",
)
def scenario_comparison(
    context: dg.AssetExecutionContext,
    config: ScenarioRunConfig,
    clinker_plan: PlanResult,
    duckdb: DuckDBResource,
    erp: ErpSettings,
    scenarios: ScenarioSettings,
    telemetry: TelemetrySettings,
) -> dg.MaterializeResult:
    """What-ifs next to the plan: each scenario is a full solve, published like the plan."""
    from clinker_pipeline.optimization import SolveOptions
    from clinker_pipeline.optimization.comparison import (
        ScenarioRun,
        comparison_table,
        run_scenarios,
    )
    from clinker_pipeline.optimization.scenarios import Adjusted

    if not clinker_plan.inputs:
        raise dg.Failure("the plan carries no input tables to run scenarios on")
    scenario_set = scenarios.load()
    applied = clinker_plan.options.get("adjustments") or {}
    feeds_on = applied.get("feeds") != "off"
    feeds = read_feed_inputs(duckdb, erp, clinker_plan.inputs) if feeds_on else FeedInputs()
    base = None
    if clinker_plan.options.get("scenario", "base") == "base" and clinker_plan.plan_found:
        base = ScenarioRun(
            scenario_set.get("base"), Adjusted({}, applied, pd.DataFrame()), clinker_plan
        )
    opts = clinker_plan.options
    options = SolveOptions(
        objective=opts.get("objective", "lexicographic"),
        solver=opts.get("solver", "highs"),
        mip_gap=float(opts.get("mip_gap", 1e-4)),
        time_limit=config.time_limit,
        holding_cost=float(opts.get("holding_cost", 0.0)),
        penalty=float(opts.get("penalty", 1e5)),
    )
    runs = run_scenarios(
        clinker_plan.inputs, feeds, scenario_set, options, config.scenarios or None, base
    )
    table = comparison_table(runs)
    with duckdb.get_connection() as con:
        for run in runs:
            if run is base:
                continue
            write_plan(
                con,
                run.result,
                scenario=run.scenario.name,
                launched_by="dagster-scenarios",
                inputs_fingerprint=opts.get("inputs_fingerprint"),
                input_origin=str(opts.get("input_source", "files")),
                dagster_run_id=context.run.run_id,
                input_warnings=run.result.warnings,
                instance_name=opts.get("instance_name"),
            )
        write_comparison(
            con,
            table,
            comparison_id=context.run.run_id,
            stale_inputs=feeds.stale,
            dagster_run_id=context.run.run_id,
        )
        # the comparison is published too: analysts must not read the previous one
        publish_snapshot(con, duckdb.database)
    shown = table[
        ["scenario", "status", "cost_inr", "served_pct", "rail_share_pct", "cost_vs_base_pct"]
    ]
    return dg.MaterializeResult(
        metadata={
            "scenarios": len(table),
            "comparison": dg.MetadataValue.md(to_markdown(shown, float_format="{:,.2f}")),
            "stale_inputs": dg.MetadataValue.json(feeds.stale),
            "dagster/row_count": len(table),
        }
    )


plan_job = dg.define_asset_job(
    "clinker_plan_job",
    # the quality report is built per finished run by data_quality_sensor (it must also run
    # when a blocking check stopped this job), so it is not part of the job
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("quality"),
    description="Load and validate the instance and feeds, solve the plan and the scenarios, "
    "publish them to DuckDB.",
    # dagster.yaml lets one run with this tag at a time: DuckDB has a single writer.
    tags={DUCKDB_WRITER_TAG: "true"},
)
